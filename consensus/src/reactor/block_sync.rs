//! The reactor's side of block sync: announce heights, serve and request blocks, apply them.

use super::*;

impl Reactor {
    pub(super) async fn on_sync(
        &mut self,
        peer: PeerId,
        m: pb::SyncMessage,
    ) -> ConsensusResult<()> {
        let committed = self.height - 1;
        match m.msg {
            Some(SyncMsg::Status(s)) => {
                let stale = self
                    .sync_asked
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
                if s.height > committed && stale {
                    let req = pb::SyncRequest {
                        from_height: committed + 1,
                        to_height: s.height,
                        max_bytes: crate::sync::records_budget(self.cfg.max_frame_bytes) as u64,
                    };
                    if self.send_sync(peer, SyncMsg::Request(req)) {
                        self.sync_asked = Some(std::time::Instant::now());
                    }
                }
            }
            Some(SyncMsg::Request(req)) => {
                let ledger = self.pipeline.ledger().clone();
                let own = crate::sync::records_budget(self.cfg.max_frame_bytes);
                let resp = tokio::task::spawn_blocking(move || {
                    crate::sync::serve(ledger.as_ref(), &req, own)
                })
                .await
                .map_err(|e| ConsensusError::Task {
                    height: committed + 1,
                    reason: e.to_string(),
                })?;
                if !self.send_sync(peer, SyncMsg::Response(resp)) {
                    debug!(%peer, "block sync response not sent");
                }
            }
            Some(SyncMsg::Response(resp)) => {
                self.sync_asked = None;
                let vals = self.vals.clone();
                let (events, err) = self
                    .off_thread(move |p| crate::sync::apply(p, &vals, resp.blocks))
                    .await??;
                if let Some((height, reason)) = err {
                    let refused = InvalidMessage {
                        kind: MessageKind::SyncRecord,
                        peer,
                        height,
                        round: None,
                        reason,
                    };
                    self.refuse(refused);
                }
                if let Some(last) = events.last() {
                    info!(
                        from = committed + 1,
                        to = last.height,
                        "caught up by block sync"
                    );
                    let next = last.height + 1;
                    for ev in events {
                        let _ = self.tx_commits.send(Arc::new(ev));
                    }
                    self.start_height(next).await?;
                }
            }
            None => {}
        }
        Ok(())
    }
}
