//! Hostile frames on a live Raft chain's Raft channel, sent by a peer that passed the p2p
//! handshake with a stopped follower's key: garbage, a message forging another validator as
//! sender, one addressed to someone else, disruptive vote requests with a far higher term, and
//! a false "I lost my log"; and on the block-sync channel, garbage, a request for every
//! height there is and a response nobody asked for, holding a forged block. None moves the
//! leader's term or stops the chain, and the real follower rejoins and agrees afterwards.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use raft::prelude::{Message, MessageType};
use std::path::Path;
use std::time::{Duration, Instant};
use tpslab_api::proto::GetAccountRequest;
use tpslab_p2p::{Channel, Envelope, PeerId};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::pb::{
    raft_frame::Kind, sync_message, Block, BlockRecord, Header, RaftFrame, RaftLostLog,
    SyncMessage, SyncRequest, SyncResponse,
};

fn envelope(payload: Vec<u8>) -> bytes::Bytes {
    envelope_on(Channel::Raft, payload)
}

fn envelope_on(channel: Channel, payload: Vec<u8>) -> bytes::Bytes {
    let env = Envelope {
        channel: channel as u32,
        payload: payload.into(),
    };
    env.encode_to_vec().into()
}

/// A block-sync frame.
fn sync(msg: sync_message::Msg) -> bytes::Bytes {
    envelope_on(
        Channel::Sync,
        SyncMessage { msg: Some(msg) }.encode_to_vec(),
    )
}

fn frame(kind: Kind) -> bytes::Bytes {
    envelope(RaftFrame { kind: Some(kind) }.encode_to_vec())
}

/// A vote request (or pre-vote) claiming `from`, for `to`, at `term`, with a log far ahead.
fn vote_request(ty: MessageType, from: u64, to: u64, term: u64) -> bytes::Bytes {
    let mut m = Message::default();
    m.set_msg_type(ty);
    m.from = from;
    m.to = to;
    m.term = term;
    m.log_term = term;
    m.index = 1 << 40;
    frame(Kind::Message(prost011::Message::encode_to_vec(&m).into()))
}

/// What the fake follower sends the leader: ids in genesis order + 1, `far` a term far ahead.
fn hostile_frames(lead_id: u64, f_id: u64, other_id: u64, far: u64) -> Vec<bytes::Bytes> {
    vec![
        envelope(b"\xff\xfe not a raft frame".to_vec()),
        frame(Kind::Message(b"not a raft message".to_vec().into())),
        // Forged sender: the handshake authenticated f, the message claims the other node.
        vote_request(MessageType::MsgRequestVote, other_id, lead_id, far),
        // Addressed to someone else.
        vote_request(MessageType::MsgRequestVote, f_id, other_id, far),
        // Honest-shaped but disruptive (a node back from a partition): pre-vote and
        // check-quorum keep a leader with a live quorum in place.
        vote_request(MessageType::MsgRequestPreVote, f_id, lead_id, far),
        vote_request(MessageType::MsgRequestVote, f_id, lead_id, far),
        frame(Kind::LostLog(RaftLostLog { last_index: 0 })),
        envelope_on(Channel::Sync, b"\x0a\xff not a sync message".to_vec()),
        // Served within the leader's own budget (64 blocks, one frame), not the whole chain.
        sync(sync_message::Msg::Request(SyncRequest {
            from_height: 0,
            to_height: u64::MAX,
            max_bytes: u64::MAX,
        })),
        // Unasked-for blocks: the leader is not catching up, so they are ignored.
        sync(sync_message::Msg::Response(SyncResponse {
            blocks: vec![BlockRecord {
                block: Some(Block {
                    header: Some(Header {
                        height: 2,
                        ..Header::default()
                    }),
                    ..Block::default()
                }),
                ..BlockRecord::default()
            }],
        })),
    ]
}

async fn raft_term(addr: &str) -> u64 {
    status_of(addr).await.unwrap().raft.unwrap().term
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_raft_frames_neither_move_the_term_nor_stop_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let net = TestNet::up_with(tmp.path().join("net"), 3, 50, "", &["--consensus", "raft"]);
    let lead = node_named(&net, &leader(&net).await);
    let f = a_follower(&net, &lead.name);
    let id_of = |name: &str| net.file.nodes.iter().position(|n| n.name == name).unwrap() as u64 + 1;
    let (lead_id, f_id) = (id_of(&lead.name), id_of(&f.name));
    let other_id = 6 - lead_id - f_id;
    tpslab_testnet::stop_node(&f).unwrap();

    // Connect to the leader as the stopped follower.
    let key = tpslab_api::keyfile::load(&f.home.join("priv_validator_key.json")).unwrap();
    let lead_key = tpslab_api::keyfile::load(&lead.home.join("priv_validator_key.json")).unwrap();
    let stream = tokio::net::TcpStream::connect(&lead.p2p_addr)
        .await
        .unwrap();
    let mut framed =
        tokio_util::codec::Framed::new(stream, tokio_util::codec::LengthDelimitedCodec::new());
    let allowed = [PeerId(lead_key.verifying_key().to_bytes())].into();
    tpslab_p2p::handshake::handshake(&mut framed, &key, CHAIN, "raft", &allowed, &lead.p2p_addr)
        .await
        .unwrap();
    let (mut sink, mut inbound) = framed.split();
    // Take what the leader sends us (appends, heartbeats) so its queue to us never fills.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = inbound.next().await {} });

    let term = raft_term(&lead.grpc_addr).await;
    let far = term + 100;
    let hostile = hostile_frames(lead_id, f_id, other_id, far);
    for b in hostile {
        sink.send(b).await.unwrap();
    }

    // The chain goes on: txs submitted to the leader commit on it and the other follower.
    let txs: Vec<Vec<u8>> = (0..10).map(|i| transfer(0, 1, 1, i)).collect();
    let mut c = tpslab_api::client::connect(&lead.grpc_addr).await.unwrap();
    for (code, log) in stream_txs(&mut c, &txs).await {
        assert_eq!(code, 0, "{log}");
    }
    let sender = address_of(&account_key(SEED, 0)).0.to_vec();
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in net.file.nodes.iter().filter(|n| n.name != f.name) {
        let mut c = tpslab_api::client::connect(&n.grpc_addr).await.unwrap();
        loop {
            let req = GetAccountRequest {
                address: sender.clone(),
            };
            if c.get_account(req).await.unwrap().into_inner().nonce == 10 {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not commit", n.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(raft_term(&lead.grpc_addr).await, term, "the term moved");
    assert_eq!(leader(&net).await, lead.name);
    let log = std::fs::read_to_string(lead.home.join("node.log")).unwrap();
    for said in [
        "malformed raft frame dropped",
        "raft message with a forged address dropped",
        "follower lost its log; replicating from the start",
        "malformed block-sync frame dropped",
    ] {
        assert!(log.contains(said), "{said}: {log}");
    }

    // The real follower comes back, catches up and agrees.
    drop(sink);
    drain.abort();
    tpslab_testnet::start_node(&f, Path::new(bin())).unwrap();
    let top = height_of(&lead.grpc_addr).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while height_of(&f.grpc_addr).await < top {
        assert!(Instant::now() < deadline, "{} did not catch up", f.name);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    net.check(&[]);
}
