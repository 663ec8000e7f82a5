//! A deterministic in-memory cluster: replicas joined by FIFO channels that the
//! caller steps one message at a time. Tests use it to explore interleavings,
//! and `gsmo snapshot verify` uses it to prove a snapshot restores to one state
//! everywhere, without starting a single process.

use crate::kv::Reply;
use crate::multicast::{Mode, MsgId};
use crate::node::{Command, Input, LinkFrame, Node, Output, Part, PeerError, RequestId};
use crate::properties::Event;
use crate::snapshot::PartSummary;
use crate::snapshot::SnapshotId;
use crate::NodeId;
use std::collections::{BTreeMap, VecDeque};

/// Reliable FIFO channels between every ordered pair of nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FifoNetwork<M> {
    channels: BTreeMap<(NodeId, NodeId), VecDeque<M>>,
}

impl<M> FifoNetwork<M> {
    pub fn new() -> Self {
        FifoNetwork {
            channels: BTreeMap::new(),
        }
    }

    pub fn send(&mut self, from: NodeId, to: NodeId, msg: M) {
        self.channels.entry((from, to)).or_default().push_back(msg);
    }

    /// Takes the oldest message on channel `from -> to`.
    pub fn receive(&mut self, from: NodeId, to: NodeId) -> Option<M> {
        self.channels
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
    }

    /// The oldest message on channel `from -> to`, left in place.
    pub fn head(&self, from: NodeId, to: NodeId) -> Option<&M> {
        self.channels.get(&(from, to)).and_then(VecDeque::front)
    }

    /// Channels with messages in flight, in a fixed order.
    pub fn busy(&self) -> Vec<(NodeId, NodeId)> {
        self.channels
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.channels.values().map(VecDeque::len).sum()
    }
}

/// The fixed part of [`Cluster::quiesce_bound`].
pub const QUIESCE_MARGIN: usize = 100_000;

/// Why a simulated cluster did not run to quiescence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuiesceError {
    /// A node refused a message.
    Peer(PeerError),
    /// Still busy after `steps` deliveries: a livelock.
    NoQuiet { steps: usize, in_flight: usize },
}

impl From<PeerError> for QuiesceError {
    fn from(e: PeerError) -> Self {
        QuiesceError::Peer(e)
    }
}

impl std::fmt::Display for QuiesceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuiesceError::Peer(e) => e.fmt(f),
            QuiesceError::NoQuiet { steps, in_flight } => write!(
                f,
                "not quiet after {steps} deliveries ({in_flight} messages still in flight): \
                 the nodes keep sending each other messages (a livelock)"
            ),
        }
    }
}

impl std::error::Error for QuiesceError {}

/// A whole simulated cluster of [`Node`]s, with each node's multicast history.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub network: FifoNetwork<LinkFrame>,
    /// Per-node send/deliver events, for the [`crate::properties`] predicates.
    pub logs: Vec<Vec<Event>>,
    /// Client replies, per node, by request.
    pub replies: Vec<BTreeMap<RequestId, Reply>>,
    /// Completed snapshot parts by id, indexed by node.
    pub parts: BTreeMap<SnapshotId, Vec<Option<Part>>>,
    next_req: RequestId,
}

impl Cluster {
    /// `n` connected replicas running `mode`.
    pub fn new(n: usize, mode: Mode) -> Self {
        Self::from_nodes((0..n).map(|i| Node::new(i, n, mode)).collect())
    }

    /// A cluster of these replicas, every connection brought up as a runtime
    /// would report it (so frames a restore queued go out).
    pub fn from_nodes(nodes: Vec<Node>) -> Self {
        let n = nodes.len();
        let mut c = Cluster {
            nodes,
            network: FifoNetwork::new(),
            logs: vec![Vec::new(); n],
            replies: vec![BTreeMap::new(); n],
            parts: BTreeMap::new(),
            next_req: 0,
        };
        for i in 0..n {
            for peer in (0..n).filter(|&j| j != i) {
                for input in [
                    Input::InboundUp { peer },
                    Input::LinkUp { peer, delivered: 0 },
                ] {
                    let out = c.nodes[i].handle(input).expect("a fresh link comes up");
                    c.carry_out(i, out);
                }
            }
        }
        c
    }

    /// Restores every node from one complete snapshot (parts in node order) and
    /// carries out what restoring produced (re-injected channel messages).
    pub fn restore(parts: &[Part]) -> Result<Self, PeerError> {
        let mut nodes = Vec::new();
        let mut outputs = Vec::new();
        for p in parts {
            let (node, out) = Node::restore(p)?;
            nodes.push(node);
            outputs.push(out);
        }
        let mut c = Cluster::from_nodes(nodes);
        for (i, out) in outputs.into_iter().enumerate() {
            c.carry_out(i, out);
        }
        Ok(c)
    }

    pub fn client(&mut self, node: NodeId, cmd: Command) -> RequestId {
        self.next_req += 1;
        let req = self.next_req;
        let out = self.nodes[node].on_client(req, cmd);
        self.carry_out(node, out);
        req
    }

