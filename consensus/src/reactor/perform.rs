//! Performing the driver's outputs: build and sign proposals, sign votes (WAL first),
//! broadcast, schedule timeouts, and commit decided blocks.

use super::*;

impl Reactor {
    /// Observes the time spent in the step just left, if the step changed.
    pub(super) fn note_step(&mut self) {
        use crate::bft::Step;
        let now_step = self.driver.state().step;
        self.pipeline
            .metrics()
            .round
            .set(i64::from(self.driver.state().round));
        let (step, since) = self.step_since;
        if now_step != step {
            let name = match step {
                Step::Propose => Some("propose"),
                Step::Prevote => Some("prevote"),
                Step::Precommit => Some("precommit"),
                _ => None,
            };
            if let Some(n) = name {
                self.pipeline
                    .metrics()
                    .on_step(n, since.elapsed().as_secs_f64());
            }
            self.step_since = (now_step, std::time::Instant::now());
        }
    }

    /// Performs driver outputs, including the inputs they feed back (own proposals and votes).
    pub(super) async fn perform(&mut self, mut queue: Vec<DriverOutput>) -> ConsensusResult<()> {
        while !queue.is_empty() {
            self.note_step();
            let mut next = Vec::new();
            for o in queue {
                match o {
                    DriverOutput::GetValue { round, .. } => {
                        let (block, hash, tx_hashes) = self.build_value()?;
                        self.blocks.insert(hash, block);
                        if let Some(hs) = tx_hashes {
                            self.tx_hashes.insert(hash, hs);
                        }
                        next.extend(
                            self.driver
                                .process(DriverInput::ProposeValue { round, value: hash }),
                        );
                    }
                    DriverOutput::Propose {
                        height,
                        round,
                        value,
                        pol_round,
                    } => next.extend(self.propose(height, round, value, pol_round)?),
                    DriverOutput::Vote {
                        vote_type,
                        height,
                        round,
                        value,
                    } => next.extend(self.vote(vote_type, height, round, value)?),
                    DriverOutput::ScheduleTimeout {
                        kind,
                        height,
                        round,
                        after,
                    } => {
                        let tx = self.tx_timeouts.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            let _ = tx.send((height, kind, round)).await;
                        });
                    }
                    DriverOutput::Decide {
                        height,
                        round,
                        value,
                        precommits,
                    } => {
                        self.pipeline.metrics().rounds.set(round as i64);
                        self.decide(height, round, value, &precommits).await?;
                        return Ok(());
                    }
                    DriverOutput::Equivocation(e) => {
                        warn!(
                            validator = e.first.validator,
                            height = e.first.height,
                            round = e.first.round,
                            "equivocation: validator signed two different votes"
                        );
                        self.evidence("duplicate-vote", e.first.validator);
                    }
                    DriverOutput::DoubleProposal { round, proposer } => {
                        warn!(
                            round,
                            proposer, "equivocation: proposer signed two different blocks"
                        );
                        self.evidence("double-proposal", proposer);
                    }
                    DriverOutput::WrongProposer { round, proposer } => {
                        warn!(
                            round,
                            proposer, "proposal from a validator that is not the proposer"
                        )
                    }
                }
            }
            queue = next;
        }
        self.note_step();
        Ok(())
    }

    /// Signs and broadcasts a proposal of the candidate block `value`; returns what our own
    /// proposal makes the driver do.
    fn propose(
        &mut self,
        height: u64,
        round: u32,
        value: Hash,
        pol_round: Option<u32>,
    ) -> ConsensusResult<Vec<DriverOutput>> {
        let Some(block) = self.blocks.get(&value).cloned() else {
            warn!(height, round, "asked to propose an unknown block");
            return Ok(vec![]);
        };
        let signed = self
            .signer
            .sign_proposal(height, round, pol_round, value, now_unix_nanos());
        let Some((ts, sig)) = signed_or_refused(signed)? else {
            return Ok(vec![]);
        };
        let proposal = pb::Proposal {
            height,
            round,
            pol_round: pol_round.map_or(-1, i64::from),
            block: Some(block),
            block_hash: value.to_vec(),
            timestamp_unix_nanos: ts,
            proposer: self.signer.pubkey().to_vec(),
            signature: sig,
            compact: None,
        };
        if self.propose_twice(&proposal, value) {
            self.proposals_seen.insert(round, proposal);
        } else {
            // What goes on the wire is what re-gossip sends again.
            let wire = self.compacted(&proposal, value).unwrap_or(proposal);
            self.proposals_seen.insert(round, wire.clone());
            self.broadcast(Msg::Proposal(wire));
        }
        Ok(self.process_own(|me| {
            DriverInput::Proposal(ProposalInput {
                height,
                round,
                value,
                pol_round,
                proposer: me,
                valid: true,
            })
        }))
    }

    /// Signs (WAL first) and broadcasts a vote; returns what our own vote makes the driver do.
    fn vote(
        &mut self,
        vote_type: VoteType,
        height: u64,
        round: u32,
        value: Option<Hash>,
    ) -> ConsensusResult<Vec<DriverOutput>> {
        let signed = self
            .signer
            .sign_vote(vote_type, height, round, value, now_unix_nanos());
        let Some(vote) = signed_or_refused(signed)? else {
            return Ok(vec![]);
        };
        if !self.hold_vote(&vote) {
            self.broadcast(Msg::Vote(vote.clone()));
        }
        Ok(self.process_own(|me| {
            DriverInput::Vote(SignedVote {
                vote_type,
                height,
                round,
                value,
                validator: me,
                timestamp_unix_nanos: vote.timestamp_unix_nanos,
                signature: vote.signature,
            })
        }))
    }

    /// Counts evidence against validator `index` in the metrics.
    fn evidence(&self, kind: &str, index: usize) {
        if let Some(v) = self.vals.get(index) {
            self.pipeline
                .metrics()
                .on_evidence(kind, hex::encode(v.pubkey));
        }
    }

    /// What our own proposal or vote makes the driver do (nothing if we are not a validator).
    fn process_own(&mut self, input: impl FnOnce(usize) -> DriverInput) -> Vec<DriverOutput> {
        match self.me {
            Some(me) => self.driver.process(input(me)),
            None => vec![],
        }
    }

    pub(super) async fn decide(
        &mut self,
        height: u64,
        round: u32,
        value: Hash,
        precommits: &[SignedVote],
    ) -> ConsensusResult<()> {
        let Some(block) = self.blocks.remove(&value) else {
            return Err(ConsensusError::Task {
                height,
                reason: "decided a block we do not have".into(),
            });
        };
        let commit = build_commit(&self.vals, height, round, &value, precommits);
        let tx_hashes = self.tx_hashes.remove(&value);
        // Consensus has nothing else to do until the block is durable: it waits for it.
        let event = self
            .off_thread(move |p| p.commit_block_hashed(block, value, commit, tx_hashes))
            .await??;
        debug!(
            height,
            round,
            txs = event.tx_hashes.len(),
            "committed block"
        );
        let _ = self.tx_commits.send(Arc::new(event));
        if let Err(e) = self.signer.prune_below(height) {
            warn!(error = %e, "could not prune the consensus wal");
        }
        // The next height starts when the pause (timeout_commit) ends; meanwhile the reactor
        // keeps receiving (its messages are kept for then) and stale ones are dropped.
        self.height = height + 1;
        self.blocks.clear();
        self.tx_hashes.clear();
        self.txs_served.clear();
        self.rebuilds.clear();
        self.proposals_seen.clear();
        self.proposal_values.clear();
        self.byz_new_height();
        self.schedule_next_height();
        Ok(())
    }

    /// Feeds the votes this validator signed at the current height before a restart (from the
    /// WAL) back into the driver, so its vote count matches what peers saw.
    pub(super) async fn replay_own_votes(&mut self) -> ConsensusResult<()> {
        let Some(me) = self.me else { return Ok(()) };
        for e in self.signer.signed_at(self.height) {
            let vote_type = match e.step {
                crate::wal::step::PREVOTE => VoteType::Prevote,
                crate::wal::step::PRECOMMIT => VoteType::Precommit,
                _ => continue,
            };
            let value = Hash::from_slice("wal.value", &e.value).ok();
            let out = self.driver.process(DriverInput::Vote(SignedVote {
                vote_type,
                height: e.height,
                round: e.round,
                value,
                validator: me,
                timestamp_unix_nanos: e.timestamp_unix_nanos,
                signature: e.signature,
            }));
            Box::pin(self.perform(out)).await?;
        }
        Ok(())
    }

    /// Starts the driver of this height: at round 0, or (after a restart mid-height) at the
    /// round, step and lock the WAL records, with our own signed votes counted again.
    pub(super) async fn begin_height(&mut self) -> ConsensusResult<()> {
        let input = match resume_point(&self.signer.signed_at(self.height)) {
            Some(r) => {
                info!(height = self.height, round = r.round, step = ?r.step, locked = r.locked.is_some(), "resuming from the WAL");
                DriverInput::Resume(r)
            }
            None => DriverInput::Start,
        };
        let out = self.driver.process(input);
        Box::pin(self.perform(out)).await?;
        self.replay_own_votes().await
    }

    /// Moves consensus to `height` (after a commit or a sync) and replays buffered messages.
    pub(super) async fn start_height(&mut self, height: u64) -> ConsensusResult<()> {
        self.start_at = None;
        self.early = None;
        self.height_started = Some(tokio::time::Instant::now());
        self.height = height;
        self.blocks.clear();
        self.tx_hashes.clear();
        self.txs_served.clear();
        self.rebuilds.clear();
        self.proposals_seen.clear();
        self.proposal_values.clear();
        self.byz_new_height();
        self.driver = Driver::new(self.height, self.vals.clone(), self.me, self.cfg.timeouts);
        self.begin_height().await?;
        for (peer, m) in std::mem::take(&mut self.future) {
            Box::pin(self.on_message(peer, m)).await?;
        }
        Ok(())
    }
}

