//! A consensus message from a peer, checked against a fixed validator set: proposal and vote
//! signatures, and a commit as a block's last_commit; a compact block's claims, and a
//! peer's answer filling it (compact-blocks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::OnceLock;
use tpslab_consensus::bft::check::{check_proposal_signature, check_vote};
use tpslab_consensus::bft::commit::verify_commit;
use tpslab_consensus::bft::{Validator, ValidatorSet};
use tpslab_consensus::compact::{answer, Assembly};
use std::sync::Arc;
use tpslab_types::keys::account_key;
use tpslab_types::pb::{self, consensus_message::Msg};
use tpslab_types::Hash;

fn vals() -> &'static ValidatorSet {
    static VALS: OnceLock<ValidatorSet> = OnceLock::new();
    VALS.get_or_init(|| {
        ValidatorSet::new(
            (0..4)
                .map(|i| Validator {
                    pubkey: account_key("fuzz", i).verifying_key().to_bytes(),
                    power: 10,
                })
                .collect(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = pb::ConsensusMessage::decode(data) {
        match m.msg {
            Some(Msg::Proposal(p)) => {
                let _ = check_proposal_signature("fuzz", vals(), &p);
                if let Some(c) = p.compact {
                    // Half the slots "in the mempool": whatever the message claims.
                    let _ = Assembly::start(c, 10_000, |hs| {
                        hs.iter()
                            .map(|h| (h.0[0] % 2 == 0).then(|| Arc::from(&h.0[..])))
                            .collect()
                    });
                }
                if let Some(c) = p.block.and_then(|b| b.last_commit) {
                    let _ = verify_commit("fuzz", vals(), c.height, &Hash([0; 32]), &c);
                }
            }
            Some(Msg::TxsResponse(r)) => {
                let c = pb::CompactBlock {
                    header: Some(pb::Header {
                        num_txs: r.txs.len() as u32,
                        tx_root: tpslab_types::block::tx_root(&r.txs).to_vec(),
                        ..Default::default()
                    }),
                    tx_hashes: r.txs.iter().map(|t| tpslab_types::tx::tx_hash(t).to_vec()).collect(),
                    last_commit: None,
                };
                if let Ok(mut a) = Assembly::start(c, 10_000, |hs| vec![None; hs.len()]) {
                    let _ = a.fill(&r);
                    let _ = a.finish();
                }
            }
            Some(Msg::TxsRequest(q)) => {
                let block = pb::Block {
                    header: Some(pb::Header::default()),
                    txs: vec![b"a=1".to_vec(), b"b=2".to_vec()],
                    last_commit: None,
                };
                let _ = answer(&block, &Hash([0; 32]), &q, 1024);
            }
            Some(Msg::Vote(v)) => {
                let _ = check_vote("fuzz", vals(), &v);
            }
            None => {}
        }
    }
    if let Ok(c) = pb::Commit::decode(data) {
        let hash = Hash::from_slice("h", &c.block_hash).unwrap_or(Hash([0; 32]));
        let _ = verify_commit("fuzz", vals(), c.height, &hash, &c);
    }
});
