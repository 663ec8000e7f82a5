//! A gsmo replica: the K/V state machine fed by ordered multicast, with the
//! Chandy-Lamport recorder on its channels. This is the single composition that
//! both the stateright model and the tokio node drive; they only carry
//! [`Output`]s out and feed inputs in.
//!
//! Below both sits the resumable [`link`](crate::link) layer, one [`Link`] per
//! peer, so the reliable FIFO channels they assume survive broken connections.
//!
//! Faults are inputs like any other, and every decision about them is made
//! here, once, for the model checker and the node alike:
//! * time enters only as [`Input::Tick`]; the replica keeps no clock of its own;
//! * a peer whose connection has been down for [`Limits::unreachable_after_ms`]
//!   is *unreachable*; while a peer the mode [needs](Mode::needs) is
//!   unreachable, writes are refused at once (`CLUSTERDOWN`), reads still work;
//! * while a link's retained buffer is full, writes are refused (`TRYAGAIN`):
//!   backpressure, never loss, never unbounded memory;
//! * a write not delivered within [`Limits::write_timeout_ms`] is answered
//!   `TIMEOUT` (its outcome unknown: it may still be applied);
//! * the snapshot abort policy lives in the [`Recorder`].
//!
//! The rules for connections and time are in `node/reachability.rs`, those
//! for full links (the refusals and the sequencer's ack hold) in
//! `node/backpressure.rs`; this file composes the replica and routes its inputs.
//!
//! Writes go out in batches ([`crate::batch`]): those issued since the last
//! multicast travel as one message, on [`Input::Flush`] or when the batch is
//! full ([`Limits::max_batch`]); delivery applies them in order and answers
//! each client.
//!
//! Consistency: a write is replied to once *this* replica delivers it in the
//! cluster's order, so under the total modes a client that waits for its reply
//! sees its write at its replica and every later write it makes is ordered after
//! it; reads are local and may lag other replicas (sequential consistency for
//! clients pinned to one replica, not linearizability).

use crate::batch::{Batch, Outbox, SharedWrite};
use crate::clock::LamportClock;
use crate::kv::{KvStore, Op, ReadOp, Reply, Resolution, Stamp, Write, PREFETCH_AHEAD};
use crate::link::{Frame, Link, LinkBug, LinkError};
use crate::multicast::{Effect, Mode, MsgId, Multicast, Wire, WrongMode};
use crate::snapshot::{
    AbortReason, ChannelError, Envelope, LocalSnapshot, PartSummary, Recorder, SnapshotEffect,
    SnapshotId,
};
use crate::NodeId;
use pending::{Pending, PendingWrites};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the replica's channels carry between replicas.
pub type PeerMsg = Envelope<Wire<Batch>>;
/// What travels on a connection: a [`PeerMsg`] framed by the link layer.
pub type LinkFrame = Frame<PeerMsg>;
/// One replica's part of a snapshot.
pub type Part = LocalSnapshot<NodeState, Wire<Batch>>;
/// The runtime's handle for a client request, echoed in its reply.
pub type RequestId = u64;

/// The replica's fault bounds, in milliseconds and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// A write not delivered locally this long after it was issued is answered `TIMEOUT`.
    pub write_timeout_ms: u64,
    /// A peer whose connection has been down this long is unreachable.
    pub unreachable_after_ms: u64,
    /// A snapshot not finished this long after this replica heard of it is aborted.
    pub snapshot_timeout_ms: u64,
    /// A link holding this many unacknowledged bytes is full: writes are refused.
    pub link_buffer_bytes: u64,
    /// A batch holding this many writes is multicast at once, without waiting
    /// for [`Input::Flush`]; 1 multicasts every write on its own.
    pub max_batch: u64,
    /// Nagle's rule for rounds: under total-isis, while this replica alone
    /// multicasts, its next batch waits for its open round
    /// ([`Node::flush_due`]).
    pub nagle: bool,
    /// Snapshots in progress here (any initiator's) from which this replica
    /// refuses to start another ([`Node::snapshot_refusal`]).
    pub max_snapshots: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            write_timeout_ms: 5_000,
            unreachable_after_ms: 3_000,
            snapshot_timeout_ms: 30_000,
            link_buffer_bytes: 64 << 20,
            max_batch: 1,
            nagle: false,
            max_snapshots: 4,
        }
    }
}

