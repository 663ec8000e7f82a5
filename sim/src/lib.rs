//! # gsmo-sim: the real node under a deterministic simulator
//!
//! Every host of a turmoil simulation runs on one thread with a paused tokio
//! clock, so a run is a function of its seed. The nodes are the real
//! `gsmo_node::serve::serve_on` (event loop, peer links with the spec's
//! resumable link layer, handshake, RESP door) on simulated sockets
//! ([`net`]); the clients speak RESP to them ([`client`]). The seed drives
//! the network's latency, the nodes' `--delay` lines (reordering across
//! channels), broken connections, held links (a partition that heals, as TCP
//! retransmission would), snapshot starts, a node crash ([`crash`]) and the
//! workload ([`workload`]). Each run is judged by the spec ([`judge`]): the
//! mode's order predicates, integrity, all delivered and convergence on the
//! nodes' histories, trace conformance, snapshot termination (commit xor
//! abort), and on the clients' histories sequential consistency per key,
//! counters and bank conservation (total modes).
//!
//! [`replay`] drives the real event loops along a model path instead
//! (`sim --replay`).
//!
//! A crashed node stays down: a node restarted with empty state is refused by
//! its peers by design (its links cannot resume), and recovery is a
//! whole-cluster restore from a snapshot on disk, which the simulator's
//! in-memory snapshot store does not keep. So a crash run is judged on the
//! survivors ([`crash`] says what is promised there).

pub mod client;
pub mod crash;
pub mod judge;
pub mod net;
pub mod replay;
pub mod snapshots;
pub mod squeeze;
pub mod workload;

use gsmo_node::config::{DelayRange, NodeConfig, RuntimeBug};
use gsmo_node::secret::Secret;
use gsmo_spec::multicast::Mode;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Where nodes listen for peers; connections to it may be broken.
pub const PEER_PORT: u16 = 7100;
/// Where nodes serve Redis clients.
pub const CLIENT_PORT: u16 = 6379;
/// The modes a sweep cycles through when none is given.
pub const MODES: [Mode; 4] = [
    Mode::Fifo,
    Mode::Causal,
    Mode::TotalSequencer,
    Mode::TotalIsis,
];

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Opts {
    pub seed: u64,
    pub nodes: usize,
    pub mode: Mode,
    pub clients: usize,
    /// Commands each client issues.
    pub ops: usize,
    /// Faults on (off: latency and the workload only, no crash).
    pub faults: bool,
    /// Whether and how a node crashes (with faults on).
    pub crash: crash::CrashMode,
    pub bug: Option<RuntimeBug>,
    /// Writes a node multicasts as one batch at most (1, the default: every
    /// write alone). Batched nodes also follow Nagle's rule for rounds, as
    /// `gsmo node` does by default.
    pub max_batch: u64,
    /// Commands a client sends back to back before reading their replies
    /// (1, the default: one at a time). Pipelines fill batches.
    pub pipeline: usize,
    /// Each link's buffer in bytes (`--link-buffer`), if small enough to
    /// fill: writes may then be refused (`TRYAGAIN`), and once the cluster is
    /// quiet every node must take a write again.
    pub link_buffer: Option<u64>,
    /// Every bounded queue of the node at this many entries ([`squeeze`]):
    /// the input queue, each client's reply queue and read slots, and each
    /// peer writer's queue.
    pub queues: Option<usize>,
}

impl Opts {
    pub fn new(seed: u64, mode: Mode) -> Self {
        Opts {
            seed,
            nodes: 3,
            mode,
            clients: 3,
            ops: 25,
            faults: true,
            crash: crash::CrashMode::Seeded,
            bug: None,
            max_batch: 1,
            pipeline: 1,
            link_buffer: None,
            queues: None,
        }
    }

    /// The command line that reruns exactly this run.
    pub fn command(&self) -> String {
        let mut c = format!(
            "cargo run --release --bin sim -- --seed {} --mode {} --nodes {} --clients {} --ops {}",
            self.seed, self.mode, self.nodes, self.clients, self.ops
        );
        if !self.faults {
            c.push_str(" --no-faults");
        }
        if self.crash != crash::CrashMode::Seeded {
            c.push_str(&format!(" --crash {}", self.crash.name()));
        }
        if let Some(b) = self.bug {
            c.push_str(&format!(" --bug {}", bug_name(b)));
        }
        if self.max_batch != 1 {
            c.push_str(&format!(" --max-batch {}", self.max_batch));
        }
        if self.pipeline != 1 {
            c.push_str(&format!(" --pipeline {}", self.pipeline));
        }
        if let Some(b) = self.link_buffer {
            c.push_str(&format!(" --link-buffer {b}"));
        }
        if let Some(q) = self.queues {
            c.push_str(&format!(" --queues {q}"));
        }
        c
    }
}

