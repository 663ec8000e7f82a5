//! The Chandy-Lamport snapshot recorder (Chandy & Lamport 1985, "Distributed
//! Snapshots: Determining Global States of Distributed Systems"), with snapshot
//! ids so that concurrent snapshots do not interfere.
//!
//! The recorder owns the node's channel framing: every application message goes
//! out wrapped in an [`Envelope`] carrying its position on that directed channel,
//! and markers travel on the same FIFO channels. That framing is what lets a
//! finished snapshot prove itself: each part records how many messages it had
//! sent and received per channel at its record point, and the recorded channel
//! contents carry their positions (see [`crate::properties::consistent_cut`] and
//! [`crate::properties::exact_channel_state`]).
//!
//! Rules, per snapshot id:
//! * **Initiate** (any node, any time): record the local state, send a marker on
//!   every outgoing channel, start recording every incoming channel.
//! * **First marker** of an id on channel `c`: record the local state, record `c`
//!   as empty, send markers on every outgoing channel, record every other incoming channel.
//! * **Later marker** on channel `c`: stop recording `c`; its state is what was recorded.
//! * **Message** on channel `c`: append it to every snapshot recording `c`.
//! * **Done** when every incoming channel of that id is closed: the part is
//!   handed out to be stored.
//!
//! Ending a snapshot, the one place every fault decision about snapshots is made
//! (Flink's checkpoint coordinator is the model: parts are acknowledged to the
//! initiator, which alone declares the snapshot complete):
//! * **Stored**: a node whose part is stored tells the initiator (with a
//!   [`PartSummary`]); when all `n` have, the initiator **commits** and tells
//!   everyone, who then write the manifest.
//! * **Abort**, decided by any node before it acknowledged its part: when the
//!   snapshot has not finished within the timeout (naming whom it waits for),
//!   when a peer it waits for is unreachable, when its part fails to store
//!   (disk full, read-only, no file descriptors), or on an operator's request.
//!   The abort is sent to every node; each drops its part. The initiator aborts
//!   on the same grounds until it has committed, never after.
//! * A node that acknowledged its part waits for the initiator's verdict; only
//!   if the initiator becomes unreachable does it abort on its own. That is the
//!   one case where nodes may disagree (the initiator may have committed and
//!   died before its verdict reached everyone): a restore then finds the
//!   snapshot incomplete and refuses it by name.

mod outcomes;

pub use outcomes::{Outcome, REMEMBERED_PER_INITIATOR};

use crate::NodeId;
use outcomes::Outcomes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// A snapshot's identity: who started it and that node's 1-based snapshot count.
/// Unique without coordination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SnapshotId {
    pub initiator: NodeId,
    pub seq: u64,
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.initiator, self.seq)
    }
}

impl std::str::FromStr for SnapshotId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("bad snapshot id `{s}`: expected INITIATOR-SEQ, e.g. 0-3");
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        Ok(SnapshotId {
            initiator: a.parse().map_err(|_| err())?,
            seq: b.parse().map_err(|_| err())?,
        })
    }
}

/// What travels on a directed channel between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Envelope<M> {
    /// An application message, the `seq`-th on its channel (1-based).
    Msg {
        seq: u64,
        body: M,
    },
    Marker {
        id: SnapshotId,
    },
    /// Snapshot `id` is abandoned: drop its part. Decided by node `by`.
    Abort {
        id: SnapshotId,
        by: NodeId,
        reason: AbortReason,
    },
    /// To the initiator: the sender's part of `id` is stored.
    Stored {
        id: SnapshotId,
        part: PartSummary,
    },
    /// From the initiator: every part of `id` is stored; the snapshot is complete.
    Committed {
        id: SnapshotId,
        parts: Vec<PartSummary>,
    },
}

/// What one stored part is, as the initiator and the manifest need it: enough
/// to check the file on any host without reading the others.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartSummary {
    pub node: NodeId,
    /// The part file's size and checksum (0 in the model, which stores nothing).
    pub bytes: u64,
    pub crc32: u32,
    pub keys: u64,
    pub state_bytes: u64,
    pub channel_messages: u64,
    /// Wall-clock time of the record point (ms since the Unix epoch) and how
    /// long the part took: for people, never for the protocol.
    pub recorded_unix_ms: u64,
    pub duration_ms: u64,
    /// The node's delivery vector at its record point: its piece of the cut.
    pub delivered: Vec<u64>,
}

