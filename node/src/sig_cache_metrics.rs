//! `sig_cache_hits_total` / `sig_cache_misses_total`: lookups of the verified-signature cache
//! at block execution (sig-cache on), read from the cache at every scrape. A miss means the
//! block's tx was verified again (it reached this node only in a block, or fell out of the
//! cache), which is what the sig-cache step's gain depends on.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use std::sync::Arc;
use tpslab_types::sigcache::SigCache;

/// Reads the cache's lookup counts at scrape time.
pub struct SigCacheCollector(pub Arc<SigCache>);

impl std::fmt::Debug for SigCacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigCacheCollector")
    }
}

impl Collector for SigCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (hits, misses) = self.0.lookups();
        for (name, help, n) in [
            (
                "sig_cache_hits",
                "Block txs whose signature check the cache saved",
                hits,
            ),
            (
                "sig_cache_misses",
                "Block txs not in the cache (verified again)",
                misses,
            ),
        ] {
            let c = ConstCounter::new(n);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        Ok(())
    }
}