/// Unacknowledged deliveries after which an ack goes out without waiting for a tick.
pub const ACK_EVERY: u64 = 64;
/// Retained bytes from which a sender asks for an immediate ack (or a quarter
/// of its link buffer, if smaller). With acks every 64 frames alone, 64 frames
/// of large batches outgrew `link_buffer_bytes` and a healthy peer's lazy ack
/// refused writes with TRYAGAIN until a tick.
const ACK_WANTED_BYTES: u64 = 1 << 20;

fn link(limits: &Limits, bug: LinkBug) -> Link<PeerMsg> {
    let mut link = Link::new().with_bug(bug);
    link.set_ack_wanted_at(ack_wanted_at(limits));
    link
}

fn ack_wanted_at(limits: &Limits) -> u64 {
    ACK_WANTED_BYTES.min(limits.link_buffer_bytes / 4)
}

/// The state a snapshot records: the store *and* the ordering layer (clocks,
/// hold-back queue), so a restored replica resumes mid-protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeState {
    pub kv: KvStore,
    pub multicast: Multicast<Batch>,
    pub lamport: LamportClock,
    /// Writes this replica has multicast: the last write id's number.
    pub writes: u64,
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// A local read.
    Get { key: Vec<u8> },
    /// A replicated write, replied to on local delivery.
    Write(Op),
    /// A local read of any type (GET, LRANGE, SCAN, ...).
    Read(ReadOp),
}

impl Command {
    /// The key a one-key read names, for [`KvStore::prefetch`](crate::kv::KvStore::prefetch)
    /// (a write's key is prefetched when its batch is delivered).
    pub fn read_key(&self) -> Option<&[u8]> {
        match self {
            Command::Get { key } => Some(key),
            Command::Read(r) => r.key(),
            Command::Write(_) => None,
        }
    }
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
        frame: LinkFrame,
    },
    /// A new connection to `peer` is up; the peer has delivered this replica's
    /// frames through `delivered` (the resume handshake).
    LinkUp {
        peer: NodeId,
        delivered: u64,
    },
    /// A new connection from `peer` is up.
    InboundUp {
        peer: NodeId,
    },
    /// The connection to (`outgoing`) or from `peer` broke.
    LinkDown {
        peer: NodeId,
        outgoing: bool,
    },
    /// The time is `now` milliseconds (from any fixed origin, never going back).
    Tick {
        now: u64,
    },
    /// This replica's part of `id` was stored, or could not be (the I/O error).
    Stored {
        id: SnapshotId,
        result: Result<PartSummary, String>,
    },
    StartSnapshot,
    /// An operator abandons snapshot `id`.
    AbortSnapshot {
        id: SnapshotId,
    },
    /// Number this replica's future snapshots above `seq`: a node starting
    /// over a data dir that already holds snapshots must not reuse their ids.
    SkipSnapshotIds {
        through: u64,
    },
    /// Multicast the writes issued since the last multicast as one batch.
    Flush,
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Output {
    /// Put `frame` on the connection to `to`.
    Send { to: NodeId, frame: LinkFrame },
    /// Answer client request `req`.
    Reply { req: RequestId, reply: Reply },
    /// This replica multicast write `id` (history: a send event).
    Multicast { id: MsgId },
    /// This replica delivered and applied write `id` (history: a deliver event).
    Delivered {
        id: MsgId,
        write: SharedWrite,
        reply: Reply,
    },
    /// This replica recorded its local state for snapshot `id`.
    SnapshotRecorded { id: SnapshotId },
    /// This replica's part of a snapshot is complete: persist it, then report
    /// with [`Input::Stored`].
    SnapshotComplete(Box<Part>),
    /// Every part of `id` is stored: the snapshot is complete (write its manifest).
    SnapshotCommitted {
        id: SnapshotId,
        parts: Vec<PartSummary>,
    },
    /// Snapshot `id` is abandoned (decided by node `by`): delete this replica's part.
    SnapshotAborted {
        id: SnapshotId,
        by: NodeId,
        reason: AbortReason,
    },
    /// A part of the aborted snapshot `id` was stored after the abort: delete it.
    DropPart { id: SnapshotId },
}

