//! Which state machine a chain runs, and the kvstore app's tx format.
//!
//! `transfer` (the default) executes ed25519-signed balance transfers, like Cosmos bank.
//! `kvstore` executes unsigned `key=value` writes, like CometBFT's kvstore example app, so raw
//! consensus throughput can be compared with systems that do not verify tx signatures.

use crate::{TypesError, TypesResult};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The application a chain runs. Every validator of a chain must run the same one; the state
/// database records it at genesis and refuses to reopen under another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum App {
    /// Signed balance transfers.
    #[default]
    Transfer,
    /// Unsigned `key=value` writes.
    KvStore,
}

impl App {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            App::Transfer => "transfer",
            App::KvStore => "kvstore",
        }
    }
}

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for App {
    type Err = TypesError;
    fn from_str(s: &str) -> TypesResult<App> {
        match s {
            "transfer" => Ok(App::Transfer),
            "kvstore" => Ok(App::KvStore),
            other => Err(TypesError::Malformed {
                what: "app",
                reason: format!("unknown app `{other}` (expected transfer or kvstore)"),
            }),
        }
    }
}

/// Splits a kvstore tx into key and value. As in CometBFT's kvstore, `key=value` splits at the
/// first `=`, and a tx without `=` stores itself under itself. An empty tx or key is malformed.
pub fn parse_kv(raw: &[u8]) -> TypesResult<(&[u8], &[u8])> {
    let malformed = |reason: &str| TypesError::Malformed {
        what: "kvstore tx",
        reason: reason.to_string(),
    };
    if raw.is_empty() {
        return Err(malformed("empty tx"));
    }
    match raw.iter().position(|&b| b == b'=') {
        Some(0) => Err(malformed("empty key")),
        Some(i) => Ok((&raw[..i], &raw[i + 1..])),
        None => Ok((raw, raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_txs_split_at_the_first_equals() {
        assert_eq!(parse_kv(b"a=b=c").unwrap(), (&b"a"[..], &b"b=c"[..]));
        assert_eq!(parse_kv(b"abc").unwrap(), (&b"abc"[..], &b"abc"[..]));
        assert_eq!(parse_kv(b"k=").unwrap(), (&b"k"[..], &b""[..]));
        assert!(parse_kv(b"").is_err());
        assert!(parse_kv(b"=v").is_err());
    }

    #[test]
    fn app_names_round_trip() {
        for app in [App::Transfer, App::KvStore] {
            assert_eq!(app.as_str().parse::<App>().unwrap(), app);
        }
        assert!("bank".parse::<App>().is_err());
    }
}
