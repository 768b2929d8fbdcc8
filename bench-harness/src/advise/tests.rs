//! The advisor on a real full ladder (4 BFT validators, 8000 tx/s, 3 repeats, capacity per
//! step; 2026-12-03 on this project's 2-core CI machine type), committed as a fixture.

use super::*;
use crate::experiment::StepResult;

fn fixture() -> ExperimentResults {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/full-ladder-bft4.results.json"
    );
    ExperimentResults::load(std::path::Path::new(path)).unwrap()
}

/// Whether turning on step `j`'s toggle mattered: capacity or TPS up 10 % on the step before,
/// or one of the toggle's own rule figures down 30 % (the direction its rule promises).
fn mattered(r: &ExperimentResults, j: usize) -> bool {
    let (now, before) = (&r.steps[j], &r.steps[j - 1]);
    let cap = |s: &StepResult| s.capacity.as_ref().and_then(|c| c.rate).map(|r| r as f64);
    if let (Some(a), Some(b)) = (cap(now), cap(before)) {
        if a >= 1.1 * b {
            return true;
        }
    }
    if now.tps >= 1.1 * before.tps {
        return true;
    }
    let (en, eb) = (
        Evidence::of_step(now, &r.info),
        Evidence::of_step(before, &r.info),
    );
    RULES
        .iter()
        .filter(|rule| rule.toggle == now.toggle.as_deref())
        .any(
            |rule| match (rule.metric.value(&en), rule.metric.value(&eb)) {
                (Some(a), Some(b)) => a <= 0.7 * b,
                _ => false,
            },
        )
}

#[test]
fn each_steps_first_suggestion_is_a_toggle_still_off_that_the_later_steps_show_mattered() {
    let r = fixture();
    let ladder: Vec<usize> = (0..r.steps.len())
        .filter(|&i| r.steps[i].kind == "ladder")
        .collect();
    assert_eq!(ladder.len(), 12, "the fixture is the whole ladder");
    let mut named = Vec::new();
    for &i in &ladder {
        let step = &r.steps[i];
        let a = advise(&Evidence::of_step(step, &r.info));
        let later_mattered: Vec<&str> = ladder
            .iter()
            .filter(|&&j| j > i && mattered(&r, j))
            .filter_map(|&j| r.steps[j].toggle.as_deref())
            .collect();
        match a.next() {
            Some(t) => {
                assert!(
                    !step.enabled.iter().any(|e| e == t),
                    "{}: {t} is on",
                    step.name
                );
                let j = ladder
                    .iter()
                    .find(|&&j| j > i && r.steps[j].toggle.as_deref() == Some(t))
                    .unwrap_or_else(|| panic!("{}: no later step turns on {t}", step.name));
                assert!(
                    mattered(&r, *j),
                    "{}: suggests {t}, which did not matter (mattered later: {later_mattered:?})\n{}",
                    step.name,
                    text(&a)
                );
            }
            None => {
                assert!(
                    later_mattered.is_empty(),
                    "{}: no suggestion, but {later_mattered:?} mattered later\n{}",
                    step.name,
                    text(&a)
                );
                assert!(
                    !a.limits.is_empty(),
                    "{}: neither a toggle nor a limit",
                    step.name
                );
            }
        }
        named.push((step.name.clone(), a.next().map(str::to_string)));
    }
    // What the fixture's evidence points at, step by step (the order the ladder's figures
    // support, not the ladder's own order).
    let first: Vec<Option<&str>> = named.iter().map(|(_, t)| t.as_deref()).collect();
    assert_eq!(first[0], Some("sig-cache"), "{named:?}");
    assert_eq!(first[4], Some("gossip-batch"), "{named:?}");
    assert_eq!(first[6], Some("buffer-pool"), "{named:?}");
}

#[test]
fn on_the_tuned_step_it_names_what_limits_the_chain() {
    let r = fixture();
    let evidence = select(&r, None, false).unwrap();
    assert_eq!(evidence.len(), 1, "one engine: its last ladder step");
    let a = advise(&evidence[0]);
    assert_eq!(a.source, "+zero-copy-net");
    assert_eq!(a.next(), None, "{}", text(&a));
    let limit = &a.limits[0].limit;
    assert!(
        [
            "signature verification CPU",
            "fsync (the disk)",
            "network and consensus rounds"
        ]
        .contains(&limit.as_str()),
        "{limit}"
    );
    // This ladder ran without probes: their rules say so instead of staying silent.
    assert!(
        a.not_evaluated.iter().any(|n| n.contains("eBPF probes")),
        "{:?}",
        a.not_evaluated
    );
    let t = text(&a);
    assert!(t.contains("limited by: signature verification CPU"), "{t}");
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["limits"][0]["limit"], "signature verification CPU");
}

