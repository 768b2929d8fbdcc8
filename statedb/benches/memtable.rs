//! What the account state's memtable size costs: 1,000-transfer blocks (their ~1,800 account
//! writes over 10,000 accounts, and the block record) committed one after another, timed once
//! 400 blocks have filled the memtable the way a running chain keeps it filled, with RocksDB's
//! default 64 MiB and with [`STATE_WRITE_BUFFER`], interleaved.
//! `cargo bench -p tpslab-statedb --bench memtable [-- PAIRS]` prints the commit's wall time
//! and the process's CPU time per block (the latter includes RocksDB's background flushes and
//! compactions). Evidence, not a test: it asserts nothing about time.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{addr, funded_db, record};
use tpslab_statedb::{StateDbOptions, WriteSet, STATE_WRITE_BUFFER};
use tpslab_types::Account;

const ACCOUNTS: u32 = 10_000;
const TXS: u32 = 1_000;

/// This process's user + system CPU time, seconds (Linux; None elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces: utime and stime are 12th, 13th.
    let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Milliseconds per timed block: (commit wall time, process CPU time).
fn run(write_buffer: usize, warm_blocks: u64, timed_blocks: u64) -> (f64, Option<f64>) {
    let (_dir, db) = funded_db(
        ACCOUNTS,
        StateDbOptions {
            state_write_buffer: write_buffer,
            ..Default::default()
        },
    );
    let txs: Vec<Vec<u8>> = (0..TXS).map(|i| vec![i as u8; 250]).collect();
    let mut x: u32 = 12_345;
    let (mut wall, mut cpu0) = (Duration::ZERO, None);
    for height in 1..=warm_blocks + timed_blocks {
        let mut accounts = BTreeMap::new();
        for _ in 0..2 * TXS {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let acc = Account {
                balance: height,
                nonce: height,
            };
            accounts.insert(addr(x % ACCOUNTS), acc);
        }
        let ws = WriteSet {
            accounts,
            kv: BTreeMap::new(),
            persisted: false,
        };
        let rec = record(height, &txs);
        if height == warm_blocks + 1 {
            cpu0 = cpu_seconds();
        }
        let t = Instant::now();
        db.commit_block(&rec, height, &ws).unwrap();
        if height > warm_blocks {
            wall += t.elapsed();
        }
    }
    // Let the last flushes and compactions finish inside the measured CPU time.
    std::thread::sleep(Duration::from_secs(2));
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| b - a);
    let per = |s: f64| s * 1e3 / timed_blocks as f64;
    (per(wall.as_secs_f64()), cpu.map(per))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this with no args, and
    // then a few blocks only show that it runs.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (warm, timed) = if args.iter().any(|a| a == "--bench") {
        (400, 600)
    } else {
        (5, 5)
    };
    let pairs = args.iter().find_map(|a| a.parse::<u32>().ok()).unwrap_or(1);
    for _ in 0..pairs {
        for (name, size) in [
            ("64 MiB", 64 << 20),
            ("STATE_WRITE_BUFFER", STATE_WRITE_BUFFER),
        ] {
            let (wall, cpu) = run(size, warm, timed);
            let cpu = cpu.map_or("-".into(), |c| format!("{c:.2}"));
            println!("state memtable {name}: commit {wall:.2} ms per block, process CPU {cpu} ms per block");
        }
    }
}
