//! A block-sync response from a peer, applied to a fresh chain: every record is checked
//! (header against our last block, block hash, commit signatures) before anything commits;
//! a lie is refused with its height and reason, never a panic or a commit of what failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::{Arc, OnceLock};
use tpslab_consensus::bft::{Validator, ValidatorSet};
use tpslab_consensus::memory::{MemLedger, MemPool};
use tpslab_consensus::{sync, BlockLimits, BlockPipeline, PipelineParts};
use tpslab_types::keys::account_key;
use tpslab_types::pb;
use tpslab_types::ports::{ExecParams, Ledger};
use tpslab_types::{AppKind, Tuning};

/// The chain of the seed corpus (consensus/tests/fuzz_seeds.rs): one validator, "fuzz".
fn vals() -> &'static ValidatorSet {
    static VALS: OnceLock<ValidatorSet> = OnceLock::new();
    VALS.get_or_init(|| {
        ValidatorSet::new(vec![Validator {
            pubkey: account_key("fuzz", 0).verifying_key().to_bytes(),
            power: 10,
        }])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(resp) = pb::SyncResponse::decode(data) else {
        return;
    };
    let ledger = Arc::new(MemLedger::new(0));
    let mut p = BlockPipeline::new(PipelineParts {
        exec: ExecParams::new("fuzz", AppKind::KvStore, &Tuning::default(), None),
        key: account_key("fuzz", 1),
        ledger: ledger.clone(),
        pool: Arc::new(MemPool::default()),
        limits: BlockLimits {
            max_txs: 100,
            max_bytes: 1 << 20,
        },
        last_commit: None,
        metrics: Default::default(),
        stages: Default::default(),
    });
    let (events, refused) = sync::apply(&mut p, vals(), resp.blocks).expect("memory ledger");
    let height = ledger.last_committed().expect("memory ledger").height;
    assert_eq!(events.len() as u64, height, "a commit without its event");
    if let Some((h, _)) = refused {
        assert!(
            h == 0 || h == height + 1,
            "refused record {h} at height {height}"
        );
    }
});
