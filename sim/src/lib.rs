//! # gsmo-sim: the real node under a deterministic simulator
//!
//! Every host of a turmoil simulation runs on one thread with a paused tokio
//! clock, so a run is a function of its seed. The nodes are the real
//! `gsmo_node::serve::serve_on` (event loop, peer links with the spec's
//! resumable link layer, handshake, RESP door) on simulated sockets
//! ([`net`]); the clients speak RESP to them ([`client`]). The seed drives
//! the network's latency, the nodes' `--delay` lines (reordering across
//! channels), broken connections, held links (a partition that heals, as TCP
//! retransmission would), snapshot starts and the workload ([`workload`]).
//! Each run is judged by the spec ([`judge`]): the mode's order predicates,
//! integrity, all delivered and convergence on the nodes' histories, trace
//! conformance, snapshot termination, and on the clients' histories
//! sequential consistency per key, exact counters and bank conservation
//! (total modes).
//!
//! [`replay`] drives the real event loops along a model path instead
//! (`sim --replay`).
//!
//! Not simulated: node crashes. A node restarted with empty state is refused
//! by its peers by design (its links cannot resume), so a crash needs a
//! whole-cluster restore from a snapshot on disk, which the simulator's
//! in-memory snapshot store does not keep.

pub mod client;
pub mod judge;
pub mod net;
pub mod replay;
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
    /// Faults on (off: latency and the workload only).
    pub faults: bool,
    pub bug: Option<RuntimeBug>,
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
            bug: None,
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
        if let Some(b) = self.bug {
            c.push_str(&format!(" --bug {}", bug_name(b)));
        }
        c
    }
}

/// The bug's `--bug` spelling.
pub fn bug_name(b: RuntimeBug) -> String {
    use clap::ValueEnum;
    b.to_possible_value()
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
    pub reconnects: u64,
    pub failed: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Outcome) {
        self.seeds += 1;
        self.sim_ms += o.sim_ms;
        self.events += o.events;
        self.faults += o.faults;
        self.reconnects += o.reconnects;
        self.failed += u64::from(!o.violations.is_empty());
    }

    pub fn line(&self) -> String {
        format!(
            "sim: {} seeds, {}.{:03} simulated s, {} events, {} faults injected, {} reconnects, \
             {} violating seeds",
            self.seeds,
            self.sim_ms / 1000,
            self.sim_ms % 1000,
            self.events,
            self.faults,
            self.reconnects,
            self.failed
        )
    }
}

/// The mode a sweep gives `seed` when none is chosen.
pub fn mode_of(seed: u64) -> Mode {
    MODES[(seed % MODES.len() as u64) as usize]
}

/// What the simulated hosts hand back to the judge.
#[derive(Default)]
pub struct Shared {
    pub ops: Vec<gsmo_spec::consistency::ClientOp>,
    /// Per counter key, INCRs acknowledged.
    pub incrs: std::collections::BTreeMap<Vec<u8>, i64>,
    pub errors: Vec<String>,
    pub workers_done: usize,
    pub opened: bool,
    pub faults: u64,
    pub end: Option<judge::Collected>,
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
    sim.client(
        "chaos",
        workload::chaos(o.clone(), registry.clone(), shared.clone()),
    );
    let result = sim.run();
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