/// A peer sent something a correct peer never sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerError {
    WrongMode(WrongMode),
    Channel(ChannelError),
    UnknownPeer(NodeId),
    /// The peer's frames or resume point do not fit the link's history: it is
    /// from another epoch (restarted); drop its connection.
    Link {
        peer: NodeId,
        error: LinkError,
    },
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::WrongMode(e) => e.fmt(f),
            PeerError::Channel(e) => e.fmt(f),
            PeerError::UnknownPeer(p) => write!(f, "message from node {p}, which is not a member"),
            PeerError::Link { peer, error } => write!(f, "link with n{peer}: {error}"),
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
    recorder: Recorder<NodeState, Wire<Batch>>,
    /// Writes issued here and not yet multicast: the next batch.
    outbox: Outbox,
    /// Writes issued here and not yet delivered, with the client to answer.
    pending: PendingWrites,
    /// How delivered writes are applied: [`resolution_for`] the mode, unless a
    /// model deliberately breaks it ([`Node::with_resolution`]).
    resolution: Resolution,
    /// The resumable link with each peer (this replica's own slot is unused).
    links: Vec<Link<PeerMsg>>,
    /// Whether the connection from each peer is up.
    inbound_up: Vec<bool>,
    /// Since when each peer has not been connected both ways (`None`: it is).
    down_since: Vec<Option<u64>>,
    /// The last tick's time.
    now: u64,
    limits: Limits,
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
    /// A correct replica `me` of an `n`-replica cluster running `mode`, with
    /// default [`Limits`] and no connection up yet.
    pub fn new(me: NodeId, n: usize, mode: Mode) -> Self {
        Self::from_parts(Multicast::new(mode, me, n), Recorder::new(me, n))
    }

    /// Sets the fault bounds (the recorder's snapshot timeout among them).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        for l in &mut self.links {
            l.set_ack_wanted_at(ack_wanted_at(&limits));
        }
        self.recorder = self.recorder.with_timeout(limits.snapshot_timeout_ms);
        self
    }

    /// Runs every link with a deliberate bug (the model's broken variants).
    pub fn with_link_bug(mut self, bug: LinkBug) -> Self {
        self.links = (0..self.n).map(|_| link(&self.limits, bug)).collect();
        self
    }

    /// Every connection up from the start: for models that do not exercise
    /// connecting. Only for a replica that has sent nothing yet.
    pub fn connected(mut self) -> Self {
        for j in (0..self.n).filter(|&j| j != self.me) {
            let resent = self.links[j]
                .resume(0)
                .expect("a fresh link resumes from zero");
            assert!(resent.is_empty(), "connected() on a replica that sent");
            self.inbound_up[j] = true;
            self.down_since[j] = None;
        }
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A replica over explicit (possibly deliberately broken) components.
    pub fn from_parts(
        multicast: Multicast<Batch>,
        recorder: Recorder<NodeState, Wire<Batch>>,
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
                writes: 0,
            },
            recorder,
            outbox: Outbox::default(),
            pending: PendingWrites::default(),
            resolution,
            links: (0..n)
                .map(|_| link(&Limits::default(), LinkBug::None))
                .collect(),
            inbound_up: vec![false; n],
            down_since: vec![Some(0); n],
            now: 0,
            limits: Limits::default(),
        }
    }

    /// Overrides how delivered writes are applied. Only for the model checker's
    /// deliberately broken variant: [`Resolution::DeliveryOrder`] under FIFO or
    /// causal delivery lets replicas that delivered the same writes diverge.
    pub fn with_resolution(mut self, how: Resolution) -> Self {
        self.resolution = how;
        self
    }

    /// Sets the broken flags serialization leaves out, on a replica that has
    /// sent nothing yet (a replayed path's start, [`crate::path::Knobs`]).
    pub fn with_bug_flags(mut self, broken_multicast: bool, debit_only: bool) -> Self {
        if broken_multicast {
            assert_eq!(self.state.multicast.sent(), 0, "a fresh replica");
            let mode = self.state.multicast.mode();
            self.state.multicast = Multicast::broken(mode, self.me, self.n);
        }
        if debit_only {
            self.state.kv = self.state.kv.clone().debit_only_when_short();
        }
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
        let mut node = Node::from_parts(part.state.multicast.clone(), Recorder::new(me, n));
        node.state = part.state.clone();
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

    /// Writes issued here and not yet multicast (the next batch).
    pub fn unflushed_writes(&self) -> usize {
        self.outbox.len()
    }

    /// Whether the runtime should multicast the waiting writes now
    /// ([`Input::Flush`]) rather than let more join them: whenever writes
    /// wait, except under [`Limits::nagle`] while this replica's multicast
    /// says its next message would best wait ([`Multicast::next_waits`]: an
    /// ISIS round of its own is open and no other member's message is held).
    ///
    /// Why: with the clients at one node, every round costs each peer a
    /// wake-up, a proposal and an agreement whatever the batch holds; held
    /// for the open round, the writes of two rounds go in one (at `-P 1`,
    /// 10-12 writes a batch became 17-19, and the cluster's CPU per write
    /// fell 9-15%), for at most one round's wait. The turn that closes the
    /// round finds it due, so nothing waits for a timer. With other members
    /// multicasting too it holds nothing: there this member's rounds already
    /// wait behind theirs, and holding made the clients spread over the
    /// nodes slower (docs/performance.md).
    ///
    /// The model checker flushes at every point a batch waits, so this
    /// choice of when is among the schedules it checks.
    pub fn flush_due(&self) -> bool {
        let held = self.limits.nagle && self.state.multicast.next_waits();
        !self.outbox.is_empty() && !held
    }

    pub fn snapshots_in_progress(&self) -> Vec<SnapshotId> {
        self.recorder.in_progress().collect()
    }

    /// How many of the snapshots in progress here this replica initiated.
    pub fn own_snapshots_in_progress(&self) -> usize {
        self.recorder
            .in_progress()
            .filter(|id| id.initiator == self.me)
            .count()
    }

    /// The messages that the snapshots still recording here have recorded in
    /// flight so far (a model's non-vacuity check reads them).
    pub fn recorded_in_flight(&self) -> impl Iterator<Item = &Wire<Batch>> + '_ {
        self.recorder.in_flight_so_far()
    }

    /// Snapshot verdicts held exactly here (bounded per initiator by
    /// [`crate::snapshot::REMEMBERED_PER_INITIATOR`]).
    pub fn snapshot_outcomes_remembered(&self) -> usize {
        self.recorder.outcomes_remembered()
    }

    /// Whom snapshot `id` still waits for here (markers, or stored parts).
    pub fn snapshot_waiting_on(&self, id: SnapshotId) -> Vec<NodeId> {
        self.recorder.waiting_on(id)
    }

    /// Messages sent / received so far per channel (index = peer).
    pub fn channel_counts(&self) -> (&[u64], &[u64]) {
        (self.recorder.sent_counts(), self.recorder.received_counts())
    }

    /// The link with `peer`: sequence numbers, retained frames, acks.
    pub fn link(&self, peer: NodeId) -> &Link<PeerMsg> {
        &self.links[peer]
    }

    /// The last tick's time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Snapshot ids this replica starts will be numbered above `seq`
    /// (so a restarted replica does not reuse ids already on disk).
    pub fn skip_snapshot_ids_through(&mut self, seq: u64) {
        self.recorder.skip_ids_through(seq);
    }

    /// Handles any input; the single entry point a trace replay uses.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, PeerError> {
        let mut out = Vec::new();
        match input {
            Input::Client { req, cmd } => return Ok(self.on_client(req, cmd)),
            Input::Peer { from, frame } => return self.on_peer(from, frame),
            Input::LinkUp { peer, delivered } => {
                self.check_peer(peer)?;
                self.on_link_up(peer, delivered, &mut out)?;
            }
            Input::InboundUp { peer } => {
                self.check_peer(peer)?;
                self.on_inbound_up(peer);
            }
            Input::LinkDown { peer, outgoing } => {
                self.check_peer(peer)?;
                self.on_link_down(peer, outgoing);
            }
            Input::Tick { now } => self.on_tick(now, &mut out),
            Input::Stored { id, result } => {
                let effects = self.recorder.on_stored(id, result);
                self.carry_out_snapshot(effects, &mut out);
            }
            // A refused start changes nothing (a runtime asks first, and
            // answers its client with the refusal instead).
            Input::StartSnapshot => {
                return Ok(self
                    .start_snapshot()
                    .map_or_else(|_| Vec::new(), |(_, out)| out))
            }
            Input::AbortSnapshot { id } => {
                let effects = self.recorder.abort(id, AbortReason::Operator);
                self.carry_out_snapshot(effects, &mut out);
            }
            Input::SkipSnapshotIds { through } => self.skip_snapshot_ids_through(through),
            Input::Flush => self.flush(&mut out),
        }
        Ok(out)
    }

    fn check_peer(&self, peer: NodeId) -> Result<(), PeerError> {
        if peer >= self.n || peer == self.me {
            Err(PeerError::UnknownPeer(peer))
        } else {
            Ok(())
        }
    }

    /// The answer to a read, which changes nothing and sends nothing; `None`
    /// for a write. [`Node::on_client`] answers reads with it, and a driver
    /// that records no trace may call it directly, without the envelope of an
    /// input and its outputs (the node's front door does, for every GET).
    pub fn read(&self, cmd: &Command) -> Option<Reply> {
        match cmd {
            Command::Get { key } => Some(Reply::Bulk(self.state.kv.get(key).map(<[u8]>::to_vec))),
            Command::Read(r) => Some(self.state.kv.read(r)),
            Command::Write(_) => None,
        }
    }

    /// Handles a client request.
    pub fn on_client(&mut self, req: RequestId, cmd: Command) -> Vec<Output> {
        let op = match cmd {
            Command::Write(op) => op,
            read => {
                let reply = self
                    .read(&read)
                    .expect("every command but a write is a read");
                return vec![Output::Reply { req, reply }];
            }
        };
        let mut out = Vec::new();
        if let Some(why) = self.write_refusal() {
            out.push(Output::Reply {
                req,
                reply: Reply::Error(why),
            });
            return out;
        }
        // Last-writer-wins resolves a read-modify-write against this store,
        // which must hold this replica's earlier writes: they go out (and,
        // under fifo/causal, are delivered here) first.
        if self.resolution == Resolution::LastWriterWins && !op.is_blind() {
            self.flush(&mut out);
        }
        // Resolved, a read-modify-write goes out as an `Op::Assign` that
        // carries the reply Redis gives (INCRBY's new value), answered on delivery.
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
        let stamp = Stamp {
            lamport: self.state.lamport.tick(),
            node: self.me,
        };
        let write = Write { stamp, op };
        if self.outbox.would_overflow(&write) {
            self.flush(&mut out);
        }
        let seq = self.state.writes + self.outbox.len() as u64 + 1;
        self.pending.insert(
            seq,
            Pending {
                req,
                since: self.now,
            },
        );
        self.outbox.push(write);
        if self.outbox.is_full(self.limits.max_batch) {
            self.flush(&mut out);
        }
        out
    }

    /// Multicasts the writes issued since the last multicast, as one batch.
    fn flush(&mut self, out: &mut Vec<Output>) {
        if self.outbox.is_empty() {
            return;
        }
        let batch = self.outbox.take(self.state.writes + 1);
        self.state.writes += batch.writes.len() as u64;
        for i in 0..batch.writes.len() {
            out.push(Output::Multicast {
                id: batch.id(self.me, i),
            });
        }
        let (_, effects) = self.state.multicast.multicast(batch);
        self.carry_out(effects, out);
        self.hold_relayed_acks(out);
    }

    /// Starts a snapshot at this replica, unless [`Node::snapshot_refusal`]
    /// says why not.
    pub fn start_snapshot(&mut self) -> Result<(SnapshotId, Vec<Output>), String> {
        if let Some(why) = self.snapshot_refusal() {
            return Err(why);
        }
        let (id, effects) = self.recorder.initiate(self.state.clone());
        let mut out = Vec::new();
        self.carry_out_snapshot(effects, &mut out);
        Ok((id, out))
    }

    /// Handles a frame from peer `from`.
    pub fn on_peer(&mut self, from: NodeId, frame: LinkFrame) -> Result<Vec<Output>, PeerError> {
        self.check_peer(from)?;
        let mut out = Vec::new();
        let msg = self.links[from]
            .receive(frame)
            .map_err(|error| PeerError::Link { peer: from, error })?;
        // Taken at once, so no error below leaves it set for a later step.
        let ack_now = self.links[from].take_ack_due();
        if let Some(msg) = msg {
            let state = &self.state;
            let (app, effects) = self
                .recorder
                .on_envelope(from, msg, || state.clone())
                .map_err(PeerError::Channel)?;
            self.carry_out_snapshot(effects, &mut out);
            if let Some(wire) = app {
                let effects = self
                    .state
                    .multicast
                    .on_message(from, wire)
                    .map_err(PeerError::WrongMode)?;
                self.carry_out(effects, &mut out);
            }
        }
        self.hold_relayed_acks(&mut out);
        let link = &mut self.links[from];
        if ack_now || acks_on_count(link.delivered(), link.ack_sent()) {
            out.extend(
                link.ack_frame()
                    .map(|frame| Output::Send { to: from, frame }),
            );
        }
        Ok(out)
    }

    /// Whether receiving `frame` from `from` is *silent*: the next frame of its
    /// link, carrying an application message that [`Multicast::silent_head`]
    /// calls silent, asking for no acknowledgement and crossing no
    /// acknowledgement threshold. Such a receipt sends nothing, now or after
    /// any other receipt; it commutes with every other receipt here that starts
    /// no recording (up to the links' acknowledgement bookkeeping, which
    /// [`Node::hash_live`] leaves out); and nothing is delivered here before it.
    /// Markers and the snapshot's reports are never silent: they record,
    /// complete or commit snapshots. The model checker takes a silent receipt
    /// alone (`model/src/por.rs`); `spec/tests/interleavings.rs` checks the
    /// claims.
    pub fn silent_head(&self, from: NodeId, frame: &LinkFrame) -> bool {
        let Frame::Data {
            seq,
            body: Envelope::Msg { body, .. },
            ack_now: false,
            ..
        } = frame
        else {
            return false;
        };
        let Some(link) = self.links.get(from).filter(|_| from != self.me) else {
            return false;
        };
        let next = link.delivered() + 1;
        *seq == next
            && !acks_on_count(next, link.ack_sent())
            && self.state.multicast.silent_head(body)
    }

    /// Whether no frame this node may yet receive makes it send to `peer`, on
    /// runs where nothing else happens to it (no client write, tick, link
    /// event or snapshot start here, no marker of a snapshot it has not
    /// recorded, no link reaching an acknowledgement threshold) and, if
    /// `group_sent` is given, the group multicasts no more than that in all
    /// (the caller's count: a node does not know it; only the sequencer needs
    /// it).
    /// Its multicast endpoint and its recorder must both be quiet
    /// ([`Multicast::quiet`], [`Recorder::quiet_towards`]). The model checker's
    /// partial-order reduction leaves such a node out of a persistent set
    /// whose channel from it is empty (`model/src/por.rs`);
    /// `spec/tests/interleavings.rs` checks the claim.
    pub fn quiet_towards(&self, peer: NodeId, group_sent: Option<u64>) -> bool {
        peer != self.me
            && self.state.multicast.quiet(group_sent)
            && self.recorder.quiet_towards(peer)
    }

    /// Hands `msg` to the link with `to`; a frame comes out if its connection is up.
    fn send(&mut self, to: NodeId, msg: PeerMsg, out: &mut Vec<Output>) {
        let size = frame_bytes(&msg);
        if let Some(frame) = self.links[to].send(msg, size) {
            out.push(Output::Send { to, frame });
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect<Batch>>, out: &mut Vec<Output>) {
        let how = self.resolution;
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    let msg = self.recorder.wrap(to, msg);
                    self.send(to, msg, out);
                }
                Effect::Deliver {
                    id: batch_id,
                    payload,
                } => {
                    // A batch's writes, in the order they were issued.
                    let Batch { first, writes } = payload;
                    for (i, write) in writes.iter().enumerate() {
                        if i % PREFETCH_AHEAD == 0 && writes.len() > 1 {
                            let ahead = writes[i..].iter().take(PREFETCH_AHEAD);
                            self.state.kv.prefetch(ahead.filter_map(|w| w.op.key()));
                        }
                        let id = MsgId {
                            origin: batch_id.origin,
                            seq: first + i as u64,
                        };
                        self.state.lamport.observe(write.stamp.lamport);
                        let reply = self.state.kv.apply(write, how);
                        let mine = (id.origin == self.me).then(|| self.pending.remove(id.seq));
                        if let Some(p) = mine.flatten() {
                            out.push(Output::Reply {
                                req: p.req,
                                reply: reply.clone(),
                            });
                        }
                        let write = SharedWrite::new(writes.clone(), i);
                        out.push(Output::Delivered { id, write, reply });
                    }
                }
            }
        }
    }

    fn carry_out_snapshot(
        &mut self,
        effects: Vec<SnapshotEffect<NodeState, Wire<Batch>>>,
        out: &mut Vec<Output>,
    ) {
        for e in effects {
            match e {
                SnapshotEffect::Send { to, envelope } => self.send(to, envelope, out),
                SnapshotEffect::Recorded { id } => out.push(Output::SnapshotRecorded { id }),
                SnapshotEffect::Complete(part) => {
                    out.push(Output::SnapshotComplete(Box::new(part)))
                }
                SnapshotEffect::Committed { id, parts } => {
                    out.push(Output::SnapshotCommitted { id, parts })
                }
                SnapshotEffect::Aborted { id, by, reason } => {
                    out.push(Output::SnapshotAborted { id, by, reason })
                }
                SnapshotEffect::DropPart { id } => out.push(Output::DropPart { id }),
            }
        }
    }
}

/// Whether a receiver that has delivered `delivered` frames of a link, and
/// acknowledged `ack_sent` of them, acks on count: every [`ACK_EVERY`]
/// deliveries. [`Node::on_peer`] acks by it; [`Node::silent_head`] asks it of
/// the next receipt.
fn acks_on_count(delivered: u64, ack_sent: u64) -> bool {
    delivered >= ack_sent + ACK_EVERY
}

/// The bytes a link counts for `msg` against its buffer: a batch's writes,
/// or 32 for a protocol message without a payload (a marker, a proposal).
pub fn frame_bytes(msg: &PeerMsg) -> u64 {
    match msg {
        Envelope::Msg { body, .. } => body.payload().map_or(32, Batch::approx_bytes),
        _ => 32,
    }
}

/// Milliseconds as seconds for a message: `5`, `2.5`.
fn secs(ms: u64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}

mod backpressure;
pub use backpressure::SNAPSHOT_REFUSED;
mod live;
mod pending;
mod reachability;
pub use live::{frames_on_one_link, FRAMES_PER_SNAPSHOT, FRAMES_PER_WRITE};
#[cfg(test)]
mod tests;