    /// Feeds `node` any input (a flush, a tick) and carries its outputs out.
    pub fn input(&mut self, node: NodeId, input: Input) -> Result<(), PeerError> {
        let out = self.nodes[node].handle(input)?;
        self.carry_out(node, out);
        Ok(())
    }

    /// Starts a snapshot at `node`, which must be within its bound.
    pub fn snapshot(&mut self, node: NodeId) -> SnapshotId {
        self.try_snapshot(node)
            .expect("within the bound on snapshots in progress")
    }

    /// Starts a snapshot at `node`, or `None` if it refuses (its bound on
    /// snapshots in progress), as a random schedule may find it.
    pub fn try_snapshot(&mut self, node: NodeId) -> Option<SnapshotId> {
        let (id, out) = self.nodes[node].start_snapshot().ok()?;
        self.carry_out(node, out);
        Some(id)
    }

    /// Delivers the oldest message on `from -> to`; false if the channel was empty.
    pub fn step(&mut self, from: NodeId, to: NodeId) -> Result<bool, PeerError> {
        let Some(frame) = self.network.receive(from, to) else {
            return Ok(false);
        };
        let out = self.nodes[to].on_peer(from, frame)?;
        self.carry_out(to, out);
        Ok(true)
    }

    /// Delivers everything in flight, round-robin over channels, until quiet.
    ///
    /// Bounded: a correct cluster quiets after a few protocol messages per
    /// message in flight, so a run past [`Cluster::quiesce_bound`] deliveries is
    /// a livelock (a bug), reported rather than looped on for ever.
    pub fn quiesce(&mut self) -> Result<(), QuiesceError> {
        self.quiesce_within(self.quiesce_bound())
    }

    /// [`Cluster::quiesce`] with an explicit bound on deliveries.
    pub fn quiesce_within(&mut self, bound: usize) -> Result<(), QuiesceError> {
        let mut steps = 0;
        loop {
            let busy = self.network.busy();
            if busy.is_empty() {
                return Ok(());
            }
            for (from, to) in busy {
                if steps >= bound {
                    return Err(QuiesceError::NoQuiet {
                        steps,
                        in_flight: self.network.in_flight(),
                    });
                }
                steps += 1;
                self.step(from, to)?;
            }
        }
    }

    /// The most deliveries [`Cluster::quiesce`] makes from here: a generous
    /// multiple of what every message in flight can cause (each data message
    /// costs at most a few protocol messages per node), plus a fixed margin.
    pub fn quiesce_bound(&self) -> usize {
        let n = self.nodes.len().max(1);
        QUIESCE_MARGIN + 16 * n * n * self.network.in_flight()
    }

    /// The snapshot's parts if every node has completed it.
    pub fn completed(&self, id: SnapshotId) -> Option<Vec<Part>> {
        self.parts.get(&id)?.iter().cloned().collect()
    }

    /// The messages each node delivered, in order.
    pub fn delivered(&self, node: NodeId) -> Vec<MsgId> {
        self.logs[node]
            .iter()
            .filter_map(|e| {
                if let Event::Deliver(m) = e {
                    Some(*m)
                } else {
                    None
                }
            })
            .collect()
    }

    fn carry_out(&mut self, node: NodeId, out: Vec<Output>) {
        let n = self.nodes.len();
        for o in out {
            match o {
                Output::Send { to, frame } => self.network.send(node, to, frame),
                Output::Reply { req, reply } => {
                    self.replies[node].insert(req, reply);
                }
                Output::Multicast { id } => self.logs[node].push(Event::Send(id)),
                Output::Delivered { id, .. } => self.logs[node].push(Event::Deliver(id)),
                Output::SnapshotRecorded { .. }
                | Output::SnapshotCommitted { .. }
                | Output::SnapshotAborted { .. }
                | Output::DropPart { .. } => {}
                Output::SnapshotComplete(part) => {
                    let id = part.id;
                    let slot = self.parts.entry(id).or_insert_with(|| vec![None; n]);
                    slot[node] = Some(*part);
                    // Storing always succeeds here: acknowledge it at once.
                    let summary = PartSummary {
                        node,
                        ..PartSummary::default()
                    };
                    let out = self.nodes[node]
                        .handle(Input::Stored {
                            id,
                            result: Ok(summary),
                        })
                        .expect("a stored part is always accepted");
                    self.carry_out(node, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Op;

    #[test]
    fn a_run_past_its_bound_is_reported_not_looped_on() {
        let mut c = Cluster::new(3, Mode::TotalIsis);
        for i in 0..3 {
            let op = Op::Set {
                key: b"x".to_vec(),
                value: vec![i as u8],
            };
            c.client(i, Command::Write(op));
        }
        let mut short = c.clone();
        let err = short.quiesce_within(5).unwrap_err();
        assert!(
            matches!(err, QuiesceError::NoQuiet { steps: 5, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("livelock"), "{err}");
        // The bound is there to report a livelock promptly: a margin plus 16 n²
        // deliveries per message in flight, about a second of work, not hours.
        assert_eq!(c.network.in_flight(), 6);
        assert_eq!(c.quiesce_bound(), QUIESCE_MARGIN + 16 * 9 * 6);
        c.quiesce().unwrap();
        assert_eq!(c.network.in_flight(), 0);
    }
}
