//! `testnet down` for validators on other hosts: each is asked to stop through its admin
//! RPC, with the token `init --hosts` wrote into its config and the manifest. Starting them is
//! their hosts' service managers' job.

use anyhow::{bail, Result};
use std::path::Path;
use tpslab_api::client::connect;
use tpslab_api::proto::ShutdownRequest;
use tpslab_api::testnet_file::{load, TestnetFile};

/// What one validator answered.
#[derive(Debug)]
pub struct RemoteStop {
    /// Its name.
    pub name: String,
    /// What came of asking it.
    pub outcome: StopOutcome,
}

/// What came of asking one validator to stop.
#[derive(Debug)]
pub enum StopOutcome {
    /// It agreed, at this height.
    Stopping(u64),
    /// Nothing answered at its address: stopped already, or its host is unreachable.
    Unreachable(String),
    /// It answered and refused (wrong token, admin RPC off), or there was no token to send.
    Refused(String),
}

/// Whether the testnet runs on other hosts (then `up` is not ours to do, and `down` asks).
pub fn is_remote(file: &TestnetFile) -> bool {
    file.nodes.iter().any(|n| n.host.is_some())
}

/// `testnet up` on a testnet of other hosts: refused, with where to look.
pub fn refuse_up(dir: &Path, file: &TestnetFile) -> Result<()> {
    if is_remote(file) {
        bail!(
            "this testnet's validators run on other hosts ({}): start each there with its \
             service manager (see {}/README.md); `testnet status` shows when they are up",
            file.hosts().join(", "),
            dir.display()
        );
    }
    Ok(())
}

/// Asks every validator of `dir` to stop through its admin RPC.
pub async fn down_remote(dir: &Path) -> Result<Vec<RemoteStop>> {
    let file = load(dir)?;
    let mut out = Vec::new();
    for n in &file.nodes {
        let outcome = match &n.admin_token {
            None => StopOutcome::Refused(format!(
                "no admin token in the manifest: stop it through its service manager on {}",
                n.host.as_deref().unwrap_or("its host")
            )),
            Some(token) => match connect(&n.grpc_addr).await {
                Err(e) => StopOutcome::Unreachable(format!("{e:#}")),
                Ok(mut c) => match c
                    .shutdown(ShutdownRequest {
                        token: token.clone(),
                    })
                    .await
                {
                    Ok(r) => StopOutcome::Stopping(r.into_inner().height),
                    Err(s) => StopOutcome::Refused(format!("{:?}: {}", s.code(), s.message())),
                },
            },
        };
        out.push(RemoteStop {
            name: n.name.clone(),
            outcome,
        });
    }
    Ok(out)
}
