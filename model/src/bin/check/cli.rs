//! The command line: one subcommand per model, its arguments, and the
//! [`Job`] each one configures.

use super::help::{ABOUT, LONG_ABOUT};
use clap::{Args, Parser, Subcommand};
use gsmo_model::abort::AbortCfg;
use gsmo_model::adapter::Channels;
use gsmo_model::causal::{CausalBug, CausalCfg};
use gsmo_model::faults::AdapterBug;
use gsmo_model::kv::{KvBug, KvCfg};
use gsmo_model::link::{LinkCfg, LinkVariant};
use gsmo_model::refusal::{RefusalBug, RefusalCfg};
use gsmo_model::snapshot::{SnapshotBug, SnapshotCfg};
use gsmo_model::total::{TotalBug, TotalCfg};
use gsmo_model::verdict::{Search, Strategy};
use gsmo_spec::multicast::Mode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "check", version, about = ABOUT, long_about = LONG_ABOUT)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum ModelCmd {
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
    /// overdraft refused, two snapshots in progress at one replica. With
    /// --max-snapshots, always: snapshots bounded; sometimes: a start refused.
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
    /// When a refused peer handshake stops a node (spec/src/refusal.rs).
    ///
    /// Each of --nodes addresses holds a node with the cluster's configuration,
    /// a misconfigured node, or a stranger that refuses every dialer; every
    /// assignment is an initial state, and running nodes dial in every order.
    /// Always: no node stops while another shares its configuration (a
    /// stranger or a misconfigured peer never stops a healthy node);
    /// sometimes: the odd one out stops.
    Refusal(RefusalArgs),
}

/// Saving a path for `sim --replay`, shared by the models the simulator replays.
#[derive(Args, Clone)]
pub(crate) struct PathArgs {
    /// Also write a path as spec steps for `sim --replay`: the
    /// variant's counterexample, else a random walk seeded by GSMO_SEED.
    #[arg(long, value_name = "FILE")]
    pub(crate) save_path: Option<std::path::PathBuf>,
    /// With --save-path: save this path chosen in the explorer instead (its
    /// URL, or the part after `#/steps/`, e.g. 0/2/1; the explorer must have
    /// run this model with the same options).
    #[arg(long, value_name = "STEPS", requires = "save_path")]
    pub(crate) explorer_path: Option<String>,
}

impl PathArgs {
    /// The file to write and, if chosen in the explorer, the path's steps.
    pub(crate) fn save(&self) -> Option<(std::path::PathBuf, Option<String>)> {
        self.save_path.clone().zip(Some(self.explorer_path.clone()))
    }
}

/// How to search, shared by every model.
#[derive(Args, Clone)]
pub(crate) struct SearchArgs {
    /// Breadth-first search: holds a whole frontier (the default is depth
    /// first, then breadth first only to shorten a counterexample).
    #[arg(long, conflicts_with_all = ["dfs", "simulation"])]
    pub(crate) bfs: bool,
    /// Depth-first search only: a counterexample as found, not shortened by
    /// breadth-first re-runs, so the memory stays the search's own.
    #[arg(long, conflicts_with = "simulation")]
    pub(crate) dfs: bool,
    /// Random walks from SEED until --timeout (default 10 s); never complete.
    #[arg(long, value_name = "SEED")]
    pub(crate) simulation: Option<u64>,
    /// Explore no deeper than D steps (the run is then incomplete).
    #[arg(long, value_name = "D")]
    pub(crate) depth: Option<usize>,
    /// Checker threads [default: all cores]. With --por (depth first), one thread a part
    /// (see POR in check --help).
    #[arg(long, value_name = "T")]
    pub(crate) threads: Option<usize>,
    /// Stop after this many seconds, on any number of threads (the run is then incomplete).
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u64>,
    /// Merge states that differ only by node names (causal only; depth first).
    #[arg(long, conflicts_with = "bfs")]
    pub(crate) symmetry: bool,
    /// Partial-order reduction: take a persistent set of each state's steps
    /// (snapshot only, ordered channels; see POR in check --help).
    #[arg(long)]
    pub(crate) por: bool,
    /// With --por: sleep sets on top, taking no step whose result another
    /// order of commuting steps reaches (depth first; see POR in check --help).
    #[arg(long, requires = "por", conflicts_with_all = ["bfs", "simulation"])]
    pub(crate) sleep: bool,
    /// With --symmetry or --por: also run without it and print both state counts.
    #[arg(long)]
    pub(crate) compare: bool,
}

