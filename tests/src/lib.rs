//! Real-cluster test harness: `gsmo node` processes on real sockets, driven by
//! the `redis` crate and judged by `gsmo_spec::properties`, the same predicates
//! the model checker evaluates.
//!
//! [`TestCluster::start`] picks free ports, starts one process per node, and
//! waits for each node's `ready` line (all peer channels up) with a deadline;
//! no sleeps stand in for synchronisation. Processes are killed on drop.
//!
//! The `gsmo` binary is taken from `$GSMO_BIN`, or from next to the test
//! executable (`target/<profile>/gsmo`), which `cargo test --workspace` builds
//! because `gsmo-node` has an integration test of its own.

use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{self, Event, Violation};
use gsmo_spec::NodeId;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cluster may take to start (processes, listeners, every channel).
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a cluster may take to deliver everything once clients stop.
pub const QUIET_DEADLINE: Duration = Duration::from_secs(30);

/// The `gsmo` binary under test.
pub fn gsmo_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GSMO_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/gsmo
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("gsmo"))
        .expect("test executable has no grandparent directory");
    assert!(
        bin.is_file(),
        "the gsmo binary is not at {}: build it first (`cargo build -p gsmo-node` with the \
         same profile, e.g. --release), run the whole workspace (`cargo test --workspace` \
         builds it), or point GSMO_BIN at it",
        bin.display()
    );
    bin
}

/// Whether a tool such as `redis-cli` is on PATH.
pub fn have_tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `k` ports that are free now, below the kernel's ephemeral range (so no
/// outgoing connection is handed one by chance) and randomly placed (so test
/// runs in parallel processes rarely try the same ones).
fn free_ports(k: usize) -> Vec<u16> {
    let mut x = random_u64() | 1;
    let mut ports = Vec::new();
    while ports.len() < k {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = 20_000 + (x % 12_000) as u16;
        if !ports.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            ports.push(p);
        }
    }
    ports
}

/// The seed of a randomised test: `$GSMO_SEED`, or random; printed with how to rerun.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("GSMO_SEED") {
        Ok(s) => s.trim().parse().expect("GSMO_SEED must be a number"),
        Err(_) => random_u64(),
    };
    eprintln!("{test}: GSMO_SEED={seed} (rerun with GSMO_SEED={seed})");
    seed
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// One running `gsmo node` process.
pub struct NodeProc {
    child: Child,
    pub id: NodeId,
    pub client_port: u16,
    pub peer_addr: String,
    /// Everything the node wrote on stdout and stderr, for failure messages.
    output: Arc<Mutex<String>>,
}

