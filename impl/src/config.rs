//! Cluster membership and per-node settings.
//!
//! A cluster is an ordered list of peer addresses: node `i` listens for its
//! peers at entry `i`. The list comes from `--cluster`, which accepts a node
//! count (all on 127.0.0.1, peer port = base + id), a comma-separated list, or
//! a file with one address per line, so nodes can run on other hosts.

use crate::admission::Admission;
use crate::secret::{Secret, CLUSTER_SECRET_ENV};
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Limits;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::NodeId;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Node `i` listens for peers on `DEFAULT_PEER_BASE + i` unless told otherwise.
pub const DEFAULT_PEER_BASE: u16 = 7100;
/// Node `i` serves Redis clients on `DEFAULT_CLIENT_BASE + i` unless told otherwise.
pub const DEFAULT_CLIENT_BASE: u16 = 6380;
/// Every member's handshake must carry the same cluster id.
pub const DEFAULT_CLUSTER_ID: &str = "gsmo";
/// Frames a peer connection's writer may have queued before it is closed.
pub const DEFAULT_PEER_QUEUE: usize = 4096;
/// Inputs (client runs, peer frames, link events, ticks) queued for the event
/// loop before the tasks that send them wait: four of the loop's turns' worth.
pub const DEFAULT_INPUT_QUEUE: usize = 4096;
/// Largest cluster the handshake and the per-node arrays are sized for.
pub const MAX_NODES: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read cluster file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("bad peer address `{0}`: expected HOST:PORT, e.g. 127.0.0.1:7100")]
    Address(String),
    #[error("the cluster has no members")]
    Empty,
    #[error("a cluster of {0} nodes is more than the {MAX_NODES} supported")]
    TooBig(usize),
    #[error("node id {id} is out of range for a cluster of {n} (ids are 0..{n})")]
    IdOutOfRange { id: NodeId, n: usize },
    #[error("peer port {base} + {n} nodes runs past port 65535")]
    PortRange { base: u16, n: usize },
    #[error("address {0} appears twice in the cluster list")]
    Duplicate(String),
    #[error("the cluster file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("the cluster id is empty")]
    EmptyClusterId,
    #[error(
        "{what} {addr} is not a loopback address, and without a cluster secret any host could \
             join as a peer: put the same secret on every node in a file and pass \
             --cluster-secret-file FILE (or set {CLUSTER_SECRET_ENV}), e.g. \
             `head -c 32 /dev/urandom | base64 > secret`"
    )]
    Unauthenticated { what: &'static str, addr: String },
}

/// Parses `--cluster`: an existing file, a node count, or `HOST:PORT,HOST:PORT,...`.
pub fn parse_cluster(arg: &str, peer_base: u16) -> Result<Vec<String>, ConfigError> {
    let arg = arg.trim();
    let path = Path::new(arg);
    let addrs = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        parse_list(text.lines().map(|l| l.split('#').next().unwrap_or("")))?
    } else if let Ok(n) = arg.parse::<usize>() {
        local_cluster(n, peer_base)?
    } else if looks_like_a_path(arg) {
        return Err(ConfigError::MissingFile(path.to_path_buf()));
    } else {
        parse_list(arg.split(','))?
    };
    check_members(&addrs)?;
    Ok(addrs)
}

/// `dir/file` or `file.ext` (but not `10.0.0.1` or `host:port`): a missing cluster file.
fn looks_like_a_path(arg: &str) -> bool {
    !arg.contains([':', ','])
        && (arg.contains('/')
            || arg
                .rsplit_once('.')
                .is_some_and(|(_, ext)| ext.chars().any(|c| c.is_ascii_alphabetic())))
}

/// `n` nodes on 127.0.0.1 with consecutive peer ports from `base`.
pub fn local_cluster(n: usize, base: u16) -> Result<Vec<String>, ConfigError> {
    if n == 0 {
        return Err(ConfigError::Empty);
    }
    let ports = port_run(base, n).ok_or(ConfigError::PortRange { base, n })?;
    Ok(ports.map(|p| format!("127.0.0.1:{p}")).collect())
}

/// The `n` consecutive ports from `base`, if the last is at most 65535 (the
/// launcher numbers its nodes' peer and client ports this way).
pub fn port_run(base: u16, n: usize) -> Option<impl Iterator<Item = u16>> {
    let end = usize::from(base) + n;
    (end <= usize::from(u16::MAX) + 1).then(|| (0..n).map(move |i| base + i as u16))
}

