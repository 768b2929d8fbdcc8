//! A validator that lies, for tests of what honest validators do about it (config
//! `[byzantine]`, honoured only with `--allow-byzantine`). Every misbehaviour goes through
//! the real wire and real signatures: honest nodes cannot tell a byzantine peer from a buggy
//! or malicious one.
//!
//! Conflicting messages go to every peer, in an order that depends on the peer's validator
//! index: even peers see the lower value first, odd peers the higher one (nil counts as the
//! highest). Honest nodes count the first of two conflicting votes and follow the first
//! proposal of a round, so the two halves of the network are shown two different worlds
//! without the byzantine validators talking to each other: two equivocators split the honest
//! validators the same way, which is what it takes to fork a chain beyond f faults.

use super::*;
use rand::Rng;
use std::fmt;
use tpslab_types::block::{block_hash, tx_root};
use tpslab_types::byzantine::{Behaviour, Forgery};
use tpslab_types::keys::SigningKey;
use tpslab_types::vote::VoteData;

/// How long an equivocator holds its votes so that both proposals of a round (sent back to
/// back by a double proposer) are known when it picks the conflicting value.
const HOLD: Duration = Duration::from_millis(30);

/// How often a garbage validator sprays extra random frames on every channel.
pub(super) const GARBAGE_EVERY: Duration = Duration::from_millis(100);

/// A validator told to misbehave.
#[derive(Clone)]
pub struct Byzantine {
    /// What it does.
    pub behaviour: Behaviour,
    /// For [`Behaviour::InvalidBlock`]: the forgeries it cycles through, one per proposal.
    pub forgeries: Vec<Forgery>,
    /// Its validator key, to sign what the double-sign guard of its WAL would refuse.
    pub key: SigningKey,
}

impl fmt::Debug for Byzantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Byzantine")
            .field("behaviour", &self.behaviour)
            .field("forgeries", &self.forgeries)
            .finish_non_exhaustive()
    }
}

/// The misbehaving validator's own state.
pub(super) struct ByzState {
    cfg: Byzantine,
    /// Values proposed by height and round, as this validator saw them (the last heights
    /// only: held votes of a height just decided still need theirs).
    values: HashMap<(u64, u32), Vec<Hash>>,
    /// Votes signed honestly and held until [`HOLD`] passes, then sent with their
    /// conflicting twins.
    held: Vec<pb::Vote>,
    /// When the held votes go out.
    pub(super) flush_at: Option<tokio::time::Instant>,
    next_forgery: usize,
}

impl ByzState {
    pub(super) fn new(cfg: Byzantine) -> ByzState {
        ByzState {
            cfg,
            values: HashMap::new(),
            held: Vec::new(),
            flush_at: None,
            next_forgery: 0,
        }
    }
}

/// Random bytes, 1 to 512 of them: what a garbage validator sends.
fn garbage() -> Bytes {
    let mut rng = rand::thread_rng();
    let n = rng.gen_range(1..=512);
    Bytes::from((0..n).map(|_| rng.gen()).collect::<Vec<u8>>())
}

/// Orders two conflicting values: the lower first, nil last.
fn sort_key(v: &Option<Hash>) -> [u8; 32] {
    v.map_or([0xff; 32], |h| h.0)
}

/// How many times a flooding validator asks for a proposal's txs.
const FLOOD_ROUNDS: usize = 8;

impl Reactor {
    /// The misbehaviour configured, if any.
    pub(super) fn behaviour(&self) -> Option<Behaviour> {
        self.byz.as_ref().map(|b| b.cfg.behaviour)
    }

    /// What actually goes on the wire for an outgoing frame: nothing from a silent validator
    /// on the consensus channel, random bytes from a garbage one, else the frame.
    pub(super) fn outgoing(&self, channel: Channel, frame: Bytes) -> Option<Bytes> {
        match self.behaviour() {
            Some(Behaviour::Silent) if channel == Channel::Consensus => None,
            Some(Behaviour::Garbage) => Some(garbage()),
            _ => Some(frame),
        }
    }

    /// Garbage mode: a random frame on every channel to every peer.
    pub(super) fn spray_garbage(&self) {
        for peer in self.net.peers() {
            for ch in [Channel::Consensus, Channel::Sync, Channel::Mempool] {
                let _ = self.net.send(peer, ch, garbage());
            }
        }
    }

    /// Sends two conflicting consensus messages to every peer, in the order its side of the
    /// network gets them (see the module doc).
    fn send_pair(&self, mut pair: [(Option<Hash>, Msg); 2]) {
        pair.sort_by_key(|(v, _)| sort_key(v));
        let frames =
            pair.map(|(_, m)| Bytes::from(pb::ConsensusMessage { msg: Some(m) }.encode_to_vec()));
        for peer in self.net.peers() {
            let odd = self.vals.index_of(&peer.0).is_some_and(|i| i % 2 == 1);
            let order = if odd { [1, 0] } else { [0, 1] };
            for i in order {
                self.net.send(peer, Channel::Consensus, frames[i].clone());
            }
        }
    }

