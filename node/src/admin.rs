//! The admin RPC's gate: `Shutdown` needs the node's `[api] admin_token`. The token is
//! compared in constant time, so its bytes cannot be found one at a time by timing answers.

use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tonic::Status;

/// The token and the stop it triggers.
#[derive(Clone)]
pub struct Admin {
    token: Option<String>,
    stop: Arc<Notify>,
}

impl Admin {
    /// The gate for `token` (None: the admin RPC is off).
    pub fn new(token: Option<String>) -> Self {
        Admin {
            token,
            stop: Arc::new(Notify::new()),
        }
    }

    /// Ok when `given` is the node's token; the status a caller sees otherwise.
    pub fn authorize(&self, given: &str) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Err(Status::unimplemented(
                "this node has no [api] admin_token: the admin RPC is off; stop it through its service manager",
            ));
        };
        if bool::from(token.as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated("wrong admin token"))
        }
    }

    /// Asks the node to stop (kept until the node looks, so a stop asked before it waits is
    /// not lost).
    pub fn request_stop(&self) {
        self.stop.notify_one();
    }

    /// Resolves once a stop was asked.
    pub async fn stop_requested(&self) {
        self.stop.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn only_the_exact_token_passes() {
        let t = "ab".repeat(16);
        let a = Admin::new(Some(t.clone()));
        assert!(a.authorize(&t).is_ok());
        for wrong in ["", "ab", &t[..31], &format!("{t}0"), &"AB".repeat(16)] {
            assert_eq!(
                a.authorize(wrong).unwrap_err().code(),
                Code::Unauthenticated
            );
        }
        let off = Admin::new(None);
        assert_eq!(off.authorize(&t).unwrap_err().code(), Code::Unimplemented);
    }

    #[tokio::test]
    async fn a_stop_asked_before_anyone_waits_is_kept() {
        let a = Admin::new(None);
        a.request_stop();
        tokio::time::timeout(std::time::Duration::from_secs(1), a.stop_requested())
            .await
            .unwrap();
    }
}
