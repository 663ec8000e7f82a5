//! `check`: model-check the gsmo protocols, built from the very transition
//! functions and predicates the real cluster runs.

/// Every explored state is allocated and freed; mimalloc does that about a
/// third faster than glibc's malloc (bench/check.sh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use gsmo_model::abort::{self as abort_model, AbortCfg};
use gsmo_model::adapter::Channels;
use gsmo_model::causal::{CausalBug, CausalCfg};
use gsmo_model::explore::{Explorer, Presented};
use gsmo_model::faults::{AdapterBug, Faults};
use gsmo_model::kv::{KvBug, KvCfg};
use gsmo_model::link::{LinkCfg, LinkVariant};
use gsmo_model::snapshot::{SnapshotBug, SnapshotCfg};
use gsmo_model::total::{TotalBug, TotalCfg};
use gsmo_model::verdict::{check, Outcome, Search, Strategy, Verdict};
use gsmo_spec::multicast::Mode;
use stateright::{Expectation, Model};
use std::fmt::Debug;
use std::hash::Hash;
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str =
    "Model-check gsmo's multicast orders, Chandy-Lamport snapshots and replicated K/V store.";

const LONG_ABOUT: &str = "\
Model-check gsmo's multicast orders, Chandy-Lamport snapshots and replicated K/V
store with stateright. Every node is a thin adapter over the gsmo-spec transition
functions, and every property is a gsmo-spec predicate: the same code and the same
definition of \"correct\" the real cluster runs.

With no arguments, checks every model at its default, small configuration and
prints, per model: its properties, unique and total states, depth, seconds,
states/s, and PASS or FAIL with the counterexample, action by action.