/// Why a snapshot was abandoned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AbortReason {
    /// Not finished within the timeout; the peers still awaited (markers or, at
    /// the initiator, stored parts).
    TimedOut {
        after_ms: u64,
        waiting_on: Vec<NodeId>,
    },
    /// A peer whose marker or part was awaited (or the initiator) is unreachable.
    Unreachable { peer: NodeId },
    /// This node's part could not be stored.
    StoreFailed { error: String },
    /// An operator asked for it.
    Operator,
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = |v: &[NodeId]| {
            v.iter()
                .map(|j| format!("n{j}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            AbortReason::TimedOut {
                after_ms,
                waiting_on,
            } => write!(
                f,
                "timed out after {} s waiting for {}",
                *after_ms as f64 / 1000.0,
                nodes(waiting_on)
            ),
            AbortReason::Unreachable { peer } => write!(f, "n{peer} is unreachable"),
            AbortReason::StoreFailed { error } => {
                write!(f, "its part could not be stored: {error}")
            }
            AbortReason::Operator => f.write_str("aborted by an operator"),
        }
    }
}

/// One finished node's part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalSnapshot<S, M> {
    pub id: SnapshotId,
    pub node: NodeId,
    /// The local state at the record point.
    pub state: S,
    /// Messages sent on each outgoing channel before the record point (index = destination).
    pub sent: Vec<u64>,
    /// Messages received on each incoming channel before the record point (index = source).
    pub received: Vec<u64>,
    /// Each incoming channel's recorded state: `(seq, message)` in arrival order (index = source).
    pub channels: Vec<Vec<(u64, M)>>,
}

impl<S, M> LocalSnapshot<S, M> {
    /// Messages recorded in flight towards this node.
    pub fn channel_messages(&self) -> usize {
        self.channels.iter().map(Vec::len).sum()
    }
}

/// A snapshot in progress at this node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Recording<S, M> {
    state: Frozen<S>,
    sent: Vec<u64>,
    received: Vec<u64>,
    channels: Vec<Vec<(u64, M)>>,
    /// Incoming channels still being recorded.
    open: BTreeSet<NodeId>,
    /// When this node first heard of the snapshot (the timeout runs from here).
    since: u64,
    /// At the initiator: parts stored elsewhere before its own part completed
    /// (a peer can finish while the initiator still awaits another's marker).
    early_parts: BTreeMap<NodeId, PartSummary>,
}

/// A snapshot whose part here is complete, awaiting its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Finishing {
    /// When this node first heard of the snapshot (the timeout runs from here).
    since: u64,
    /// Whether this node's part is stored (and, away from the initiator, acknowledged).
    stored: bool,
    /// At the initiator: the parts stored so far, by node.
    parts: BTreeMap<NodeId, PartSummary>,
}

/// What the runtime must do for the recorder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotEffect<S, M> {
    /// Send this control envelope (marker, abort, stored, committed) to `to`.
    Send { to: NodeId, envelope: Envelope<M> },
    /// This node recorded its local state for `id` (first marker, or initiation).
    Recorded { id: SnapshotId },
    /// This node's part of `id` is complete: store it, then report with
    /// [`Recorder::on_stored`].
    Complete(LocalSnapshot<S, M>),
    /// Every part of `id` is stored: the snapshot is complete (write the manifest).
    Committed {
        id: SnapshotId,
        parts: Vec<PartSummary>,
    },
    /// `id` is abandoned (decided by node `by`): delete this node's part, if any.
    Aborted {
        id: SnapshotId,
        by: NodeId,
        reason: AbortReason,
    },
    /// A part of the aborted snapshot `id` finished storing after the abort: delete it.
    DropPart { id: SnapshotId },
}

/// A channel delivered something the reliable-FIFO assumption rules out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// Message `got` arrived on the channel from `from` where `expected` was next.
    OutOfOrder {
        from: NodeId,
        expected: u64,
        got: u64,
    },
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::OutOfOrder {
                from,
                expected,
                got,
            } => write!(
                f,
                "channel from node {from} delivered message {got} where {expected} was next"
            ),
        }
    }
}

impl std::error::Error for ChannelError {}

