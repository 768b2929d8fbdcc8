//! The consensus write-ahead log: every proposal and vote this validator signs is appended and
//! fsynced before the signature leaves the process, so a restarted validator knows what it
//! signed and never signs something different for the same height, round and step.
//!
//! File format: records of `u32 BE length || first 4 bytes of SHA-256(payload) || payload`
//! (payload: a prost [`WalEntry`]). A torn or corrupt tail (crash mid-append) is cut off at
//! open; everything before it is kept.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tpslab_types::Hash;

/// Step numbers in the WAL.
pub mod step {
    /// A proposal.
    pub const PROPOSAL: u32 = 1;
    /// A prevote.
    pub const PREVOTE: u32 = 2;
    /// A precommit.
    pub const PRECOMMIT: u32 = 3;
}

/// One signed step.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WalEntry {
    /// Height.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Round.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// One of [`step`].
    #[prost(uint32, tag = "3")]
    pub step: u32,
    /// Block hash signed for; empty for nil.
    #[prost(bytes = "vec", tag = "4")]
    pub value: Vec<u8>,
    /// Proof-of-lock round of a proposal (-1 for none); 0 for votes.
    #[prost(int64, tag = "7")]
    pub pol_round: i64,
    /// Timestamp inside the signed bytes.
    #[prost(uint64, tag = "5")]
    pub timestamp_unix_nanos: u64,
    /// The signature.
    #[prost(bytes = "vec", tag = "6")]
    pub signature: Vec<u8>,
}

/// WAL failures.
#[derive(Debug, Error)]
pub enum WalError {
    /// File I/O failed.
    #[error("consensus wal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// An open WAL file.
pub struct Wal {
    path: PathBuf,
    file: File,
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let h = Hash::digest(payload);
    [h.0[0], h.0[1], h.0[2], h.0[3]]
}

/// One entry as the file holds it: `u32 BE len || checksum(4) || payload`.
pub fn encode_entry(e: &WalEntry) -> Vec<u8> {
    let payload = prost::Message::encode_to_vec(e);
    let mut rec = Vec::with_capacity(8 + payload.len());
    rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    rec.extend_from_slice(&checksum(&payload));
    rec.extend_from_slice(&payload);
    rec
}

/// The intact entries at the start of `data`, and how many bytes they take: reading stops at
/// the first torn, corrupt or undecodable record (a crash mid-append leaves one at the end).
pub fn decode_entries(data: &[u8]) -> (Vec<WalEntry>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let len =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let Some(payload) = pos
            .checked_add(8 + len)
            .and_then(|end| data.get(pos + 8..end))
        else {
            break;
        };
        if checksum(payload) != data[pos + 4..pos + 8] {
            break;
        }
        let Ok(e) = <WalEntry as prost::Message>::decode(payload) else {
            break;
        };
        entries.push(e);
        pos += 8 + len;
    }
    (entries, pos)
}

impl Wal {
    /// Opens (creating) the WAL at `path`; returns it with every intact entry, in order.
    pub fn open(path: &Path) -> Result<(Wal, Vec<WalEntry>), WalError> {
        let io = |source| WalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut data = Vec::new();
        if path.exists() {
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io)?;
        }
        let (entries, pos) = decode_entries(&data);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if pos < data.len() {
            tracing::warn!(
                path = %path.display(),
                kept = pos,
                dropped = data.len() - pos,
                "consensus wal had a torn tail; truncated"
            );
            file.set_len(pos as u64).map_err(io)?;
        }
        Ok((
            Wal {
                path: path.to_path_buf(),
                file,
            },
            entries,
        ))
    }

    /// Appends an entry and fsyncs it.
    pub fn append(&mut self, e: &WalEntry) -> Result<(), WalError> {
        let rec = encode_entry(e);
        self.file
            .write_all(&rec)
            .and_then(|_| self.file.sync_data())
            .map_err(|source| WalError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Rewrites the file keeping only `keep` (atomically: temp file, fsync, rename), to bound
    /// its size once heights are committed.
    pub fn rewrite(&mut self, keep: &[WalEntry]) -> Result<(), WalError> {
        let io = |source| WalError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        {
            let (mut w, _) = Wal::open(&tmp)?;
            for e in keep {
                w.append(e)?;
            }
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        Ok(())
    }
}
