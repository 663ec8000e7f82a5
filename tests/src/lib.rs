//! Real-cluster test harness: `gsmo node` processes on real sockets, driven by
//! the `redis` crate and judged by `gsmo_spec::properties`, the same predicates
//! the model checker evaluates.
//!
//! [`TestCluster::start`] picks free ports, starts one process per node, and
//! waits for each node's `ready` line (all peer channels up) with a deadline;
//! no sleeps stand in for synchronisation. Processes are killed on drop.
//!
//! The `gsmo` binary under test is the one these tests were compiled with:
//! once per test process, [`gsmo_bin`] runs `cargo test --workspace --no-run`
//! (which builds `gsmo`) in the test's own profile and target directory (a
//! no-op when it is fresh), so `cargo test -p gsmo-tests` alone never tests a stale binary.
//! `$GSMO_BIN` overrides it.
//!
//! Every external command has a deadline ([`run_bounded`]): one that hangs is
//! killed and the test fails saying which command and what it printed. Every
//! cluster has one too ([`watchdog`]): a test that hangs has its nodes killed.
//! Randomised tests take their seed from [`seed`] (`GSMO_SEED`, printed).

pub mod bank;
pub mod watchdog;
pub use bank::{expect_restored, money, open_accounts, snapshot_at, transferrer};
use watchdog::Watchdog;

use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{self, Event, Violation};
use gsmo_spec::NodeId;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a cluster may take to start (processes, listeners, every channel).
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a cluster may take to deliver everything once clients stop.
pub const QUIET_DEADLINE: Duration = Duration::from_secs(30);

/// How long any one external command (`redis-cli`, `redis-benchmark`, a
/// one-shot `gsmo`) may run before it is killed and the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(180);
/// How long a node may take to answer one request on a [`TestCluster::connect`]
/// connection (a reply past it is an error, so a stuck node fails the test).
pub const REPLY_DEADLINE: Duration = Duration::from_secs(60);
/// How long building the `gsmo` binary under test may take.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1200);

/// The `gsmo` binary under test: `$GSMO_BIN`, or the one built (once per test
/// process) from this very source tree, in this test's profile and target dir.
pub fn gsmo_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("GSMO_BIN") {
        Some(p) => PathBuf::from(p),
        None => build_gsmo(),
    })
    .clone()
}