/// The per-node Chandy-Lamport recorder over local state `S` and channel messages `M`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Recorder<S, M> {
    me: NodeId,
    n: usize,
    sent: Vec<u64>,
    received: Vec<u64>,
    started: u64,
    /// Each shared by copies of the recorder until a step changes it (a model
    /// checker copies a replica at every step; most steps change no recording).
    active: BTreeMap<SnapshotId, Arc<Recording<S, M>>>,
    /// Parts complete here, awaiting the verdict.
    finishing: BTreeMap<SnapshotId, Finishing>,
    /// Verdicts seen here, bounded ([`outcomes`]): a late marker of an aborted
    /// id must not start it afresh, and a late abort (only possible after the
    /// initiator died) does not undo what this node already wrote.
    outcomes: Outcomes,
    /// The time of the last tick, in milliseconds (time enters only through ticks).
    now: u64,
    /// A snapshot not finished this long after this node heard of it is aborted.
    timeout_ms: u64,
    /// Broken variant: record local states but never channel contents.
    record_channels: bool,
    /// Whether channels are assumed FIFO (the algorithm's premise); when false the
    /// recorder counts arrivals instead of checking positions, so the model can run
    /// it on an unordered network and watch the cut break.
    strict_fifo: bool,
    /// Broken variant: a marker of any id closes its channel for every snapshot
    /// in progress (channel state shared between concurrent snapshot ids).
    #[serde(default)]
    shared_channel_closing: bool,
}

/// A local state recorded for a snapshot still in progress. It never changes
/// once recorded, so a recording copied to be changed shares it, and it is
/// hashed once: the model checker copies and hashes the replica a step
/// changes, and copying and hashing recorded states again was 5% of a bank
/// check. The hash is of the content, so equal states hash alike wherever
/// they were recorded.
#[derive(Clone, Debug)]
struct Frozen<S>(Arc<(S, OnceLock<u64>)>);

impl<S> Frozen<S> {
    fn new(state: S) -> Self {
        Frozen(Arc::new((state, OnceLock::new())))
    }
}

impl<S: Clone> Frozen<S> {
    /// The state, copied only if another recorder still shares it.
    fn into_inner(self) -> S {
        Arc::unwrap_or_clone(self.0).0
    }
}

/// On the wire and on disk, just the state.
impl<S: Serialize> Serialize for Frozen<S> {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.0 .0.serialize(s)
    }
}

impl<'de, S: Deserialize<'de>> Deserialize<'de> for Frozen<S> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        S::deserialize(d).map(Frozen::new)
    }
}

impl<S: PartialEq> PartialEq for Frozen<S> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 .0 == other.0 .0
    }
}

impl<S: Eq> Eq for Frozen<S> {}

impl<S: Hash> Hash for Frozen<S> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let digest = self.0 .1.get_or_init(|| {
            let mut d = DefaultHasher::new();
            self.0 .0.hash(&mut d);
            d.finish()
        });
        h.write_u64(*digest);
    }
}

/// Effects of one recorder step.
type Effects<S, M> = Vec<SnapshotEffect<S, M>>;

impl<S: Clone, M: Clone> Recorder<S, M> {
    /// A correct recorder for member `me` of a complete graph of `n` nodes.
    pub fn new(me: NodeId, n: usize) -> Self {
        Recorder {
            me,
            n,
            sent: vec![0; n],
            received: vec![0; n],
            started: 0,
            active: BTreeMap::new(),
            finishing: BTreeMap::new(),
            outcomes: Outcomes::default(),
            now: 0,
            timeout_ms: u64::MAX,
            record_channels: true,
            strict_fifo: true,
            shared_channel_closing: false,
        }
    }

    /// Abort snapshots not finished `ms` milliseconds after this node heard of them.
    pub fn with_timeout(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// The broken variant in which concurrent snapshots share channel state: a
    /// marker of one id closes that channel for every snapshot in progress.
    pub fn with_shared_channel_closing(mut self) -> Self {
        self.shared_channel_closing = true;
        self
    }

    /// The broken variant that forgets channel state (in-flight messages are lost from the snapshot).
    pub fn without_channel_recording(mut self) -> Self {
        self.record_channels = false;
        self
    }

    /// Tolerates reordering channels (for the model's unordered-network variant only).
    pub fn tolerate_reordering(mut self) -> Self {
        self.strict_fifo = false;
        self
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Snapshots this node is part of that have no verdict here yet.
    pub fn in_progress(&self) -> impl Iterator<Item = SnapshotId> + '_ {
        let mut ids: Vec<SnapshotId> = self
            .active
            .keys()
            .chain(self.finishing.keys())
            .copied()
            .collect();
        ids.sort();
        ids.into_iter()
    }

    /// Whom snapshot `id` waits for here: the peers whose marker has not
    /// arrived, or, at the initiator, whose part is not stored (empty if `id`
    /// is not in progress).
    pub fn waiting_on(&self, id: SnapshotId) -> Vec<NodeId> {
        if let Some(r) = self.active.get(&id) {
            return r.open.iter().copied().collect();
        }
        match self.finishing.get(&id) {
            Some(f) if id.initiator == self.me => {
                (0..self.n).filter(|j| !f.parts.contains_key(j)).collect()
            }
            Some(f) if f.stored => vec![id.initiator],
            Some(_) => vec![self.me],
            None => Vec::new(),
        }
    }

    /// The messages that the snapshots still recording here have recorded in
    /// flight so far: what their parts will hold once complete.
    pub fn in_flight_so_far(&self) -> impl Iterator<Item = &M> + '_ {
        self.active
            .values()
            .flat_map(|r| r.channels.iter().flatten().map(|(_, m)| m))
    }

