//! Unit tests of the experiment's plan, engines and accounting.
use super::*;
use crate::experiment::{Capacity, RunFigures};

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
    r.push(&steps[0], report, None, 0);
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
    assert!(
        t.contains(&format!(
            "the load generator took at most 12% of one core, {:.0}% of this machine's {} CPUs",
            12.0 / r.info.cpus as f64,
            r.info.cpus
        )),
        "{t}"
    );
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
        repeats: 1,
        capacity: CapacityConfig {
            plan: CapacityPlan::None,
            slo_p99_ms: 1000.0,
            trial: Duration::ZERO,
            start_rate: 1000,
            max_rate: 200_000,
        },
        links: Default::default(),
        node_cpus: Vec::new(),
        placement: None,
    }
}

/// Repeats run interleaved: every step once before any step twice; a capacity search right
/// after its step's first run, in ladder order.
#[test]
fn units_run_round_robin_with_each_search_after_its_steps_first_run() {
    let mut cfg = test_cfg();
    cfg.engines = vec![EngineKind::Bft];
    cfg.repeats = 3;
    cfg.capacity.plan = CapacityPlan::BaselineTuned;
    let steps = on_engines(&plan(false, false), &cfg);
    let units = units(&steps, &cfg);
    let n = steps.len();
    assert_eq!(units.len(), 3 * n + 2);
    assert_eq!(units[0], Unit::Run { step: 0, repeat: 0 });
    assert_eq!(units[1], Unit::Capacity { step: 0 });
    assert_eq!(
        units[n],
        Unit::Run {
            step: n - 1,
            repeat: 0
        }
    );
    assert_eq!(units[n + 1], Unit::Capacity { step: n - 1 });
    let runs: Vec<(usize, u32)> = units
        .iter()
        .filter_map(|u| match u {
            Unit::Run { step, repeat } => Some((*step, *repeat)),
            Unit::Capacity { .. } => None,
        })
        .collect();
    for (k, (step, repeat)) in runs.iter().enumerate() {
        assert_eq!((*step, *repeat), (k % n, (k / n) as u32));
    }
    cfg.capacity.plan = CapacityPlan::All;
    assert_eq!(crate::experiment::units(&steps, &cfg).len(), 4 * n);
}

/// Medians and ranges in the table, the verdict against the step before, and both headline
/// ratios with their definitions.
#[test]
fn the_table_shows_spreads_noise_and_both_headlines() {
    let mut cfg = test_cfg();
    cfg.engines = vec![EngineKind::Bft];
    cfg.rate = 8000;
    let steps = on_engines(&plan(true, false), &cfg);
    let mut r = ExperimentResults::new(&cfg);
    let report = |tps: f64| crate::LoadReport {
        target_rate: Some(8000),
        duration_secs: 10.0,
        committed_tps: tps,
        ..Default::default()
    };
    let fig = |tps: f64, repeat, order| RunFigures::of(&report(tps), repeat, order);
    r.push(&steps[0], report(1000.0), None, 0);
    r.push(&steps[1], report(7000.0), None, 1);
    r.add_repeat(0, fig(1100.0, 1, 2));
    r.add_repeat(1, fig(7600.0, 1, 3));
    r.add_repeat(0, fig(1200.0, 2, 4));
    r.add_repeat(1, fig(8000.0, 2, 5));
    let cap = |rate, failed| Capacity {
        rate: Some(rate),
        tps: rate as f64,
        p99_ms: 500.0,
        failed_at: Some(failed),
        started_at: 1000,
        slo_p99_ms: 1000.0,
        trials: Vec::new(),
    };
    r.steps[0].capacity = Some(cap(1100, 1122));
    r.steps[1].capacity = Some(cap(9900, 10100));
    assert_eq!(r.steps[0].tps, 1100.0);
    assert_eq!(r.steps[1].tps, 7600.0);
    assert!((r.steps[1].x_baseline - 7600.0 / 1100.0).abs() < 1e-9);
    let t = r.table();
    assert!(t.contains("| baseline | - | 1100 (1000-1200) |"), "{t}");
    assert!(t.contains("| tuned | all | 7600 (7000-8000) |"), "{t}");
    assert!(t.contains("| 1100 |") && t.contains("| 9900 |"), "{t}");
    assert!(t.contains("| 6.91x |"), "{t}");
    assert!(t.contains("within noise"), "{t}");
    assert!(
        t.contains("tuned vs baseline at 8000 tx/s offered (same-load ratio"),
        "{t}"
    );
    assert!(t.contains("6.91x (7600 vs 1100); 5.83-8.00x"), "{t}");
    assert!(
        t.contains("capacity (highest offered rate with >= 95% committed and P99 <= 1000 ms): 9.00x (9900 vs 1100 tx/s"),
        "{t}"
    );
    // A third tuned run close to the baseline's spread: within noise of it.
    let mut close = r.clone();
    close.steps[1].repeats = vec![fig(1150.0, 0, 1), fig(1250.0, 1, 3), fig(1300.0, 2, 5)];
    assert_eq!(close.noise(1), Some(Noise::Within));
    assert_eq!(r.noise(1), Some(Noise::Beyond(7600.0 / 1100.0)));
    assert_eq!(r.noise(0), None);

    // A baseline that committed nothing in its window (overloaded, on a busy machine) is no
    // divisor: no ratio is printed, not an astronomic one.
    let mut zero = r.clone();
    zero.steps[0].repeats.clear();
    zero.add_repeat(0, fig(0.0, 0, 0));
    let t = zero.table();
    assert!(
        t.contains("same-load ratio: committed TPS at one offered rate): - (7600 vs 0)"),
        "{t}"
    );
    assert!(!t.contains("0.00x"), "{t}");
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

#[test]
fn a_capacity_bound_on_the_latency_floor_is_flagged() {
    let trial = |rate: u64, tps: f64, p99_ms: f64| crate::experiment::Trial {
        rate,
        tps,
        p99_ms,
        censored_share: 0.0,
        kept_up: p99_ms <= 1000.0,
    };
    let cap = |trials: Vec<crate::experiment::Trial>| Capacity {
        rate: Some(1000),
        tps: 1000.0,
        p99_ms: 900.0,
        failed_at: None,
        started_at: 1000,
        slo_p99_ms: 1000.0,
        trials,
    };
    // A WAN: 968 ms at 1000 tx/s, all committed; the bound measures the floor.
    let wan = cap(vec![
        trial(2000, 1990.0, 1046.0),
        trial(1000, 1000.0, 968.0),
    ]);
    let w = wan.floor_warning().expect("flagged");
    assert!(
        w.contains("968 ms at 1000 tx/s") && w.contains("--slo-p99"),
        "{w}"
    );
    // Loopback: far below the bound at the lowest rate.
    assert!(cap(vec![
        trial(1000, 1000.0, 300.0),
        trial(2000, 1990.0, 1200.0)
    ])
    .floor_warning()
    .is_none());
    // Overloaded at the lowest rate (not committing): a capacity problem, not the floor.
    assert!(cap(vec![trial(1000, 500.0, 5000.0)])
        .floor_warning()
        .is_none());
}
