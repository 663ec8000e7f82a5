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

/// Rounds over every busy channel after which [`Cluster::quiesce`] gives up.
const QUIESCE_ROUNDS: usize = 100_000;

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

    pub fn snapshot(&mut self, node: NodeId) -> SnapshotId {
        let (id, out) = self.nodes[node].start_snapshot();
        self.carry_out(node, out);
        id
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
    /// Nodes created with [`Node::connected`] and ordinary inputs quiesce; a
    /// protocol that keeps talking for ever is reported instead of looping.
    pub fn quiesce(&mut self) -> Result<(), PeerError> {
        for _ in 0..QUIESCE_ROUNDS {
            let busy = self.network.busy();
            if busy.is_empty() {
                return Ok(());
            }
            for (from, to) in busy {
                self.step(from, to)?;
            }
        }
        panic!("the cluster did not quiesce within {QUIESCE_ROUNDS} rounds: a protocol loop")
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
