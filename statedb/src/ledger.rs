//! The state database as consensus's [`Ledger`]: a decided block is executed against the
//! committed state and written, with its record and the new meta, in one atomic batch.

use crate::db::StateDb;
use crate::execute::{execute_block, ExecOptions};
use tpslab_types::pb;
use tpslab_types::ports::{Applied, Committed, ExecParams, Ledger, LedgerError};
use tpslab_types::Hash;

fn ledger_err(e: crate::StateError) -> LedgerError {
    LedgerError(e.to_string())
}

impl Ledger for StateDb {
    fn last_committed(&self) -> Result<Committed, LedgerError> {
        StateDb::last_committed(self).map_err(ledger_err)
    }

    fn block(&self, height: u64) -> Result<Option<pb::BlockRecord>, LedgerError> {
        StateDb::block(self, height).map_err(ledger_err)
    }

    fn apply_block(
        &self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
        params: &ExecParams,
    ) -> Result<Applied, LedgerError> {
        let last = StateDb::last_committed(self).map_err(ledger_err)?;
        let height = last.height + 1;
        let opts = ExecOptions {
            app: params.app,
            write_batch: params.write_batch,
            sig_batch: params.sig_batch,
            sig_cache: params.sig_cache.as_deref(),
            buffer_pool: params.buffer_pool,
            parallel: params.parallel,
        };
        let out = execute_block(
            self,
            &opts,
            &params.chain_id,
            height,
            &last.app_hash,
            &block.txs,
        )
        .map_err(ledger_err)?;
        let touched = params
            .want_touched
            .then(|| out.write_set.accounts.keys().copied().collect());
        let block_time = block.header.as_ref().map_or(0, |h| h.time_unix_nanos);
        let record = pb::BlockRecord {
            block: Some(block),
            block_hash: hash.to_vec(),
            commit: Some(commit),
            result_app_hash: out.app_hash.to_vec(),
            tx_codes: out.tx_codes,
        };
        self.commit_block(&record, block_time, &out.write_set)
            .map_err(ledger_err)?;
        Ok(Applied {
            app_hash: out.app_hash,
            touched,
        })
    }
}