THE DEFAULT SWEEP: each configuration is the smallest that shows its feature's
bugs (unique states in brackets; the whole sweep: about 2.3 s of CPU)
  causal                 3 nodes x 1 msg [690]: a causal chain (a -> b's
                         delivery -> b's send -> c) needs three nodes; with two,
                         causal = FIFO
  total-sequencer/-isis  3 nodes x 1 msg [2,122 / 42,594]: two senders contend
                         at a third replica
  snapshot               the bank, 2 accounts of 1, one transfer each (1 from
                         account 0: covered; 2 from account 1: overdraws unless
                         account 0's arrived), TWO snapshots, so that concurrent
                         snapshot ids overlap at a replica (shared-channel-closing
                         needs them) [2,448; with one snapshot 302, and that
                         bug unseen]. 2 transfers each: 105,635 states,
                         half a minute; 3 accounts: minutes, not seconds
  kv --mode M            2 replicas x 2 writes (SET x, then a TRANSFER between
                         accounts of 1: replica 0's covered, replica 1's overdraws
                         unless 0's came first), 1 snapshot, for every mode
                         [1,447 fifo, causal; 8,220 sequencer; 40,504 isis]
  kv --mode causal --nodes 3 --msgs 1 --snapshots 0
                         the causal chain again, through the whole replica [690];
                         with 2 writes 34,043 states, with a snapshot 208,950
  kv --batch 2 --snapshots 0, total-sequencer / total-isis / causal (--msgs 3)
                         a replica multicasts its writes in batches of one or two
                         (it may flush after any write); under causal the writes
                         are blind SETs (a read-modify-write flushes first), so a
                         batch of two needs 3 writes [1,802 / 4,233 / 4,616]

MODELS
  causal           vector-clock causal multicast (CBCAST)
  total-sequencer  total order by a fixed sequencer (node 0)
  total-isis       total order by ISIS agreed priorities
  snapshot         Chandy-Lamport snapshots of the bank: replicas moving money
                   with the K/V store's own TRANSFER
  kv               the replicated K/V store over one ordering mode (--mode)
  link             the resumable FIFO link across lossy networks and disconnects
  abort            snapshot abort policy and write replies under crashes, time, disk failures
  explore MODEL    serve stateright's web explorer for MODEL

BROKEN VARIANTS (--broken): each breaks one assumption or rule on purpose; the
checker must then find a counterexample. See `check MODEL --help` for the list.

SEARCH
  --bfs (default) explores level by level and prints the SHORTEST counterexample
  (stateright keeps the last violation it meets, so the checker re-runs with
  depth bounds to find the shortest). --dfs needs less memory (BFS holds a whole
  frontier: a few KB per state for kv) and tells longer stories. --simulation
  SEED walks at random until --timeout and never proves anything. Runs over a
  second print progress on stderr.

SYMMETRY (--symmetry, causal only; implies --dfs) explores one state per class
  of states that differ only by node names, renaming every node id in the state
  consistently (vector clocks, message ids, logs, the network's envelopes).
  --compare also runs without it and prints both counts. Counterexamples stay
  concrete paths that replay. Refused where a node id breaks ties:
  total-sequencer  node 0 is the sequencer: nodes are not interchangeable
  total-isis       equal priorities are broken by node id
  kv               last-writer-wins breaks equal Lamport times by node id, and
                   the total modes as above
  snapshot         not even by rotation (node i -> i+r mod n keeps the ring of
                   transfers i -> i+1): the bank runs over a total order, whose
                   sequencer is node 0 or whose ISIS ties go to the lower node
                   id, and a rotation keeps neither; and account i moves
                   amount*(i+1), which differs by account
  link, abort      not attempted (over the kv replica and its faults)

NO VACUOUS VERDICTS
  A sometimes-property is an example the model must reach (a snapshot that
  records a transfer in flight, an overdraft refused, two snapshots in progress
  at once). If a complete run finds none, that part of the model never ran and
  the run is a FAIL. A --broken run is caught only if the property the variant
  promises (\"must violate ...\" in its title) is violated; violating other
  properties instead is reported as NOT CAUGHT.

EXIT STATUS
  0  every property held and every example was found
  1  a property was violated or an example is missing. With --broken this is
     the expected outcome: the variant was caught by its promised property
  2  bad arguments
  3  a --broken variant was NOT caught: its promised property held
  4  INCOMPLETE: nothing was violated, but not every state was explored
     (--timeout, --depth or --simulation stopped the search): not a proof

EXAMPLES
  check                                       every model, default configuration
  check causal --nodes 3 --msgs 2 --network unordered
  check causal --broken fifo-only             watch FIFO-only delivery break causality
  check total-isis --broken no-tie-break --dfs
  check snapshot --nodes 3 --threads 2
  check kv --mode total-isis --broken no-tie-break
  check kv --mode causal --broken delivery-order --msgs 1 --snapshots 0
  check kv --mode total-sequencer --broken no-channel-recording
  check snapshot --nodes 3 --dfs --timeout 600
  check causal --simulation 7 --timeout 5     random walks instead of exhaustive search
  check link --nodes 3 --msgs 1 --broken resume-off-by-one
  check explore snapshot --addr 127.0.0.1:3000";

#[derive(Parser)]
#[command(name = "check", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Model(ModelCmd),
    /// Serve stateright's web explorer for one model (blocks; Ctrl-C to stop).
    Explore {
        /// Where the explorer listens (before or after MODEL).
        #[arg(long, default_value = "127.0.0.1:3000", global = true)]
        addr: String,
        #[command(subcommand)]
        model: ModelCmd,
    },
}

#[derive(Subcommand, Clone)]
enum ModelCmd {
    /// Causal multicast (Birman, Schiper & Stephenson 1991).
    ///
    /// Each node multicasts --msgs messages at any moment. Always: causal order
    /// (happened-before computed from the delivery logs) and integrity;
    /// eventually: every message delivered everywhere; sometimes: a message is
    /// held back. Passes on unordered channels too: vector timestamps do not
    /// need FIFO channels.
    Causal(CausalArgs),
    /// Total order by a fixed sequencer (Chang & Maxemchuk 1984).
    ///
    /// Node 0 numbers every message; all deliver in number order. Always: total
    /// order, FIFO order, integrity; eventually: all delivered.
    TotalSequencer(TotalArgs),
    /// Total order by ISIS agreed priorities (Birman & Joseph 1987).
    ///
    /// Receivers propose priorities, the sender agrees on the largest, ties go
    /// to the lower node id. Always: total order, FIFO order, integrity;
    /// eventually: all delivered.
    TotalIsis(TotalArgs),
    /// Chandy-Lamport snapshot of the lecture's bank (Chandy & Lamport 1985), on the product.
    ///
    /// Each account is a replica (the spec's whole gsmo node) and a K/V key
    /// acct:i; --nodes accounts start with --balance each and make --msgs
    /// transfers with the store's own TRANSFER in a total order (--mode),
    /// account i moving --amount x (i+1); a transfer short of funds is refused.
    /// Any replica may start a snapshot (at most --snapshots in all). Always:
    /// consistent cut, exact channel state (against the wire's ground truth),
    /// conservation (every replica and every recorded part holds the total),
    /// and snapshot restores; eventually: every transfer answered and every
    /// snapshot complete; sometimes: a transfer recorded in flight, an
    /// overdraft refused, two snapshots in progress at one replica.
    Snapshot(SnapshotArgs),
    /// The replicated K/V store over one ordering mode.
    ///
    /// Each replica is the spec's whole gsmo node (multicast + K/V + recorder),
    /// issues --msgs writes (SET x, and with 2 or more a last TRANSFER between
    /// accounts, one of which may overdraw), and any replica may start a
    /// snapshot (at most --snapshots in all). Always: replicas that delivered
    /// the same writes hold the same store (convergence), integrity, total
    /// order (total modes), causal order (causal), every finished snapshot is a
    /// consistent cut, conservation (total modes), and every finished snapshot,
    /// restored and run to quiescence, gives one store on every replica holding
    /// exactly the writes sent before the cut; eventually: all writes delivered,
    /// every write answered and every snapshot complete. Snapshots need
    /// FIFO channels: on --network unordered the snapshot properties fail (that
    /// is the `reordering` variant).
    Kv(KvArgs),
    /// The resumable FIFO link (JGroups UNICAST3, Redis PSYNC).
    ///
    /// --nodes nodes each send --msgs messages to every other node through the
    /// spec's link, over a network that may lose, duplicate and reorder frames
    /// (--faults in all) and break connections (--disconnects; a reconnect
    /// resumes from what the peer delivered). Always: per channel, delivered is
    /// a prefix of sent, in order, once each; no resume refused; and where
    /// nothing more can happen, everything was delivered.
    Link(LinkArgs),
    /// The snapshot abort policy and "no client hangs", with a crash, a clock
    /// and a failing disk.
    ///
    /// K/V replicas (--mode) each issue --msgs writes; one snapshot; one replica
    /// may crash (its peers see its connections close), each disk may refuse a
    /// part once, clocks tick while a timer could fire. Always: never committed
    /// at one replica and aborted at another (unless the initiator crashed), no
    /// part of an aborted snapshot kept; once quiet: every snapshot ended at
    /// every live replica, every write answered (value or error).
    Abort(AbortArgs),
}

/// How to search, shared by every model.
#[derive(Args, Clone)]
struct SearchArgs {
    /// Breadth-first search (the default): shortest counterexamples.
    #[arg(long, conflicts_with_all = ["dfs", "simulation"])]
    bfs: bool,
    /// Depth-first search.
    #[arg(long, conflicts_with = "simulation")]
    dfs: bool,
    /// Random walks from SEED until --timeout (default 10 s); never complete.
    #[arg(long, value_name = "SEED")]
    simulation: Option<u64>,
    /// Explore no deeper than D steps (the run is then incomplete).
    #[arg(long, value_name = "D")]
    depth: Option<usize>,
    /// Checker threads [default: all cores].
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Merge states that differ only by node names (causal only; implies --dfs).
    #[arg(long, conflicts_with = "bfs")]
    symmetry: bool,
    /// With --symmetry: also run without it and print both state counts.
    #[arg(long, requires = "symmetry")]
    compare: bool,
}

#[derive(Args, Clone)]
struct CausalArgs {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Messages each node multicasts.
    #[arg(long, default_value_t = 1)]
    msgs: u64,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    network: Channels,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    broken: Option<CausalBug>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args, Clone)]
struct TotalArgs {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Messages each node multicasts.
    #[arg(long, default_value_t = 1)]
    msgs: u64,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    network: Channels,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    broken: Option<TotalBug>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args, Clone)]
struct SnapshotArgs {
    /// The total order the bank's replicas run: total-sequencer or total-isis.
    #[arg(long, default_value_t = SnapshotCfg::default().mode)]
    mode: Mode,
    #[arg(long, default_value_t = SnapshotCfg::default().nodes)]
    nodes: usize,
    /// Transfers each account makes.
    #[arg(long, default_value_t = SnapshotCfg::default().transfers)]
    msgs: u64,
    /// Each account's starting balance.
    #[arg(long, default_value_t = SnapshotCfg::default().balance)]
    balance: u64,
    /// Account i moves AMOUNT * (i + 1) per transfer (so some transfers overdraw).
    #[arg(long, default_value_t = SnapshotCfg::default().amount)]
    amount: u64,
    /// Snapshots started in all, by any accounts.
    #[arg(long, default_value_t = SnapshotCfg::default().snapshots)]
    snapshots: usize,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    network: Channels,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    broken: Option<SnapshotBug>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args, Clone)]
struct KvArgs {
    /// The ordering mode the replicas run: fifo, causal, total-sequencer or total-isis.
    #[arg(long, default_value_t = Mode::TotalSequencer)]
    mode: Mode,
    #[arg(long, default_value_t = KvCfg::default().nodes)]
    nodes: usize,
    /// Writes each replica issues.
    #[arg(long, default_value_t = KvCfg::default().writes)]
    msgs: u64,
    /// Snapshots started in all, by any replicas.
    #[arg(long, default_value_t = KvCfg::default().snapshots)]
    snapshots: usize,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    network: Channels,
    /// Incoming connections each replica may lose (the link layer resumes them).
    #[arg(long, default_value_t = 0)]
    disconnects: usize,
    /// Writes a replica multicasts as one batch at most; above 1 a replica may
    /// also flush a smaller batch at any moment (fifo/causal then write blind SETs).
    #[arg(long, default_value_t = KvCfg::default().batch)]
    batch: u64,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    broken: Option<KvBug>,
    /// Also write a path as spec steps for `sim --replay`: the
    /// variant's counterexample, else a random walk seeded by GSMO_SEED.
    #[arg(long, value_name = "FILE")]
    save_path: Option<std::path::PathBuf>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args, Clone)]