/// The bug's `--bug` spelling.
pub fn bug_name(b: RuntimeBug) -> String {
    value_name(b)
}

fn value_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// What one run did and what the spec said about it.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub sim_ms: u64,
    /// Spec steps the nodes took (trace records).
    pub events: u64,
    /// Faults injected: broken connections, held links, snapshot starts.
    pub faults: u64,
    /// Peer connections the nodes re-established (the link layer resumed).
    pub reconnects: u64,
    /// How the live nodes batched their writes.
    pub batching: Batching,
    /// The node that crashed, and what the judge saw around it.
    pub crash: Option<crash::Report>,
    /// Writes refused because a link was full (`TRYAGAIN`).
    pub tryagain: u64,
    /// Snapshots some live node committed, and those it only aborted.
    pub snapshots: snapshots::Tally,
    /// How often the live nodes met their queues' bounds.
    pub squeeze: squeeze::Squeeze,
    pub violations: Vec<String>,
}

/// A sweep's totals; [`Totals::line`] is the summary `sim` ends with, the
/// same bytes for the same seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub seeds: u64,
    pub sim_ms: u64,
    pub events: u64,
    pub faults: u64,
    pub crashes: u64,
    pub reconnects: u64,
    pub batching: Batching,
    pub tryagain: u64,
    pub snapshots: snapshots::Tally,
    pub squeeze: squeeze::Squeeze,
    pub failed: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Outcome) {
        self.seeds += 1;
        self.sim_ms += o.sim_ms;
        self.events += o.events;
        self.faults += o.faults;
        self.crashes += u64::from(o.crash.is_some());
        self.reconnects += o.reconnects;
        self.batching.add(&o.batching);
        self.tryagain += o.tryagain;
        self.snapshots.committed += o.snapshots.committed;
        self.snapshots.aborted += o.snapshots.aborted;
        self.squeeze.add(&o.squeeze);
        self.failed += u64::from(!o.violations.is_empty());
    }

    /// Batching shows only when some batch carried more than one write, and
    /// refusals only when a link filled, so a sweep without either prints
    /// the line it printed before nodes batched.
    pub fn line(&self) -> String {
        let refused = match self.tryagain {
            0 => String::new(),
            n => format!(", {n} writes refused for full links"),
        };
        format!(
            "sim: {} seeds, {}.{:03} simulated s, {} events, {} faults injected, {} crashes, \
             {} reconnects{}{refused}{}, {} snapshots committed and {} aborted, {} violating seeds",
            self.seeds,
            self.sim_ms / 1000,
            self.sim_ms % 1000,
            self.events,
            self.faults,
            self.crashes,
            self.reconnects,
            self.batching.summary(),
            self.squeeze.summary(),
            self.snapshots.committed,
            self.snapshots.aborted,
            self.failed
        )
    }
}

/// How nodes batched their writes, summed over the live nodes from INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batching {
    /// Multicasts sent (`multicasts_sent`): one batch of writes each.
    pub multicasts: u64,
    /// Writes those batches carried (`writes_multicast`).
    pub writes: u64,
    /// Turns that ended with writes held for an open round (`nagle_holds`).
    pub nagle_holds: u64,
}

impl Batching {
    /// One node's counters, read from its `INFO` text (0 where absent).
    pub fn from_info(info: &str) -> Self {
        let field = |name| client::info_field(info, name).map_or(0, |v| v.parse().unwrap_or(0));
        Batching {
            multicasts: field("multicasts_sent"),
            writes: field("writes_multicast"),
            nagle_holds: field("nagle_holds"),
        }
    }

    pub fn add(&mut self, o: &Batching) {
        self.multicasts += o.multicasts;
        self.writes += o.writes;
        self.nagle_holds += o.nagle_holds;
    }

    /// `, W writes in M batches[, H turns held writes for a round]`, or
    /// nothing if every batch was a single write.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if self.writes > self.multicasts {
            s.push_str(&format!(
                ", {} writes in {} batches",
                self.writes, self.multicasts
            ));
        }
        if self.nagle_holds > 0 {
            s.push_str(&format!(
                ", {} turns held writes for a round",
                self.nagle_holds
            ));
        }
        s
    }
}

/// The mode a sweep gives `seed` when none is chosen.
pub fn mode_of(seed: u64) -> Mode {
    MODES[(seed % MODES.len() as u64) as usize]
}

