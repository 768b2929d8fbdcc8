//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`): real, valid inputs of each
//! decoder, so libFuzzer starts from inputs that pass the checks and mutates from deep inside
//! them. `write_fuzz_seeds` (ignored) rewrites them after a wire format change:
//! `cargo test --workspace --test fuzz_seeds -- --ignored`. The other test keeps the
//! committed block-sync seed honest: it must still verify and apply.

use ed25519_dalek::Signer;
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tpslab_consensus::bft::{Validator, ValidatorSet};
use tpslab_consensus::memory::{MemLedger, MemPool};
use tpslab_consensus::wal::{Wal, WalEntry};
use tpslab_consensus::{sync, BlockLimits, BlockPipeline, PipelineParts};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::pb::{self, consensus_message::Msg, VoteType};
use tpslab_types::ports::{ExecParams, Ledger};
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::vote::{ProposalData, VoteData};
use tpslab_types::{AppKind, Hash, Tuning};

/// Chain id and validator keys the fuzz targets check against.
const CHAIN: &str = "fuzz";

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn pipeline(ledger: Arc<MemLedger>, pool: Arc<MemPool>) -> BlockPipeline {
    BlockPipeline::new(PipelineParts {
        exec: ExecParams::new(CHAIN, AppKind::KvStore, &Tuning::default(), None),
        key: account_key(CHAIN, 0),
        ledger,
        pool,
        limits: BlockLimits {
            max_txs: 100,
            max_bytes: 1 << 20,
        },
        last_commit: None,
        metrics: Default::default(),
        stages: Default::default(),
    })
}

/// The validator set of the block-sync target: the one key that produced the seed chain.
fn sync_vals() -> ValidatorSet {
    ValidatorSet::new(vec![Validator {
        pubkey: account_key(CHAIN, 0).verifying_key().to_bytes(),
        power: 10,
    }])
}

/// Three blocks of a single-validator chain, with their commits.
fn chain() -> Vec<pb::BlockRecord> {
    let ledger = Arc::new(MemLedger::new(0));
    let pool = Arc::new(MemPool::default());
    let mut p = pipeline(ledger.clone(), pool.clone());
    for h in 0..3u8 {
        pool.add((0..3u8).map(|i| vec![b'k', h, i, b'=', b'v']));
        p.produce().unwrap();
    }
    (1..=3).map(|h| ledger.block(h).unwrap().unwrap()).collect()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "rewrites fuzz/corpus; run by hand after a wire format change"]
fn write_fuzz_seeds() {
    let records = chain();
    let resp = pb::SyncResponse {
        blocks: records.clone(),
    };
    write("block_sync", "three_blocks", &resp.encode_to_vec());

    let block = records[0].block.clone().unwrap();
    let hash = Hash::from_slice("h", &records[0].block_hash).unwrap();
    let key = account_key(CHAIN, 0);
    let data = ProposalData {
        chain_id: CHAIN,
        height: 1,
        round: 0,
        pol_round: None,
        block_hash: hash,
        timestamp_unix_nanos: 1,
    };
    let proposal = pb::Proposal {
        height: 1,
        round: 0,
        pol_round: -1,
        block: Some(block.clone()),
        block_hash: hash.to_vec(),
        timestamp_unix_nanos: 1,
        proposer: key.verifying_key().to_bytes().to_vec(),
        signature: key.sign(&data.sign_bytes()).to_bytes().to_vec(),
        compact: None,
    };
    let msg = |m| pb::ConsensusMessage { msg: Some(m) }.encode_to_vec();
    let hashes: Vec<Hash> = block
        .txs
        .iter()
        .map(|t| tpslab_types::tx::tx_hash(t))
        .collect();
    let compact = pb::Proposal {
        block: None,
        compact: Some(tpslab_consensus::compact::compact_of(&block, &hashes)),
        ..proposal.clone()
    };
    write("consensus_msg", "proposal", &msg(Msg::Proposal(proposal)));
    write(
        "consensus_msg",
        "compact_proposal",
        &msg(Msg::Proposal(compact)),
    );
    write(
        "consensus_msg",
        "txs_response",
        &msg(Msg::TxsResponse(pb::BlockTxsResponse {
            height: 1,
            block_hash: hash.to_vec(),
            indexes: (0..block.txs.len() as u32).collect(),
            txs: block.txs.clone(),
        })),
    );
    let vote = VoteData {
        chain_id: CHAIN,
        vote_type: VoteType::Prevote,
        height: 1,
        round: 0,
        block_hash: Some(hash),
        timestamp_unix_nanos: 2,
    }
    .sign(&key);
    write("consensus_msg", "prevote", &msg(Msg::Vote(vote)));
    let commit = records[1].commit.clone().unwrap();
    write("consensus_msg", "commit", &commit.encode_to_vec());
    write_tx_frame_and_wal_seeds(hash);
}

/// A signed transfer, a p2p frame carrying it, and a WAL of three signed steps.
fn write_tx_frame_and_wal_seeds(hash: Hash) {
    let tx = encode_transfer(
        &account_key("seed", 0),
        Transfer {
            chain_id: "tpslab".into(),
            to: address_of(&account_key("seed", 1)),
            amount: 5,
            nonce: 0,
            fee: 1,
            payload: vec![7; 8],
        },
    );
    write("tx_decode", "transfer", &tx);

    let batch = pb::TxBatch {
        txs: vec![tx.clone(), tx],
        checked_unix_nanos: vec![],
    };
    let envelope = tpslab_p2p::Envelope {
        channel: 2,
        payload: batch.encode_to_vec().into(),
    };
    write("p2p_frame", "tx_batch", &envelope.encode_to_vec());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cs.wal");
    let (mut wal, _) = Wal::open(&path).unwrap();
    for step in [1, 2, 3] {
        wal.append(&WalEntry {
            height: 1,
            round: 0,
            step,
            value: hash.to_vec(),
            pol_round: -1,
            timestamp_unix_nanos: 5,
            signature: vec![1; 64],
        })
        .unwrap();
    }
    drop(wal);
    write(
        "wal_replay",
        "three_entries",
        &std::fs::read(&path).unwrap(),
    );
}

#[test]
fn the_block_sync_seed_still_verifies_and_applies() {
    let seed = std::fs::read(corpus("block_sync").join("three_blocks")).unwrap();
    let resp = pb::SyncResponse::decode(&seed[..]).unwrap();
    let ledger = Arc::new(MemLedger::new(0));
    let mut p = pipeline(ledger.clone(), Arc::default());
    let (events, refused) = sync::apply(&mut p, &sync_vals(), resp.blocks).unwrap();
    assert_eq!(refused, None);
    assert_eq!(events.len(), 3);
    assert_eq!(ledger.last_committed().unwrap().height, 3);
}
