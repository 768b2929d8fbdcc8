//! Block sync: a validator that fell behind (restarted, partitioned) fetches committed blocks
//! with their commits from a peer, verifies each commit against the validator set, and
//! executes them. Peers announce their height every [`STATUS_INTERVAL`].

use crate::bft::commit::verify_commit;
use crate::bft::ValidatorSet;
use crate::error::ConsensusResult;
use crate::event::CommitEvent;
use crate::frame_budget::{record_overhead, SYNC_RESPONSE_OVERHEAD};
use crate::invalid::{BlockFault, CommitFault, Invalid};
use crate::pipeline::BlockPipeline;
use std::time::Duration;
use tpslab_types::pb;
use tpslab_types::ports::Ledger;
use tpslab_types::Hash;

/// How often each node announces its committed height.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// Most blocks asked for at once.
pub const MAX_BLOCKS_PER_REQUEST: u64 = 64;
/// Bytes of records (each with its overhead inside the response) that fit one sync frame of
/// `max_frame_bytes`.
pub fn records_budget(max_frame_bytes: usize) -> usize {
    tpslab_p2p::max_payload_len(max_frame_bytes).saturating_sub(SYNC_RESPONSE_OVERHEAD)
}

/// Answers a request from our store (in order, stopping at the first missing block), with as
/// many records as fit both our frame budget `own_budget` (see [`records_budget`]) and the
/// requester's (`req.max_bytes`). A record that fits neither alone is not sent (a frame over
/// the limit would only break the link); the node start check makes the largest block fit.
pub fn serve(db: &dyn Ledger, req: &pb::SyncRequest, own_budget: usize) -> pb::SyncResponse {
    let budget = match req.max_bytes {
        0 => own_budget,
        theirs => own_budget.min(usize::try_from(theirs).unwrap_or(usize::MAX)),
    };
    let to = req
        .to_height
        .min(req.from_height.saturating_add(MAX_BLOCKS_PER_REQUEST - 1));
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for h in req.from_height.max(1)..=to {
        let Ok(Some(rec)) = db.block(h) else { break };
        let len = prost::Message::encoded_len(&rec);
        bytes += len + record_overhead(len);
        if bytes > budget {
            // Our own budget too small is a config bug (the start check should prevent it);
            // a requester's too small is its business, and must not flood our log.
            if blocks.is_empty() && budget == own_budget {
                tracing::warn!(
                    height = h,
                    record_bytes = len,
                    budget,
                    "a block record does not fit a sync frame; not served"
                );
            }
            break;
        }
        blocks.push(rec);
    }
    pb::SyncResponse { blocks }
}

/// What applying a block-sync response did: the commits made, and the first record that did
/// not verify (its height and why), if any.
pub type SyncApplied = (Vec<CommitEvent>, Option<(u64, Invalid)>);

/// Verifies and commits the records that extend our chain, in order. Returns the commit
/// events and, if a record did not verify, its height and why (the rest are not applied).
/// Failing to commit a verified block is our own failure, and an error.
pub fn apply(
    pipeline: &mut BlockPipeline,
    vals: &ValidatorSet,
    records: Vec<pb::BlockRecord>,
) -> ConsensusResult<SyncApplied> {
    apply_with(pipeline, records, |chain_id, height, hash, commit| {
        verify_commit(chain_id, vals, height, hash, commit)
    })
}

/// [`apply`] with the engine's own commit check, `check(chain_id, height, block hash,
/// commit)`: BFT verifies the commit's signatures; a Raft commit has none and must only name
/// the block.
pub fn apply_with(
    pipeline: &mut BlockPipeline,
    records: Vec<pb::BlockRecord>,
    check: impl Fn(&str, u64, &Hash, &pb::Commit) -> Result<(), CommitFault>,
) -> ConsensusResult<SyncApplied> {
    let mut events = Vec::new();
    for rec in records {
        let height = rec
            .block
            .as_ref()
            .and_then(|b| b.header.as_ref())
            .map_or(0, |h| h.height);
        let verified = next_record(pipeline, rec).and_then(|next| match next {
            Some((block, hash, commit)) => {
                check(pipeline.chain_id(), height, &hash, &commit)?;
                Ok(Some((block, hash, commit)))
            }
            None => Ok(None),
        });
        match verified {
            Ok(Some((block, hash, commit))) => {
                events.push(pipeline.commit_block(block, hash, commit)?);
            }
            Ok(None) => {}
            Err(e) => return Ok((events, Some((height, e)))),
        }
    }
    Ok((events, None))
}

/// The record's block, hash and commit if it holds the next block, well formed and linked
/// to our chain under the hash it claims; None if it is not the next one. The commit is the
/// caller's to verify.
fn next_record(
    pipeline: &BlockPipeline,
    rec: pb::BlockRecord,
) -> Result<Option<(pb::Block, Hash, pb::Commit)>, Invalid> {
    let next = pipeline
        .last_committed()
        .map_err(|e| Invalid::Unverifiable(e.to_string()))?
        .height
        + 1;
    let block = rec.block.ok_or(Invalid::Missing("block"))?;
    let height = block.header.as_ref().map_or(0, |h| h.height);
    if height != next {
        return Ok(None);
    }
    let hash = pipeline.check_block(&block)?;
    let claimed =
        Hash::from_slice("block_hash", &rec.block_hash).map_err(|e| Invalid::Malformed {
            field: "block_hash",
            reason: e.to_string(),
        })?;
    if hash != claimed {
        return Err(BlockFault::Hash.into());
    }
    let commit = rec.commit.ok_or(Invalid::Missing("commit"))?;
    Ok(Some((block, hash, commit)))
}
