//! compact-blocks on real processes: validators whose mempools hold almost none of the txs
//! rebuild compact proposals by fetching what they lack, and commit the same chain as the
//! proposer; a validator with the toggle off (whole blocks on the wire) runs beside them.
//! The withholding proposer is in byzantine.rs.

mod common;

use common::*;
use std::time::{Duration, Instant};

const TXS: usize = 1500;

#[test]
fn validators_missing_most_txs_fetch_them_and_commit_the_same_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    // node0 takes every tx; node1 and node3 keep at most 10 pending (gossip beyond that is
    // refused, so they lack most txs of node0's blocks); node2 proposes whole blocks.
    let net = TestNet::up_each(
        tmp.path().join("net"),
        4,
        10,
        |i| match i {
            0 => String::new(),
            2 => "[tuning]\ncompact_blocks = false\n[mempool]\nmax_txs = 10\n".into(),
            _ => "[mempool]\nmax_txs = 10\n".into(),
        },
        &["--app", "kvstore"],
    );
    let nodes = &net.file.nodes;
    let txs: Vec<Vec<u8>> = (0..TXS)
        .map(|i| format!("compact{i:05}={}", "v".repeat(200)).into_bytes())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = tpslab_api::client::connect(&nodes[0].grpc_addr)
            .await
            .unwrap();
        for (code, log) in stream_txs(&mut c, &txs).await {
            assert_eq!(code, 0, "{log}");
        }
        wait_for_txs(&nodes[0].grpc_addr, TXS as u64, 90).await;
        // Every validator reaches the height the proposer is at.
        let top = height_of(&nodes[0].grpc_addr).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in nodes {
            while height_of(&n.grpc_addr).await < top {
                assert!(Instant::now() < deadline, "{} is behind", n.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    net.check(&[]);
    for (i, n) in nodes.iter().enumerate() {
        let page = metrics(&n.metrics_addr);
        let fetched = metric(&page, "consensus_compact_txs_fetched_total ");
        let found = metric(&page, "consensus_compact_txs_found_total ");
        let asked = metric(&page, "consensus_compact_requests_total ");
        if i == 0 {
            // node0 held every tx: whatever it rebuilt came from its own pool.
            assert_eq!(fetched, 0.0, "node0: {page}");
        } else {
            // node0's proposals named about 1500 txs these nodes never held.
            assert!(fetched >= 100.0 && asked >= 1.0, "{}: {page}", n.name);
        }
        // node2's proposals are whole blocks, everyone else's compact: node2 rebuilt some.
        if i == 2 {
            assert!(fetched + found > 0.0, "node2: {page}");
        }
    }
}