fn parse_list<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<String>, ConfigError> {
    items
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| check_address(s).map(|()| s.to_string()))
        .collect()
}

/// `HOST:PORT` with a numeric port; `[v6]:PORT` works too. The host is resolved at connect time.
pub fn check_address(s: &str) -> Result<(), ConfigError> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(ConfigError::Address(s.to_string())),
    }
}

fn check_members(addrs: &[String]) -> Result<(), ConfigError> {
    if addrs.is_empty() {
        return Err(ConfigError::Empty);
    }
    if addrs.len() > MAX_NODES {
        return Err(ConfigError::TooBig(addrs.len()));
    }
    for (i, a) in addrs.iter().enumerate() {
        if addrs[..i].contains(a) {
            return Err(ConfigError::Duplicate(a.clone()));
        }
    }
    Ok(())
}

/// Whether `HOST:PORT` names this machine's loopback interface (without resolving names).
pub fn is_loopback(addr: &str) -> bool {
    let Some((host, _)) = addr.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == IpAddr::V6(Ipv6Addr::LOCALHOST))
}

/// How a node logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable tracing lines on stderr; status lines on stdout.
    #[default]
    Text,
    /// ShiViz event lines (`n0 {"n0":3,"n1":1} event`) on stdout; everything else on stderr.
    Shiviz,
}

/// The value of an on/off option (`--nagle on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

impl From<bool> for Toggle {
    fn from(on: bool) -> Self {
        if on {
            Toggle::On
        } else {
            Toggle::Off
        }
    }
}

impl std::fmt::Display for Toggle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        flag_value(self, f)
    }
}

/// Writes `value` as its flag takes it: clap's spelling, the one `--help`
/// lists, so that INFO and the launcher's arguments to its nodes cannot drift
/// from what the flag accepts.
pub fn flag_value(
    value: &impl clap::ValueEnum,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    f.write_str(
        value
            .to_possible_value()
            .expect("every flag value is visible")
            .get_name(),
    )
}

/// Everything one node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Peer addresses in node-id order (`peers[id]` is this node's own).
    pub peers: Vec<String>,
    pub mode: Mode,
    pub cluster_id: String,
    /// Where to listen for peers (defaults to `peers[id]`).
    pub peer_listen: String,
    /// Where to serve Redis clients.
    pub client_listen: String,
    /// Where snapshot parts go: `DATA_DIR/snapshots/<id>/part-<node>.gsmo`.
    /// Claimed at start for this cluster and node id (`snapshot::datadir`).
    /// Members of a local cluster share it, so that the node writing the last
    /// part can assemble the manifest.
    pub data_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Multicast history events kept for `GSMO.HISTORY` before recording stops
    /// (recorded only when debug commands are allowed: nobody else can read them).
    pub history_limit: usize,
    /// Start a snapshot this often.
    pub snapshot_every: Option<Duration>,
    /// The spec's fault bounds: write timeout, unreachable-after, snapshot
    /// timeout, link buffer bytes.
    pub limits: Limits,
    /// Frames queued for one peer connection's writer behind its resume's
    /// resend (which goes whole: it is the link's retained frames); a
    /// connection whose queue is full is closed (the link's retained buffer
    /// and the resume refill it).
    pub peer_queue: usize,
    /// Inputs queued for the event loop before the connections and peer
    /// readers that send them wait (backpressure, never a loss).
    pub input_queue: usize,
    /// Complete snapshots kept on disk; older ones are deleted.
    pub snapshot_keep: usize,
    /// Start from a stored snapshot instead of empty.
    pub restore: Option<RestoreFrom>,
    /// Record every spec input and output here, for `gsmo trace check`.
    pub trace: Option<PathBuf>,
    pub faults: Faults,
    /// Peers prove they know it in the handshake; without it peers must be on loopback.
    pub cluster_secret: Option<Arc<Secret>>,
    /// Who may connect and run what, client limits, and their live counters;
    /// shared by the client door and `INFO`.
    pub admission: Arc<Admission>,
}

/// Which stored snapshot to start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreFrom {
    /// The newest complete one (by cut and id); refused if that one is damaged.
    Latest,
    /// The newest complete one that is whole, skipping damaged newer ones with a warning.
    LatestValid,
    Id(SnapshotId),
}

impl std::str::FromStr for RestoreFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(RestoreFrom::Latest),
            "latest-valid" => Ok(RestoreFrom::LatestValid),
            _ => s
                .parse()
                .map(RestoreFrom::Id)
                .map_err(|e| format!("{e}, `latest` or `latest-valid`")),
        }
    }
}

