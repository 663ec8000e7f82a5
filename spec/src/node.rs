//! A gsmo replica: the K/V state machine fed by ordered multicast, with the
//! Chandy-Lamport recorder on its channels. This is the single composition that
//! both the stateright model and the tokio node drive; they only carry
//! [`Output`]s out and feed inputs in.
//!
//! Consistency: a write is replied to once *this* replica delivers it in the
//! cluster's order, so under the total modes a client that waits for its reply
//! sees its write at its replica and every later write it makes is ordered after
//! it; reads are local and may lag other replicas (sequential consistency for
//! clients pinned to one replica, not linearizability).

use crate::clock::LamportClock;
use crate::kv::{KvStore, Op, Reply, Resolution, Stamp, Write};
use crate::multicast::{Effect, Mode, MsgId, Multicast, Wire, WrongMode};
use crate::snapshot::{
    ChannelError, Envelope, LocalSnapshot, Recorder, SnapshotEffect, SnapshotId,
};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What travels between replicas.
pub type PeerMsg = Envelope<Wire<Write>>;
/// One replica's part of a snapshot.
pub type Part = LocalSnapshot<NodeState, Wire<Write>>;
/// The runtime's handle for a client request, echoed in its reply.
pub type RequestId = u64;

/// The state a snapshot records: the store *and* the ordering layer (clocks,
/// hold-back queue), so a restored replica resumes mid-protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeState {
    pub kv: KvStore,
    pub multicast: Multicast<Write>,
    pub lamport: LamportClock,
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// A local read.
    Get { key: Vec<u8> },
    /// A replicated write, replied to on local delivery.
    Write(Op),
}

/// Everything a replica reacts to, as one type: what a trace records and
/// [`Node::handle`] replays.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Input {
    Client {
        req: RequestId,
        cmd: Command,
    },
    Peer {
        from: NodeId,
        msg: PeerMsg,
    },
    StartSnapshot,
    AbortSnapshot {
        id: SnapshotId,
    },
    /// Number this replica's future snapshots above `seq`: a node starting
    /// over a data dir that already holds snapshots must not reuse their ids.
    SkipSnapshotIds {
        through: u64,
    },
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Output {
    /// Put `msg` on the FIFO channel to `to`.
    Send { to: NodeId, msg: PeerMsg },
    /// Answer client request `req`.
    Reply { req: RequestId, reply: Reply },
    /// This replica multicast write `id` (history: a send event).
    Multicast { id: MsgId },
    /// This replica delivered and applied write `id` (history: a deliver event).
    Delivered {
        id: MsgId,
        write: Write,
        reply: Reply,
    },
    /// This replica recorded its local state for snapshot `id`.
    SnapshotRecorded { id: SnapshotId },
    /// This replica's part of a snapshot is complete: persist it.
    SnapshotComplete(Box<Part>),
}

/// A peer sent something a correct peer never sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerError {
    WrongMode(WrongMode),
    Channel(ChannelError),
    UnknownPeer(NodeId),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::WrongMode(e) => e.fmt(f),
            PeerError::Channel(e) => e.fmt(f),
            PeerError::UnknownPeer(p) => write!(f, "message from node {p}, which is not a member"),
        }
    }
}

impl std::error::Error for PeerError {}

/// One replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    me: NodeId,
    n: usize,
    state: NodeState,
    recorder: Recorder<NodeState, Wire<Write>>,
    /// Own writes awaiting local delivery, and the client request to answer.
    /// Writes issued here and not yet delivered: the client to answer and,
    /// for an `INCRBY` resolved at the origin, the integer Redis promises it.
    pending: BTreeMap<MsgId, (RequestId, Option<Reply>)>,
    /// How delivered writes are applied: [`resolution_for`] the mode, unless a
    /// model deliberately breaks it ([`Node::with_resolution`]).
    resolution: Resolution,
}

/// FIFO and causal delivery let concurrent writes land in different orders, so
/// they need last-writer-wins to converge; the total modes apply in order.
pub fn resolution_for(mode: Mode) -> Resolution {
    if mode.is_total() {
        Resolution::DeliveryOrder
    } else {
        Resolution::LastWriterWins
    }
}

impl Node {
    /// A correct replica `me` of an `n`-replica cluster running `mode`.
    pub fn new(me: NodeId, n: usize, mode: Mode) -> Self {
        Self::from_parts(Multicast::new(mode, me, n), Recorder::new(me, n))
    }

    /// A replica over explicit (possibly deliberately broken) components.
    pub fn from_parts(
        multicast: Multicast<Write>,
        recorder: Recorder<NodeState, Wire<Write>>,
    ) -> Self {
        let (me, n) = (multicast.me(), multicast.group_size());
        let resolution = resolution_for(multicast.mode());
        assert_eq!(
            recorder.me(),
            me,
            "multicast and recorder disagree on the node id"
        );
        Node {
            me,
            n,
            state: NodeState {
                kv: KvStore::new(),
                multicast,
                lamport: LamportClock::default(),
            },
            recorder,
            pending: BTreeMap::new(),
            resolution,
        }
    }

