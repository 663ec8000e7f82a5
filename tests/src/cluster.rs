//! A cluster of `gsmo node` processes started by the test itself, one per
//! node, each on ports of its own: started, talked to, stopped and judged.

use crate::process::proc_state;
use crate::watchdog::{self, Watchdog};
use crate::{free_ports, gsmo_bin, random_u64};
use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{self, Event, Violation};
use gsmo_spec::NodeId;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cluster may take to start (processes, listeners, every channel).
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a cluster may take to deliver everything once clients stop.
pub const QUIET_DEADLINE: Duration = Duration::from_secs(30);
/// How long a node may take to answer one request on a [`TestCluster::connect`]
/// connection (a reply past it is an error, so a stuck node fails the test).
pub const REPLY_DEADLINE: Duration = Duration::from_secs(60);

/// INFO's `key:value` lines as a map (section headers and blank lines dropped).
pub fn parse_info(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// One running `gsmo node` process.
pub struct NodeProc {
    child: Child,
    pub id: NodeId,
    pub client_port: u16,
    pub peer_addr: String,
    /// Everything the node wrote on stdout and stderr, for failure messages.
    output: Arc<Mutex<String>>,
    ready: bool,
}

impl NodeProc {
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The node's output once it contains every one of `needles`: a reader
    /// thread copies the node's stdout, so a line the node wrote may reach
    /// [`NodeProc::output`] a little after what it did became visible.
    /// Panics with the output after `patience`.
    pub fn output_containing(&self, needles: &[&str], patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let out = self.output();
            if needles.iter().all(|n| out.contains(n)) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never printed {needles:?} within {patience:?}:\n{out}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
    /// Every member's peer address, in id order (held nodes included).
    pub peers: Vec<String>,
    launch: Launch,
    lines: (mpsc::Sender<Line>, mpsc::Receiver<Line>),
    watchdog: Watchdog,
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
    /// Environment for every node (e.g. the cluster secret).
    pub env: Vec<(String, String)>,
    /// This many of the highest ids are not started until [`TestCluster::start_held`].
    pub held: usize,
    /// Every node runs under this `RLIMIT_NOFILE` (soft and hard).
    pub open_files: Option<u64>,
    /// Where each node runs (by id); empty: every node on 127.0.0.1.
    pub hosts: Vec<Host>,
    /// Whether the nodes serve the GSMO.* debug commands (default: yes).
    pub debug_commands: bool,
    /// How long the cluster may live before its nodes are killed; default
    /// [`watchdog::limit`].
    pub watchdog: Option<Duration>,
}

/// A node's own host: the address it listens on (peers and clients) and the
/// command prefix that starts a process there, e.g. `ip netns exec NS`.
#[derive(Clone, Debug)]
pub struct Host {
    pub ip: String,
    pub wrap: Vec<String>,
}

impl Launch {
    pub fn new(n: usize, mode: Mode) -> Self {
        Launch {
            n,
            mode,
            cluster_id: None,
            args: Vec::new(),
            node_args: Default::default(),
            env: Vec::new(),
            held: 0,
            open_files: None,
            hosts: Vec::new(),
            debug_commands: true,
            watchdog: None,
        }
    }

    /// Kills the nodes once the cluster has lived `limit` ([`watchdog`]).
    pub fn watchdog(mut self, limit: Duration) -> Self {
        self.watchdog = Some(limit);
        self
    }

    /// Starts the nodes as a user would, without `--debug-commands`.
    pub fn without_debug_commands(mut self) -> Self {
        self.debug_commands = false;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Leaves the last `k` nodes unstarted: [`start`](Self::start) returns once
    /// the others listen, and [`TestCluster::start_held`] starts them.
    pub fn hold(mut self, k: usize) -> Self {
        assert!(k < self.n, "hold fewer nodes than the cluster has");
        self.held = k;
        self
    }

    /// Runs node `i` on `hosts[i]` (its own address; with `--bind` to it).
    pub fn hosts(mut self, hosts: Vec<Host>) -> Self {
        assert_eq!(hosts.len(), self.n, "one host per node");
        self.hosts = hosts;
        self
    }

    pub fn open_files(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self
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

    fn host_ip(&self, i: NodeId) -> &str {
        self.hosts.get(i).map_or("127.0.0.1", |h| h.ip.as_str())
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
        let peers: Vec<String> = free_ports(l.n)
            .into_iter()
            .enumerate()
            .map(|(i, p)| format!("{}:{p}", l.host_ip(i)))
            .collect();
        // Its own cluster id, so a port mix-up with a concurrent test is refused at the handshake.
        let cluster_id = l
            .cluster_id
            .clone()
            .unwrap_or_else(|| format!("test-{:016x}", random_u64()));
        let mut cluster = TestCluster {
            mode: l.mode,
            cluster_id,
            nodes: Vec::new(),
            peers,
            launch: l.clone(),
            lines: mpsc::channel(),
            watchdog: Watchdog::start(l.watchdog.unwrap_or_else(watchdog::limit)),
        };
        for id in 0..l.n - l.held {
            cluster.spawn(bin, id);
        }
        if l.held == 0 {
            cluster.wait_until(true)?;
        } else {
            cluster.wait_until(false)?;
        }
        Ok(cluster)
    }

    /// Starts the nodes [`Launch::hold`] left out and waits until every channel is up.
    pub fn start_held(&mut self) {
        let bin = gsmo_bin();
        for id in self.nodes.len()..self.launch.n {
            self.spawn(&bin, id);
        }
        if let Err(e) = self.wait_until(true) {
            panic!("held nodes did not join:\n{e}");
        }
    }

    fn spawn(&mut self, bin: &PathBuf, id: NodeId) {
        let l = &self.launch;
        let mut cmd = match l.hosts.get(id) {
            Some(h) => {
                let mut c = Command::new(&h.wrap[0]);
                c.args(&h.wrap[1..]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args([
            "node",
            "--id",
            &id.to_string(),
            "--cluster",
            &self.peers.join(","),
        ])
        .args(["--mode", l.mode.name(), "--client-port", "0"])
        .args(["--cluster-id", &self.cluster_id])
        .args(
            l.hosts
                .get(id)
                .map(|h| ["--bind", h.ip.as_str()])
                .into_iter()
                .flatten(),
        )
        // The harness reads histories and stores with the GSMO.* debug commands.
        .args(l.debug_commands.then_some("--debug-commands"))
        .args(l.args.iter().map(|a| a.replace("{id}", &id.to_string())))
        .args(l.node_args.get(&id).into_iter().flatten())
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(limit) = l.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: runs in the forked child before exec and calls only setrlimit(2),
            // which is async-signal-safe; nothing is allocated or locked.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        limit,
                        limit,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.watchdog.watch(child.id());
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // `Closed` is reported once both streams end, so the output is whole by then.
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        let tx = &self.lines.0;
        spawn_reader(id, stdout, output.clone(), tx.clone(), open.clone(), true);
        spawn_reader(id, stderr, output.clone(), tx.clone(), open, false);
        self.nodes.push(NodeProc {
            child,
            id,
            client_port: 0,
            peer_addr: self.peers[id].clone(),
            output,
            ready: false,
        });
    }

    /// Waits until every started node listens, and with `ready` until every channel is up.
    fn wait_until(&mut self, ready: bool) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        let started = self.nodes.len();
        loop {
            let listening = self.nodes.iter().all(|n| n.client_port != 0);
            let all_ready = self.nodes.iter().all(|n| n.ready);
            if listening && (!ready || (all_ready && started == self.launch.n)) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.1.recv_timeout(left) {
                Ok(Line::Listening(i, port)) => self.nodes[i].client_port = port,
                Ok(Line::Ready(i)) => self.nodes[i].ready = true,
                Ok(Line::Closed(i)) => {
                    self.watchdog.forget(self.nodes[i].child.id());
                    let status = self.nodes[i].child.wait();
                    return Err(format!(
                        "node {i} exited early ({status:?}):\n{}",
                        self.all_output()
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "not ready within {START_DEADLINE:?}:\n{}",
                        self.all_output()
                    ))
                }
            }
        }
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
        format!(
            "redis://{}:{}/",
            self.launch.host_ip(i),
            self.client_port(i)
        )
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

    /// Node `i`'s scheduler state from `/proc/PID/stat`: `'T'` once a
    /// SIGSTOP has taken effect, `'Z'` if it died unreaped.
    pub fn process_state(&self, i: NodeId) -> char {
        proc_state(self.pid(i)).unwrap_or_else(|| panic!("no /proc stat state for node {i}"))
    }

    /// Node `i`'s resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self, i: NodeId) -> u64 {
        gsmo_node::pages::status_bytes(&self.pid(i).to_string(), "VmRSS")
            .unwrap_or_else(|| panic!("no VmRSS in /proc/PID/status of node {i}"))
            / 1024
    }

    /// Kills node `i` (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self, i: NodeId) {
        self.watchdog.forget(self.nodes[i].child.id());
        let _ = self.nodes[i].child.kill();
        let _ = self.nodes[i].child.wait();
    }

    /// A fresh connection to node `i`.
    pub async fn connect(&self, i: NodeId) -> redis::aio::MultiplexedConnection {
        // Bounded: a node that stops answering fails the test, it does not hang it.
        self.connect_patient(i, REPLY_DEADLINE).await
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
        parse_info(&text)
    }

    /// Node `i`'s INFO once `holds` says so of it, polled; panics with the
    /// last INFO after `patience`.
    pub async fn info_until(
        &self,
        i: NodeId,
        patience: Duration,
        holds: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
    ) -> std::collections::BTreeMap<String, String> {
        let deadline = Instant::now() + patience;
        loop {
            let info = self.info(i).await;
            if holds(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "node {i}'s INFO not as awaited within {patience:?}: {info:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
            self.watchdog.forget(n.child.id());
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
#[cfg(test)]
mod tests {
    use super::*;
    use gsmo_spec::multicast::Mode;

    /// A test that outlives its watchdog has its nodes killed: what it waits
    /// on fails, so it fails by name instead of hanging the suite.
    #[tokio::test]
    async fn a_cluster_past_its_watchdog_has_its_nodes_killed() {
        let mut cluster = Launch::new(2, Mode::Fifo)
            .watchdog(Duration::from_secs(2))
            .start();
        let mut con = cluster.connect(0).await;
        let () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query_async(&mut con)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster
            .nodes
            .iter_mut()
            .any(|n| n.child.try_wait().unwrap().is_none())
        {
            assert!(
                Instant::now() < deadline,
                "the watchdog did not kill the nodes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg("k").query_async(&mut con).await;
        assert!(after.is_err(), "a killed node answered: {after:?}");
    }
}