    /// Whether no envelope this node may yet receive makes its recorder send to
    /// `peer` (directly, or once the part it completes is stored), given that
    /// it starts and aborts none itself (no tick, no peer found unreachable)
    /// and every marker still to come is of one it has recorded. It then sends
    /// only a commit of a snapshot it initiated (to every node) and the
    /// `Stored` report of a part not yet acknowledged (to its initiator);
    /// markers, aborts and commits that reach it send nothing.
    pub fn quiet_towards(&self, peer: NodeId) -> bool {
        let reports_to = |id: &SnapshotId| id.initiator == self.me || id.initiator == peer;
        !self.active.keys().any(reports_to)
            && !self
                .finishing
                .iter()
                .any(|(id, f)| id.initiator == self.me || (id.initiator == peer && !f.stored))
    }

    /// The verdict on `id` if it is finished here (never for an id in progress).
    pub fn finished(&self, id: SnapshotId) -> Option<Outcome> {
        if self.active.contains_key(&id) || self.finishing.contains_key(&id) {
            return None;
        }
        self.outcomes.of(id)
    }

    /// Verdicts this node holds exactly (bounded by [`REMEMBERED_PER_INITIATOR`]
    /// per initiator; older ids count as finished).
    pub fn outcomes_remembered(&self) -> usize {
        self.outcomes.remembered()
    }

    /// Messages sent so far on each outgoing channel.
    pub fn sent_counts(&self) -> &[u64] {
        &self.sent
    }

    /// Messages received so far on each incoming channel.
    pub fn received_counts(&self) -> &[u64] {
        &self.received
    }

    /// Frames an application message for the channel to `to`.
    pub fn wrap(&mut self, to: NodeId, body: M) -> Envelope<M> {
        self.sent[to] += 1;
        Envelope::Msg {
            seq: self.sent[to],
            body,
        }
    }

    /// Starts a new snapshot here with the current local state.
    pub fn initiate(&mut self, state: S) -> (SnapshotId, Effects<S, M>) {
        self.started += 1;
        let id = SnapshotId {
            initiator: self.me,
            seq: self.started,
        };
        let mut effects = Vec::new();
        self.record(id, state, None, &mut effects);
        (id, effects)
    }

    /// Handles an envelope from `from`. Returns the application message to process
    /// (if it was one) and the recorder's effects. `state` is called only when this
    /// envelope is the first marker of a snapshot, to capture the local state
    /// *before* any later message is applied.
    #[allow(clippy::type_complexity)]
    pub fn on_envelope(
        &mut self,
        from: NodeId,
        envelope: Envelope<M>,
        state: impl FnOnce() -> S,
    ) -> Result<(Option<M>, Effects<S, M>), ChannelError> {
        let mut effects = Vec::new();
        match envelope {
            Envelope::Msg { seq, body } => {
                let expected = self.received[from] + 1;
                if self.strict_fifo && seq != expected {
                    return Err(ChannelError::OutOfOrder {
                        from,
                        expected,
                        got: seq,
                    });
                }
                self.received[from] += 1;
                if self.record_channels {
                    for rec in self.active.values_mut().filter(|r| r.open.contains(&from)) {
                        Arc::make_mut(rec).channels[from].push((seq, body.clone()));
                    }
                }
                return Ok((Some(body), effects));
            }
            Envelope::Marker { id } => {
                if self.finished(id).is_some() {
                    return Ok((None, effects));
                }
                if self.shared_channel_closing {
                    let others: Vec<SnapshotId> = self.active.keys().copied().collect();
                    for other in others.into_iter().filter(|&o| o != id) {
                        if let Some(rec) = self.active.get_mut(&other) {
                            Arc::make_mut(rec).open.remove(&from);
                        }
                        self.finish_if_closed(other, &mut effects);
                    }
                }
                if !self.active.contains_key(&id) {
                    if !self.finishing.contains_key(&id) {
                        self.record(id, state(), Some(from), &mut effects);
                    }
                } else if let Some(rec) = self.active.get_mut(&id) {
                    Arc::make_mut(rec).open.remove(&from);
                }
                self.finish_if_closed(id, &mut effects);
            }
            Envelope::Abort { id, by, reason } => {
                if !matches!(
                    self.finished(id),
                    Some(Outcome::Committed | Outcome::Forgotten)
                ) {
                    self.end_aborted(id, by, reason, &mut effects);
                }
            }
            Envelope::Stored { id, part } => {
                if id.initiator == self.me {
                    self.part_stored(id, part, &mut effects);
                }
            }
            Envelope::Committed { id, parts } => self.commit(id, parts, &mut effects),
        }
        Ok((None, effects))
    }

