//! adaptive-pause on real processes: with a 1 s block interval, validators that pause only as
//! long as a height took commit several blocks a second under light load (a fixed pause
//! allows one); once the load stops, an empty mempool keeps the full pause, so an idle chain
//! does not spin out empty blocks. The pause only moves when a height starts, never what is
//! valid, so each validator's setting is its own.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_short_pause_under_load_and_the_full_one_when_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up(
        dir.clone(),
        4,
        300,
        "[consensus]\nblock_interval_ms = 1000\n",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = net.file.nodes[0].grpc_addr.clone();
    let before = rt.block_on(height_of(&addr));
    let json = tmp.path().join("report.json");
    // load_args: 50 tx/s for 6 s (after 1 s of warm-up), every tx committed.
    let (_, r) = run_load(&load_args(&dir, "6s", &["--no-progress"]), &json);
    assert_eq!(r["committed"], r["accepted"], "{r}");
    assert_eq!(r["uncommitted"], 0, "{r}");
    let loaded = rt.block_on(height_of(&addr)) - before;
    // A fixed 1 s pause allows at most ~1 block a second (7 s of load, plus the drain);
    // heights here take tens of milliseconds, and so do the pauses.
    assert!(
        loaded >= 20,
        "{loaded} blocks in ~7 s of load: the pause did not end early"
    );
    // Idle: the mempool is empty, so each pause runs its full second.
    let idle_from = rt.block_on(height_of(&addr));
    std::thread::sleep(Duration::from_secs(5));
    let idle = rt.block_on(height_of(&addr)) - idle_from;
    assert!(idle <= 6, "{idle} blocks in 5 idle seconds at a 1 s pause");
    net.check(&[]);
    eprintln!("blocks: {loaded} under load, {idle} idle");
}