    /// Overrides how delivered writes are applied. Only for the model checker's
    /// deliberately broken variant: [`Resolution::DeliveryOrder`] under FIFO or
    /// causal delivery lets replicas that delivered the same writes diverge.
    pub fn with_resolution(mut self, how: Resolution) -> Self {
        self.resolution = how;
        self
    }

    /// Starts the replica from `kv` instead of an empty store (a model's opening
    /// balances, or its deliberately broken store); every replica must get the same.
    pub fn with_store(mut self, kv: KvStore) -> Self {
        self.state.kv = kv;
        self
    }

    /// A replica resumed from its snapshot part. The part's recorded channel
    /// messages are fed in as if they had just arrived, so writes in flight at
    /// the cut are not lost; the returned outputs (sends, deliveries) must be
    /// carried out like any others. Channel positions restart at zero: a
    /// restored cluster is a new epoch with new connections.
    pub fn restore(part: &Part) -> Result<(Self, Vec<Output>), PeerError> {
        let n = part.channels.len();
        let me = part.node;
        let mut node = Node {
            me,
            n,
            state: part.state.clone(),
            recorder: Recorder::new(me, n),
            pending: BTreeMap::new(),
            resolution: resolution_for(part.state.multicast.mode()),
        };
        if part.id.initiator == me {
            node.recorder.skip_ids_through(part.id.seq);
        }
        let mut out = Vec::new();
        for (from, msgs) in part.channels.iter().enumerate() {
            for (_, wire) in msgs {
                let effects = node
                    .state
                    .multicast
                    .on_message(from, wire.clone())
                    .map_err(PeerError::WrongMode)?;
                node.carry_out(effects, &mut out);
            }
        }
        Ok((node, out))
    }

    pub fn id(&self) -> NodeId {
        self.me
    }

    pub fn cluster_size(&self) -> usize {
        self.n
    }

    pub fn mode(&self) -> Mode {
        self.state.multicast.mode()
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    pub fn kv(&self) -> &KvStore {
        &self.state.kv
    }

    pub fn holdback_depth(&self) -> usize {
        self.state.multicast.holdback_depth()
    }

    /// Writes this replica has issued and not yet delivered.
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    pub fn snapshots_in_progress(&self) -> Vec<SnapshotId> {
        self.recorder.in_progress().collect()
    }

    /// Peers whose marker for snapshot `id` this replica still awaits.
    pub fn snapshot_waiting_on(&self, id: SnapshotId) -> Vec<NodeId> {
        self.recorder.waiting_on(id)
    }

    /// Messages sent / received so far per channel (index = peer).
    pub fn channel_counts(&self) -> (&[u64], &[u64]) {
        (self.recorder.sent_counts(), self.recorder.received_counts())
    }

    /// Snapshot ids this replica starts will be numbered above `seq`
    /// (so a restarted replica does not reuse ids already on disk).
    pub fn skip_snapshot_ids_through(&mut self, seq: u64) {
        self.recorder.skip_ids_through(seq);
    }

    /// Handles any input; the single entry point a trace replay uses.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, PeerError> {
        Ok(match input {
            Input::Client { req, cmd } => self.on_client(req, cmd),
            Input::Peer { from, msg } => self.on_peer(from, msg)?,
            Input::StartSnapshot => self.start_snapshot().1,
            Input::AbortSnapshot { id } => {
                self.abort_snapshot(id);
                Vec::new()
            }
            Input::SkipSnapshotIds { through } => {
                self.skip_snapshot_ids_through(through);
                Vec::new()
            }
        })
    }

    /// Handles a client request.
    pub fn on_client(&mut self, req: RequestId, cmd: Command) -> Vec<Output> {
        let mut out = Vec::new();
        match cmd {
            Command::Get { key } => {
                let reply = Reply::Bulk(self.state.kv.get(&key).cloned());
                out.push(Output::Reply { req, reply });
            }
            Command::Write(op) => {
                let incr = matches!(op, Op::IncrBy { .. });
                let op = match self.resolution {
                    Resolution::LastWriterWins => match self.state.kv.resolve(op) {
                        Ok(op) => op,
                        Err(reply) => {
                            out.push(Output::Reply { req, reply });
                            return out;
                        }
                    },
                    Resolution::DeliveryOrder => op,
                };
                // Resolved into `SET key n`, an increment still answers `n`, as in Redis.
                let promised = match &op {
                    Op::Set { value, .. } if incr => std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .map(Reply::Int),
                    _ => None,
                };
                let stamp = Stamp {
                    lamport: self.state.lamport.tick(),
                    node: self.me,
                };
                let (id, effects) = self.state.multicast.multicast(Write { stamp, op });
                self.pending.insert(id, (req, promised));
                out.push(Output::Multicast { id });
                self.carry_out(effects, &mut out);
            }
        }
        out
    }

