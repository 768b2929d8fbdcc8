//! The bundles of `testnet init --hosts`, parsed as their tools would: every validator has a
//! compose service, a systemd unit and a Kubernetes identity, whose ports, volumes, homes and
//! keys agree with its config, the genesis and the manifest; a host's directory holds only
//! its own validators' keys; no key can enter a Docker image.

use std::collections::BTreeMap;
use std::path::Path;
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_testnet::bundle::{unit_name, COMPOSE_FILE, HOME_ROOT, K8S_HOME};
use tpslab_testnet::hosts::host_dir;
use tpslab_testnet::{init, TestnetFile, TestnetInit};

fn yaml(p: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn s(v: &serde_yaml::Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn port(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn key_text(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text).unwrap()["pub_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pub_key_of(home: &Path) -> String {
    key_text(&std::fs::read_to_string(home.join("priv_validator_key.json")).unwrap())
}

fn opts(out: &Path, hosts: &[&str]) -> TestnetInit {
    TestnetInit {
        validators: hosts.len(),
        out: out.to_path_buf(),
        chain_id: "bundle-chain".into(),
        accounts: 10,
        seed: "s".into(),
        balance: 1,
        config: Config::default(),
        byzantine: Vec::new(),
        fault_injection: false,
        consensus: Default::default(),
        links: tpslab_testnet::Links::Uniform("delay=20ms".parse().unwrap()),
        hosts: Some(hosts.iter().map(|h| h.to_string()).collect()),
    }
}

const HOSTS: [&str; 4] = ["10.1.0.2", "val-b.example.org", "10.1.0.2", "10.1.0.5"];

/// A bundle of four validators on three hosts (one named, one holding two).
struct Bundle {
    _tmp: tempfile::TempDir,
    out: std::path::PathBuf,
    file: TestnetFile,
    genesis: Genesis,
}

fn bundle() -> Bundle {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("net");
    let file: TestnetFile = init(&opts(&out, &HOSTS)).unwrap();
    let genesis = Genesis::load(&file.nodes[0].home.join("genesis.json")).unwrap();
    Bundle {
        _tmp: tmp,
        out,
        file,
        genesis,
    }
}

#[test]
fn each_validators_config_key_and_genesis_agree_with_the_manifest() {
    let b = bundle();
    assert_eq!(tpslab_testnet::load(&b.out).unwrap().nodes.len(), 4);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&b.out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the bundle holds keys and tokens");
    for (i, n) in b.file.nodes.iter().enumerate() {
        let host = n.host.as_deref().unwrap();
        assert_eq!(host, HOSTS[i]);
        assert_eq!(n.home, host_dir(&b.out, host).join(&n.name));
        // Binds the host's address (or every address for a name) on the manifest's ports,
        // dials the others' manifest addresses, holds the token the manifest keeps.
        let cfg = Config::load(&n.home.join("config.toml")).unwrap();
        let bind_host = if host.parse::<std::net::IpAddr>().is_ok() {
            host
        } else {
            "0.0.0.0"
        };
        let bind = |a: &str| format!("{bind_host}:{}", port(a));
        assert_eq!(cfg.p2p.listen_addr, bind(&n.p2p_addr));
        assert_eq!(cfg.api.grpc_addr, bind(&n.grpc_addr));
        assert_eq!(cfg.api.metrics_addr, bind(&n.metrics_addr));
        assert_eq!(cfg.api.admin_token, n.admin_token);
        assert_eq!(n.admin_token.as_ref().unwrap().len(), 64);
        let peers: Vec<String> = cfg
            .p2p
            .parse_peers()
            .unwrap()
            .into_iter()
            .map(|p| p.1)
            .collect();
        let others: Vec<String> = b
            .file
            .nodes
            .iter()
            .filter(|m| m.name != n.name)
            .map(|m| m.p2p_addr.clone())
            .collect();
        assert_eq!(peers, others);
        assert_eq!(cfg.p2p.links.len(), 3, "emulated links carried");
        assert_eq!(pub_key_of(&n.home), b.genesis.validators[i].pub_key);
        assert_eq!(
            std::fs::read(n.home.join("genesis.json")).unwrap(),
            std::fs::read(b.file.nodes[0].home.join("genesis.json")).unwrap()
        );
    }
}

#[test]
fn each_validator_has_a_compose_service_and_a_systemd_unit_on_its_home() {
    let b = bundle();
    for n in &b.file.nodes {
        let dir = host_dir(&b.out, n.host.as_deref().unwrap());
        // On the host network, its home mounted where its command points, labels naming the
        // manifest's addresses.
        let compose = yaml(&dir.join(COMPOSE_FILE));
        let svc = &compose["services"][n.name.as_str()];
        assert_eq!(s(&svc["network_mode"]), "host", "{svc:?}");
        let command: Vec<&str> = svc["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        assert_eq!(command[..2], ["node", "--home"]);
        let volumes: Vec<&str> = svc["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        assert_eq!(volumes, [format!("./{}:{}", n.name, command[2])]);
        assert!(dir.join(&n.name).join("config.toml").exists());
        assert_eq!(s(&svc["labels"]["tpslab.p2p"]), n.p2p_addr);
        assert_eq!(s(&svc["labels"]["tpslab.grpc"]), n.grpc_addr);
        assert_eq!(s(&svc["labels"]["tpslab.metrics"]), n.metrics_addr);
        assert_eq!(s(&svc["restart"]), "on-failure");
        // systemd: runs the node on the home the README says to copy it to.
        let unit = std::fs::read_to_string(dir.join(unit_name(&n.name))).unwrap();
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        assert_eq!(
            exec,
            format!("/usr/local/bin/tpslab node --home {HOME_ROOT}/{}", n.name)
        );
        assert!(unit.contains("Restart=on-failure") && unit.contains("[Install]"));
    }
}

#[test]
fn each_host_holds_only_its_own_keys_and_no_key_enters_an_image() {
    let b = bundle();
    let mut by_host: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in &b.file.nodes {
        by_host
            .entry(n.host.as_deref().unwrap())
            .or_default()
            .push(&n.name);
    }
    assert_eq!(by_host["10.1.0.2"], ["node0", "node2"]);
    for (host, names) in &by_host {
        let dir = host_dir(&b.out, host);
        let compose = yaml(&dir.join(COMPOSE_FILE));
        let services: Vec<&str> = compose["services"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(s)
            .collect();
        assert_eq!(&services, names, "{host}");
        let keys = walk(&dir)
            .into_iter()
            .filter(|p| p.ends_with("priv_validator_key.json"))
            .count();
        assert_eq!(keys, names.len(), "{host} holds only its own keys");
        let ignore = std::fs::read_to_string(dir.join(".dockerignore")).unwrap();
        assert_eq!(ignore.lines().collect::<Vec<_>>(), ["*", "!tpslab"]);
        let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains("COPY tpslab /usr/local/bin/tpslab"));
        assert!(
            !dockerfile.contains("cargo"),
            "nothing is built in the image"
        );
    }
}

/// The container's and the headless Service's ports, by name (they must be the same).
fn k8s_ports(k8s: &Path) -> BTreeMap<String, u64> {
    let sts = yaml(&k8s.join("statefulset.yaml"));
    let ports = |v: &serde_yaml::Value, key: &str| -> BTreeMap<String, u64> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|p| (s(&p["name"]).to_string(), p[key].as_u64().unwrap()))
            .collect()
    };
    let container = ports(
        &sts["spec"]["template"]["spec"]["containers"][0]["ports"],
        "containerPort",
    );
    let svc = yaml(&k8s.join("service.yaml"));
    assert_eq!(s(&svc["spec"]["clusterIP"]), "None");
    assert_eq!(ports(&svc["spec"]["ports"], "port"), container);
    container
}

#[test]
fn the_statefulset_gives_each_ordinal_its_key_and_an_in_cluster_config() {
    let b = bundle();
    let k8s = b.out.join("k8s");
    let sts = yaml(&k8s.join("statefulset.yaml"));
    assert_eq!(s(&sts["kind"]), "StatefulSet");
    assert_eq!(sts["spec"]["replicas"].as_u64(), Some(4));
    assert_eq!(s(&sts["spec"]["serviceName"]), "tpslab");
    let pod = &sts["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(args, ["node", "--home", K8S_HOME]);
    let claim = s(&sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]);
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    assert!(mounts
        .iter()
        .any(|m| s(&m["name"]) == claim && s(&m["mountPath"]) == K8S_HOME));
    let volumes = pod["volumes"].as_sequence().unwrap();
    let ports = k8s_ports(&k8s);
    for (i, n) in b.file.nodes.iter().enumerate() {
        let secret = yaml(&k8s.join(format!("secret-{}.yaml", n.name)));
        let name = s(&secret["metadata"]["name"]);
        assert!(
            volumes
                .iter()
                .any(|v| v["secret"]["secretName"].as_str() == Some(name)),
            "{name} not mounted"
        );
        let data = &secret["stringData"];
        assert_eq!(
            key_text(s(&data["priv_validator_key.json"])),
            b.genesis.validators[i].pub_key
        );
        let cfg = Config::parse(s(&data["config.toml"]), "secret").unwrap();
        assert_eq!(cfg.p2p.listen_addr, format!("0.0.0.0:{}", ports["p2p"]));
        assert_eq!(cfg.api.grpc_addr, format!("0.0.0.0:{}", ports["grpc"]));
        assert_eq!(
            cfg.api.metrics_addr,
            format!("0.0.0.0:{}", ports["metrics"])
        );
        let peers: Vec<String> = cfg
            .p2p
            .parse_peers()
            .unwrap()
            .into_iter()
            .map(|p| p.1)
            .collect();
        let want: Vec<String> = (0..4)
            .filter(|&j| j != i)
            .map(|j| format!("tpslab-{j}.tpslab:{}", ports["p2p"]))
            .collect();
        assert_eq!(peers, want);
    }
    let genesis_map = yaml(&k8s.join("genesis-configmap.yaml"));
    let g: Genesis = serde_json::from_str(s(&genesis_map["data"]["genesis.json"])).unwrap();
    assert_eq!(g.validators, b.genesis.validators);
}

#[test]
fn bad_host_lists_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("net");
    for (hosts, validators, needle) in [
        (
            vec!["10.0.0.1", "h_2"],
            2,
            "not an IP address or a host name",
        ),
        (
            vec!["10.0.0.1:26656"],
            1,
            "not an IP address or a host name",
        ),
        (vec!["a", "b"], 3, "2 hosts for 3 validators"),
    ] {
        let mut o = opts(&out, &hosts);
        o.validators = validators;
        let e = init(&o).unwrap_err().to_string();
        assert!(e.contains(needle), "{hosts:?}: {e}");
    }
    let mut o = opts(&out, &["a", "b"]);
    o.byzantine = vec![("node1".into(), "silent".parse().unwrap())];
    assert!(init(&o).unwrap_err().to_string().contains("local testnets"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