fn build_gsmo() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile> -> target
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable has no grandparent directory");
    let target_dir = profile_dir
        .parent()
        .expect("profile directory has no parent");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(p) => p,
        None => panic!("no profile in {}", profile_dir.display()),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The same build `cargo test --workspace` makes (dev-dependency features
    // unified), so under the README's command this is a no-op instead of a
    // second build of every dependency with other features.
    cmd.args(["test", "--quiet", "--workspace", "--no-run"])
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    let out = run_bounded(&mut cmd, BUILD_DEADLINE);
    assert!(
        out.status.success(),
        "building the gsmo binary under test failed ({:?}):\n{}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join("gsmo");
    assert!(bin.is_file(), "{cmd:?} left no binary at {}", bin.display());
    bin
}

/// Runs `cmd` to completion within `deadline` (stdin closed, stdout and stderr
/// captured). A command still running at the deadline is killed and the test
/// fails naming it, with everything it printed: no test hangs for ever.
pub fn run_bounded(cmd: &mut Command, deadline: Duration) -> Output {
    run_bounded_with_input(cmd, &[], deadline)
}

/// [`run_bounded`], writing `input` to the command's stdin first.
pub fn run_bounded_with_input(cmd: &mut Command, input: &[u8], deadline: Duration) -> Output {
    use std::io::{Read, Write};
    let stdin = if input.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(mut w) = child.stdin.take() {
        // A command that never reads must not block us: write from a thread.
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = read(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read(Box::new(child.stderr.take().expect("piped stderr")));
    let until = Instant::now() + deadline;
    // Polling for exit with a deadline: std has no wait-with-timeout.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= until => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let (o, e) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        panic!(
            "{cmd:?} did not finish within {deadline:?} and was killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&e)
        )
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs `program args` within [`COMMAND_DEADLINE`] for a set-up step that may
/// legitimately fail (`ip`, `mount`, `prlimit` where the kernel or the user
/// forbids it): Err says what ran and what it printed, so a test can skip.
pub fn try_run(program: &str, args: &[&str]) -> Result<(), String> {
    if !have_program(program) {
        return Err(format!("{program}: not found on PATH"));
    }
    let out = run_bounded(Command::new(program).args(args), COMMAND_DEADLINE);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A name no other test process shares (cluster ids, interfaces, dirs).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The seed for a randomised test ([`gsmo_spec::testing::seed`]), chosen
/// and printed once per process, so every failure reproduces.
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| gsmo_spec::testing::seed("gsmo-tests"))
}

/// Whether `name` is an executable file on PATH.
fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Whether a tool such as `redis-cli` is on PATH (and answers `--version`).
pub fn have_tool(name: &str) -> bool {
    have_program(name)
        && run_bounded(Command::new(name).arg("--version"), COMMAND_DEADLINE)
            .status
            .success()
}

/// Whether this process runs as root (network namespaces, mounts, prlimit on others).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// `k` ports that are free now, below the kernel's ephemeral range (so no
/// outgoing connection is handed one by chance) and randomly placed (so test
/// runs in parallel processes rarely try the same ones).
pub fn free_ports(k: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    for p in random_ports() {
        if ports.len() == k {
            break;
        }
        if !ports.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            ports.push(p);
        }
    }
    ports
}

/// The first of `len` consecutive ports that are free now (for the launcher,
/// which numbers its nodes' ports from a base), placed as [`free_ports`] places
/// them.
pub fn free_port_run(len: u16) -> u16 {
    random_ports()
        .find(|&base| (base..base + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .expect("the candidates never run out")
}

/// Candidate ports in 20000-31999, below the kernel's ephemeral range, in an
/// order of this process's own (xorshift64).
fn random_ports() -> impl Iterator<Item = u16> {
    let mut x = random_u64() | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        20_000 + (x % 12_000) as u16
    })
}

/// Process `pid`'s scheduler state from `/proc/PID/stat` (`'T'` stopped,
/// `'Z'` a zombie), or `None` if there is no such process.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE ...`: COMM may hold spaces, so split after its `)`.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

/// Whether process `pid` still runs (a zombie waiting for its reaper has stopped).
pub fn is_running(pid: u32) -> bool {
    proc_state(pid).is_some_and(|s| !matches!(s, 'Z' | 'X'))
}

/// INFO's `key:value` lines as a map (section headers and blank lines dropped).
pub fn parse_info(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The seed of randomised test `test` ([`gsmo_spec::testing::seed`]).
pub fn test_seed(test: &str) -> u64 {
    gsmo_spec::testing::seed(test)
}

/// Randomness that is not a test's input (ports, ids): need not reproduce.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// `gsmo cluster` itself, the launcher, on ports of its own, its stdout and
/// stderr read line by line. Killed when dropped (its nodes follow it).
pub struct Launcher {
    pub child: Child,
    pub client_base: u16,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Launcher {
    /// `gsmo cluster --nodes n ARGS`, with free peer and client port runs.
    pub fn spawn(n: usize, args: &[&str]) -> Self {
        let ports = u16::try_from(n).unwrap();
        let peer_base = free_port_run(2 * ports);
        let client_base = peer_base + ports;
        let mut child = Command::new(gsmo_bin())
            .args(["cluster", "--nodes", &n.to_string()])
            .args(["--peer-base", &peer_base.to_string()])
            .args(["--client-base", &client_base.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |from: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(from).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        Launcher {
            stdout: lines(Box::new(child.stdout.take().unwrap())),
            stderr: lines(Box::new(child.stderr.take().unwrap())),
            child,
            client_base,
        }
    }

    /// The launcher's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the launcher's exit; panics after `patience`.
    pub fn wait(&mut self, patience: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the launcher did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines from `rx` up to and including the first containing `needle`;
/// panics with what came after `patience`.
pub fn read_until(rx: &mpsc::Receiver<String>, needle: &str, patience: Duration) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut lines = Vec::new();
    while !lines.last().is_some_and(|l: &String| l.contains(needle)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("no `{needle}` in {patience:?}:\n{}", lines.join("\n")),
        }
    }
    lines
}

/// Every line from `rx` until its writer closes it (or `patience` passes).
pub fn read_to_end(rx: &mpsc::Receiver<String>, patience: Duration) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    lines
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

/// Runs the `gsmo` binary to completion (for `snapshot` and `trace` commands);
/// returns success and stdout+stderr.
pub fn gsmo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = run_bounded(Command::new(gsmo_bin()).args(args), COMMAND_DEADLINE);
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
        let client = redis::Client::open(self.url(i)).expect("redis url");
        // Bounded: a node that stops answering fails the test, it does not hang it.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REPLY_DEADLINE))
            .set_response_timeout(Some(REPLY_DEADLINE));
        client
            .get_multiplexed_async_connection_with_config(&config)
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
        parse_info(&text)
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

    #[test]
    fn a_hung_command_is_killed_and_named() {
        let started = Instant::now();
        let err = std::panic::catch_unwind(|| {
            run_bounded(
                Command::new("sh").args(["-c", "echo partial; exec sleep 60"]),
                Duration::from_millis(300),
            )
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("did not finish within") && msg.contains("sleep"),
            "{msg}"
        );
        assert!(msg.contains("partial"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(50));
        let out =
            run_bounded_with_input(&mut Command::new("cat"), b"echo", Duration::from_secs(60));
        assert_eq!(out.stdout, b"echo");
    }

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
