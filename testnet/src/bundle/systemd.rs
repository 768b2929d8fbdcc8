//! A systemd unit per validator: restarted after a crash, not after a clean stop (the admin
//! RPC's or `systemctl stop`), given time to finish the block in flight.

use tpslab_api::testnet_file::TestnetNode;

/// Where the validators' homes live on a host.
pub const HOME_ROOT: &str = "/var/lib/tpslab";

/// `tpslab-node<i>.service`.
pub fn unit_name(node: &str) -> String {
    format!("tpslab-{node}.service")
}

/// The unit of validator `n`, its home at `HOME_ROOT/<name>`.
pub fn unit(n: &TestnetNode, chain_id: &str) -> String {
    let home = format!("{HOME_ROOT}/{}", n.name);
    let exec = std::iter::once(super::BIN.to_string())
        .chain(super::node_args(&home))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"[Unit]
Description=tpslab validator {name} of chain {chain_id}
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={exec}
Restart=on-failure
RestartSec=2
# SIGTERM: the node finishes the block in flight (one atomic write), then exits 0.
KillSignal=SIGTERM
TimeoutStopSec=30
LimitNOFILE=65536
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"#,
        name = n.name,
    )
}