impl NodeProc {
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

enum Line {
    Listening(NodeId, u16),
    Ready(NodeId),
    Closed(NodeId),
}

/// A cluster of real node processes on 127.0.0.1.
pub struct TestCluster {
    pub mode: Mode,
    /// The `--cluster-id` every node was given (unique per cluster).
    pub cluster_id: String,
    pub nodes: Vec<NodeProc>,
}

/// How to start a test cluster: size, mode, and node arguments.
#[derive(Clone, Debug)]
pub struct Launch {
    pub n: usize,
    pub mode: Mode,
    /// Default: a fresh random id (restoring a snapshot needs the id it was taken with).
    pub cluster_id: Option<String>,
    /// Arguments for every node; `{id}` is replaced by the node's id.
    pub args: Vec<String>,
    /// Extra arguments for single nodes.
    pub node_args: std::collections::BTreeMap<NodeId, Vec<String>>,
}

impl Launch {
    pub fn new(n: usize, mode: Mode) -> Self {
        Launch {
            n,
            mode,
            cluster_id: None,
            args: Vec::new(),
            node_args: Default::default(),
        }
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn node_args<S: AsRef<str>>(mut self, id: NodeId, args: &[S]) -> Self {
        self.node_args
            .entry(id)
            .or_default()
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn cluster_id(mut self, id: &str) -> Self {
        self.cluster_id = Some(id.to_string());
        self
    }

    /// Starts the nodes and waits until every peer channel is up.
    pub fn start(&self) -> TestCluster {
        let bin = gsmo_bin();
        // A port taken between our check and the node's bind makes that node exit; try afresh.
        let mut last_error = String::new();
        for _ in 0..3 {
            match TestCluster::try_start(&bin, self) {
                Ok(c) => return c,
                Err(e) => last_error = e,
            }
        }
        panic!(
            "cluster of {} ({}) did not start:\n{last_error}",
            self.n, self.mode
        );
    }
}

/// Runs the `gsmo` binary to completion (for `snapshot` and `trace` commands);
/// returns success and stdout+stderr.
pub fn gsmo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = Command::new(gsmo_bin())
        .args(args)
        .output()
        .expect("run gsmo");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

impl TestCluster {
    /// Starts `n` nodes in `mode` and waits until every peer channel is up.
    pub fn start(n: usize, mode: Mode) -> TestCluster {
        Self::start_with(n, mode, &[])
    }

    /// Like [`start`](Self::start), passing `extra` arguments to every node.
    pub fn start_with(n: usize, mode: Mode, extra: &[&str]) -> TestCluster {
        Launch::new(n, mode).args(extra).start()
    }

    fn try_start(bin: &PathBuf, l: &Launch) -> Result<TestCluster, String> {
        let (n, mode) = (l.n, l.mode);
        let peers: Vec<String> = free_ports(n)
            .into_iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let list = peers.join(",");
        // Its own cluster id, so a port mix-up with a concurrent test is refused at the handshake.
        let cluster_id = l
            .cluster_id
            .clone()
            .unwrap_or_else(|| format!("test-{:016x}", random_u64()));
        let (tx, rx) = mpsc::channel();
        let mut nodes = Vec::new();
        for (id, peer_addr) in peers.iter().enumerate() {
            let mut child = Command::new(bin)
                .args(["node", "--id", &id.to_string(), "--cluster", &list])
                .args(["--mode", mode.name(), "--client-port", "0"])
                .args(["--cluster-id", &cluster_id])
                .args(l.args.iter().map(|a| a.replace("{id}", &id.to_string())))
                .args(l.node_args.get(&id).into_iter().flatten())
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let output = Arc::new(Mutex::new(String::new()));
            let stdout = child.stdout.take().expect("piped stdout");
            let stderr = child.stderr.take().expect("piped stderr");
            // `Closed` is reported once both streams end, so the output is whole by then.
            let open = Arc::new(std::sync::atomic::AtomicUsize::new(2));
            spawn_reader(id, stdout, output.clone(), tx.clone(), open.clone(), true);
            spawn_reader(id, stderr, output.clone(), tx.clone(), open, false);
            nodes.push(NodeProc {
                child,
                id,
                client_port: 0,
                peer_addr: peer_addr.clone(),
                output,
            });
        }
        drop(tx);
        let mut cluster = TestCluster {
            mode,
            cluster_id,
            nodes,
        };
        let deadline = Instant::now() + START_DEADLINE;
        let mut ready = vec![false; n];
        while !ready.iter().all(|r| *r) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Line::Listening(i, port)) => cluster.nodes[i].client_port = port,
                Ok(Line::Ready(i)) => ready[i] = true,
                Ok(Line::Closed(i)) => {
                    let status = cluster.nodes[i].child.wait();
                    return Err(format!(
                        "node {i} exited early ({status:?}):\n{}",
                        cluster.all_output()
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "not ready within {START_DEADLINE:?} (ready: {ready:?}):\n{}",
                        cluster.all_output()
                    ))
                }
            }
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn client_port(&self, i: NodeId) -> u16 {
        self.nodes[i].client_port
    }

    pub fn url(&self, i: NodeId) -> String {
        format!("redis://127.0.0.1:{}/", self.client_port(i))
    }

    /// Every node's output, for a failure message.
    pub fn all_output(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("---- node {} ----\n{}", n.id, n.output()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: NodeId) -> u32 {
        self.nodes[i].child.id()
    }

    /// Sends node `i` a signal by name (`STOP`, `CONT`, ...).
    pub fn signal(&self, i: NodeId, signal: &str) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.pid(i).to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} node {i} failed");
    }

    /// Node `i`'s resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self, i: NodeId) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(i)))
            .unwrap_or_else(|e| panic!("/proc status of node {i}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS for node {i}"))
    }

