//! A consensus message from a peer, checked against a fixed validator set: proposal and vote
//! signatures, and a commit as a block's last_commit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::OnceLock;
use tpslab_consensus::bft::check::{check_proposal_signature, check_vote};
use tpslab_consensus::bft::commit::verify_commit;
use tpslab_consensus::bft::{Validator, ValidatorSet};
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
                if let Some(c) = p.block.and_then(|b| b.last_commit) {
                    let _ = verify_commit("fuzz", vals(), c.height, &Hash([0; 32]), &c);
                }
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
