//! A seeded simulated network for the BFT engine's round logic: the real [`Driver`] of 4 or 7
//! validators, up to f of them byzantine (they equivocate: different votes, and as proposer a
//! different block, to each half or each third of their peers: two or three faces), over a network that delays, reorders and
//! drops messages and cuts partitions, on a simulated clock. Signatures are modelled by a
//! registry of what each validator signed: a byzantine validator can sign anything as itself
//! and nothing as anyone else, and a commit certificate counts only votes that were signed.
//! A validator that fell behind catches up from a peer's certificate, as block sync does.
//!
//! Checked: agreement (no two honest validators decide different blocks at a height) on every
//! decision, and liveness once the network calms down. Every choice comes from the seed:
//! `TPSLAB_SIM_SEED=N cargo test -p tpslab-consensus --test bft_sim` replays one;
//! `TPSLAB_SIM_SEEDS=N` runs more than CI's 200; `TPSLAB_SIM_TRACE=1` prints the votes and
//! proposals of a run that stalls.

use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tpslab_consensus::bft::{
    Driver, DriverInput as In, DriverOutput as Out, ProposalInput, SignedVote, TimeoutKind,
    Timeouts, Validator, ValidatorSet,
};
use tpslab_consensus::sim::{seeds, SimRng as Rng};
use tpslab_types::pb::VoteType;
use tpslab_types::Hash;

/// How often a validator re-sends its own messages of its height.
const GOSSIP_MS: u64 = 250;

#[derive(Clone, Debug)]
enum Msg {
    Proposal(ProposalInput),
    Vote(SignedVote),
    /// A decided height and its +2/3 precommits (what block sync carries).
    Decided {
        height: u64,
        value: Hash,
        precommits: Vec<SignedVote>,
    },
}

impl Msg {
    fn height(&self) -> u64 {
        match self {
            Msg::Proposal(p) => p.height,
            Msg::Vote(v) => v.height,
            Msg::Decided { height, .. } => *height,
        }
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Msg,
    },
    Timeout {
        node: usize,
        height: u64,
        kind: TimeoutKind,
        round: u32,
    },
    /// Re-send what the node published at its height (vote gossip: a lost message is sent
    /// again, as the reactor's gossip does, so losses cost time, not liveness).
    Gossip {
        node: usize,
    },
}

/// An event at a time; the heap pops the earliest, ties in scheduling order.
struct At(u64, u64, Event);

impl PartialEq for At {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for At {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.0, o.1).cmp(&(self.0, self.1))
    }
}

struct Node {
    height: u64,
    driver: Driver,
    /// Decided value and certificate per height.
    decided: Vec<(Hash, Vec<SignedVote>)>,
    /// Messages for the next height, replayed when it starts.
    early: Vec<Msg>,
    /// What it published at its height (a byzantine validator re-lies it on gossip).
    mine: Vec<Msg>,
    /// Proposals of its height it published or received (an honest validator re-gossips them
    /// with every vote it counted, as the reactor does).
    proposals: Vec<ProposalInput>,
    byzantine: bool,
}

/// The whole simulation of one seed.
struct Sim {
    rng: Rng,
    vals: Arc<ValidatorSet>,
    timeouts: Timeouts,
    nodes: Vec<Node>,
    events: BinaryHeap<At>,
    seq: u64,
    now: u64,
    /// Until when the network misbehaves (ms); calm after.
    faulty_until: u64,
    /// side[i]: validators on different sides cannot talk.
    side: Vec<u8>,
    /// Every vote signed: (validator, type, height, round, value).
    signed: HashSet<(usize, i32, u64, u32, Option<Hash>)>,
    /// The first decision at each height among honest validators.
    agreed: BTreeMap<u64, Hash>,
    /// How many different messages each byzantine validator sends per step (2 or 3).
    faces: usize,
}

