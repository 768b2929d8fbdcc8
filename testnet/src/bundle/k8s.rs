//! The chain as a Kubernetes StatefulSet: pod `tpslab-<i>` is validator `node<i>`. A
//! StatefulSet has one pod template, so every pod mounts every validator's Secret and an init
//! container copies its own ordinal's key and config into its volume; where pods must not see
//! each other's keys, run one StatefulSet per validator instead. Peers find each other by the
//! headless Service's DNS names, which survive a pod moving to another IP (the node resolves
//! a peer's name at every dial).

use crate::hosts::{GRPC_PORT, METRICS_PORT, P2P_PORT};
use crate::options::{configs, TestnetInit};
use anyhow::Result;
use serde_json::{json, Value};
use tpslab_api::genesis::Genesis;
use tpslab_api::home::write_atomic;
use tpslab_api::testnet_file::{TestnetFile, TestnetNode};
use tpslab_types::keys::SigningKey;

/// The StatefulSet's and headless Service's name.
pub const SERVICE: &str = "tpslab";
/// A pod's home (its persistent volume).
pub const DATA_DIR: &str = "/var/lib/tpslab";

fn pod(i: usize) -> String {
    format!("{SERVICE}-{i}.{SERVICE}")
}

fn secret_name(node: &str) -> String {
    format!("{SERVICE}-{node}")
}

/// Writes `DIR/k8s/`: the Service, the genesis ConfigMap, one Secret per validator and the
/// StatefulSet.
pub(crate) fn write(
    o: &TestnetInit,
    file: &TestnetFile,
    keys: &[SigningKey],
    genesis: &Genesis,
) -> Result<()> {
    let dir = o.out.join("k8s");
    std::fs::create_dir_all(&dir)?;
    let in_cluster: Vec<TestnetNode> = file
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| TestnetNode {
            grpc_addr: format!("{}:{GRPC_PORT}", pod(i)),
            p2p_addr: format!("{}:{P2P_PORT}", pod(i)),
            metrics_addr: format!("{}:{METRICS_PORT}", pod(i)),
            ..n.clone()
        })
        .collect();
    // Pods bind every interface: their IPs are the cluster's to choose.
    let bind = |_: &TestnetNode, a: &str| {
        let port = a.rsplit_once(':').map_or("0", |(_, p)| p);
        format!("0.0.0.0:{port}")
    };
    let configs = configs(o, &in_cluster, keys, bind);
    for ((k, n), cfg) in keys.iter().zip(&in_cluster).zip(&configs) {
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name(&n.name), "labels": {"app": SERVICE}},
            "type": "Opaque",
            "stringData": {
                "config.toml": cfg.to_toml(),
                "priv_validator_key.json": tpslab_api::keyfile::to_text(k)?,
            },
        });
        write_atomic(
            &dir.join(format!("secret-{}.yaml", n.name)),
            &yaml(&secret)?,
        )?;
    }
    let genesis_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{SERVICE}-genesis"), "labels": {"app": SERVICE}},
        "data": {"genesis.json": serde_json::to_string_pretty(genesis)?},
    });
    write_atomic(&dir.join("genesis-configmap.yaml"), &yaml(&genesis_map)?)?;
    write_atomic(&dir.join("service.yaml"), &yaml(&service())?)?;
    write_atomic(
        &dir.join("statefulset.yaml"),
        &yaml(&statefulset(&file.nodes))?,
    )?;
    Ok(())
}

fn yaml(v: &Value) -> Result<String> {
    Ok(serde_yaml::to_string(v)?)
}

fn ports() -> Value {
    json!([
        {"name": "p2p", "containerPort": P2P_PORT},
        {"name": "grpc", "containerPort": GRPC_PORT},
        {"name": "metrics", "containerPort": METRICS_PORT},
    ])
}

/// Headless: one DNS name per pod. Not-ready pods are published too, since validators must
/// reach each other before any of them can make a block.
fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "labels": {"app": SERVICE}},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": {"app": SERVICE},
            "ports": [
                {"name": "p2p", "port": P2P_PORT},
                {"name": "grpc", "port": GRPC_PORT},
                {"name": "metrics", "port": METRICS_PORT},
            ],
        },
    })
}

fn statefulset(nodes: &[TestnetNode]) -> Value {
    let mut volumes = vec![json!({
        "name": "genesis",
        "configMap": {"name": format!("{SERVICE}-genesis")},
    })];
    let mut id_mounts = vec![json!({"name": "genesis", "mountPath": "/genesis"})];
    for n in nodes {
        volumes.push(json!({
            "name": format!("id-{}", n.name),
            "secret": {"secretName": secret_name(&n.name), "defaultMode": 0o400},
        }));
        id_mounts.push(json!({
            "name": format!("id-{}", n.name),
            "mountPath": format!("/identities/{}", n.name),
        }));
    }
    id_mounts.push(json!({"name": "data", "mountPath": DATA_DIR}));
    // Pod tpslab-<i> is node<i>: the ordinal is the hostname's last field.
    let select = format!(
        "set -e; i=${{HOSTNAME##*-}}; cp /identities/node$i/config.toml /identities/node$i/priv_validator_key.json /genesis/genesis.json {DATA_DIR}/"
    );
    let args = ["node", "--home", DATA_DIR];
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": SERVICE, "labels": {"app": SERVICE}},
        "spec": {
            "serviceName": SERVICE,
            "replicas": nodes.len(),
            // Validators need each other to make the first block: start them together.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": SERVICE}},
            "template": {
                "metadata": {
                    "labels": {"app": SERVICE},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": METRICS_PORT.to_string(),
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "initContainers": [{
                        "name": "identity",
                        "image": "tpslab:local",
                        "command": ["/bin/sh", "-c", select],
                        "volumeMounts": id_mounts,
                    }],
                    "containers": [{
                        "name": "validator",
                        "image": "tpslab:local",
                        "args": args,
                        "ports": ports(),
                        "readinessProbe": {"tcpSocket": {"port": "grpc"}, "periodSeconds": 2},
                        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
                    }],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            }],
        },
    })
}
