//! A frame off a peer link: the envelope, its channel and payloads, and both handshake
//! messages checked as a listener would check them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::collections::HashSet;
use tpslab_p2p::handshake::{check_auth, check_hello};
use tpslab_p2p::{Channel, Envelope, PeerId};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        let _ = Channel::from_u32(env.channel);
        let _ = tpslab_types::pb::ConsensusMessage::decode(env.payload.clone());
        let _ = tpslab_types::pb::SyncMessage::decode(env.payload.clone());
        let _ = tpslab_types::pb::TxBatch::decode(env.payload);
    }
    let own = [1u8; 32];
    let peer = PeerId([2; 32]);
    let allowed: HashSet<PeerId> = [peer].into_iter().collect();
    let _ = check_hello(data, "fuzz", "bft", &own, &allowed, "fuzz");
    let _ = check_auth(data, "fuzz", &[3; 32], &peer, &[4; 32], "fuzz");
});
