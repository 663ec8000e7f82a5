//! `gsmo`: run a replica (`gsmo node`) or a local cluster of them (`gsmo cluster`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gsmo_node::config::{
    parse_cluster, LogFormat, NodeConfig, DEFAULT_CLIENT_BASE, DEFAULT_CLUSTER_ID,
    DEFAULT_PEER_BASE,
};
use gsmo_node::launcher::{self, LaunchConfig};
use gsmo_node::{resp, serve, shiviz};
use gsmo_spec::multicast::Mode;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

const EXAMPLES: &str = "\
Examples:
  # three local replicas in one command; Ctrl-C stops them all
  gsmo cluster --nodes 3 --mode total-isis
  redis-cli -p 6380 SET x 1 && redis-cli -p 6381 GET x
  redis-cli -p 6380 TRANSFER alice bob 10
  redis-cli -p 6380 SNAPSHOT
  redis-cli -p 6380 INFO

  # the same by hand, one terminal per node
  gsmo node --id 0 --cluster 3 --mode causal
  gsmo node --id 1 --cluster 3 --mode causal
  gsmo node --id 2 --cluster 3 --mode causal

  # across hosts: the same file everywhere, line i = node i's peer address
  gsmo node --id 1 --cluster cluster.txt --peer-listen 0.0.0.0:7100 --bind 0.0.0.0

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
    /// Directory for snapshot parts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `text`: tracing logs on stderr, status on stdout. `shiviz`: ShiViz event lines on stdout.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Multicast history events kept for GSMO.HISTORY.
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
    /// Snapshot parts go to DIR/n<i>.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
    cfg.data_dir = a.data_dir;
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
    launcher::run(LaunchConfig {
        nodes: a.nodes,
        mode: a.mode,
        cluster_id: a.cluster_id,
        peer_base: a.peer_base,
        client_base: a.client_base,
        data_dir: a.data_dir,
        log_format: a.log_format,
        bin,
    })
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Cmd::Node(a) => run_node(a).await,
        Cmd::Cluster(a) => run_cluster(a).await,
    }
}
