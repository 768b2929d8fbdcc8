//! Small client helpers used by the CLI (`tpslab status`, `account`, `send`) and tests.

use crate::proto::node_client::NodeClient;
use anyhow::{Context, Result};
use std::path::Path;
use tonic::transport::Channel;

/// Connects to a node's gRPC API at `addr` (`host:port` or a URL). A host that does not
/// answer (down, or its packets dropped) fails after 5 s instead of the kernel's minutes.
pub async fn connect(addr: &str) -> Result<NodeClient<Channel>> {
    let url = if addr.starts_with("http") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid node address {url}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot connect to node at {url}"))?;
    Ok(NodeClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// Largest answer the client takes: a block record (GetBlock) holds a whole block, up to
/// `consensus.max_block_bytes` (12 MiB by default, at most a 16 MiB frame) plus its commit;
/// tonic's default of 4 MiB failed the audit on the first block above it.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The gRPC address a running node wrote into its home.
pub fn addr_from_home(home: &Path) -> Result<String> {
    let f = crate::home::Home(home.to_path_buf()).grpc_addr_file();
    let s = std::fs::read_to_string(&f)
        .with_context(|| format!("cannot read {} (is the node running?)", f.display()))?;
    Ok(s.trim().to_string())
}