struct LinkArgs {
    #[arg(long, default_value_t = LinkCfg::default().nodes)]
    nodes: usize,
    /// Messages each node sends to each other node.
    #[arg(long, default_value_t = LinkCfg::default().msgs)]
    msgs: u8,
    /// Frames the network may lose, duplicate or deliver out of order, in all.
    #[arg(long, default_value_t = LinkCfg::default().faults)]
    faults: u8,
    /// Connection breaks, in all.
    #[arg(long, default_value_t = LinkCfg::default().disconnects)]
    disconnects: u8,
    /// The network never loses a frame.
    #[arg(long)]
    no_loss: bool,
    /// The network never duplicates a frame.
    #[arg(long)]
    no_duplicates: bool,
    /// The network keeps frames in order.
    #[arg(long)]
    fifo: bool,
    /// Run a deliberately broken link.
    #[arg(long, value_enum)]
    broken: Option<LinkVariant>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Args, Clone)]
struct AbortArgs {
    #[arg(long, default_value_t = AbortCfg::default().mode)]
    mode: Mode,
    #[arg(long, default_value_t = AbortCfg::default().nodes)]
    nodes: usize,
    /// Writes each replica issues.
    #[arg(long, default_value_t = AbortCfg::default().writes)]
    msgs: u64,
    /// Snapshots started in all.
    #[arg(long, default_value_t = AbortCfg::default().snapshots)]
    snapshots: usize,
    /// No replica crashes.
    #[arg(long)]
    no_crash: bool,
    /// No disk fails.
    #[arg(long)]
    no_store_failures: bool,
    /// Incoming connections each replica may lose.
    #[arg(long, default_value_t = AbortCfg::default().disconnects)]
    disconnects: usize,
    /// Run a deliberately broken runtime.
    #[arg(long, value_enum)]
    broken: Option<AdapterBug>,
    #[command(flatten)]
    search: SearchArgs,
}