#[derive(Args, Clone)]
pub(crate) struct CausalArgs {
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: usize,
    /// Messages each node multicasts.
    #[arg(long, default_value_t = 1)]
    pub(crate) msgs: u64,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    pub(crate) network: Channels,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    pub(crate) broken: Option<CausalBug>,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

#[derive(Args, Clone)]
pub(crate) struct TotalArgs {
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: usize,
    /// Messages each node multicasts.
    #[arg(long, default_value_t = 1)]
    pub(crate) msgs: u64,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    pub(crate) network: Channels,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    pub(crate) broken: Option<TotalBug>,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

#[derive(Args, Clone)]
pub(crate) struct SnapshotArgs {
    /// The total order the bank's replicas run: total-sequencer or total-isis.
    #[arg(long, default_value_t = SnapshotCfg::default().mode)]
    pub(crate) mode: Mode,
    #[arg(long, default_value_t = SnapshotCfg::default().nodes)]
    pub(crate) nodes: usize,
    /// Transfers each account makes.
    #[arg(long, default_value_t = SnapshotCfg::default().transfers)]
    pub(crate) msgs: u64,
    /// Each account's starting balance.
    #[arg(long, default_value_t = SnapshotCfg::default().balance)]
    pub(crate) balance: u64,
    /// Account i moves AMOUNT * (i + 1) per transfer (so some transfers overdraw).
    #[arg(long, default_value_t = SnapshotCfg::default().amount)]
    pub(crate) amount: u64,
    /// Snapshots started in all, by any accounts.
    #[arg(long, default_value_t = SnapshotCfg::default().snapshots)]
    pub(crate) snapshots: usize,
    /// Each account refuses to start a snapshot while N are in progress
    /// there (the node's --max-snapshots); judges "snapshots bounded", and
    /// below --snapshots asks for a refusal (unset: the node's default of 4,
    /// which no default run reaches).
    #[arg(long, value_name = "N")]
    pub(crate) max_snapshots: Option<u64>,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    pub(crate) network: Channels,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    pub(crate) broken: Option<SnapshotBug>,
    #[command(flatten)]
    pub(crate) path: PathArgs,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

#[derive(Args, Clone)]
pub(crate) struct KvArgs {
    /// The ordering mode the replicas run: fifo, causal, total-sequencer or total-isis.
    #[arg(long, default_value_t = Mode::TotalSequencer)]
    pub(crate) mode: Mode,
    #[arg(long, default_value_t = KvCfg::default().nodes)]
    pub(crate) nodes: usize,
    /// Writes each replica issues.
    #[arg(long, default_value_t = KvCfg::default().writes)]
    pub(crate) msgs: u64,
    /// Snapshots started in all, by any replicas.
    #[arg(long, default_value_t = KvCfg::default().snapshots)]
    pub(crate) snapshots: usize,
    #[arg(long, value_enum, default_value_t = Channels::Ordered)]
    pub(crate) network: Channels,
    /// Incoming connections each replica may lose (the link layer resumes them).
    #[arg(long, default_value_t = 0)]
    pub(crate) disconnects: usize,
    /// Writes a replica multicasts as one batch at most; above 1 a replica may
    /// also flush a smaller batch at any moment (fifo/causal then write blind SETs).
    #[arg(long, default_value_t = KvCfg::default().batch)]
    pub(crate) batch: u64,
    /// Each link's buffer, in bytes (the node's --link-buffer), small enough
    /// to fill: a peer that falls behind gets writes refused (TRYAGAIN) and,
    /// under total-sequencer, the sequencer's acks held. Adds "writes flow
    /// when quiet": with nothing in flight, no link is full. 1 fills a link
    /// with any one frame.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) link_buffer: Option<u64>,
    /// Run a deliberately broken variant (it replaces --network if it is one).
    #[arg(long, value_enum)]
    pub(crate) broken: Option<KvBug>,
    #[command(flatten)]
    pub(crate) path: PathArgs,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

#[derive(Args, Clone)]
pub(crate) struct LinkArgs {
    #[arg(long, default_value_t = LinkCfg::default().nodes)]
    pub(crate) nodes: usize,
    /// Messages each node sends to each other node.
    #[arg(long, default_value_t = LinkCfg::default().msgs)]
    pub(crate) msgs: u8,
    /// Frames the network may lose, duplicate or deliver out of order, in all.
    #[arg(long, default_value_t = LinkCfg::default().faults)]
    pub(crate) faults: u8,
    /// Connection breaks, in all.
    #[arg(long, default_value_t = LinkCfg::default().disconnects)]
    pub(crate) disconnects: u8,
    /// The network never loses a frame.
    #[arg(long)]
    pub(crate) no_loss: bool,
    /// The network never duplicates a frame.
    #[arg(long)]
    pub(crate) no_duplicates: bool,
    /// The network keeps frames in order.
    #[arg(long)]
    pub(crate) fifo: bool,
    /// Run a deliberately broken link.
    #[arg(long, value_enum)]
    pub(crate) broken: Option<LinkVariant>,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

#[derive(Args, Clone)]
pub(crate) struct RefusalArgs {
    /// Addresses (nodes or strangers).
    #[arg(long, default_value_t = RefusalCfg::default().nodes)]
    pub(crate) nodes: usize,
    /// Run the rule before it: any refusal stops the dialer.
    #[arg(long, value_enum)]
    pub(crate) broken: Option<RefusalBug>,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

#[derive(Args, Clone)]
pub(crate) struct AbortArgs {
    #[arg(long, default_value_t = AbortCfg::default().mode)]
    pub(crate) mode: Mode,
    #[arg(long, default_value_t = AbortCfg::default().nodes)]
    pub(crate) nodes: usize,
    /// Writes each replica issues.
    #[arg(long, default_value_t = AbortCfg::default().writes)]
    pub(crate) msgs: u64,
    /// Snapshots started in all.
    #[arg(long, default_value_t = AbortCfg::default().snapshots)]
    pub(crate) snapshots: usize,
    /// No replica crashes.
    #[arg(long)]
    pub(crate) no_crash: bool,
    /// No disk fails.
    #[arg(long)]
    pub(crate) no_store_failures: bool,
    /// Incoming connections each replica may lose.
    #[arg(long, default_value_t = AbortCfg::default().disconnects)]
    pub(crate) disconnects: usize,
    /// Run a deliberately broken runtime.
    #[arg(long, value_enum)]
    pub(crate) broken: Option<AdapterBug>,
    #[command(flatten)]
    pub(crate) path: PathArgs,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
}

impl SearchArgs {
    pub(crate) fn search(&self) -> Search {
        let strategy = match (self.bfs, self.simulation) {
            (_, Some(seed)) => Strategy::Simulation(seed),
            (true, None) => Strategy::Bfs,
            (false, None) => Strategy::Dfs,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Search {
            strategy,
            depth: self.depth,
            threads: self.threads.unwrap_or(cores),
            timeout: self.timeout.map(Duration::from_secs),
            progress: true,
            symmetry: self.symmetry,
            por: self.por,
            sleep: self.sleep,
            shortest: !self.dfs,
        }
    }
}

/// One model, configured: its title, what it promises if it is a broken
/// variant, and how to run it.
pub(crate) struct Job {
    pub(crate) title: String,
    /// For a broken variant: the property it must violate to count as caught.
    pub(crate) promises: Option<&'static str>,
    pub(crate) search: Search,
    /// With symmetry or partial-order reduction: also run without it, to
    /// print the reduction.
    pub(crate) compare: bool,
    pub(crate) model: AnyModel,
}

pub(crate) enum AnyModel {
    Causal(CausalCfg),
    Total(TotalCfg),
    Snapshot(SnapshotCfg),
    Kv(KvCfg),
    Link(LinkCfg),
    Abort(AbortCfg),
    Refusal(RefusalCfg),
}
