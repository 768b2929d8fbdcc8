//! Deployment bundles for a testnet on other hosts (`testnet init --hosts`).
//!
//! ```text
//! DIR/testnet.json                  the manifest: addresses and admin tokens, for the harness
//! DIR/README.md                     how to deploy it, host by host
//! DIR/hosts/<host>/node<i>/         a validator's home (config, key, genesis)
//! DIR/hosts/<host>/tpslab-node<i>.service   its systemd unit
//! DIR/hosts/<host>/docker-compose.yml       its validators as compose services (host network)
//! DIR/hosts/<host>/Dockerfile, .dockerignore  an image of the host-built binary
//! DIR/k8s/                          the same chain as a StatefulSet, keys in per-ordinal Secrets
//! ```
//!
//! A host's directory is all that host needs, and holds only its own validators' keys.

mod compose;
mod k8s;
mod systemd;

use crate::hosts::host_dir;
use crate::options::TestnetInit;
use anyhow::Result;
use std::path::Path;
use tpslab_api::genesis::Genesis;
use tpslab_api::home::write_atomic;
use tpslab_api::testnet_file::TestnetFile;
use tpslab_types::keys::SigningKey;

pub use compose::{compose_file, COMPOSE_FILE};
pub use k8s::{DATA_DIR as K8S_HOME, SERVICE as K8S_SERVICE};
pub use systemd::{unit_name, HOME_ROOT};

/// Where the binary lives on a host and in the image.
pub const BIN: &str = "/usr/local/bin/tpslab";

/// The `tpslab node` arguments of a validator whose home is `home`.
fn node_args(home: &str) -> Vec<String> {
    vec!["node".to_string(), "--home".to_string(), home.to_string()]
}

/// Writes the units, compose files, Dockerfiles, Kubernetes manifests and README next to the
/// homes `init` wrote.
pub(crate) fn write(
    o: &TestnetInit,
    file: &TestnetFile,
    keys: &[SigningKey],
    genesis: &Genesis,
) -> Result<()> {
    let mut hosts: Vec<&str> = file.hosts();
    hosts.sort_unstable();
    hosts.dedup();
    for host in &hosts {
        let dir = host_dir(&o.out, host);
        let nodes: Vec<_> = file
            .nodes
            .iter()
            .filter(|n| n.host.as_deref() == Some(host))
            .collect();
        for n in &nodes {
            write_atomic(
                &dir.join(unit_name(&n.name)),
                &systemd::unit(n, &file.chain_id),
            )?;
        }
        write_atomic(&dir.join(COMPOSE_FILE), &compose_file(&nodes)?)?;
        write_atomic(&dir.join("Dockerfile"), DOCKERFILE)?;
        // Only the binary goes into the build context: the keys next to it must never end
        // up in an image layer.
        write_atomic(&dir.join(".dockerignore"), "*\n!tpslab\n")?;
    }
    k8s::write(o, file, keys, genesis)?;
    write_atomic(&o.out.join("README.md"), &readme(&o.out, file))?;
    Ok(())
}

/// The image: the binary built on the host, copied in (nothing is compiled in the image, so
/// what runs is what was measured). Debian 12, like the build machine, for the same glibc.
const DOCKERFILE: &str = r#"# tpslab validator image: the host-built binary, nothing compiled here.
# Copy it next to this file first:  cp "$(command -v tpslab)" .   (strip it to shrink the image)
FROM debian:12-slim
COPY tpslab /usr/local/bin/tpslab
EXPOSE 26656 9090 26660
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tpslab"]
"#;

fn readme(out: &Path, file: &TestnetFile) -> String {
    let mut rows = String::new();
    for n in &file.nodes {
        let host = n.host.as_deref().unwrap_or("-");
        let dir = host_dir(out, host);
        let rel = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
        rows.push_str(&format!(
            "| {} | {host} | {rel}/ | p2p {}, gRPC {}, metrics {} |\n",
            n.name, n.p2p_addr, n.grpc_addr, n.metrics_addr
        ));
    }
    format!(
        r#"# tpslab testnet `{chain}` across hosts

Written by `tpslab testnet init --hosts`. Each host gets its directory under `hosts/` (its
validators' homes with their keys, a systemd unit per validator, a docker-compose.yml and a
Dockerfile); `testnet.json` here is the manifest the harness uses, with each validator's admin
token: keep this directory on the machine you drive the testnet from, and do not copy it to
the validators.

| validator | host | copy to the host | addresses |
|---|---|---|---|
{rows}
Open the three ports of each validator between the hosts (p2p) and from the harness (gRPC,
metrics). The gRPC port accepts transactions from anyone who can reach it.

## Start: pick one

- **systemd.** On each host: `cp tpslab {bin}` (the binary you built), copy the host's
  `node<i>/` to `{root}/node<i>`, the unit to `/etc/systemd/system/`, then
  `systemctl daemon-reload && systemctl enable --now tpslab-node<i>`.
- **docker compose.** On each host, in its directory: `cp "$(command -v tpslab)" .`, then
  `docker compose up -d --build` (host networking: the validator binds the host's address).
- **Kubernetes.** `k8s/`: push the image (`docker build` in any host directory) where the
  cluster can pull it, set it in `k8s/statefulset.yaml`, then `kubectl apply -f k8s/`. The
  pods find each other as `tpslab-<i>.tpslab` (their own configs, in the Secrets); the
  harness reaches them with `kubectl port-forward` or from inside the cluster, not through
  this manifest.

## Drive it from here

- `tpslab testnet status DIR`, `tpslab testnet check DIR`, `tpslab load --testnet DIR ...`
  work against the addresses above.
- `tpslab testnet down DIR` asks each validator to stop through its admin RPC (the token in
  `testnet.json` and in its config). A clean stop stays stopped (systemd
  `Restart=on-failure`, compose `restart: on-failure` restart only a crash); `systemctl stop`
  or `docker compose down` is the other way.
- `tpslab testnet up DIR` refuses: starting a remote validator is its host's job.
"#,
        chain = file.chain_id,
        bin = BIN,
        root = HOME_ROOT,
    )
}
