//! `gsmo`: run a replica (`gsmo node`) or a local cluster of them (`gsmo cluster`).

/// A request allocates and frees a few small buffers on the way through the
/// node: under glibc's malloc that was 7-13 % of a request's CPU (perf), and
/// mimalloc's small-object paths are cheaper.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use gsmo_node::admission::{self, Admission};
use gsmo_node::config::{
    parse_cluster, DelayRange, Faults, LogFormat, NodeConfig, RestoreFrom, RuntimeBug, Toggle,
    DEFAULT_CLIENT_BASE, DEFAULT_CLUSTER_ID, DEFAULT_INPUT_QUEUE, DEFAULT_PEER_BASE,
    DEFAULT_PEER_QUEUE,
};
use gsmo_node::launcher::{self, LaunchConfig};
use gsmo_node::pages::{self, HugePages};
use gsmo_node::secret::{self, Secret, CLUSTER_SECRET_ENV};
use gsmo_node::snapshot::cli as snapshot_cli;
use gsmo_node::{resp, serve, shiviz, tracecheck};
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Limits;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

const EXAMPLES: &str = "\
Examples:
  # three local replicas in one command; Ctrl-C stops them all
  gsmo cluster --nodes 3 --mode total-isis
  redis-cli -p 6380 SET x 1 && redis-cli -p 6381 GET x
  redis-cli -p 6380 TRANSFER alice bob 10
  redis-cli -p 6380 SNAPSHOT
  redis-cli -p 6380 INFO

  # snapshots: take, inspect, verify, restore (nodes share --data-dir)
  gsmo cluster --nodes 3 --data-dir data --snapshot-every 10
  gsmo snapshot take --node 1 --data-dir data
  gsmo snapshot list --data-dir data
  gsmo snapshot show 0-1 --data-dir data
  gsmo snapshot verify 0-1 --data-dir data --bank-prefix acct: --bank-total 3000
  gsmo cluster --nodes 3 --data-dir data --restore latest

  # faults and conformance: random per-channel delay, a slow node, traces
  gsmo cluster --nodes 3 --mode causal --delay 0-20 --slow-node 2 --slow 5 --trace-dir traces
  gsmo trace check traces/n0.trace traces/n1.trace traces/n2.trace
  gsmo trace show traces/*.trace --svg run.svg      # the run as a space-time diagram

  # the same by hand, one terminal per node
  gsmo node --id 0 --cluster 3 --mode causal
  gsmo node --id 1 --cluster 3 --mode causal
  gsmo node --id 2 --cluster 3 --mode causal

  # across hosts: the same file everywhere, line i = node i's peer address, and the
  # same secret file everywhere (peers off loopback must authenticate)
  head -c 32 /dev/urandom | base64 > secret && chmod 600 secret
  gsmo node --id 1 --cluster cluster.txt --peer-listen 0.0.0.0:7100 --bind 0.0.0.0 \
            --cluster-secret-file secret --requirepass-file password
  redis-cli -h HOST -p 6381 -a \"$(cat password)\" GET x

Modes (every node of a cluster must run the same one; the handshake checks):
  fifo             each sender's writes applied in send order; concurrent writes last-writer-wins
  causal           writes applied in happened-before order; concurrent writes last-writer-wins
  total-sequencer  one global order fixed by node 0
  total-isis       one global order by agreed priorities (ISIS / Skeen)

Writes are replied to after the local replica delivers them in the mode's order;
reads are local (see INFO's `consistency`).";

#[derive(Parser)]
#[command(
    name = "gsmo",
    version,
    about = "Global Snapshot, Multicast Ordering: a replicated Redis-speaking K/V store \
             whose replicas run the model-checked gsmo-spec state machines",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one replica: peers over TCP, Redis clients on --client-port.
    #[command(after_long_help = node_help())]
    Node(NodeArgs),
    /// Start N replicas on this machine, forward their logs, stop them on Ctrl-C.
    Cluster(ClusterArgs),
    /// Take, list, show, verify stored Chandy-Lamport snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Check recorded node traces against the spec (conformance).
    #[command(subcommand)]
    Trace(TraceCmd),
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Ask a node to start a snapshot; with --data-dir, wait until it is complete or aborted.
    Take {
        /// The node's Redis client port.
        #[arg(long, default_value_t = DEFAULT_CLIENT_BASE, conflicts_with = "node")]
        port: u16,
        /// The node by id, at the launcher's default client port 6380 + I.
        #[arg(long, value_name = "I")]
        node: Option<u16>,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The cluster's data dir: wait for the manifest there and print the outcome.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// List stored snapshots and their status.
    List {
        /// One or more data dirs (repeat the flag, or separate with commas).
        #[arg(long = "data-dir", required = true, value_delimiter = ',')]
        data_dirs: Vec<PathBuf>,
    },
    /// Per node: keys, bytes, channel messages, duration, delivery vector.
    Show {
        /// Snapshot id (INITIATOR-SEQ, e.g. 0-3), `latest` or `latest-valid`.
        id: RestoreFrom,
        /// One or more data dirs (repeat the flag, or separate with commas).
        #[arg(long = "data-dir", required = true, value_delimiter = ',')]
        data_dirs: Vec<PathBuf>,
    },
    /// Check a stored snapshot with the spec's predicates; exit 1 if any check fails.
    #[command(
        after_help = "Checks: every file's checksum and format version; the parts form one \
snapshot of one cluster, each file in the directory its contents name; the cut is consistent (per channel, received-before-record <= \
sent-before-record, from the recorded counts and delivery vectors); each recorded channel holds \
exactly the messages sent before the sender's record and received after the receiver's; with \
--bank-prefix, the bank sum (balances plus transfers in flight) is conserved; and a dry-run \
restore in the spec's simulator settles every replica on the same store. With one data \
dir per node, pass them all (--data-dir A --data-dir B ...): each part is checked where it lies."
    )]
    Verify {
        /// Snapshot id (INITIATOR-SEQ, e.g. 0-3), `latest` or `latest-valid`.
        id: RestoreFrom,
        /// One or more data dirs (repeat the flag, or separate with commas).
        #[arg(long = "data-dir", required = true, value_delimiter = ',')]
        data_dirs: Vec<PathBuf>,
        /// Keys with this prefix are bank accounts whose sum TRANSFER conserves.
        #[arg(long)]
        bank_prefix: Option<String>,
        /// The expected bank sum (otherwise the parts must only agree).
        #[arg(long)]
        bank_total: Option<i64>,
    },
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Replay each node's trace through the spec, check the channels were
    /// reliable FIFO, and check the mode's ordering properties on the histories.
    Check {
        /// One trace per node, in node-id order (from `--trace` / `--trace-dir`).
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        /// The cluster had settled: also require every message delivered everywhere.
        #[arg(long)]
        quiescent: bool,
    },
    /// Draw the traces as a space-time diagram: a timeline per node, messages
    /// as arrows, held-back receipts, delivery vectors, each snapshot's cut and
    /// the messages it recorded in flight.
    Show {
        /// One trace per node (from `--trace` / `--trace-dir`), any order.
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        /// Write the diagram as SVG to FILE.
        #[arg(long, value_name = "FILE", required_unless_present = "html")]
        svg: Option<PathBuf>,
        /// Write the diagram as a standalone HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Draw only each trace's first N steps (long runs make tall pictures).
        #[arg(long, value_name = "N")]
        steps: Option<usize>,
    },
}

/// Snapshot, trace and fault options shared by `node` and `cluster`.
#[derive(Args, Clone)]
struct OpsArgs {
    /// Directory for snapshots, owned by one cluster (DIR/CLUSTER) and locked per node
    /// (DIR/node-I.lock): parts are written to DIR/snapshots/ID/part-NODE.gsmo and,
    /// when the nodes share it, the last node done writes MANIFEST.gsmo.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Abort a snapshot still unfinished after this many seconds (e.g. a node died).
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    snapshot_timeout: f64,
    /// Answer a write not delivered within SECS with `-TIMEOUT` (its outcome unknown).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    write_timeout: f64,
    /// A peer disconnected this long is unreachable: writes that need it are
    /// refused at once (`-CLUSTERDOWN`), snapshots waiting for it abort.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    unreachable_after: f64,
    /// Unacknowledged bytes kept per peer link for resending; when full, writes
    /// are refused (`-TRYAGAIN`) until the peer catches up.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    link_buffer: u64,
    /// Writes multicast as one batch at most (one place in the order for all;
    /// a batch goes whenever no input is waiting, full or not). 1: no batching.
    #[arg(long, default_value_t = 256, value_name = "WRITES")]
    max_batch: u64,
    /// Nagle's rule for total-isis rounds: while only this node is taking writes,
    /// its next batch waits for its round in flight (its peers' proposals), so
    /// two rounds' writes share one. Fewer, larger batches cost every node less
    /// CPU per write, for up to one round's wait (INFO: `nagle`, `nagle_holds`).
    /// `off` multicasts whenever no input waits. Other modes never hold.
    #[arg(long, value_enum, default_value_t = Toggle::On)]
    nagle: Toggle,
    /// Frames queued per peer connection writer, beyond a reconnect's resend (which
    /// goes whole); when full the connection is closed and the link resends after
    /// reconnecting.
    #[arg(long, default_value_t = DEFAULT_PEER_QUEUE, value_name = "FRAMES")]
    peer_queue: usize,
    /// Inputs (client requests, peer frames, link events) queued for the event loop
    /// before the connections and peers sending them wait; nothing is dropped (INFO
    /// `input_queue`, and `input_queue_peak`, the most seen queued at once).
    #[arg(long, default_value_t = DEFAULT_INPUT_QUEUE, value_name = "INPUTS")]
    input_queue: usize,
    /// Fault: break a random peer connection at random intervals averaging MS.
    #[arg(long, value_name = "MS")]
    fault_disconnect_every: Option<u64>,
    /// Snapshots in progress at a node (its own and its peers') from which it
    /// refuses `SNAPSHOT` (`-TRYAGAIN`) and skips `--snapshot-every`'s; each
    /// costs memory while it records and a write of the whole store (INFO
    /// `max_snapshots`, `snapshots_refused`).
    #[arg(long, default_value_t = 4, value_name = "N")]
    max_snapshots: u64,
    /// Complete snapshots kept in --data-dir; older ones are deleted.
    #[arg(long, default_value_t = 5, value_name = "K")]
    snapshot_keep: usize,
    /// Start from a stored snapshot: INITIATOR-SEQ, `latest` (the newest complete one by
    /// cut and id; refused if it is damaged) or `latest-valid` (skips damaged ones, with a
    /// warning). Every node must restore the same one (the handshake refuses a mix).
    #[arg(long, value_name = "ID|latest|latest-valid")]
    restore: Option<RestoreFrom>,
    /// Fault: delay every outgoing peer frame by a random MS or MIN-MAX milliseconds
    /// (never reordering one channel, as TCP would not).
    #[arg(long, value_name = "MS|MIN-MAX")]
    delay: Option<DelayRange>,
    /// Seed for --delay and --fault-disconnect-every, so a run's faults can be
    /// replayed [default: $GSMO_SEED, else random; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Transparent huge pages for the node's process: `off`, as Redis's `disable-thp`
    /// (a huge page's first touch zeroes 2 MiB while the event loop waits), or `system`
    /// (the kernel's setting).
    #[arg(long, value_enum, default_value_t = HugePages::Off)]
    transparent_huge_pages: HugePages,
    /// Test-only: a deliberate runtime bug the simulator's seed sweep must catch.
    #[arg(long, hide = true, value_enum)]
    bug: Option<RuntimeBug>,
}

impl OpsArgs {
    /// What a node would refuse, so `gsmo cluster` refuses it before starting any.
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.snapshot_timeout.is_finite() && self.snapshot_timeout > 0.0,
            "--snapshot-timeout must be a positive number of seconds"
        );
        anyhow::ensure!(self.snapshot_keep > 0, "--snapshot-keep must be at least 1");
        anyhow::ensure!(self.max_snapshots > 0, "--max-snapshots must be at least 1");
        anyhow::ensure!(self.peer_queue > 0, "--peer-queue must be at least 1");
        anyhow::ensure!(self.input_queue > 0, "--input-queue must be at least 1");
        anyhow::ensure!(
            self.link_buffer > 0,
            "--link-buffer must be at least 1 byte"
        );
        anyhow::ensure!(self.max_batch > 0, "--max-batch must be at least 1 write");
        if let Some(ms) = self.fault_disconnect_every {
            anyhow::ensure!(ms > 0, "--fault-disconnect-every must be at least 1 ms");
        }
        if self.restore.is_some() {
            let dir = self
                .data_dir
                .as_ref()
                .context("--restore needs --data-dir (where the snapshots are)")?;
            anyhow::ensure!(
                dir.is_dir(),
                "--restore: the data dir {} does not exist",
                dir.display()
            );
        }
        Ok(())
    }

    fn apply(&self, cfg: &mut NodeConfig, slow: Option<u64>) -> anyhow::Result<()> {
        self.validate()?;
        cfg.data_dir = self.data_dir.clone();
        cfg.limits = Limits {
            write_timeout_ms: millis("--write-timeout", self.write_timeout)?,
            unreachable_after_ms: millis("--unreachable-after", self.unreachable_after)?,
            snapshot_timeout_ms: millis("--snapshot-timeout", self.snapshot_timeout)?,
            link_buffer_bytes: self.link_buffer,
            max_batch: self.max_batch,
            nagle: self.nagle == Toggle::On,
            max_snapshots: self.max_snapshots,
        };
        cfg.peer_queue = self.peer_queue;
        cfg.input_queue = self.input_queue;
        cfg.snapshot_keep = self.snapshot_keep;
        cfg.restore = self.restore;
        cfg.faults = Faults {
            delay: self.delay,
            slow: slow.map(Duration::from_millis),
            disconnect_every: self.fault_disconnect_every.map(Duration::from_millis),
            seed: self.seed.unwrap_or_else(seed_from_env),
            bug: self.bug,
        };
        Ok(())
    }
}

/// Authentication and client limits shared by `node` and `cluster`.
#[derive(Args, Clone)]
struct DoorArgs {
    /// Peers prove they know the secret in this file (HMAC-SHA256 challenge-response);
    /// otherwise $GSMO_CLUSTER_SECRET is used. Without one, peers must be on loopback.
    #[arg(long, value_name = "FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Clients must `AUTH <password>` with the password in this file (redis-cli -a).
    #[arg(long, value_name = "FILE")]
    requirepass_file: Option<PathBuf>,
    /// Allow GSMO.DUMP, GSMO.HISTORY and GSMO.DIGEST (they copy whole histories and stores).
    #[arg(long)]
    debug_commands: bool,
    /// Most clients connected at once; more get `-ERR max number of clients reached`
    /// [default: 10000, fewer if the open files limit minus those kept for peers is lower].
    #[arg(long, value_name = "N")]
    maxclients: Option<usize>,
    /// A client whose unread replies pass this many bytes is disconnected (e.g. 64mb);
    /// one reply alone may pass it, so a value larger than the limit stays readable.
    #[arg(long, value_name = "BYTES", default_value = "64mb", value_parser = admission::parse_bytes)]
    client_output_buffer_limit: usize,
    /// Reads one client may have answered but not yet collected (1-1024); its next read
    /// waits for earlier replies to be encoded. Pipelined reads within it (16 at most)
    /// go to the replica together: one run, one answer, mostly one `send`.
    #[arg(long, value_name = "N", default_value_t = admission::DEFAULT_READS_IN_FLIGHT,
          value_parser = admission::parse_reads_in_flight)]
    client_reads_in_flight: usize,
    /// Entries one client may have queued for its replies (1-65536): a reply, or a run
    /// of up to 16 pipelined requests. When full, the node stops reading from that
    /// client until earlier replies are encoded (INFO `client_reply_queue_waits`).
    #[arg(long, value_name = "N", default_value_t = admission::DEFAULT_REPLY_QUEUE,
          value_parser = admission::parse_reply_queue)]
    client_reply_queue: usize,
}

impl DoorArgs {
    /// The same options as `gsmo node` arguments (the secret itself never goes on a command line).
    fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--client-output-buffer-limit".to_string(),
            self.client_output_buffer_limit.to_string(),
            "--client-reads-in-flight".to_string(),
            self.client_reads_in_flight.to_string(),
            "--client-reply-queue".to_string(),
            self.client_reply_queue.to_string(),
        ];
        if let Some(f) = &self.cluster_secret_file {
            v.extend(["--cluster-secret-file".into(), f.display().to_string()]);
        }
        if let Some(f) = &self.requirepass_file {
            v.extend(["--requirepass-file".into(), f.display().to_string()]);
        }
        if self.debug_commands {
            v.push("--debug-commands".into());
        }
        if let Some(m) = self.maxclients {
            v.extend(["--maxclients".into(), m.to_string()]);
        }
        v
    }

    /// Reads the secrets and sizes the client limits (raising the open files limit).
    fn apply(&self, cfg: &mut NodeConfig) -> anyhow::Result<()> {
        cfg.cluster_secret =
            secret::cluster_secret(self.cluster_secret_file.as_deref())?.map(Arc::new);
        let requirepass = self
            .requirepass_file
            .as_deref()
            .map(|f| Secret::from_file("password", f))
            .transpose()?;
        let open_files = admission::raise_open_files_limit();
        let max_clients = admission::max_clients(open_files, cfg.cluster_size(), self.maxclients)
            .map_err(anyhow::Error::msg)?;
        cfg.admission = Arc::new(Admission {
            max_clients,
            output_buffer_limit: self.client_output_buffer_limit,
            reads_in_flight: self.client_reads_in_flight,
            reply_queue: self.client_reply_queue,
            open_files_limit: open_files,
            requirepass,
            debug_commands: self.debug_commands,
            ..Admission::default()
        });
        Ok(())
    }
}

#[derive(Args)]
struct NodeArgs {
    /// This node's id, 0..N.
    #[arg(long)]
    id: usize,
    /// The members' peer addresses: a node count N (127.0.0.1, ports --peer-base + id),
    /// a list HOST:PORT,HOST:PORT,... or a file with one HOST:PORT per line.
    #[arg(long, value_name = "N|LIST|FILE")]
    cluster: String,
    /// Ordering mode: fifo, causal, total-sequencer or total-isis.
    #[arg(long, default_value = "total-isis")]
    mode: Mode,
    /// First peer port when --cluster is a count.
    #[arg(long, default_value_t = DEFAULT_PEER_BASE)]
    peer_base: u16,
    /// Where to listen for peers [default: this node's entry in --cluster].
    #[arg(long, value_name = "HOST:PORT")]
    peer_listen: Option<String>,
    /// Redis client port [default: 6380 + id]; 0 picks a free one (printed on start).
    #[arg(long)]
    client_port: Option<u16>,
    /// Address the client port binds to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Every member must use the same cluster id.
    #[arg(long, default_value = DEFAULT_CLUSTER_ID)]
    cluster_id: String,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    door: DoorArgs,
    /// Start a snapshot from this node every SECS seconds.
    #[arg(long, value_name = "SECS")]
    snapshot_every: Option<f64>,
    /// Record every input and output of the spec node to FILE (for `gsmo trace check`).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Fault: pause this node's event loop MS milliseconds before each batch of inputs.
    #[arg(long, value_name = "MS")]
    slow: Option<u64>,
    /// `text`: tracing logs on stderr, status on stdout. `shiviz`: ShiViz event lines on stdout.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Multicast history events kept for GSMO.HISTORY (recorded only with --debug-commands).
    #[arg(long, default_value_t = 1_000_000)]
    history_limit: usize,
}

#[derive(Args)]
struct ClusterArgs {
    /// How many replicas.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Ordering mode: fifo, causal, total-sequencer or total-isis.
    #[arg(long, default_value = "total-isis")]
    mode: Mode,
    /// Node i listens for peers on peer-base + i.
    #[arg(long, default_value_t = DEFAULT_PEER_BASE)]
    peer_base: u16,
    /// Node i serves Redis clients on client-base + i.
    #[arg(long, default_value_t = DEFAULT_CLIENT_BASE)]
    client_base: u16,
    /// Cluster id carried in every handshake.
    #[arg(long, default_value = DEFAULT_CLUSTER_ID)]
    cluster_id: String,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    door: DoorArgs,
    /// Node 0 starts a snapshot every SECS seconds.
    #[arg(long, value_name = "SECS")]
    snapshot_every: Option<f64>,
    /// Node I records its trace to DIR/nI.trace (for `gsmo trace check`).
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
    /// Fault: this node is slow (see --slow).
    #[arg(long, value_name = "I")]
    slow_node: Option<usize>,
    /// Fault: the slow node pauses MS milliseconds before each batch of inputs.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    slow: u64,
    /// `shiviz`: stdout carries only the merged ShiViz log (redirect it to a file).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn node_help() -> String {
    let mut s = String::from(
        "Redis commands (case-insensitive; inline or array form; pipelining works):\n",
    );
    for c in resp::COMMANDS {
        s.push_str("  ");
        s.push_str(c.usage);
        s.push('\n');
    }
    s.push_str(
        "  AUTH [default] password      with --requirepass-file; until then only AUTH, HELLO, QUIT\n\
         (GSMO.* commands need --debug-commands)\n",
    );
    s.push_str(&format!(
        "\nShiViz: run with --log-format shiviz, save stdout, paste it at\n\
         https://bestchai.bitbucket.io/shiviz/ with the regex\n  {}\n",
        shiviz::REGEX
    ));
    s
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn run_node(a: NodeArgs) -> anyhow::Result<()> {
    let peers = parse_cluster(&a.cluster, a.peer_base)?;
    let mut cfg = NodeConfig::new(a.id, peers, a.mode)?;
    if let Some(l) = a.peer_listen {
        cfg.peer_listen = l;
    }
    let port = a
        .client_port
        .map(usize::from)
        .unwrap_or(usize::from(DEFAULT_CLIENT_BASE) + a.id);
    let port = u16::try_from(port).context("client port past 65535: pass --client-port")?;
    cfg.client_listen = if a.bind.contains(':') {
        format!("[{}]:{port}", a.bind)
    } else {
        format!("{}:{port}", a.bind)
    };
    cfg.cluster_id = a.cluster_id;
    a.ops.apply(&mut cfg, a.slow)?;
    a.door.apply(&mut cfg)?;
    if cfg.cluster_secret.is_some() {
        tracing::info!("peers must prove they know the cluster secret (HMAC-SHA256)");
    } else {
        tracing::info!("no cluster secret: peers on loopback only");
    }
    cfg.snapshot_every = a.snapshot_every.map(secs).transpose()?;
    cfg.trace = a.trace;
    cfg.log_format = a.log_format;
    cfg.history_limit = a.history_limit;
    let id = cfg.id;
    tokio::select! {
        r = serve::serve(cfg) => r.with_context(|| format!("node {id}"))?,
        r = stop_signal() => {
            r?;
            tracing::info!("node {id} stopping on signal");
        }
    }
    Ok(())
}

async fn run_cluster(a: ClusterArgs) -> anyhow::Result<()> {
    let bin = std::env::current_exe().context("finding the gsmo binary")?;
    // Refuse here what the nodes would refuse, before starting any of them.
    a.ops.validate()?;
    anyhow::ensure!(!a.cluster_id.is_empty(), "the cluster id is empty");
    let given = secret::cluster_secret(a.door.cluster_secret_file.as_deref())?;
    if let Some(f) = &a.door.requirepass_file {
        Secret::from_file("password", f)?;
    }
    // Nodes read an inherited $GSMO_CLUSTER_SECRET; without one, a fresh secret
    // keeps other local processes from joining as peers.
    let cluster_secret = match given {
        Some(_) => None,
        None => Some(Secret::generate()),
    };
    if let Some(s) = a.snapshot_every {
        secs(s)?;
        anyhow::ensure!(
            a.ops.data_dir.is_some(),
            "--snapshot-every without --data-dir would take snapshots and throw them away"
        );
    }
    if let Some(i) = a.slow_node {
        anyhow::ensure!(
            i < a.nodes,
            "--slow-node {i}: the cluster has nodes 0..{}",
            a.nodes
        );
    }
    let mut ops = a.ops.clone();
    if ops.delay.is_some() || ops.fault_disconnect_every.is_some() {
        // One seed for the whole cluster (each node derives its own streams), printed for reruns.
        let seed = *ops.seed.get_or_insert_with(seed_from_env);
        println!("gsmo cluster: fault seed {seed} (rerun with --seed {seed} or GSMO_SEED={seed})");
    }
    let mut base_args = ops.to_args();
    base_args.extend(a.door.to_args());
    let mut node_args: Vec<Vec<String>> = vec![base_args; a.nodes];
    if let Some(s) = a.snapshot_every {
        node_args[0].extend(["--snapshot-every".into(), s.to_string()]);
    }
    if let Some(i) = a.slow_node {
        node_args[i].extend(["--slow".into(), a.slow.to_string()]);
    }
    if let Some(dir) = &a.trace_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (i, args) in node_args.iter_mut().enumerate() {
            args.push("--trace".into());
            args.push(dir.join(format!("n{i}.trace")).display().to_string());
        }
    }
    if let Some(dir) = &a.ops.data_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    launcher::run(LaunchConfig {
        nodes: a.nodes,
        mode: a.mode,
        cluster_id: a.cluster_id,
        peer_base: a.peer_base,
        client_base: a.client_base,
        log_format: a.log_format,
        node_args,
        bin,
        env: cluster_secret
            .map(|s| (CLUSTER_SECRET_ENV.to_string(), s))
            .into_iter()
            .collect(),
    })
    .await?;
    Ok(())
}

/// A positive number of seconds as whole milliseconds.
fn millis(flag: &str, s: f64) -> anyhow::Result<u64> {
    anyhow::ensure!(
        s.is_finite() && s > 0.0,
        "{flag} must be a positive number of seconds, got {s}"
    );
    Ok((s * 1000.0).round().max(1.0) as u64)
}

/// `$GSMO_SEED` if set (a bad value is a hard error: a rerun must be exact), else random.
fn seed_from_env() -> u64 {
    match std::env::var("GSMO_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GSMO_SEED={s} is not a number")),
        Err(_) => fastrand::u64(..),
    }
}

fn secs(s: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        s.is_finite() && s > 0.0,
        "expected a positive number of seconds, got {s}"
    );
    Ok(Duration::from_secs_f64(s))
}

impl OpsArgs {
    /// The same options as `gsmo node` arguments.
    fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--snapshot-timeout".to_string(),
            self.snapshot_timeout.to_string(),
            "--write-timeout".into(),
            self.write_timeout.to_string(),
            "--unreachable-after".into(),
            self.unreachable_after.to_string(),
            "--link-buffer".into(),
            self.link_buffer.to_string(),
            "--max-batch".into(),
            self.max_batch.to_string(),
            "--nagle".into(),
            self.nagle.to_string(),
            "--peer-queue".into(),
            self.peer_queue.to_string(),
            "--input-queue".into(),
            self.input_queue.to_string(),
            "--max-snapshots".into(),
            self.max_snapshots.to_string(),
            "--snapshot-keep".into(),
            self.snapshot_keep.to_string(),
            "--transparent-huge-pages".into(),
            self.transparent_huge_pages.to_string(),
        ];
        if let Some(s) = self.seed {
            v.extend(["--seed".into(), s.to_string()]);
        }
        if let Some(ms) = self.fault_disconnect_every {
            v.extend(["--fault-disconnect-every".into(), ms.to_string()]);
        }
        if let Some(d) = &self.data_dir {
            v.extend(["--data-dir".into(), d.display().to_string()]);
        }
        if let Some(r) = self.restore {
            v.extend(["--restore".into(), r.to_string()]);
        }
        if let Some(d) = self.delay {
            v.extend(["--delay".into(), d.to_string()]);
        }
        if let Some(b) = self.bug.and_then(|b| b.to_possible_value()) {
            v.extend(["--bug".into(), b.get_name().to_string()]);
        }
        v
    }
}

async fn run_snapshot(cmd: SnapshotCmd) -> anyhow::Result<()> {
    match cmd {
        SnapshotCmd::Take {
            port,
            node,
            host,
            data_dir,
            wait,
        } => {
            let port = match node {
                Some(i) => DEFAULT_CLIENT_BASE
                    .checked_add(i)
                    .context("--node: port past 65535")?,
                None => port,
            };
            snapshot_cli::take(&host, port, data_dir.as_deref(), Duration::from_secs(wait)).await
        }
        SnapshotCmd::List { data_dirs } => snapshot_cli::list(&data_dirs),
        SnapshotCmd::Show { id, data_dirs } => snapshot_cli::show(&data_dirs, id),
        SnapshotCmd::Verify {
            id,
            data_dirs,
            bank_prefix,
            bank_total,
        } => snapshot_cli::verify(&data_dirs, id, bank_prefix, bank_total),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    // Before the runtime starts allocating, so the heap has small pages from the start.
    if let Cmd::Node(a) = &cli.command {
        let policy = a.ops.transparent_huge_pages;
        if let Err(e) = pages::apply(policy) {
            tracing::warn!("cannot set transparent huge pages {policy} for this process: {e}");
        }
    }
    // A node runs on one thread, as redis-server does: its client tasks, peer
    // tasks and event loop hand requests to each other without waking other
    // threads (on 2 cores a fifth less CPU per pipelined GET); disk work still
    // goes to tokio's blocking pool. The other commands keep every core.
    let mut rt = match cli.command {
        Cmd::Node(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let result = match cli.command {
        Cmd::Node(a) => run_node(a).await,
        Cmd::Cluster(a) => run_cluster(a).await,
        Cmd::Snapshot(c) => run_snapshot(c).await,
        Cmd::Trace(TraceCmd::Check { traces, quiescent }) => {
            tracecheck::check_traces(&traces, quiescent)
        }
        Cmd::Trace(TraceCmd::Show {
            traces,
            svg,
            html,
            steps,
        }) => tracecheck::show_traces(&traces, svg.as_deref(), html.as_deref(), steps),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Error types here already print their cause inline; skip repeats.
            let mut msg = String::new();
            for cause in e.chain().map(ToString::to_string) {
                if !msg.contains(&cause) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&cause);
                }
            }
            eprintln!("gsmo: error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn runtime_bugs_are_accepted_but_hidden_from_help() {
        for sub in ["node", "cluster"] {
            let help = Cli::command()
                .find_subcommand_mut(sub)
                .expect("a subcommand")
                .render_long_help()
                .to_string();
            assert!(!help.contains("--bug"), "{sub} --help shows --bug");
            assert!(
                help.contains("--delay"),
                "{sub} --help lost its fault flags"
            );
        }
        let cli = Cli::try_parse_from(["gsmo", "cluster", "--bug", "drop-after-reconnect"])
            .expect("--bug parses");
        let Cmd::Cluster(a) = cli.command else {
            panic!("not a cluster command")
        };
        let args = a.ops.to_args();
        assert!(
            args.windows(2)
                .any(|w| w == ["--bug", "drop-after-reconnect"]),
            "the launcher passes --bug on to its nodes: {args:?}"
        );
    }
}