    /// Starts a snapshot at this replica.
    pub fn start_snapshot(&mut self) -> (SnapshotId, Vec<Output>) {
        let (id, effects) = self.recorder.initiate(self.state.clone());
        let mut out = Vec::new();
        self.carry_out_snapshot(effects, &mut out);
        (id, out)
    }

    /// Gives up on snapshot `id` here; returns whether it was in progress.
    pub fn abort_snapshot(&mut self, id: SnapshotId) -> bool {
        self.recorder.abort(id)
    }

    /// Handles a message from peer `from`.
    pub fn on_peer(&mut self, from: NodeId, msg: PeerMsg) -> Result<Vec<Output>, PeerError> {
        if from >= self.n || from == self.me {
            return Err(PeerError::UnknownPeer(from));
        }
        let state = &self.state;
        let (app, effects) = self
            .recorder
            .on_envelope(from, msg, || state.clone())
            .map_err(PeerError::Channel)?;
        let mut out = Vec::new();
        self.carry_out_snapshot(effects, &mut out);
        if let Some(wire) = app {
            let effects = self
                .state
                .multicast
                .on_message(from, wire)
                .map_err(PeerError::WrongMode)?;
            self.carry_out(effects, &mut out);
        }
        Ok(out)
    }

    fn carry_out(&mut self, effects: Vec<Effect<Write>>, out: &mut Vec<Output>) {
        let how = self.resolution;
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    out.push(Output::Send {
                        to,
                        msg: self.recorder.wrap(to, msg),
                    });
                }
                Effect::Deliver { id, payload } => {
                    self.state.lamport.observe(payload.stamp.lamport);
                    let reply = self.state.kv.apply(&payload, how);
                    if let Some((req, promised)) = self.pending.remove(&id) {
                        out.push(Output::Reply {
                            req,
                            reply: promised.unwrap_or_else(|| reply.clone()),
                        });
                    }
                    out.push(Output::Delivered {
                        id,
                        write: payload,
                        reply,
                    });
                }
            }
        }
    }

    fn carry_out_snapshot(
        &mut self,
        effects: Vec<SnapshotEffect<NodeState, Wire<Write>>>,
        out: &mut Vec<Output>,
    ) {
        for e in effects {
            out.push(match e {
                SnapshotEffect::SendMarker { to, id } => Output::Send {
                    to,
                    msg: Envelope::Marker { id },
                },
                SnapshotEffect::Recorded { id } => Output::SnapshotRecorded { id },
                SnapshotEffect::Complete(part) => Output::SnapshotComplete(Box::new(part)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Cluster;

    /// Two causal replicas write `x` concurrently and each delivers its own
    /// write first; returns both stores once everything is delivered.
    fn concurrent_writes(how: Option<Resolution>) -> (KvStore, KvStore) {
        let nodes = (0..2)
            .map(|i| {
                let node = Node::new(i, 2, Mode::Causal);
                match how {
                    Some(how) => node.with_resolution(how),
                    None => node,
                }
            })
            .collect();
        let mut c = Cluster::from_nodes(nodes);
        for i in 0..2 {
            let value = format!("from-{i}").into_bytes();
            let op = Op::Set {
                key: b"x".to_vec(),
                value,
            };
            c.client(i, Command::Write(op));
        }
        c.quiesce().unwrap();
        (c.nodes[0].kv().clone(), c.nodes[1].kv().clone())
    }

    #[test]
    fn causal_replicas_converge_by_stamp_but_not_by_delivery_order() {
        let (a, b) = concurrent_writes(None);
        assert_eq!(a, b);
        let (a, b) = concurrent_writes(Some(Resolution::DeliveryOrder));
        assert_ne!(a, b, "each kept the other's write, delivered last");
        assert_eq!(a.get(b"x"), Some(&b"from-1".to_vec()));
    }

    #[test]
    fn incrby_answers_the_new_value_in_every_mode() {
        for mode in Mode::ALL {
            let mut c = Cluster::new(2, mode);
            let incr = |delta| {
                Command::Write(Op::IncrBy {
                    key: b"n".to_vec(),
                    delta,
                })
            };
            let a = c.client(0, incr(5));
            c.quiesce().unwrap();
            let b = c.client(1, incr(2));
            c.quiesce().unwrap();
            assert_eq!(c.replies[0][&a], Reply::Int(5), "{mode}");
            assert_eq!(c.replies[1][&b], Reply::Int(7), "{mode}");
        }
    }
}
