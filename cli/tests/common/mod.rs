//! Test helpers: a real `tpslab node` process in a temp home on a random 127.0.0.1 port.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tpslab_api::proto::node_client::NodeClient;
use tpslab_api::proto::{GetAccountRequest, GetBlockRequest, StatusRequest, StatusResponse};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::pb::BlockRecord;
use tpslab_types::tx::{encode_transfer, Transfer};

pub const SEED: &str = "test-seed";
pub const CHAIN: &str = "test-chain";
pub const BALANCE: u64 = 1_000_000;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tpslab")
}

/// `tpslab experiment --quick` under the e2e tests' tiny load (25 tx/s for `duration`, 300
/// accounts, a long drain so every tx commits, no capacity search); the caller adds `--out`
/// and the rest. Errors come without a backtrace, so the message itself ends the output.
pub fn quick_experiment(duration: &str) -> Command {
    quick_experiment_capacity(duration, "none")
}

/// `quick_experiment` with `--capacity capacity`.
pub fn quick_experiment_capacity(duration: &str, capacity: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([
        "experiment",
        "--quick",
        "--rate",
        "25",
        "--duration",
        duration,
        "--capacity",
        capacity,
    ])
    .args(["--warmup", "1s", "--drain", "60s", "--accounts", "300"])
    .env("RUST_BACKTRACE", "0");
    cmd
}

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub addr: String,
}