    /// The local part of `id` was stored (`Ok`, with its summary) or could not
    /// be (`Err`, the I/O error): acknowledge it to the initiator, or abort.
    pub fn on_stored(
        &mut self,
        id: SnapshotId,
        result: Result<PartSummary, String>,
    ) -> Effects<S, M> {
        let mut effects = Vec::new();
        if matches!(
            self.finished(id),
            Some(Outcome::Aborted | Outcome::Forgotten)
        ) {
            // Stored after the abort: the part just written must go too.
            effects.push(SnapshotEffect::DropPart { id });
            return effects;
        }
        match result {
            Err(error) => {
                self.abort_everywhere(id, AbortReason::StoreFailed { error }, &mut effects)
            }
            Ok(part) if id.initiator == self.me => self.part_stored(id, part, &mut effects),
            Ok(part) => {
                if let Some(f) = self.finishing.get_mut(&id) {
                    f.stored = true;
                    effects.push(SnapshotEffect::Send {
                        to: id.initiator,
                        envelope: Envelope::Stored { id, part },
                    });
                }
            }
        }
        effects
    }

    /// Time passes: aborts every snapshot this node may abort that has not
    /// finished within the timeout.
    pub fn on_tick(&mut self, now: u64) -> Effects<S, M> {
        self.now = self.now.max(now);
        let mut effects = Vec::new();
        let overdue: Vec<SnapshotId> = self
            .active
            .iter()
            .map(|(id, r)| (*id, r.since))
            .chain(
                self.finishing
                    .iter()
                    .filter(|(id, f)| id.initiator == self.me || !f.stored)
                    .map(|(id, f)| (*id, f.since)),
            )
            .filter(|(_, since)| self.now.saturating_sub(*since) >= self.timeout_ms)
            .map(|(id, _)| id)
            .collect();
        for id in overdue {
            let reason = AbortReason::TimedOut {
                after_ms: self.timeout_ms,
                waiting_on: self.waiting_on(id),
            };
            self.abort_everywhere(id, reason, &mut effects);
        }
        effects
    }

    /// `peer` is unreachable: aborts every snapshot that waits for it here.
    pub fn on_unreachable(&mut self, peer: NodeId) -> Effects<S, M> {
        let mut effects = Vec::new();
        for id in self.in_progress().collect::<Vec<_>>() {
            if !self.waiting_on(id).contains(&peer) {
                continue;
            }
            let reason = AbortReason::Unreachable { peer };
            if self.finishing.get(&id).is_some_and(|f| f.stored) && id.initiator != self.me {
                // Acknowledged, and the initiator is gone: the verdict will not come.
                self.end_aborted(id, self.me, reason, &mut effects);
            } else {
                self.abort_everywhere(id, reason, &mut effects);
            }
        }
        effects
    }

    /// Gives up on snapshot `id` (an operator's request) everywhere. Returns
    /// nothing if this node already acknowledged its part or has a verdict.
    pub fn abort(&mut self, id: SnapshotId, reason: AbortReason) -> Effects<S, M> {
        let mut effects = Vec::new();
        self.abort_everywhere(id, reason, &mut effects);
        effects
    }

    /// Makes the ids this node initiates start above `seq`.
    pub fn skip_ids_through(&mut self, seq: u64) {
        self.started = self.started.max(seq);
    }