fn timeouts() -> Timeouts {
    let ms = Duration::from_millis;
    Timeouts {
        propose: ms(300),
        propose_delta: ms(50),
        prevote: ms(100),
        prevote_delta: ms(50),
        precommit: ms(100),
        precommit_delta: ms(50),
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let n = if rng.chance(25) { 7 } else { 4 };
        let f = (n - 1) / 3;
        let byzantine = rng.below(f as u64 + 1) as usize;
        let vals = Arc::new(ValidatorSet::new(
            (0..n)
                .map(|i| Validator {
                    pubkey: [i as u8 + 1; 32],
                    power: 1,
                })
                .collect(),
        ));
        let mut byz: Vec<usize> = (0..n).collect();
        // Fisher-Yates from the seed: which validators lie.
        for i in (1..n).rev() {
            byz.swap(i, rng.below(i as u64 + 1) as usize);
        }
        byz.truncate(byzantine);
        let faces = 2 + rng.below(2) as usize;
        let nodes = (0..n)
            .map(|i| Node {
                height: 1,
                driver: Driver::new(1, vals.clone(), Some(i), timeouts()),
                decided: Vec::new(),
                early: Vec::new(),
                mine: Vec::new(),
                proposals: Vec::new(),
                byzantine: byz.contains(&i),
            })
            .collect();
        Sim {
            rng,
            vals,
            timeouts: timeouts(),
            nodes,
            events: BinaryHeap::new(),
            seq: 0,
            now: 0,
            faulty_until: 10_000,
            side: vec![0; n],
            signed: HashSet::new(),
            agreed: BTreeMap::new(),
            faces,
        }
    }

    fn at(&mut self, after: u64, e: Event) {
        self.seq += 1;
        self.events.push(At(self.now + after, self.seq, e));
    }

    fn faulty(&self) -> bool {
        self.now < self.faulty_until
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if self.faulty() && self.rng.chance(10) {
            return;
        }
        let delay = if self.faulty() {
            1 + self.rng.below(80)
        } else {
            1 + self.rng.below(5)
        };
        self.at(delay, Event::Deliver { from, to, msg });
    }

    fn broadcast(&mut self, from: usize, msg: &Msg) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    /// A byzantine validator's message to `to`: peers get one of its `faces` (2 or 3) by
    /// their number, face 0 the honest message, the others conflicting ones it signs as well.
    fn lie(&mut self, from: usize, to: usize, msg: &Msg) -> Msg {
        let other = Hash::digest(format!("lie/{from}/{}", msg.height()).as_bytes());
        let face = to % self.faces;
        match msg {
            Msg::Vote(v) if face > 0 => {
                // Face 1: nil where the honest vote names a block, else a block; face 2 (a
                // three-faced equivocator): yet another block.
                let value = match (face, v.value) {
                    (1, Some(_)) => None,
                    (1, None) => Some(other),
                    _ => Some(Hash::digest(
                        format!("lie2/{from}/{}", msg.height()).as_bytes(),
                    )),
                };
                let lie = SignedVote { value, ..v.clone() };
                self.signed
                    .insert((from, lie.vote_type as i32, lie.height, lie.round, lie.value));
                Msg::Vote(lie)
            }
            Msg::Proposal(p) if face > 0 => Msg::Proposal(ProposalInput {
                value: other,
                ..p.clone()
            }),
            m => m.clone(),
        }
    }

    fn publish(&mut self, from: usize, msg: Msg) {
        self.nodes[from].mine.push(msg.clone());
        self.send_own(from, msg);
    }

    fn send_own(&mut self, from: usize, msg: Msg) {
        if self.nodes[from].byzantine {
            for to in 0..self.nodes.len() {
                if to != from {
                    let m = self.lie(from, to, &msg);
                    self.send(from, to, m);
                }
            }
        } else {
            self.broadcast(from, &msg);
        }
    }

    /// Node `i` signs, publishes and counts its own vote; what counting it leads to.
    fn vote(
        &mut self,
        i: usize,
        vote_type: VoteType,
        height: u64,
        round: u32,
        value: Option<Hash>,
    ) -> Vec<Out> {
        let v = SignedVote {
            vote_type,
            height,
            round,
            value,
            validator: i,
            timestamp_unix_nanos: 0,
            signature: vec![],
        };
        self.signed
            .insert((i, vote_type as i32, height, round, value));
        self.publish(i, Msg::Vote(v.clone()));
        self.nodes[i].driver.process(In::Vote(v))
    }

    /// Feeds `input` to node `i` and performs everything it leads to.
    fn feed(&mut self, i: usize, input: In) -> Result<(), String> {
        let mut queue = self.nodes[i].driver.process(input);
        while !queue.is_empty() {
            let mut next = Vec::new();
            for o in queue {
                match o {
                    Out::GetValue { height, round } => {
                        let value = Hash::digest(format!("{i}/{height}/{round}").as_bytes());
                        next.extend(
                            self.nodes[i]
                                .driver
                                .process(In::ProposeValue { round, value }),
                        );
                    }
                    Out::Propose {
                        height,
                        round,
                        value,
                        pol_round,
                    } => {
                        let p = ProposalInput {
                            height,
                            round,
                            value,
                            pol_round,
                            proposer: i,
                            valid: true,
                        };
                        self.publish(i, Msg::Proposal(p.clone()));
                        self.nodes[i].proposals.push(p.clone());
                        next.extend(self.nodes[i].driver.process(In::Proposal(p)));
                    }
                    Out::Vote {
                        vote_type,
                        height,
                        round,
                        value,
                    } => next.extend(self.vote(i, vote_type, height, round, value)),
                    Out::ScheduleTimeout {
                        kind,
                        height,
                        round,
                        after,
                    } => {
                        let ms = after.as_millis() as u64;
                        self.at(
                            ms,
                            Event::Timeout {
                                node: i,
                                height,
                                kind,
                                round,
                            },
                        );
                    }
                    Out::Decide {
                        height,
                        value,
                        precommits,
                        ..
                    } => {
                        return self.decide(i, height, value, precommits);
                    }
                    _ => {}
                }
            }
            queue = next;
        }
        Ok(())
    }

    /// Node `i` commits `value` at `height` and starts the next height.
    fn decide(
        &mut self,
        i: usize,
        height: u64,
        value: Hash,
        precommits: Vec<SignedVote>,
    ) -> Result<(), String> {
        if height != self.nodes[i].height {
            return Ok(());
        }
        if !self.nodes[i].byzantine {
            match self.agreed.get(&height) {
                Some(v) if *v != value => {
                    return Err(format!(
                        "node{i} decided another block at height {height} (t = {} ms)",
                        self.now
                    ))
                }
                Some(_) => {}
                None => {
                    self.agreed.insert(height, value);
                }
            }
        }
        let msg = Msg::Decided {
            height,
            value,
            precommits: precommits.clone(),
        };
        self.broadcast(i, &msg);
        let node = &mut self.nodes[i];
        node.decided.push((value, precommits));
        node.height = height + 1;
        node.driver = Driver::new(height + 1, self.vals.clone(), Some(i), self.timeouts);
        node.mine.clear();
        node.proposals.clear();
        let early = std::mem::take(&mut node.early);
        self.feed(i, In::Start)?;
        for m in early {
            self.receive(usize::MAX, i, m)?;
        }
        Ok(())
    }

    /// A certificate counts distinct validators' signed precommits for the value: +2/3.
    fn certifies(&self, height: u64, value: Hash, precommits: &[SignedVote]) -> bool {
        let mut voters = HashSet::new();
        for v in precommits {
            let key = (
                v.validator,
                VoteType::Precommit as i32,
                height,
                v.round,
                Some(value),
            );
            if v.vote_type == VoteType::Precommit
                && v.height == height
                && v.value == Some(value)
                && self.signed.contains(&key)
            {
                voters.insert(v.validator);
            }
        }
        self.vals.is_quorum(voters.len() as u64)
    }

    fn receive(&mut self, from: usize, to: usize, msg: Msg) -> Result<(), String> {
        let h = self.nodes[to].height;
        let mh = msg.height();
        if mh < h {
            // The sender is behind: hand it the certificate of its height (block sync). A
            // stale certificate needs no answer.
            let stale_cert = matches!(msg, Msg::Decided { .. });
            if from != usize::MAX && !stale_cert && !self.nodes[to].byzantine {
                let (value, precommits) = self.nodes[to].decided[mh as usize - 1].clone();
                let cert = Msg::Decided {
                    height: mh,
                    value,
                    precommits,
                };
                self.send(to, from, cert);
            }
            return Ok(());
        }
        if mh > h {
            if mh == h + 1 {
                self.nodes[to].early.push(msg);
            }
            return Ok(());
        }
        match msg {
            Msg::Proposal(p) => {
                if !self.nodes[to].proposals.contains(&p) {
                    self.nodes[to].proposals.push(p.clone());
                }
                self.feed(to, In::Proposal(p))
            }
            Msg::Vote(v) => self.feed(to, In::Vote(v)),
            Msg::Decided {
                height,
                value,
                precommits,
            } => {
                if self.certifies(height, value, &precommits) {
                    self.decide(to, height, value, precommits)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn start(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.feed(i, In::Start)?;
            self.at(GOSSIP_MS, Event::Gossip { node: i });
        }
        Ok(())
    }

    /// Re-sends what `i` knows of its height: a lost message costs time, not liveness.
    fn gossip(&mut self, i: usize) {
        let n = &self.nodes[i];
        if n.byzantine {
            for m in n.mine.clone() {
                self.send_own(i, m);
            }
            return;
        }
        let mut msgs: Vec<Msg> = n.proposals.iter().cloned().map(Msg::Proposal).collect();
        // In a fixed order (the keeper's maps are hash maps), so a seed replays exactly.
        let mut votes: Vec<SignedVote> = n.driver.votes().all_votes().cloned().collect();
        votes.sort_by_key(|v| (v.round, v.vote_type as i32, v.validator));
        msgs.extend(votes.into_iter().map(Msg::Vote));
        for m in msgs {
            self.broadcast(i, &m);
        }
    }

    fn run(&mut self, until: u64) -> Result<(), String> {
        let mut next_split = self.now;
        while let Some(At(t, _, e)) = self.events.pop() {
            if t > until {
                break;
            }
            self.now = t;
            if self.faulty() && t >= next_split {
                for s in self.side.iter_mut() {
                    *s = u8::from(self.rng.chance(30));
                }
                next_split = t + 500 + self.rng.below(3000);
            } else if !self.faulty() {
                self.side.fill(0);
            }
            match e {
                Event::Deliver { from, to, msg } => {
                    if self.side[from] == self.side[to] {
                        self.receive(from, to, msg)?;
                    }
                }
                Event::Timeout {
                    node,
                    height,
                    kind,
                    round,
                } => {
                    if self.nodes[node].height == height {
                        self.feed(node, In::Timeout { kind, round })?;
                    }
                }
                Event::Gossip { node } => {
                    self.gossip(node);
                    self.at(GOSSIP_MS, Event::Gossip { node });
                }
            }
        }
        Ok(())
    }

    fn honest_heights(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.byzantine)
            .map(|n| n.height)
            .collect()
    }
}

fn run_seed(seed: u64) -> Result<String, String> {
    let mut sim = Sim::new(seed);
    let faulty_until = sim.faulty_until;
    sim.start()?;
    sim.run(faulty_until)?;
    let at_calm = sim.honest_heights();
    sim.run(faulty_until + 8_000)?;
    let end = sim.honest_heights();
    let lo = at_calm.iter().max().copied().unwrap_or(0);
    if end.iter().any(|h| *h < lo + 3) {
        let states: Vec<String> = sim
            .nodes
            .iter()
            .map(|n| {
                let st = n.driver.state();
                format!(
                    "{}round {} {:?} locked {:?} valid {:?}",
                    if n.byzantine { "byzantine " } else { "" },
                    st.round,
                    st.step,
                    st.locked.map(|l| l.round),
                    st.valid.map(|l| l.round)
                )
            })
            .collect();
        if std::env::var("TPSLAB_SIM_TRACE").is_ok() {
            for (i, n) in sim.nodes.iter().enumerate() {
                let mut v: Vec<String> = n
                    .driver
                    .votes()
                    .all_votes()
                    .filter(|v| v.round <= 2)
                    .map(|v| {
                        format!(
                            "r{} {:?} by {} for {:?}",
                            v.round,
                            v.vote_type,
                            v.validator,
                            v.value.map(|h| h.0[0])
                        )
                    })
                    .collect();
                v.sort();
                let p: Vec<String> = n
                    .proposals
                    .iter()
                    .filter(|p| p.round <= 4)
                    .map(|p| {
                        format!(
                            "r{} by {} {:?} pol {:?}",
                            p.round, p.proposer, p.value.0[0], p.pol_round
                        )
                    })
                    .collect();
                eprintln!("node{i}: {v:?}\n   proposals {p:?}");
            }
        }
        return Err(format!(
            "no progress after the network calmed: heights {at_calm:?} -> {end:?}; {states:?}"
        ));
    }
    let byz = sim.nodes.iter().filter(|n| n.byzantine).count();
    Ok(format!(
        "{} validators ({byz} byzantine): heights {at_calm:?} at calm, {end:?} at the end",
        sim.nodes.len()
    ))
}

#[test]
fn bft_sim_never_breaks_agreement_and_stays_live() {
    for seed in seeds() {
        match run_seed(seed) {
            Ok(summary) => eprintln!("seed {seed}: {summary}"),
            Err(e) => panic!(
                "seed {seed}: {e} (reproduce: TPSLAB_SIM_SEED={seed} cargo test -p tpslab-consensus --test bft_sim)"
            ),
        }
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    assert_eq!(run_seed(7), run_seed(7));
}