impl std::fmt::Display for RestoreFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreFrom::Latest => f.write_str("latest"),
            RestoreFrom::LatestValid => f.write_str("latest-valid"),
            RestoreFrom::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Faults injected on purpose, to test that ordering and snapshots survive
/// them. Delays are per outgoing channel and never reorder one channel's
/// frames (TCP would not), but they do interleave different senders' messages
/// in many orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every outgoing peer frame waits a random time in this range first.
    pub delay: Option<DelayRange>,
    /// This node's event loop pauses this long before each batch of inputs
    /// (a slow or overloaded replica).
    pub slow: Option<Duration>,
    /// Break one random peer connection at random intervals averaging this.
    pub disconnect_every: Option<Duration>,
    /// Seeds the delay and disconnect generators, so a run can be replayed.
    pub seed: u64,
    /// A deliberate runtime bug (hidden `--bug`), for tests that the simulator's
    /// seed sweep catches it.
    pub bug: Option<RuntimeBug>,
}

/// Deliberate runtime bugs: test-only knobs, hidden from `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeBug {
    /// The `--delay` line releases a channel's frames by their own delays
    /// alone, so a later frame may overtake an earlier one.
    ReorderDelayLine,
    /// The writer of a re-dialed connection loses the first frame it is given.
    DropAfterReconnect,
}

/// A delay range in milliseconds: `MS` or `MIN-MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl std::str::FromStr for DelayRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("bad delay `{s}`: expected MS or MIN-MAX in milliseconds, e.g. 0-20");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (min_ms, max_ms) = (
            a.trim().parse().map_err(|_| err())?,
            b.trim().parse().map_err(|_| err())?,
        );
        if min_ms > max_ms {
            return Err(err());
        }
        Ok(DelayRange { min_ms, max_ms })
    }
}

impl std::fmt::Display for DelayRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min_ms, self.max_ms)
    }
}

impl NodeConfig {
    /// A node of a cluster whose peer list is known; checks the id is in range.
    pub fn new(id: NodeId, peers: Vec<String>, mode: Mode) -> Result<Self, ConfigError> {
        check_members(&peers)?;
        if id >= peers.len() {
            return Err(ConfigError::IdOutOfRange { id, n: peers.len() });
        }
        let client_port = usize::from(DEFAULT_CLIENT_BASE) + id;
        Ok(NodeConfig {
            id,
            peer_listen: peers[id].clone(),
            peers,
            mode,
            cluster_id: DEFAULT_CLUSTER_ID.to_string(),
            client_listen: format!("127.0.0.1:{client_port}"),
            data_dir: None,
            log_format: LogFormat::Text,
            history_limit: 1_000_000,
            snapshot_every: None,
            limits: Limits::default(),
            peer_queue: DEFAULT_PEER_QUEUE,
            input_queue: DEFAULT_INPUT_QUEUE,
            snapshot_keep: 5,
            restore: None,
            trace: None,
            faults: Faults::default(),
            cluster_secret: None,
            admission: Arc::new(Admission::default()),
        })
    }