impl SearchArgs {
    fn search(&self) -> Search {
        let strategy = match (self.dfs || self.symmetry, self.simulation) {
            (_, Some(seed)) => Strategy::Simulation(seed),
            (true, None) => Strategy::Dfs,
            (false, None) => Strategy::Bfs,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Search {
            strategy,
            depth: self.depth,
            threads: self.threads.unwrap_or(cores),
            timeout: self.timeout.map(Duration::from_secs),
            progress: true,
            symmetry: self.symmetry,
        }
    }
}

/// One model, configured: its title, what it promises if it is a broken
/// variant, and how to run it.
struct Job {
    title: String,
    /// For a broken variant: the property it must violate to count as caught.
    promises: Option<&'static str>,
    search: Search,
    /// With symmetry: also run without it, to print the reduction.
    compare: bool,
    model: AnyModel,
}

enum AnyModel {
    Causal(CausalCfg),
    Total(TotalCfg),
    Snapshot(SnapshotCfg),
    Kv(KvCfg),
    Link(LinkCfg),
    Abort(AbortCfg),
}

fn plural(k: impl Into<u64>, what: &str) -> String {
    let k = k.into();
    format!("{k} {what}{}", if k == 1 { "" } else { "s" })
}

impl ModelCmd {
    fn job(&self) -> Result<Job, String> {
        let mut job = self.configured()?;
        job.compare = self.search_args().compare;
        if job.search.symmetry && !matches!(job.model, AnyModel::Causal(_)) {
            return Err("--symmetry: only the causal model has a sound symmetry \
                 (see SYMMETRY in check --help)"
                .into());
        }
        Ok(job)
    }

    fn search_args(&self) -> &SearchArgs {
        match self {
            ModelCmd::Causal(a) => &a.search,
            ModelCmd::TotalSequencer(a) | ModelCmd::TotalIsis(a) => &a.search,
            ModelCmd::Snapshot(a) => &a.search,
            ModelCmd::Kv(a) => &a.search,
            ModelCmd::Link(a) => &a.search,
            ModelCmd::Abort(a) => &a.search,
        }
    }