#[test]
fn steps_are_chosen_by_name_or_all_and_unknown_names_are_refused() {
    let r = fixture();
    assert_eq!(select(&r, None, true).unwrap().len(), r.steps.len());
    let one = select(&r, Some("baseline"), false).unwrap();
    assert_eq!(one[0].source, "baseline");
    let e = select(&r, Some("+nothing"), false).unwrap_err();
    assert!(e.contains("+nothing") && e.contains("+sig-cache"), "{e}");
}

#[test]
fn every_rule_names_a_real_toggle_and_says_why() {
    let names: Vec<&str> = tpslab_types::tuning::CATALOGUE
        .iter()
        .map(|t| t.name)
        .collect();
    for rule in RULES {
        assert!(!rule.why.is_empty());
        match rule.toggle {
            Some(t) => {
                assert!(names.contains(&t), "{t}");
                assert!(!rule.expect.is_empty(), "{t}");
            }
            None => assert!(!rule.limit.is_empty()),
        }
        for r in rule.requires {
            assert!(names.contains(r), "{r}");
        }
    }
}

#[test]
fn cpu_shares_sort_functions_by_kind_of_work() {
    let f = |name: &str, s: f64| crate::profile::FunctionShare {
        name: name.into(),
        self_share: s,
        total_share: s,
    };
    let c = CpuShares::of(&[
        f("curve25519_dalek::field::FieldElement51::pow2k", 0.3),
        f("core::core_arch::x86::avx2::_mm256_add_epi64", 0.2),
        f("rocksdb::MemTable::Add", 0.1),
        f("core::fmt::write", 0.05),
        f("tokio::runtime::park", 0.1),
    ])
    .unwrap();
    assert!((c.verify - 0.5).abs() < 1e-9 && (c.storage - 0.1).abs() < 1e-9);
    assert!((c.format - 0.05).abs() < 1e-9 && (c.covered - 0.75).abs() < 1e-9);
    assert_eq!(CpuShares::of(&[]), None);
}

/// A tuned chain (every toggle but `off`) whose only notable figure is the one given.
fn tuned_but(off: &str, set: impl FnOnce(&mut Evidence)) -> Evidence {
    let mut e = Evidence {
        source: "synthetic".into(),
        enabled: tpslab_types::tuning::CATALOGUE
            .iter()
            .map(|t| t.name.to_string())
            .filter(|t| t != off)
            .collect(),
        ..Default::default()
    };
    set(&mut e);
    e
}

#[test]
fn whole_tx_proposals_point_at_compact_blocks_and_one_copy_does_not() {
    let twice = tuned_but("compact-blocks", |e| e.wire_copies_per_tx = Some(2.1));
    assert_eq!(advise(&twice).next(), Some("compact-blocks"));
    let once = tuned_but("compact-blocks", |e| e.wire_copies_per_tx = Some(1.15));
    assert_eq!(advise(&once).next(), None);
}

#[test]
fn txs_verified_again_at_execution_point_at_parallel_exec_once_sig_cache_is_on() {
    let again = tuned_but("parallel-exec", |e| e.verifications_per_tx = Some(1.4));
    assert_eq!(advise(&again).next(), Some("parallel-exec"));
    let once = tuned_but("parallel-exec", |e| e.verifications_per_tx = Some(1.02));
    assert_eq!(advise(&once).next(), None);
    // Without sig-cache, every block re-verifies: that is sig-cache's finding first.
    let mut naive = again.clone();
    naive.enabled.retain(|t| t != "sig-cache");
    naive.verifications_per_tx = Some(1.9);
    assert_eq!(advise(&naive).next(), Some("sig-cache"));
}

#[test]
fn wire_copies_divide_bytes_sent_by_tx_bytes_per_peer() {
    let node = |sent: u64, tx: u64| crate::monitor::NodeResources {
        p2p_sent_bytes: Some(sent),
        committed_tx_bytes: Some(tx),
        ..Default::default()
    };
    // 4 validators committed 1 MB of txs each and sent 6 MB together: 2 copies per peer.
    let four: Vec<_> = (0..4).map(|_| node(1_500_000, 1_000_000)).collect();
    let c = super::evidence::wire_copies(&four).unwrap();
    assert!((c - 2.0).abs() < 1e-9, "{c}");
    assert_eq!(super::evidence::wire_copies(&four[..1]), None, "no peers");
    let mut unknown = four.clone();
    unknown[2].committed_tx_bytes = None;
    assert_eq!(super::evidence::wire_copies(&unknown), None);
}
