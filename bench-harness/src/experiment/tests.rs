//! Unit tests of the experiment's plan, engines and accounting.
use super::*;

#[test]
fn the_ladder_adds_one_toggle_per_step_and_ends_tuned() {
    let steps = plan(false, true);
    assert_eq!(steps[0].tuning, Tuning::baseline());
    let ladder: Vec<_> = steps.iter().filter(|s| s.kind == "ladder").collect();
    assert_eq!(ladder.len(), CATALOGUE.len() + 1);
    for w in ladder.windows(2) {
        assert_eq!(w[1].tuning.enabled().len(), w[0].tuning.enabled().len() + 1);
    }
    assert_eq!(ladder.last().unwrap().tuning, Tuning::tuned());
    let ablation: Vec<_> = steps.iter().filter(|s| s.kind == "ablation").collect();
    assert_eq!(ablation.len(), CATALOGUE.len());
    assert!(ablation
        .iter()
        .all(|s| s.tuning.enabled().len() == CATALOGUE.len() - 1));
    let quick = plan(true, false);
    assert_eq!(quick.len(), 2);
    assert_eq!(quick[1].tuning, Tuning::tuned());
}

#[test]
fn the_accounting_table_counts_every_tx_and_flags_a_late_generator() {
    let cfg = test_cfg();
    let mut r = ExperimentResults::new(&cfg);
    let steps = on_engines(&plan(true, false), &cfg);
    let report = crate::LoadReport {
        target_rate: Some(1000),
        duration_secs: 1.0,
        sent: 1000,
        accepted: 990,
        rejected: [("mempool is full".to_string(), 10)].into(),
        committed: 900,
        uncommitted: 90,
        sent_late: 50,
        generator_cpu_pct: Some(12.0),
        ..Default::default()
    };
    r.push(&steps[0], report, None);
    let t = r.txs_table();
    assert!(
        t.contains("| baseline | 1000 | 1000 | 990 | 10 | 900 | 9.1% | 5.0% | 12 |"),
        "{t}"
    );
    assert!(
        t.contains("the generator fell behind (5.0% of sends"),
        "{t}"
    );
    assert!(t.contains("rejected 10: mempool is full"), "{t}");
}

fn test_cfg() -> ExperimentConfig {
    ExperimentConfig {
        exe: PathBuf::new(),
        out: PathBuf::new(),
        validators: 4,
        engines: vec![EngineKind::Raft, EngineKind::Bft],
        raft_validators: 3,
        rate: 1,
        duration: Duration::ZERO,
        warmup: Duration::ZERO,
        drain: Duration::ZERO,
        accounts: 1,
        tx_size: 1,
        block_interval_ms: 1,
        quick: true,
        ablation: false,
        profile: false,
        probes: false,
        variants: Vec::new(),
        perturb: None,
        resume: false,
        build: String::new(),
    }
}

#[test]
fn two_engines_run_each_step_side_by_side_at_their_own_size() {
    let cfg = test_cfg();
    let steps = on_engines(&plan(true, false), &cfg);
    let got: Vec<(&str, EngineKind, usize)> = steps
        .iter()
        .map(|s| (s.name.as_str(), s.engine, s.validators))
        .collect();
    assert_eq!(
        got,
        vec![
            ("baseline", EngineKind::Raft, 3),
            ("baseline", EngineKind::Bft, 4),
            ("tuned", EngineKind::Raft, 3),
            ("tuned", EngineKind::Bft, 4),
        ]
    );
}