    fn configured(&self) -> Result<Job, String> {
        Ok(match self.clone() {
            ModelCmd::Causal(a) => {
                let cfg = CausalCfg {
                    nodes: a.nodes,
                    msgs: a.msgs,
                    channels: a.network,
                    broken: a.broken,
                };
                Job {
                    title: format!(
                        "causal: {} x {}, {} channels{}",
                        plural(a.nodes as u64, "node"),
                        plural(a.msgs, "msg"),
                        cfg.effective_channels(),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Causal(cfg),
                }
            }
            ModelCmd::TotalSequencer(a) => total_job(Mode::TotalSequencer, a)?,
            ModelCmd::TotalIsis(a) => total_job(Mode::TotalIsis, a)?,
            ModelCmd::Snapshot(a) => {
                let cfg = SnapshotCfg {
                    mode: a.mode,
                    nodes: a.nodes,
                    transfers: a.msgs,
                    balance: a.balance,
                    amount: a.amount,
                    snapshots: a.snapshots,
                    channels: a.network,
                    broken: a.broken,
                };
                cfg.validate()?;
                Job {
                    title: format!(
                        "snapshot (bank over {}): {} of {} x {} of {}, {}, {} channels{}",
                        a.mode,
                        plural(a.nodes as u64, "account"),
                        a.balance,
                        plural(a.msgs, "transfer"),
                        a.amount,
                        plural(a.snapshots as u64, "snapshot"),
                        cfg.effective_channels(),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Snapshot(cfg),
                }
            }
            ModelCmd::Kv(a) => {
                let cfg = KvCfg {
                    mode: a.mode,
                    nodes: a.nodes,
                    writes: a.msgs,
                    snapshots: a.snapshots,
                    channels: a.network,
                    broken: a.broken,
                    faults: Faults {
                        disconnects: a.disconnects,
                        ..Faults::default()
                    },
                    batch: a.batch,
                };
                cfg.validate()?;
                let mut disconnects = if a.disconnects > 0 {
                    format!(", {} each", plural(a.disconnects as u64, "disconnect"))
                } else {
                    String::new()
                };
                if a.batch > 1 {
                    disconnects += &format!(", batches of up to {}", a.batch);
                }
                Job {
                    title: format!(
                        "kv over {}: {} x {}, {}, {} channels{disconnects}{}",
                        a.mode,
                        plural(a.nodes as u64, "replica"),
                        plural(a.msgs, "write"),
                        plural(a.snapshots as u64, "snapshot"),
                        cfg.effective_channels(),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Kv(cfg),
                }
            }
            ModelCmd::Link(a) => {
                if a.nodes < 2 {
                    return Err("a link needs --nodes 2 or more".into());
                }
                let cfg = LinkCfg {
                    nodes: a.nodes,
                    msgs: a.msgs,
                    faults: a.faults,
                    disconnects: a.disconnects,
                    lossy: !a.no_loss,
                    duplicating: !a.no_duplicates,
                    reordering: !a.fifo,
                    broken: a.broken,
                };
                let kinds: Vec<&str> = [
                    (cfg.lossy, "lose"),
                    (cfg.duplicating, "duplicate"),
                    (cfg.reordering, "reorder"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| *k)
                .collect();
                Job {
                    title: format!(
                        "link: {} x {} each way, {} ({}), {}{}",
                        plural(a.nodes as u64, "node"),
                        plural(a.msgs, "msg"),
                        plural(a.faults, "network fault"),
                        kinds.join("/"),
                        plural(a.disconnects, "disconnect"),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Link(cfg),
                }
            }
            ModelCmd::Abort(a) => {
                let cfg = AbortCfg {
                    mode: a.mode,
                    nodes: a.nodes,
                    writes: a.msgs,
                    snapshots: a.snapshots,
                    crash: !a.no_crash,
                    store_failures: !a.no_store_failures,
                    disconnects: a.disconnects,
                    broken: a.broken,
                };
                Job {
                    title: format!(
                        "abort over {}: {} x {}, {}, crash {}, disk failures {}, {}{}",
                        a.mode,
                        plural(a.nodes as u64, "replica"),
                        plural(a.msgs, "write"),
                        plural(a.snapshots as u64, "snapshot"),
                        if cfg.crash { "yes" } else { "no" },
                        if cfg.store_failures { "yes" } else { "no" },
                        plural(a.disconnects as u64, "disconnect"),
                        broken_suffix(a.broken.map(|b| (name_of(b), abort_model::caught_by(b))))
                    ),
                    promises: a.broken.map(abort_model::caught_by),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Abort(cfg),
                }
            }
        })
    }
}

fn total_job(mode: Mode, a: TotalArgs) -> Result<Job, String> {
    let cfg = TotalCfg {
        mode,
        nodes: a.nodes,
        msgs: a.msgs,
        channels: a.network,
        broken: a.broken,
    };
    cfg.validate()?;
    Ok(Job {
        title: format!(
            "{mode}: {} x {}, {} channels{}",
            plural(a.nodes as u64, "node"),
            plural(a.msgs, "msg"),
            cfg.effective_channels(),
            broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
        ),
        promises: a.broken.map(|b| b.caught_by()),
        search: a.search.search(),
        compare: false,
        model: AnyModel::Total(cfg),
    })
}

fn name_of(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

fn broken_suffix(b: Option<(String, &str)>) -> String {
    match b {
        Some((name, property)) => format!(", BROKEN: {name} (must violate \"{property}\")"),
        None => String::new(),
    }
}

fn expectation(e: &Expectation) -> &'static str {
    match e {
        Expectation::Always => "always",
        Expectation::Eventually => "eventually",
        Expectation::Sometimes => "sometimes",
    }
}

fn thousands(k: usize) -> String {
    let s = k.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints a verdict and judges it.
fn print_verdict(job: &Job, v: &Verdict) -> Outcome {
    let props: Vec<String> = v
        .properties
        .iter()
        .map(|(name, e)| format!("{} {name}", expectation(e)))
        .collect();
    println!("   properties: {}", props.join(", "));
    println!(
        "   {} unique states{}, {} total, depth {}, {:.2} s, {:.0} states/s{}",
        thousands(v.unique_states),
        if v.symmetry {
            " (up to renaming nodes)"
        } else {
            ""
        },
        thousands(v.total_states),
        v.max_depth,
        v.elapsed.as_secs_f64(),
        v.states_per_second(),
        if v.complete {
            ""
        } else {
            " (INCOMPLETE: not every state was explored)"
        }
    );
    if let Some(rss) = v.peak_rss {
        println!(
            "   peak RSS {:.1} MB, {} bytes per unique state",
            rss as f64 / 1e6,
            thousands((rss / v.unique_states.max(1) as u64) as usize)
        );
    }
    for f in v.failures() {
        println!(
            "   counterexample to {} \"{}\", {}:",
            expectation(&f.expectation),
            f.property,
            plural(f.path.len() as u64, "step")
        );
        for (k, step) in f.path.iter().enumerate() {
            println!("     {:>3}. {step}", k + 1);
        }
        if f.expectation == Expectation::Eventually {
            println!("          ... and nothing more can happen.");
        }
        if let Some(why) = &f.why {
            println!("     => {why}");
        }
    }
    for name in v.vacuous() {
        if job.promises.is_some() {
            println!("   note: the broken variant never reaches \"{name}\"");
        } else {
            println!(
                "   VACUOUS: no run reaches sometimes \"{name}\": part of the model never runs, \
                 so the other properties may hold for the wrong reason"
            );
        }
    }
    if !v.complete {
        let missing: Vec<_> = v
            .properties
            .iter()
            .filter(|(name, e)| *e == Expectation::Sometimes && v.finding(name).is_none())
            .map(|(name, _)| format!("\"{name}\""))
            .collect();
        if !missing.is_empty() {
            println!(
                "   note: no example yet of {} (the run is incomplete)",
                missing.join(", ")
            );
        }
    }
    let outcome = v.judge(job.promises);
    let violated: Vec<&str> = v.failures().map(|f| f.property).collect();
    let verdict = match (outcome, job.promises) {
        (Outcome::Pass, _) if !v.complete => {
            "INCOMPLETE (no violation in the states explored; not a proof)".to_string()
        }
        (Outcome::Pass, _) => "PASS".to_string(),
        (Outcome::Fail, _) => "FAIL".to_string(),
        (Outcome::Caught, Some(p)) => {
            format!("FAIL (expected: broken variant caught by \"{p}\")")
        }
        (_, p) => format!(
            "NOT CAUGHT (UNEXPECTED: the broken variant must violate \"{}\", which held{})",
            p.unwrap_or_default(),
            if violated.is_empty() {
                String::new()
            } else {
                format!("; it violated only {}", violated.join(", "))
            }
        ),
    };
    println!("   {verdict}");
    outcome
}

fn run(job: &Job) -> Verdict {
    println!("== {}", job.title);
    if job.compare {
        let plain = Search {
            symmetry: false,
            ..job.search.clone()
        };
        let (with, without) = (verdict(job, &job.search), verdict(job, &plain));
        println!(
            "   symmetry: {} unique states with, {} without ({:.1}x fewer; {:.2} s vs {:.2} s)",
            thousands(with.unique_states),
            thousands(without.unique_states),
            without.unique_states as f64 / with.unique_states.max(1) as f64,
            with.elapsed.as_secs_f64(),
            without.elapsed.as_secs_f64()
        );
        return with;
    }
    verdict(job, &job.search)
}

fn verdict(job: &Job, search: &Search) -> Verdict {
    match &job.model {
        AnyModel::Causal(c) => check(c.clone().into_model(), search),
        AnyModel::Total(c) => check(c.clone().into_model(), search),
        AnyModel::Snapshot(c) => check(c.clone().into_model(), search),
        AnyModel::Kv(c) => check(c.clone().into_model(), search),
        AnyModel::Link(c) => check(c.clone().into_model(), search),
        AnyModel::Abort(c) => check(c.clone().into_model(), search),
    }
}

fn explore<M>(model: M, addr: &str, threads: usize)
where
    M: Presented + Send + Sync + 'static,
    M::State: Clone + Debug + Hash + PartialEq + Send + Sync + 'static,
    M::Action: Clone + Debug + PartialEq + Send + Sync + 'static,
{
    // stateright's server panics on a busy address; say so plainly instead.
    if let Err(e) = std::net::TcpListener::bind(addr) {
        eprintln!("error: cannot listen on {addr}: {e}");
        std::process::exit(2);
    }
    println!("Explorer at http://{addr}/ (Ctrl-C to stop)");
    let _ = Explorer::new(model).checker().threads(threads).serve(addr);
}

/// The default sweep: every model at its default configuration.
fn defaults() -> Vec<Job> {
    let argvs: [&[&str]; 16] = [
        &["causal"],
        &["total-sequencer"],
        &["total-isis"],
        &["snapshot"],
        &["kv", "--mode", "fifo"],
        &["kv", "--mode", "causal"],
        &["kv", "--mode", "total-sequencer"],
        &["kv", "--mode", "total-isis"],
        &[
            "kv",
            "--mode",
            "causal",
            "--nodes",
            "3",
            "--msgs",
            "1",
            "--snapshots",
            "0",
        ],
        &["link"],
        &[
            "kv",
            "--mode",
            "total-sequencer",
            "--msgs",
            "1",
            "--disconnects",
            "1",
        ],
        &["abort"],
        &[
            "abort",
            "--msgs",
            "1",
            "--snapshots",
            "0",
            "--no-store-failures",
        ],
        // Batches of 1 and 2 writes: a replica may flush after each write or after two.
        &[
            "kv",
            "--mode",
            "total-sequencer",
            "--batch",
            "2",
            "--snapshots",
            "0",
        ],
        &[
            "kv",
            "--mode",
            "total-isis",
            "--batch",
            "2",
            "--snapshots",
            "0",
        ],
        &[
            "kv",
            "--mode",
            "causal",
            "--batch",
            "2",
            "--msgs",
            "3",
            "--snapshots",
            "0",
        ],
    ];
    argvs
        .iter()
        .map(|argv| {
            let cli = Cli::parse_from(std::iter::once(&"check").chain(argv.iter()));
            match cli.command {
                Some(Command::Model(m)) => m.job().expect("defaults are valid"),
                _ => unreachable!("a model subcommand"),
            }
        })
        .collect()
}

/// `check kv --save-path FILE`: writes the job's path for `sim --replay`.
fn save_path(job: &Job, file: &std::path::Path) -> Result<(), String> {
    let AnyModel::Kv(cfg) = &job.model else {
        return Err("--save-path saves kv paths only".into());
    };
    let seed = gsmo_model::replay::seed();
    if job.promises.is_none() {
        println!("random path: GSMO_SEED={seed}");
    }
    let path = gsmo_model::replay::kv_path(cfg.clone(), &job.title, job.promises, seed);
    gsmo_model::replay::save(&path, file)?;
    println!(
        "saved a path of {} spec steps to {}",
        path.steps.len(),
        file.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let save = match &cli.command {
        Some(Command::Model(ModelCmd::Kv(a))) => a.save_path.clone(),
        _ => None,
    };
    let jobs = match cli.command {
        None => defaults(),
        Some(Command::Model(m)) => match m.job() {
            Ok(job) => vec![job],
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        Some(Command::Explore { addr, model }) => {
            let job = match model.job() {
                Ok(job) => job,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let t = job.search.threads;
            match job.model {
                AnyModel::Causal(c) => explore(c.into_model(), &addr, t),
                AnyModel::Total(c) => explore(c.into_model(), &addr, t),
                AnyModel::Snapshot(c) => explore(c.into_model(), &addr, t),
                AnyModel::Kv(c) => explore(c.into_model(), &addr, t),
                AnyModel::Link(c) => explore(c.into_model(), &addr, t),
                AnyModel::Abort(c) => explore(c.into_model(), &addr, t),
            }
            return ExitCode::SUCCESS;
        }
    };
    if let Some(file) = save {
        if let Err(e) = save_path(&jobs[0], &file) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let mut summary = Vec::new();
    for job in &jobs {
        let v = run(job);
        let outcome = print_verdict(job, &v);
        summary.push((job.title.clone(), v, outcome));
        println!();
    }
    if summary.len() > 1 {
        println!(
            "{:<72} {:>12} {:>9} {:>12}  verdict",
            "model", "unique", "seconds", "states/s"
        );
        for (title, v, outcome) in &summary {
            let short: String = title.chars().take(72).collect();
            println!(
                "{short:<72} {:>12} {:>9.2} {:>12.0}  {}",
                thousands(v.unique_states),
                v.elapsed.as_secs_f64(),
                v.states_per_second(),
                match outcome {
                    Outcome::Pass if !v.complete => "INCOMPLETE",
                    Outcome::Pass => "PASS",
                    Outcome::Fail => "FAIL",
                    Outcome::Caught => "CAUGHT",
                    Outcome::NotCaught => "NOT CAUGHT",
                }
            );
        }
    }
    exit_status(summary.iter().map(|(_, v, o)| (*o, v.complete)))
}

/// 3 if a broken variant was not caught, else 1 if anything failed or was
/// caught, else 4 if a search stopped short (a partial search is not a
/// pass), else 0 (see EXIT STATUS).
fn exit_status(outcomes: impl Iterator<Item = (Outcome, bool)>) -> ExitCode {
    let outcomes: Vec<(Outcome, bool)> = outcomes.collect();
    if outcomes.iter().any(|(o, _)| *o == Outcome::NotCaught) {
        ExitCode::from(3)
    } else if outcomes.iter().any(|(o, _)| *o != Outcome::Pass) {
        ExitCode::from(1)
    } else if outcomes.iter().any(|(_, complete)| !complete) {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(argv: &[&str]) -> Result<Job, String> {
        let cli = Cli::try_parse_from(std::iter::once(&"check").chain(argv))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Some(Command::Model(m)) => m.job(),
            _ => Err("not a model".into()),
        }
    }

    #[test]
    fn the_default_sweep_is_every_model_unbroken() {
        let jobs = defaults();
        assert_eq!(jobs.len(), 16);
        assert!(jobs.iter().all(|j| j.promises.is_none()));
        let kv_modes: Vec<Mode> = jobs
            .iter()
            .filter_map(|j| match &j.model {
                AnyModel::Kv(c) if !c.faults.any() => Some(c.mode),
                _ => None,
            })
            .collect();
        assert_eq!(kv_modes[..4], Mode::ALL);
        // The features whose bugs need them: concurrent snapshots, overdrafts,
        // and three nodes for a causal chain.
        let snapshot = jobs.iter().find_map(|j| match &j.model {
            AnyModel::Snapshot(c) => Some(c.clone()),
            _ => None,
        });
        assert!(snapshot.is_some_and(|c| c.snapshots >= 2 && c.transfers >= 1));
        assert!(jobs.iter().any(|j| matches!(
            &j.model,
            AnyModel::Kv(c) if c.mode == Mode::Causal && c.nodes >= 3
        )));
        assert!(jobs.iter().any(|j| matches!(
            &j.model,
            AnyModel::Causal(c) if c.nodes >= 3
        )));
        // Batches of two, in a total mode and under last-writer-wins.
        for total in [true, false] {
            assert!(jobs.iter().any(|j| matches!(
                &j.model,
                AnyModel::Kv(c) if c.batch >= 2 && c.mode.is_total() == total
            )));
        }
    }

    #[test]
    fn model_arguments_reach_the_configuration() {
        let j = job(&[
            "kv",
            "--mode",
            "total-isis",
            "--nodes",
            "3",
            "--msgs",
            "1",
            "--broken",
            "no-tie-break",
            "--dfs",
            "--threads",
            "1",
        ])
        .unwrap();
        assert_eq!(j.promises, Some("total order"));
        assert_eq!(j.search.strategy, Strategy::Dfs);
        assert_eq!(j.search.threads, 1);
        let AnyModel::Kv(c) = j.model else {
            panic!("kv")
        };
        assert_eq!(
            (c.mode, c.nodes, c.writes, c.broken),
            (Mode::TotalIsis, 3, 1, Some(KvBug::NoTieBreak))
        );
        assert!(
            j.title.contains("must violate \"total order\""),
            "{}",
            j.title
        );

        let j = job(&[
            "causal",
            "--nodes",
            "3",
            "--msgs",
            "2",
            "--network",
            "unordered",
            "--simulation",
            "7",
            "--depth",
            "9",
        ])
        .unwrap();
        assert_eq!(j.search.strategy, Strategy::Simulation(7));
        assert_eq!(j.search.depth, Some(9));
        let AnyModel::Causal(c) = j.model else {
            panic!("causal")
        };
        assert_eq!((c.nodes, c.msgs, c.channels), (3, 2, Channels::Unordered));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(job(&["kv", "--mode", "causal", "--broken", "no-wait"]).is_err());
        assert!(job(&["total-isis", "--broken", "no-wait"]).is_err());
        assert!(job(&["causal", "--bfs", "--dfs"]).is_err());
        assert!(job(&["kv", "--mode", "paxos"]).is_err());
    }

    #[test]
    fn symmetry_only_where_sound_and_with_dfs() {
        let j = job(&["causal", "--symmetry"]).expect("causal is symmetric");
        assert!(j.search.symmetry && j.search.strategy == Strategy::Dfs && !j.compare);
        assert!(job(&["causal", "--symmetry", "--compare"]).is_ok_and(|j| j.compare));
        assert!(job(&["causal", "--symmetry", "--bfs"]).is_err());
        assert!(job(&["causal", "--compare"]).is_err());
        for model in [
            "snapshot",
            "total-sequencer",
            "total-isis",
            "kv",
            "link",
            "abort",
        ] {
            assert!(job(&[model, "--symmetry"]).is_err(), "{model}");
        }
    }

    #[test]
    fn save_path_writes_the_variants_counterexample() {
        assert!(job(&["link", "--save-path", "p"]).is_err(), "kv only");
        let dir = std::env::temp_dir().join(format!("gsmo-save-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.path");
        let j = job(&[
            "kv",
            "--mode",
            "fifo",
            "--broken",
            "delivery-order",
            "--save-path",
            "p",
        ])
        .unwrap();
        save_path(&j, &file).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(bytes.starts_with(gsmo_spec::path::MAGIC));
        let (path, _): (gsmo_spec::path::SpecPath, usize) = bincode::serde::decode_from_slice(
            &bytes[gsmo_spec::path::MAGIC.len()..],
            bincode::config::standard(),
        )
        .unwrap();
        assert_eq!(path.violates.as_deref(), Some("convergence"));
        assert_eq!(path.nodes.len(), 2);
        assert!(!path.steps.is_empty());
    }

    #[test]
    fn explore_takes_its_address_before_or_after_the_model() {
        for argv in [
            ["check", "explore", "snapshot", "--addr", "127.0.0.1:3999"],
            ["check", "explore", "--addr", "127.0.0.1:3999", "snapshot"],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            let Some(Command::Explore { addr, model }) = cli.command else {
                panic!("explore")
            };
            assert_eq!(addr, "127.0.0.1:3999");
            assert!(matches!(model.job().unwrap().model, AnyModel::Snapshot(_)));
        }
    }

    fn quiet(mut j: Job) -> Job {
        j.search.progress = false;
        j
    }

    #[test]
    fn a_variant_is_caught_only_by_the_property_it_promises() {
        let j = quiet(job(&["snapshot", "--broken", "debit-only"]).unwrap());
        assert_eq!(j.promises, Some("conservation"));
        let v = run(&j);
        assert_eq!(v.judge(j.promises), Outcome::Caught);
        assert_eq!(print_verdict(&j, &v), Outcome::Caught);
        // The same run judged against a promise it does not keep: other
        // properties failed, but the promised one held, so it is NOT caught.
        assert!(v.failures().next().is_some());
        assert_eq!(v.judge(Some("consistent cut")), Outcome::NotCaught);
        let liar = Job {
            promises: Some("consistent cut"),
            ..j
        };
        assert_eq!(print_verdict(&liar, &v), Outcome::NotCaught);
    }

    #[test]
    fn a_missing_example_fails_the_run() {
        // Balances so large that no transfer ever overdraws: the funds check's
        // refusing side never runs, and the sweep must say so.
        let j = quiet(job(&["snapshot", "--balance", "5"]).unwrap());
        let v = run(&j);
        assert!(v.failures().next().is_none());
        assert_eq!(v.vacuous(), vec!["overdraft refused"]);
        assert_eq!(v.judge(None), Outcome::Fail);
        let j = quiet(job(&["snapshot"]).unwrap());
        assert_eq!(run(&j).judge(None), Outcome::Pass);
    }

    #[test]
    fn the_default_sweep_passes_with_every_example_found() {
        // What `check` with no arguments runs, judged as it judges: no
        // counterexample, no missing example. bench/mutants.sh relies on it.
        for j in defaults().into_iter().map(quiet) {
            let v = run(&j);
            assert!(v.complete, "{}", j.title);
            assert_eq!(
                v.judge(None),
                Outcome::Pass,
                "{}: failures {:?}, vacuous {:?}",
                j.title,
                v.failures().map(|f| f.property).collect::<Vec<_>>(),
                v.vacuous()
            );
        }
    }
}