    /// Decides to abort `id` and tells every other node, unless this node may
    /// no longer decide (it acknowledged its part, or there is a verdict).
    fn abort_everywhere(
        &mut self,
        id: SnapshotId,
        reason: AbortReason,
        effects: &mut Effects<S, M>,
    ) {
        let acknowledged =
            id.initiator != self.me && self.finishing.get(&id).is_some_and(|f| f.stored);
        if acknowledged || self.finished(id).is_some() {
            return;
        }
        for to in (0..self.n).filter(|&j| j != self.me) {
            effects.push(SnapshotEffect::Send {
                to,
                envelope: Envelope::Abort {
                    id,
                    by: self.me,
                    reason: reason.clone(),
                },
            });
        }
        self.end_aborted(id, self.me, reason, effects);
    }

    fn end_aborted(
        &mut self,
        id: SnapshotId,
        by: NodeId,
        reason: AbortReason,
        effects: &mut Effects<S, M>,
    ) {
        if !self.settle(id, Outcome::Aborted) {
            return;
        }
        self.active.remove(&id);
        self.finishing.remove(&id);
        effects.push(SnapshotEffect::Aborted { id, by, reason });
    }

    fn part_stored(&mut self, id: SnapshotId, part: PartSummary, effects: &mut Effects<S, M>) {
        let Some(f) = self.finishing.get_mut(&id) else {
            // A peer may store its part while the initiator still awaits
            // another peer's marker: keep it for when the initiator's part
            // completes. Late parts of an aborted or committed snapshot are ignored.
            if let Some(rec) = self.active.get_mut(&id) {
                Arc::make_mut(rec).early_parts.insert(part.node, part);
            }
            return;
        };
        if part.node == self.me {
            f.stored = true;
        }
        f.parts.insert(part.node, part);
        if f.stored && f.parts.len() == self.n {
            let parts: Vec<PartSummary> = f.parts.values().cloned().collect();
            for to in (0..self.n).filter(|&j| j != self.me) {
                effects.push(SnapshotEffect::Send {
                    to,
                    envelope: Envelope::Committed {
                        id,
                        parts: parts.clone(),
                    },
                });
            }
            self.commit(id, parts, effects);
        }
    }

    /// Records `id`'s verdict unless it already finished here: the one rule for
    /// both verdicts. An id in progress always settles, even one whose
    /// initiator's newer ids pushed the forgetting floor past it (its verdict
    /// was dropped then, and the id stayed in progress for ever, re-sending
    /// its timeout abort at every tick).
    fn settle(&mut self, id: SnapshotId, outcome: Outcome) -> bool {
        if self.finished(id).is_some() {
            return false;
        }
        self.outcomes.insert(id, outcome);
        true
    }

    fn commit(&mut self, id: SnapshotId, parts: Vec<PartSummary>, effects: &mut Effects<S, M>) {
        if !self.settle(id, Outcome::Committed) {
            return;
        }
        self.finishing.remove(&id);
        effects.push(SnapshotEffect::Committed { id, parts });
    }

    fn record(
        &mut self,
        id: SnapshotId,
        state: S,
        first_marker_from: Option<NodeId>,
        effects: &mut Effects<S, M>,
    ) {
        let others = (0..self.n).filter(|&j| j != self.me);
        let open: BTreeSet<NodeId> = others
            .clone()
            .filter(|&j| Some(j) != first_marker_from)
            .collect();
        self.active.insert(
            id,
            Arc::new(Recording {
                state: Frozen::new(state),
                sent: self.sent.clone(),
                received: self.received.clone(),
                channels: vec![Vec::new(); self.n],
                open,
                since: self.now,
                early_parts: BTreeMap::new(),
            }),
        );
        effects.push(SnapshotEffect::Recorded { id });
        effects.extend(others.map(|to| SnapshotEffect::Send {
            to,
            envelope: Envelope::Marker { id },
        }));
        self.finish_if_closed(id, effects);
    }

    fn finish_if_closed(&mut self, id: SnapshotId, effects: &mut Effects<S, M>) {
        if self.active.get(&id).is_some_and(|r| r.open.is_empty()) {
            let rec = Arc::unwrap_or_clone(self.active.remove(&id).expect("checked"));
            self.finishing.insert(
                id,
                Finishing {
                    since: rec.since,
                    stored: false,
                    parts: rec.early_parts,
                },
            );
            effects.push(SnapshotEffect::Complete(LocalSnapshot {
                id,
                node: self.me,
                state: rec.state.into_inner(),
                sent: rec.sent,
                received: rec.received,
                channels: rec.channels,
            }));
        }
    }
}

#[cfg(test)]
mod tests;