    /// Refuses settings the node could not run safely: an empty cluster id, and
    /// peer addresses off loopback without a cluster secret.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.cluster_id.is_empty() {
            return Err(ConfigError::EmptyClusterId);
        }
        if self.cluster_secret.is_none() {
            let listen = std::iter::once(("--peer-listen", &self.peer_listen));
            let members = self.peers.iter().map(|a| ("peer address", a));
            if let Some((what, addr)) = listen.chain(members).find(|(_, a)| !is_loopback(a)) {
                return Err(ConfigError::Unauthenticated {
                    what,
                    addr: addr.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn cluster_size(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// What INFO and the launcher print is what the flag parses back.
    #[test]
    fn flag_values_print_as_the_flag_takes_them() {
        assert_eq!(Toggle::from(true).to_string(), "on");
        assert_eq!(Toggle::from(false).to_string(), "off");
        for t in Toggle::value_variants() {
            assert_eq!(Toggle::from_str(&t.to_string(), false), Ok(*t));
        }
        for p in crate::pages::HugePages::value_variants() {
            assert_eq!(
                crate::pages::HugePages::from_str(&p.to_string(), false),
                Ok(*p)
            );
        }
    }

    #[test]
    fn count_list_and_file_forms() {
        assert_eq!(
            parse_cluster("3", 7100).unwrap(),
            vec!["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102"]
        );
        assert_eq!(
            parse_cluster("a.example:1, b.example:2", 7100).unwrap(),
            vec!["a.example:1", "b.example:2"]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster.txt");
        std::fs::write(
            &file,
            "# members\n10.0.0.1:7100\n\n10.0.0.2:7100  # second\n",
        )
        .unwrap();
        assert_eq!(
            parse_cluster(file.to_str().unwrap(), 7100).unwrap(),
            vec!["10.0.0.1:7100", "10.0.0.2:7100"]
        );
    }

    #[test]
    fn delays_and_restore_points_parse() {
        let d: DelayRange = "0-20".parse().unwrap();
        assert_eq!((d.min_ms, d.max_ms), (0, 20));
        let d: DelayRange = "7".parse().unwrap();
        assert_eq!((d.min_ms, d.max_ms), (7, 7));
        assert!("20-1".parse::<DelayRange>().is_err());
        assert!("fast".parse::<DelayRange>().is_err());
        assert_eq!("latest".parse(), Ok(RestoreFrom::Latest));
        assert_eq!("latest-valid".parse(), Ok(RestoreFrom::LatestValid));
        assert_eq!(
            "1-4".parse(),
            Ok(RestoreFrom::Id(SnapshotId {
                initiator: 1,
                seq: 4
            }))
        );
        assert!("yesterday".parse::<RestoreFrom>().is_err());
    }

    #[test]
    fn bad_clusters_are_refused_with_a_reason() {
        assert_eq!(parse_cluster("0", 7100), Err(ConfigError::Empty));
        assert!(matches!(
            parse_cluster("nohost", 7100),
            Err(ConfigError::Address(_))
        ));
        assert!(matches!(
            parse_cluster("h:1,h:1", 7100),
            Err(ConfigError::Duplicate(_))
        ));
        assert!(matches!(
            parse_cluster("3", 65534),
            Err(ConfigError::PortRange { .. })
        ));
        // Each address needs a host and a numeric port that fits in 16 bits.
        for bad in [":7100", "h:", "h:x", "h:70000", "h7100"] {
            assert_eq!(
                parse_cluster(&format!("a:1,{bad}"), 7100),
                Err(ConfigError::Address(bad.into())),
                "{bad}"
            );
        }
        assert!(parse_cluster("[::1]:7100,h:65535", 7100).is_ok());
        // As many nodes as the bound allows, and not one more.
        assert_eq!(parse_cluster("64", 7100).unwrap().len(), MAX_NODES);
        assert_eq!(parse_cluster("65", 7100), Err(ConfigError::TooBig(65)));
        assert_eq!(
            port_run(65534, 2).unwrap().collect::<Vec<_>>(),
            [65534, 65535]
        );
        assert!(port_run(65534, 3).is_none());
        assert_eq!(port_run(65535, 0).unwrap().count(), 0);
        // The last port is usable: the range ends at 65535, not before it.
        assert_eq!(
            parse_cluster("2", 65534).unwrap(),
            ["127.0.0.1:65534", "127.0.0.1:65535"]
        );
        assert!(matches!(
            NodeConfig::new(3, local_cluster(3, 7100).unwrap(), Mode::Fifo),
            Err(ConfigError::IdOutOfRange { id: 3, n: 3 })
        ));
        assert!(matches!(
            parse_cluster("no-such-cluster.txt", 7100),
            Err(ConfigError::MissingFile(_))
        ));
    }

    #[test]
    fn peers_off_loopback_need_a_secret() {
        for a in ["127.0.0.1:1", "127.8.0.1:1", "localhost:1", "[::1]:1"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "0.0.0.0:1",
            "10.0.0.1:1",
            "[::]:1",
            "db.example:1",
            "nohost",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
        let peers = vec!["10.0.0.1:7100".to_string(), "10.0.0.2:7100".to_string()];
        let mut cfg = NodeConfig::new(0, peers, Mode::Fifo).unwrap();
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("--cluster-secret-file"), "{err}");
        cfg.cluster_secret = Some(Arc::new(Secret::new("s")));
        cfg.check().unwrap();
        cfg.cluster_id.clear();
        assert_eq!(cfg.check(), Err(ConfigError::EmptyClusterId));
        let local = NodeConfig::new(1, local_cluster(2, 7100).unwrap(), Mode::Fifo).unwrap();
        local.check().unwrap();
    }
}