    /// Remembers a value proposed in `round` of `height` (up to two per round).
    pub(super) fn note_value(&mut self, height: u64, round: u32, value: Hash) {
        if let Some(b) = &mut self.byz {
            let v = b.values.entry((height, round)).or_default();
            if !v.contains(&value) && v.len() < 2 {
                v.push(value);
            }
        }
    }

    /// A new height: forget values below the last one.
    pub(super) fn byz_new_height(&mut self) {
        let keep = self.height.saturating_sub(1);
        if let Some(b) = &mut self.byz {
            b.values.retain(|(h, _), _| *h >= keep);
        }
    }

    /// The block to propose: an honest one (with its tx hashes), or one forged as configured.
    pub(super) fn build_value(&mut self) -> ConsensusResult<(pb::Block, Hash, Option<Vec<Hash>>)> {
        let (mut block, hash, tx_hashes) = self.pipeline.build_block_hashed()?;
        let Some(b) = self.byz.as_mut() else {
            return Ok((block, hash, Some(tx_hashes)));
        };
        if b.cfg.behaviour == Behaviour::WithholdTxs {
            let limits = self.pipeline.limits();
            withhold(&mut block, limits.max_txs, limits.max_bytes);
            let hash = block.header.as_ref().map_or(hash, block_hash);
            warn!(
                height = self.height,
                "byzantine: proposing a block with a tx no one else has"
            );
            return Ok((block, hash, None));
        }
        if b.cfg.behaviour != Behaviour::InvalidBlock || b.cfg.forgeries.is_empty() {
            return Ok((block, hash, Some(tx_hashes)));
        }
        let forgery = b.cfg.forgeries[b.next_forgery % b.cfg.forgeries.len()];
        b.next_forgery += 1;
        let key = b.cfg.key.clone();
        let last_time = self.pipeline.last_committed()?.time_unix_nanos;
        let max_bytes = self.pipeline.limits().max_bytes;
        let chain_id = self.pipeline.chain_id().to_string();
        forge(&mut block, forgery, &key, &chain_id, last_time, max_bytes);
        let hash = block.header.as_ref().map_or(hash, block_hash);
        warn!(
            ?forgery,
            height = self.height,
            "byzantine: proposing a forged block"
        );
        Ok((block, hash, None))
    }

    /// Flood mode: for a proposal, asks every peer for all of its txs
    /// [`FLOOD_ROUNDS`] times (twice what an honest validator serves a peer per block).
    pub(super) fn flood_tx_requests(&self, p: &pb::Proposal) {
        if self.behaviour() != Some(Behaviour::FloodTxRequests) {
            return;
        }
        let txs = (p.block.as_ref().map(|b| b.txs.len()))
            .or(p.compact.as_ref().map(|c| c.tx_hashes.len()))
            .unwrap_or(0);
        if txs == 0 {
            return;
        }
        let req = Msg::TxsRequest(pb::BlockTxsRequest {
            height: p.height,
            block_hash: p.block_hash.clone(),
            indexes: (0..txs as u32).collect(),
        });
        for _ in 0..FLOOD_ROUNDS {
            self.broadcast(req.clone());
        }
    }

    /// Whether this validator keeps the txs its peers ask for to itself.
    pub(super) fn withholds(&self) -> bool {
        self.behaviour() == Some(Behaviour::WithholdTxs)
    }

    /// Double proposer (and equivocator) as proposer: a second valid block for the same
    /// height and round (the same txs, 1 ns later), signed past the WAL guard, and both
    /// proposals sent. Returns false when this validator proposes honestly.
    pub(super) fn propose_twice(&mut self, first: &pb::Proposal, first_value: Hash) -> bool {
        let Some(b) = &self.byz else { return false };
        if !matches!(
            b.cfg.behaviour,
            Behaviour::DoublePropose | Behaviour::Equivocate
        ) {
            return false;
        }
        let key = b.cfg.key.clone();
        let Some(mut block) = first.block.clone() else {
            return false;
        };
        let Some(h) = block.header.as_mut() else {
            return false;
        };
        h.time_unix_nanos += 1;
        let value = block_hash(h);
        let data = tpslab_types::vote::ProposalData {
            chain_id: self.pipeline.chain_id(),
            height: first.height,
            round: first.round,
            pol_round: u32::try_from(first.pol_round).ok(),
            block_hash: value,
            timestamp_unix_nanos: first.timestamp_unix_nanos,
        };
        use ed25519_dalek::Signer as _;
        let second = pb::Proposal {
            block: Some(block.clone()),
            compact: None,
            block_hash: value.to_vec(),
            signature: key.sign(&data.sign_bytes()).to_bytes().to_vec(),
            ..first.clone()
        };
        self.blocks.insert(value, block);
        self.note_value(first.height, first.round, first_value);
        self.note_value(first.height, first.round, value);
        warn!(
            height = first.height,
            round = first.round,
            "byzantine: proposing two blocks"
        );
        self.send_pair([
            (Some(first_value), Msg::Proposal(first.clone())),
            (Some(value), Msg::Proposal(second)),
        ]);
        true
    }