    /// Kills node `i` (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self, i: NodeId) {
        let _ = self.nodes[i].child.kill();
        let _ = self.nodes[i].child.wait();
    }

    /// A fresh connection to node `i`.
    pub async fn connect(&self, i: NodeId) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url(i)).expect("redis url");
        client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to node {i}: {e}"))
    }

    /// A connection to node `i` that waits up to `patience` for each reply
    /// (the `redis` crate gives up after 500 ms by default; a write may
    /// legitimately take up to the node's `--write-timeout`).
    pub async fn connect_patient(
        &self,
        i: NodeId,
        patience: Duration,
    ) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url(i)).expect("redis url");
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(patience))
            .set_response_timeout(Some(patience));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|e| panic!("connect to node {i}: {e}"))
    }

    /// Node `i`'s multicast history, parsed into the spec's events.
    pub async fn history(&self, i: NodeId) -> Vec<Event> {
        let mut con = self.connect(i).await;
        let lines: Vec<String> = redis::cmd("GSMO.HISTORY")
            .query_async(&mut con)
            .await
            .unwrap_or_else(|e| panic!("GSMO.HISTORY at node {i}: {e}"));
        lines
            .iter()
            .map(|l| gsmo_node::history::parse_event(l).unwrap_or_else(|e| panic!("node {i}: {e}")))
            .collect()
    }

    pub async fn histories(&self) -> Vec<Vec<Event>> {
        let mut all = Vec::new();
        for i in 0..self.len() {
            all.push(self.history(i).await);
        }
        all
    }

    /// Node `i`'s whole store, in key order.
    pub async fn dump(&self, i: NodeId) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut con = self.connect(i).await;
        let flat: Vec<Vec<u8>> = redis::cmd("GSMO.DUMP")
            .query_async(&mut con)
            .await
            .unwrap_or_else(|e| panic!("GSMO.DUMP at node {i}: {e}"));
        flat.chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    }

    /// Node `i`'s INFO as `field -> value`.
    pub async fn info(&self, i: NodeId) -> std::collections::BTreeMap<String, String> {
        let mut con = self.connect(i).await;
        let text: String = redis::cmd("INFO")
            .query_async(&mut con)
            .await
            .unwrap_or_else(|e| panic!("INFO at node {i}: {e}"));
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    /// Polls every history until every message sent has been delivered
    /// everywhere (the spec's `all_delivered`), then returns the histories.
    /// Bounded polling is the honest wait here: "nothing left in flight" is
    /// not an event any node can announce.
    pub async fn quiesce(&self) -> Vec<Vec<Event>> {
        let deadline = Instant::now() + QUIET_DEADLINE;
        loop {
            let logs = self.histories().await;
            match properties::all_delivered(&logs) {
                Ok(()) => return logs,
                Err(v) if Instant::now() > deadline => panic!(
                    "not quiet within {QUIET_DEADLINE:?}: {v}\n{}",
                    self.all_output()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The spec's convergence predicate over every node's delivered set and store.
    pub async fn convergence(&self, logs: &[Vec<Event>]) -> Result<(), Violation> {
        let mut replicas = Vec::new();
        for (i, log) in logs.iter().enumerate() {
            let delivered: BTreeSet<_> = log
                .iter()
                .filter_map(|e| match e {
                    Event::Deliver(m) => Some(*m),
                    Event::Send(_) => None,
                })
                .collect();
            replicas.push((delivered, self.dump(i).await));
        }
        properties::convergence(&replicas)
    }
}

/// Checks the orders `mode` promises on real histories, with the spec's predicates.
pub fn check_ordering(mode: Mode, logs: &[Vec<Event>]) -> Result<(), Violation> {
    properties::promised_orders(mode, logs)?;
    properties::all_delivered(logs)
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

fn spawn_reader(
    id: NodeId,
    stream: impl std::io::Read + Send + 'static,
    output: Arc<Mutex<String>>,
    events: mpsc::Sender<Line>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    watch_lines: bool,
) {
    std::thread::spawn(move || {
        let listening = format!("gsmo node {id} listening: clients ");
        let ready = format!("gsmo node {id} ready");
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if watch_lines {
                let tx = &events;
                if let Some(rest) = line.strip_prefix(&listening) {
                    let port = rest
                        .split([',', ' '])
                        .next()
                        .and_then(|addr| addr.rsplit_once(':'))
                        .and_then(|(_, p)| p.parse().ok());
                    if let Some(port) = port {
                        let _ = tx.send(Line::Listening(id, port));
                    }
                } else if line.starts_with(&ready) {
                    let _ = tx.send(Line::Ready(id));
                }
            }
            let mut out = output.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
        if open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            let _ = events.send(Line::Closed(id));
        }
    });
}
