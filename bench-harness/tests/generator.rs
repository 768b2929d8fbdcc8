//! The generator against the in-process sink (real gRPC over loopback): a deliberately slow
//! consumer shows up as growing latency (measured from intended send times), and the closed
//! loop never has more than `concurrency` txs in flight.

use std::time::Duration;
use tpslab_api::genesis::{Genesis, GenesisAccounts};
use tpslab_bench::saturate::{saturate, SaturateConfig};
use tpslab_bench::sink::{self, SinkOptions};
use tpslab_bench::{run, LoadConfig, Mode};
use tpslab_types::AppKind;

fn cfg(target: String, mode: Mode) -> LoadConfig {
    LoadConfig {
        targets: vec![target],
        genesis: Genesis {
            chain_id: "sink".into(),
            genesis_time_unix_nanos: 0,
            consensus: Default::default(),
            validators: Vec::new(),
            accounts: GenesisAccounts {
                seed: "s".into(),
                count: 0,
                balance: 0,
            },
        },
        workload: AppKind::KvStore,
        mode,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        tx_size: 128,
        drain: Duration::from_secs(20),
        watch: Vec::new(),
        progress: false,
        perturb: None,
        hot_accounts: None,
    }
}

async fn sink(max_rate: Option<f64>) -> String {
    sink::serve(SinkOptions {
        commit_every: Duration::from_millis(10),
        max_rate,
        app: AppKind::KvStore,
    })
    .await
    .unwrap()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_shows_as_growing_latency() {
    // The consumer takes 200 tx/s while 400 tx/s are offered: by the end of the 2.5 s run
    // the backlog is ~500 txs, so the last txs wait ~2.5 s after their intended send time.
    let r = run(&cfg(sink(Some(200.0)).await, Mode::Open { rate: 400 }))
        .await
        .unwrap();
    assert_eq!(r.sent, 800);
    assert_eq!(r.committed, 800, "{}", r.table());
    let l = &r.latency_ms;
    assert!(l.max > 1500.0, "latency must grow with the backlog: {l:?}");
    assert!(l.p50 > 500.0 && l.p50 < l.max, "{l:?}");
    assert!(r.committed_tps < 300.0, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_consumer_keeps_up_at_the_offered_rate() {
    let r = run(&cfg(sink(None).await, Mode::Open { rate: 1000 }))
        .await
        .unwrap();
    assert_eq!(r.sent, 2000);
    assert_eq!(r.accepted, 2000);
    assert_eq!(r.committed, 2000, "{}", r.table());
    assert!(r.send_rate > 900.0, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_bounds_txs_in_flight() {
    // A consumer of 300 tx/s committing every 10 ms, 8 in flight: each tx waits for its
    // turn, so throughput is capped by the consumer and in-flight never exceeds 8.
    let r = run(&cfg(
        sink(Some(300.0)).await,
        Mode::Closed {
            concurrency: 8,
            max_txs: 100_000,
        },
    ))
    .await
    .unwrap();
    assert_eq!(r.mode, "closed");
    assert!(!r.ran_out_of_txs);
    assert!(r.sent > 100, "{}", r.table());
    // Everything sent in the window commits (drain), and the chain can never run ahead.
    assert_eq!(r.committed, r.sent, "{}", r.table());
    assert!(r.committed_tps < 330.0, "{}", r.table());
    assert!(r.latency_ms.p50 > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_reports_running_out_of_txs() {
    let r = run(&cfg(
        sink(None).await,
        Mode::Closed {
            concurrency: 4,
            max_txs: 50,
        },
    ))
    .await
    .unwrap();
    assert!(r.ran_out_of_txs, "{}", r.table());
    assert!(r.table().contains("raise --max-txs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturate_finds_the_consumers_limit() {
    // The consumer takes 1000 tx/s: 250 and 500 keep up, 1000 is borderline, 2000 cannot.
    let mut load = cfg(sink(Some(1000.0)).await, Mode::Open { rate: 1 });
    load.duration = Duration::from_millis(1500);
    load.drain = Duration::from_secs(5);
    let r = saturate(&SaturateConfig {
        load,
        start_rate: 250,
        factor: 2.0,
        max_rate: 8000,
        keep_up: 0.9,
        max_p99_ms: 400.0,
        bisect: 0,
        confirm: 0,
        min_rate: 50,
        settle: Duration::from_secs(1),
    })
    .await
    .unwrap();
    let rates: Vec<u64> = r.steps.iter().map(|s| s.rate).collect();
    assert!(r.steps[0].kept_up && r.steps[1].kept_up, "{}", r.table());
    assert!(!r.steps.last().unwrap().kept_up, "{}", r.table());
    assert!(*rates.last().unwrap() <= 2000, "{rates:?}");
    let sat = r.saturation.unwrap();
    assert!(
        r.steps[sat].rate >= 500 && r.steps[sat].rate <= 1000,
        "{}",
        r.table()
    );
    assert!(r.table().contains("saturation point: "));
    // The machine's signature cost is on record beside the capacity.
    assert!(
        r.verify_us.0 > 0.0 && r.verify_us.1 > 0.0,
        "{:?}",
        r.verify_us
    );
    assert!(r
        .table()
        .contains("this machine: a transfer's signature verifies in"));
}

/// A capacity search of a consumer capped at 1000 tx/s (past the cap its queue grows, and
/// with it latency), from `start_rate`: the capacity found and the report.
async fn search_capped_consumer(start_rate: u64) -> (f64, tpslab_bench::saturate::SaturateReport) {
    let mut load = cfg(sink(Some(1000.0)).await, Mode::Open { rate: 1 });
    load.duration = Duration::from_secs(2);
    load.drain = Duration::from_secs(5);
    let r = saturate(&SaturateConfig {
        load,
        start_rate,
        factor: 2.0,
        max_rate: 8000,
        keep_up: 0.97,
        max_p99_ms: 300.0,
        bisect: 5,
        confirm: 0,
        min_rate: 50,
        settle: Duration::from_secs(1),
    })
    .await
    .unwrap();
    let sat = r.steps[r.saturation.expect("some rate kept up")].rate as f64;
    assert!(
        (900.0..=1100.0).contains(&sat),
        "capacity {sat} for a 1000 tx/s consumer:\n{}",
        r.table()
    );
    (sat, r)
}

/// The capacity search from below: rising steps, then bisection, find the cap within 10%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisection_finds_a_rate_capped_consumers_limit_within_ten_percent() {
    let (_, r) = search_capped_consumer(300).await;
    // Coarse steps 300, 600, 1200 (failed), then bisection between 600 and 1200.
    assert!(r.steps.len() > 3, "{}", r.table());
    assert!(r.steps.iter().any(|s| !s.kept_up));
}

/// From above (the experiment starts each step's search at the previous step's capacity,
/// which a slower step does not reach): falling steps until one keeps up, then bisection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_starting_above_the_limit_steps_down_and_finds_it() {
    let (_, r) = search_capped_consumer(4000).await;
    assert!(!r.steps[0].kept_up && !r.steps[1].kept_up, "{}", r.table());
    assert_eq!(r.steps[1].rate, 2000, "{}", r.table());
    assert!(r.steps.len() > 3, "{}", r.table());
}