    /// Equivocator: holds an honestly signed vote; it goes out with its conflicting twin when
    /// the hold ends. Returns false when this validator votes honestly.
    pub(super) fn hold_vote(&mut self, vote: &pb::Vote) -> bool {
        let Some(b) = &mut self.byz else { return false };
        if b.cfg.behaviour != Behaviour::Equivocate {
            return false;
        }
        b.held.push(vote.clone());
        b.flush_at
            .get_or_insert_with(|| tokio::time::Instant::now() + HOLD);
        true
    }

    /// Sends every held vote with a conflicting one: for another value proposed in its round
    /// if there is one, else for nil (or, for a nil vote, for the round's proposal).
    pub(super) fn flush_held(&mut self) {
        let Some(b) = &mut self.byz else { return };
        b.flush_at = None;
        let held = std::mem::take(&mut b.held);
        let key = b.cfg.key.clone();
        let values = b.values.clone();
        for vote in held {
            let honest = Hash::from_slice("vote", &vote.block_hash).ok();
            let twin = values
                .get(&(vote.height, vote.round))
                .into_iter()
                .flatten()
                .copied()
                .map(Some)
                .find(|v| *v != honest)
                .or(honest.map(|_| None));
            let (Some(twin), Ok(vote_type)) = (twin, VoteType::try_from(vote.vote_type)) else {
                self.broadcast(Msg::Vote(vote));
                continue;
            };
            let conflicting = VoteData {
                chain_id: self.pipeline.chain_id(),
                vote_type,
                height: vote.height,
                round: vote.round,
                block_hash: twin,
                timestamp_unix_nanos: vote.timestamp_unix_nanos,
            }
            .sign(&key);
            self.send_pair([(honest, Msg::Vote(vote)), (twin, Msg::Vote(conflicting))]);
        }
    }
}

/// Puts a tx only this validator has into `block` (in place of its last tx if it is full),
/// keeping the block valid: the tx need not execute (a failed tx keeps its code), it need
/// only be impossible to find elsewhere.
fn withhold(block: &mut pb::Block, max_txs: usize, max_bytes: usize) {
    let mut rng = rand::thread_rng();
    let secret: Vec<u8> = format!("withheld/{:032x}", rng.gen::<u128>()).into_bytes();
    let mut bytes: usize = block.txs.iter().map(Vec::len).sum();
    while !block.txs.is_empty() && (block.txs.len() >= max_txs || bytes + secret.len() > max_bytes)
    {
        bytes -= block.txs.pop().map_or(0, |t| t.len());
    }
    if block.txs.len() < max_txs && secret.len() <= max_bytes {
        block.txs.push(secret);
    }
    let txs = block.txs.clone();
    if let Some(h) = block.header.as_mut() {
        h.num_txs = txs.len() as u32;
        h.tx_root = tx_root(&txs).to_vec();
    }
}

/// Breaks `block` as `forgery` says, keeping its header consistent otherwise (so exactly
/// one rule is broken).
fn forge(
    block: &mut pb::Block,
    forgery: Forgery,
    key: &SigningKey,
    chain_id: &str,
    last_time: u64,
    max_bytes: usize,
) {
    match forgery {
        Forgery::Oversize => {
            let have: usize = block.txs.iter().map(Vec::len).sum();
            block
                .txs
                .push(vec![0xb1; max_bytes.saturating_sub(have) + 1]);
        }
        Forgery::BadSigTx => block.txs.push(bad_sig_tx(block.txs.first(), key, chain_id)),
        _ => {}
    }
    let txs = block.txs.clone();
    let Some(h) = block.header.as_mut() else {
        return;
    };
    h.num_txs = txs.len() as u32;
    h.tx_root = tx_root(&txs).to_vec();
    match forgery {
        Forgery::TxRoot => h.tx_root = vec![0xee; 32],
        Forgery::AppHash => h.app_hash = vec![0xee; 32],
        Forgery::Height => h.height += 1,
        Forgery::Time => h.time_unix_nanos = last_time,
        Forgery::Oversize | Forgery::BadSigTx => {}
    }
}

/// A tx whose signature does not verify: a copy of `like` (a pending tx) with one signature
/// byte flipped, or a fresh transfer from this validator's key signed wrongly.
fn bad_sig_tx(like: Option<&Vec<u8>>, key: &SigningKey, chain_id: &str) -> Vec<u8> {
    let mut tx = like
        .and_then(|raw| pb::Tx::decode(raw.as_slice()).ok())
        .filter(|t| !t.signature.is_empty())
        .unwrap_or_else(|| {
            tpslab_types::tx::sign_transfer(
                key,
                tpslab_types::tx::Transfer {
                    chain_id: chain_id.to_string(),
                    to: tpslab_types::Address([0xb1; 20]),
                    amount: 1,
                    nonce: 0,
                    fee: 0,
                    payload: b"byzantine: bad signature".to_vec(),
                },
            )
        });
    tx.signature[0] ^= 0x01;
    tx.encode_to_vec()
}