/// What the simulated hosts hand back to the judge.
#[derive(Default)]
pub struct Shared {
    /// Every SET / INCR / GET answered, error replies included.
    pub ops: Vec<gsmo_spec::consistency::ClientOp>,
    /// Writes in flight at a node when it crashed: outcome unknown.
    pub unknown: Vec<gsmo_spec::consistency::ClientOp>,
    /// Error replies (the judge decides which a crash allows).
    pub errors: Vec<workload::ErrorReply>,
    /// What went wrong outright (a request never answered, a failed MSET).
    pub failures: Vec<String>,
    pub workers_done: usize,
    pub opened: bool,
    pub faults: u64,
    /// The chaos client asks the step loop to crash this node ([`crash::drive`]).
    pub crash_request: Option<usize>,
    /// The node crashed, and when (simulated microseconds).
    pub crashed: Option<(usize, u64)>,
    pub end: Option<judge::Collected>,
}

impl Shared {
    /// Whether `node` has crashed.
    pub fn is_down(&self, node: usize) -> bool {
        self.crashed.is_some_and(|(n, _)| n == node)
    }
}

fn node_config(o: &Opts, i: usize, trace_dir: &std::path::Path) -> NodeConfig {
    let peers = (0..o.nodes).map(|j| format!("n{j}:{PEER_PORT}")).collect();
    let mut cfg = NodeConfig::new(i, peers, o.mode).expect("a valid cluster");
    cfg.peer_listen = format!("0.0.0.0:{PEER_PORT}");
    cfg.client_listen = format!("0.0.0.0:{CLIENT_PORT}");
    cfg.trace = Some(trace_dir.join(format!("n{i}.trace")));
    cfg.cluster_secret = Some(Arc::new(Secret::new("simulated")));
    cfg.admission = Arc::new(gsmo_node::admission::Admission {
        debug_commands: true,
        ..Default::default()
    });
    cfg.faults.seed = o.seed;
    cfg.faults.bug = o.bug;
    cfg.limits.max_batch = o.max_batch;
    cfg.limits.nagle = true;
    if let Some(b) = o.link_buffer {
        cfg.limits.link_buffer_bytes = b;
    }
    if let Some(q) = o.queues {
        cfg.input_queue = q;
        cfg.peer_queue = q;
        cfg.admission = Arc::new(gsmo_node::admission::Admission {
            debug_commands: true,
            reads_in_flight: q,
            reply_queue: q,
            ..Default::default()
        });
    }
    if o.faults {
        let max_ms = 2 + o.seed % 19;
        cfg.faults.delay = Some(DelayRange { min_ms: 0, max_ms });
    }
    cfg
}

/// Runs one seed.
pub fn run(o: &Opts) -> Outcome {
    let dir = tempfile::tempdir().expect("a temp dir for traces");
    gsmo_node::net::install(gsmo_node::net::Simulated {
        rng: fastrand::Rng::with_seed(o.seed),
        unix_ms: || turmoil::since_epoch().map_or(0, |d| d.as_millis() as u64),
    });
    let shared = Rc::new(RefCell::new(Shared::default()));
    let registry = net::Registry::default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(o.seed)
        .simulation_duration(Duration::from_secs(600))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(0))
        .max_message_latency(Duration::from_millis(1 + o.seed % 7))
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .build();
    for i in 0..o.nodes {
        let cfg = node_config(o, i, dir.path());
        let registry = registry.clone();
        sim.host(format!("n{i}"), move || {
            let cfg = cfg.clone();
            let network = net::TurmoilNet {
                registry: registry.clone(),
                breakable_port: PEER_PORT,
            };
            async move {
                gsmo_node::serve::serve_on(cfg, gsmo_node::net::Net::new(network))
                    .await
                    .map_err(Into::into)
            }
        });
    }
    for c in 0..o.clients {
        sim.client(
            format!("c{c}"),
            workload::client(o.clone(), c, shared.clone()),
        );
    }
    if crash::plan(o).is_some() {
        sim.client("crasher", crash::crasher(o.clone(), shared.clone()));
    }
    sim.client(
        "chaos",
        workload::chaos(o.clone(), registry.clone(), shared.clone()),
    );
    let mut hosts: Vec<String> = (0..o.nodes).map(|i| format!("n{i}")).collect();
    hosts.extend((0..o.clients).map(|c| format!("c{c}")));
    hosts.extend(["crasher".to_string(), "chaos".to_string()]);
    let result = crash::drive(&mut sim, &shared, &registry, &hosts);
    let sim_ms = sim.elapsed().as_millis() as u64;
    drop(sim);
    gsmo_node::net::uninstall();
    let mut outcome = Outcome {
        sim_ms,
        ..Outcome::default()
    };
    if let Err(e) = result {
        outcome
            .violations
            .push(format!("the simulation failed: {e}"));
    }
    let shared = shared.take();
    judge::judge(o, shared, dir.path(), &mut outcome);
    outcome
}
