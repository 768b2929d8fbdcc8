//! Which state machine a chain runs, by name. The apps themselves are in `tpslab-app`.
//!
//! `transfer` (the default) executes ed25519-signed balance transfers, like Cosmos bank.
//! `kvstore` executes unsigned `key=value` writes, like CometBFT's kvstore example app.

use crate::{TypesError, TypesResult};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The application a chain runs. Every validator of a chain must run the same one; the state
/// database records it at genesis and refuses to reopen under another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Signed balance transfers.
    #[default]
    Transfer,
    /// Unsigned `key=value` writes.
    KvStore,
}

impl AppKind {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Transfer => "transfer",
            AppKind::KvStore => "kvstore",
        }
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppKind {
    type Err = TypesError;
    fn from_str(s: &str) -> TypesResult<AppKind> {
        match s {
            "transfer" => Ok(AppKind::Transfer),
            "kvstore" => Ok(AppKind::KvStore),
            other => Err(TypesError::Malformed {
                what: "app",
                reason: format!("unknown app `{other}` (expected transfer or kvstore)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_round_trip() {
        for app in [AppKind::Transfer, AppKind::KvStore] {
            assert_eq!(app.as_str().parse::<AppKind>().unwrap(), app);
        }
        assert!("bank".parse::<AppKind>().is_err());
    }
}
