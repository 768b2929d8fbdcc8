//! A host's docker-compose.yml: one service per validator on that host, on the host's
//! network (the config binds the host's address and fixed ports), its home a bind mount.

use anyhow::Result;
use serde_json::json;
use tpslab_api::testnet_file::TestnetNode;

/// The file name.
pub const COMPOSE_FILE: &str = "docker-compose.yml";

/// Where a validator's home is mounted in its container.
fn container_home(name: &str) -> String {
    format!("{}/{name}", super::HOME_ROOT)
}

/// The compose file of `nodes` (all on one host). Labels repeat each validator's addresses so
/// `docker inspect` tells where it listens (published ports mean nothing on the host network).
pub fn compose_file(nodes: &[&TestnetNode]) -> Result<String> {
    let mut services = serde_json::Map::new();
    for n in nodes {
        let home = container_home(&n.name);
        services.insert(
            n.name.clone(),
            json!({
                "build": ".",
                "image": "tpslab:local",
                "container_name": format!("tpslab-{}", n.name),
                "command": super::node_args(&home),
                "network_mode": "host",
                "volumes": [format!("./{}:{home}", n.name)],
                // A crash restarts it; a clean stop (admin RPC, `docker compose stop`) does not.
                "restart": "on-failure",
                "stop_signal": "SIGTERM",
                "stop_grace_period": "30s",
                "ulimits": {"nofile": {"soft": 65536, "hard": 65536}},
                "labels": {
                    "tpslab.p2p": n.p2p_addr,
                    "tpslab.grpc": n.grpc_addr,
                    "tpslab.metrics": n.metrics_addr,
                },
            }),
        );
    }
    let doc = json!({ "services": services });
    Ok(format!(
        "# tpslab validators of this host (written by `tpslab testnet init --hosts`).\n{}",
        serde_yaml::to_string(&doc)?
    ))
}
