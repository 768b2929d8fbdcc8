//! The Raft engine's durable log in its own column family: `h` the hard state, `c` the conf
//! state, `b` the log base, `s` the snapshot, `e` + big-endian index each entry (so a range
//! scan reads the log in order).

use crate::db::{StateDb, CF_RAFT};
use crate::error::db_err;
use rocksdb::{IteratorMode, WriteBatch};
use tpslab_types::ports::{LedgerError, RaftLog, RaftState, RaftWrite};

const HARD_STATE: &[u8] = b"h";
const CONF_STATE: &[u8] = b"c";
const LOG_BASE: &[u8] = b"b";
const SNAPSHOT: &[u8] = b"s";
const ABSTAINING: &[u8] = b"a";
const ENTRY: u8 = b'e';

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [ENTRY; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn err(e: impl std::fmt::Display) -> LedgerError {
    LedgerError(format!("raft log: {e}"))
}

impl RaftLog for StateDb {
    fn load(&self) -> Result<RaftState, LedgerError> {
        let cf = self.cf(CF_RAFT).map_err(err)?;
        let (db, _) = self.raw();
        let get = |k: &[u8]| -> Result<Vec<u8>, LedgerError> {
            Ok(db
                .get_cf(cf, k)
                .map_err(db_err("read raft state"))
                .map_err(err)?
                .unwrap_or_default())
        };
        let mut entries = Vec::new();
        let from = entry_key(0);
        let iter = db.iterator_cf(cf, IteratorMode::From(&from, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(db_err("read raft log")).map_err(err)?;
            if k.len() != 9 || k[0] != ENTRY {
                break;
            }
            let mut idx = [0u8; 8];
            idx.copy_from_slice(&k[1..]);
            entries.push((u64::from_be_bytes(idx), v.to_vec()));
        }
        Ok(RaftState {
            hard_state: get(HARD_STATE)?,
            conf_state: get(CONF_STATE)?,
            entries,
            log_base: get(LOG_BASE)?,
            snapshot: get(SNAPSHOT)?,
            abstaining: !get(ABSTAINING)?.is_empty(),
        })
    }

    fn write(&self, w: &RaftWrite) -> Result<(), LedgerError> {
        let cf = self.cf(CF_RAFT).map_err(err)?;
        let (db, opts) = self.raw();
        let mut batch = WriteBatch::default();
        if let Some(first) = w.entries.first() {
            // A new leader's entries replace whatever suffix this log had from there.
            batch.delete_range_cf(cf, entry_key(first.0), entry_key(u64::MAX));
            for (i, e) in &w.entries {
                batch.put_cf(cf, entry_key(*i), e);
            }
        }
        if let Some(hs) = &w.hard_state {
            batch.put_cf(cf, HARD_STATE, hs);
        }
        if let Some(cs) = &w.conf_state {
            batch.put_cf(cf, CONF_STATE, cs);
        }
        if let Some(below) = w.compact_below {
            batch.delete_range_cf(cf, entry_key(0), entry_key(below));
        }
        if let Some(b) = &w.log_base {
            batch.put_cf(cf, LOG_BASE, b);
        }
        if let Some(s) = &w.snapshot {
            batch.put_cf(cf, SNAPSHOT, s);
        }
        match w.abstaining {
            Some(true) => batch.put_cf(cf, ABSTAINING, b"1"),
            Some(false) => batch.delete_cf(cf, ABSTAINING),
            None => {}
        }
        db.write_opt(batch, opts)
            .map_err(db_err("write raft log"))
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateDbOptions;

    #[test]
    fn the_log_survives_reopen_and_a_new_leader_replaces_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), &StateDbOptions::default()).unwrap();
        assert_eq!(db.load().unwrap(), RaftState::default());
        let e = |i: u64, t: &str| (i, format!("{t}{i}").into_bytes());
        db.write(&RaftWrite {
            entries: (1..=5).map(|i| e(i, "a")).collect(),
            hard_state: Some(b"hs1".to_vec()),
            ..RaftWrite::default()
        })
        .unwrap();
        db.write(&RaftWrite {
            entries: vec![e(4, "b")],
            compact_below: Some(2),
            conf_state: Some(b"cs".to_vec()),
            log_base: Some(b"base".to_vec()),
            snapshot: Some(b"snap".to_vec()),
            abstaining: Some(true),
            ..RaftWrite::default()
        })
        .unwrap();
        drop(db);
        let db = StateDb::open(dir.path(), &StateDbOptions::default()).unwrap();
        let s = db.load().unwrap();
        assert_eq!(s.hard_state, b"hs1");
        assert_eq!(s.conf_state, b"cs");
        assert_eq!(s.entries, vec![e(2, "a"), e(3, "a"), e(4, "b")]);
        assert_eq!(
            (&s.log_base[..], &s.snapshot[..]),
            (&b"base"[..], &b"snap"[..])
        );
    }
}