/// The signature, or None when the double-sign guard refused (see `refused`).
/// Where the signed steps of one height leave a restarted validator (None if it signed
/// nothing there).
fn resume_point(entries: &[crate::wal::WalEntry]) -> Option<crate::bft::state::Resume> {
    use crate::bft::state::{Resume, RoundValue};
    use crate::bft::Step;
    use crate::wal::step;
    let round = entries.iter().map(|e| e.round).max()?;
    let step = match entries
        .iter()
        .filter(|e| e.round == round)
        .map(|e| e.step)
        .max()
    {
        Some(step::PRECOMMIT) => Step::Precommit,
        Some(step::PREVOTE) => Step::Prevote,
        _ => Step::Propose,
    };
    let locked = entries
        .iter()
        .filter(|e| e.step == step::PRECOMMIT)
        .filter_map(|e| {
            let value = Hash::from_slice("wal.value", &e.value).ok()?;
            Some(RoundValue {
                value,
                round: e.round,
            })
        })
        .max_by_key(|l| l.round);
    Some(Resume {
        round,
        step,
        locked,
    })
}

fn signed_or_refused<T>(r: Result<T, SignError>) -> ConsensusResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => refused(e).map(|()| None).map_err(sign_err),
    }
}

fn sign_err(e: SignError) -> ConsensusError {
    ConsensusError::Task {
        height: 0,
        reason: e.to_string(),
    }
}
