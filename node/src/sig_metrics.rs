//! `tpslab_signature_verifications_total{path}`: how many ed25519 verifications each path
//! (tx alone, tx in a batch, tx after a failed batch, vote, handshake) has run in this process,
//! copied from the process-wide counts of `tpslab_types::sig` at scrape time.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::Mutex;
use tpslab_types::sig::verification_counts;

type Labels = Vec<(String, String)>;

/// The counter family, refreshed on every scrape.
#[derive(Clone, Default)]
pub struct SigCounters {
    family: Family<Labels, Counter>,
    /// Two scrapes at once must not both add the same increment.
    sync: Arc<Mutex<()>>,
}

impl SigCounters {
    /// Adds the family to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "tpslab_signature_verifications",
            "ed25519 signature verifications performed, by path",
            self.family.clone(),
        );
    }

    /// Brings the counters up to the process-wide counts.
    pub fn update(&self) {
        let _g = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        for (path, n) in verification_counts() {
            let c = self
                .family
                .get_or_create(&vec![("path".to_string(), path.label().to_string())]);
            let have = c.get();
            if n > have {
                c.inc_by(n - have);
            }
        }
    }
}