impl TestNode {
    /// `tpslab init` with `accounts` accounts, then `extra_config` appended to config.toml.
    pub fn init(accounts: u64, extra_config: &str) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(bin())
            .args(["init", "--home"])
            .arg(dir.path())
            .args([
                "--chain-id",
                CHAIN,
                "--seed",
                SEED,
                "--grpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args([
                "--accounts",
                &accounts.to_string(),
                "--balance",
                &BALANCE.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !extra_config.is_empty() {
            let cfg = dir.path().join("config.toml");
            let text = std::fs::read_to_string(&cfg).unwrap();
            std::fs::write(&cfg, patch_toml(&text, extra_config)).unwrap();
        }
        TestNode {
            dir,
            child: None,
            addr: String::new(),
        }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the node and waits until it serves gRPC.
    pub async fn start(&mut self) {
        self.start_exe(bin()).await
    }

    /// Starts the node from the binary `exe` (another build of tpslab) and waits until it
    /// serves gRPC.
    pub async fn start_exe(&mut self, exe: impl AsRef<std::ffi::OsStr>) {
        let addr_file = self.home().join("grpc.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home().join("node.log"))
            .unwrap();
        let child = Command::new(exe)
            .args(["node", "--home"])
            .arg(self.home())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                self.addr = a.trim().to_string();
                if let Ok(mut c) = self.try_client().await {
                    if c.status(StatusRequest {}).await.is_ok() {
                        return;
                    }
                }
            }
            if let Some(Some(st)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!("node exited early ({st}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "node did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home().join("node.log")).unwrap_or_default()
    }

    async fn try_client(&self) -> Result<NodeClient<Channel>, tonic::transport::Error> {
        NodeClient::connect(format!("http://{}", self.addr)).await
    }

    pub async fn client(&self) -> NodeClient<Channel> {
        self.try_client().await.unwrap()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "node ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn balance_nonce(&self, index: u64) -> (u64, u64) {
        let a = self
            .client()
            .await
            .get_account(GetAccountRequest {
                address: address_of(&account_key(SEED, index)).0.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        (a.balance, a.nonce)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Replaces `key = value` lines of config sections, e.g. patch "[mempool]\nmax_txs = 3".
pub fn patch_toml(text: &str, patch: &str) -> String {
    let mut doc: toml::Table = toml::from_str(text).unwrap();
    let p: toml::Table = toml::from_str(patch).unwrap();
    for (k, v) in p {
        match (doc.get_mut(&k), v) {
            (Some(toml::Value::Table(t)), toml::Value::Table(pv)) => t.extend(pv),
            (_, v) => {
                doc.insert(k, v);
            }
        }
    }
    toml::to_string(&doc).unwrap()
}

pub fn transfer(from: u64, to: u64, amount: u64, nonce: u64) -> Vec<u8> {
    transfer_on(CHAIN, from, to, amount, nonce)
}

pub fn transfer_on(chain: &str, from: u64, to: u64, amount: u64, nonce: u64) -> Vec<u8> {
    encode_transfer(
        &account_key(SEED, from),
        Transfer {
            chain_id: chain.into(),
            to: address_of(&account_key(SEED, to)),
            amount,
            nonce,
            fee: 1,
            payload: vec![0xab; 100],
        },
    )
}

/// A `tpslab testnet` (fast 50 ms block interval) in `dir`, stopped with `testnet down` however
/// the test ends.
pub struct TestNet {
    pub dir: PathBuf,
    pub file: tpslab_testnet::TestnetFile,
    /// Held while the testnet runs: multi-node testnets of all test binaries run one at a
    /// time, so the suite does not overload a 2-core machine (CONVENTIONS.md).
    _turn: std::fs::File,
}

/// Sends `txs` on one BroadcastTxStream; the (code, log) of each, by position.
pub async fn stream_txs(c: &mut NodeClient<Channel>, txs: &[Vec<u8>]) -> Vec<(u32, String)> {
    let reqs: Vec<tpslab_api::proto::BroadcastTxRequest> = txs
        .iter()
        .enumerate()
        .map(|(i, tx)| tpslab_api::proto::BroadcastTxRequest {
            tx: tx.clone(),
            id: i as u64,
        })
        .collect();
    let mut resp = c
        .broadcast_tx_stream(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    let mut out = vec![(u32::MAX, String::new()); txs.len()];
    while let Some(r) = tokio_stream::StreamExt::next(&mut resp).await {
        let r = r.unwrap();
        out[r.id as usize] = (r.code, r.log);
    }
    out
}

/// `tpslab testnet init` of `validators` into `dir` (not started); its testnet.json.
pub fn testnet_init(dir: &Path, validators: usize) -> tpslab_testnet::TestnetFile {
    let out = Command::new(bin())
        .args([
            "testnet",
            "init",
            "--validators",
            &validators.to_string(),
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json")).unwrap()).unwrap()
}

/// `tpslab testnet up DIR` then `testnet down DIR` (whatever up did); up's output.
pub fn testnet_up_then_down(dir: &Path) -> std::process::Output {
    let up = Command::new(bin())
        .args(["testnet", "up"])
        .arg(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let _ = Command::new(bin())
        .args(["testnet", "down"])
        .arg(dir)
        .output();
    up
}

/// Waits for the machine-wide turn to run a multi-node testnet.
pub fn testnet_turn() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("tpslab-test-testnet.lock"))
        .unwrap();
    f.lock().unwrap();
    f
}

impl TestNet {
    /// `testnet init` with `validators` and `accounts` (test seed and chain id), `patch` merged
    /// into every node's config.toml, then `testnet up`.
    pub fn up(dir: PathBuf, validators: usize, accounts: u64, patch: &str) -> TestNet {
        TestNet::up_with(dir, validators, accounts, patch, &[])
    }

    /// [`TestNet::up`] with more `testnet init` arguments.
    pub fn up_with(
        dir: PathBuf,
        validators: usize,
        accounts: u64,
        patch: &str,
        init_args: &[&str],
    ) -> TestNet {
        TestNet::up_each(dir, validators, accounts, |_| patch.to_string(), init_args)
    }

    /// [`TestNet::up_with`] with node i's config.toml patched by `patch(i)`.
    pub fn up_each(
        dir: PathBuf,
        validators: usize,
        accounts: u64,
        patch: impl Fn(usize) -> String,
        init_args: &[&str],
    ) -> TestNet {
        let turn = testnet_turn();
        let out = Command::new(bin())
            .args(["testnet", "init", "--validators", &validators.to_string()])
            .args(init_args)
            .args(["--accounts", &accounts.to_string(), "--seed", SEED])
            .args(["--chain-id", CHAIN, "--block-interval-ms", "50", "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file: tpslab_testnet::TestnetFile =
            serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json")).unwrap())
                .unwrap();
        for (i, n) in file.nodes.iter().enumerate() {
            let patch = patch(i);
            if !patch.is_empty() {
                let cfg = n.home.join("config.toml");
                let text = std::fs::read_to_string(&cfg).unwrap();
                std::fs::write(&cfg, patch_toml(&text, &patch)).unwrap();
            }
        }
        let net = TestNet {
            dir,
            file,
            _turn: turn,
        };
        let up = net.run(&["testnet", "up"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        net
    }

    /// `tpslab <args> <dir>`.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .arg(&self.dir)
            .output()
            .unwrap()
    }
}

impl TestNet {
    /// `tpslab testnet check [extra] DIR`, which must pass; its stdout.
    pub fn check(&self, extra: &[&str]) -> String {
        let mut args = vec!["testnet", "check"];
        args.extend_from_slice(extra);
        succeeded(&self.run(&args), "testnet check")
    }
}

/// The stdout of a command that must have succeeded (else both streams, under `what`).
pub fn succeeded(out: &std::process::Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.run(&["testnet", "down"]);
    }
}

/// `tpslab load ARGS --json JSON`, which must succeed; its stdout and its JSON report.
pub fn run_load(args: &[&str], json: &Path) -> (String, serde_json::Value) {
    let out = Command::new(bin())
        .arg("load")
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    let stdout = succeeded(&out, "load");
    let report = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (stdout, report)
}

/// The status of the node at `addr`, if it answers.
pub async fn status_of(addr: &str) -> Option<StatusResponse> {
    let mut c = tpslab_api::client::connect(addr).await.ok()?;
    Some(c.status(StatusRequest {}).await.ok()?.into_inner())
}

/// The committed height of the node at `addr`, 0 if it does not answer.
pub async fn height_of(addr: &str) -> u64 {
    status_of(addr).await.map_or(0, |s| s.height)
}

/// Every committed block of the chain at `addr`, from height 1.
pub async fn blocks(addr: &str) -> Vec<BlockRecord> {
    let mut c = tpslab_api::client::connect(addr).await.unwrap();
    let h = c
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .height;
    let mut out = Vec::with_capacity(h as usize);
    for height in 1..=h {
        out.push(
            c.get_block(GetBlockRequest { height })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    out
}

/// Sum of txs in every block of the chain at `addr`.
pub async fn txs_on_chain(addr: &str) -> u64 {
    let b = blocks(addr).await;
    b.iter()
        .map(|b| b.block.as_ref().map_or(0, |b| b.txs.len() as u64))
        .sum()
}

/// The name of the Raft node every reachable node calls leader, once they agree.
pub async fn leader(net: &TestNet) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut leaders = Vec::new();
        for n in &net.file.nodes {
            if let Some(s) = status_of(&n.grpc_addr).await {
                let r = s.raft.expect("a raft node reports its raft state");
                assert_eq!(s.consensus, "raft");
                leaders.push((n.name.clone(), r.role, r.leader));
            }
        }
        let ids: std::collections::HashSet<u64> = leaders.iter().map(|l| l.2).collect();
        if ids.len() == 1 && !ids.contains(&0) {
            let id = *ids.iter().next().unwrap();
            let name = net.file.nodes[id as usize - 1].name.clone();
            // The node they all follow says it leads.
            assert!(
                leaders.iter().any(|l| l.0 == name && l.1 == "leader"),
                "{leaders:?}"
            );
            return name;
        }
        assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The node called `name`.
pub fn node_named(net: &TestNet, name: &str) -> tpslab_testnet::TestnetNode {
    let n = net.file.nodes.iter().find(|n| n.name == name);
    n.unwrap().clone()
}

/// A node other than `lead`.
pub fn a_follower(net: &TestNet, lead: &str) -> tpslab_testnet::TestnetNode {
    net.file
        .nodes
        .iter()
        .find(|n| n.name != lead)
        .unwrap()
        .clone()
}

/// Raft tests: stops `n`, deletes its data dir (Raft log, chain, state) and starts it again; returns the
/// length its log had, so callers read only what the new life logged.
pub fn wipe_and_restart(n: &tpslab_testnet::TestnetNode) -> usize {
    tpslab_testnet::stop_node(n).unwrap();
    std::fs::remove_dir_all(n.home.join("data")).unwrap();
    let from = log_len(&n.home);
    tpslab_testnet::start_node(n, Path::new(bin())).unwrap();
    from
}

/// Bytes in a node's log now (a restart appends to it).
pub fn log_len(home: &Path) -> usize {
    std::fs::read(home.join("node.log")).map_or(0, |b| b.len())
}

/// What a node logged after `from` bytes.
pub fn log_since(home: &Path, from: usize) -> String {
    let b = std::fs::read(home.join("node.log")).unwrap_or_default();
    String::from_utf8_lossy(b.get(from..).unwrap_or_default()).into_owned()
}

/// Waits up to `secs` until the chain at `addr` holds `want` txs.
pub async fn wait_for_txs(addr: &str, want: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = txs_on_chain(addr).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} holds {got} txs, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn load_args<'a>(dir: &'a Path, duration: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--testnet",
        dir.to_str().unwrap(),
        "--rate",
        "50",
        "--duration",
        duration,
        "--warmup",
        "1s",
        "--drain",
        "60s",
    ];
    a.extend_from_slice(extra);
    a
}

/// The value of the first metric line of `page` starting with `prefix` (0 if none).
pub fn metric(page: &str, prefix: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The /metrics page of the node whose metrics address is `addr`.
pub fn metrics(addr: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(tpslab_bench::monitor::http_get(addr, "/metrics"))
        .unwrap()
}
