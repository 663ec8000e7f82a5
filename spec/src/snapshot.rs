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
//! * **Done** when every incoming channel of that id is closed.

use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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
    state: S,
    sent: Vec<u64>,
    received: Vec<u64>,
    channels: Vec<Vec<(u64, M)>>,
    /// Incoming channels still being recorded.
    open: BTreeSet<NodeId>,
}

/// What the runtime must do for the recorder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotEffect<S, M> {
    /// Send this marker on the channel to `to`.
    SendMarker { to: NodeId, id: SnapshotId },
    /// This node recorded its local state for `id` (first marker, or initiation).
    Recorded { id: SnapshotId },
    /// This node's part of `id` is complete.
    Complete(LocalSnapshot<S, M>),
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
    active: BTreeMap<SnapshotId, Recording<S, M>>,
    /// Ids this node gave up on; a late marker for one must not start it afresh.
    aborted: BTreeSet<SnapshotId>,
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
            aborted: BTreeSet::new(),
            record_channels: true,
            strict_fifo: true,
            shared_channel_closing: false,
        }
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

    /// Snapshots this node is part of that have not completed here.
    pub fn in_progress(&self) -> impl Iterator<Item = SnapshotId> + '_ {
        self.active.keys().copied()
    }

    /// The peers whose marker for `id` has not arrived yet (empty if `id` is not in progress):
    /// what a timed-out snapshot was waiting for.
    pub fn waiting_on(&self, id: SnapshotId) -> Vec<NodeId> {
        self.active
            .get(&id)
            .map(|r| r.open.iter().copied().collect())
            .unwrap_or_default()
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
    pub fn initiate(&mut self, state: S) -> (SnapshotId, Vec<SnapshotEffect<S, M>>) {
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
    ) -> Result<(Option<M>, Vec<SnapshotEffect<S, M>>), ChannelError> {
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
                        rec.channels[from].push((seq, body.clone()));
                    }
                }
                Ok((Some(body), effects))
            }
            Envelope::Marker { id } => {
                if self.aborted.contains(&id) {
                    return Ok((None, effects));
                }
                if self.shared_channel_closing {
                    let others: Vec<SnapshotId> = self.active.keys().copied().collect();
                    for other in others.into_iter().filter(|&o| o != id) {
                        if let Some(rec) = self.active.get_mut(&other) {
                            rec.open.remove(&from);
                        }
                        self.finish_if_closed(other, &mut effects);
                    }
                }
                if !self.active.contains_key(&id) {
                    self.record(id, state(), Some(from), &mut effects);
                } else if let Some(rec) = self.active.get_mut(&id) {
                    rec.open.remove(&from);
                }
                self.finish_if_closed(id, &mut effects);
                Ok((None, effects))
            }
        }
    }

    /// Makes the ids this node initiates start above `seq`.
    pub fn skip_ids_through(&mut self, seq: u64) {
        self.started = self.started.max(seq);
    }

    /// Gives up on a snapshot (e.g. a timeout because a member died).
    /// Returns whether it was in progress here.
    pub fn abort(&mut self, id: SnapshotId) -> bool {
        self.aborted.insert(id);
        self.active.remove(&id).is_some()
    }

    fn record(
        &mut self,
        id: SnapshotId,
        state: S,
        first_marker_from: Option<NodeId>,
        effects: &mut Vec<SnapshotEffect<S, M>>,
    ) {
        let others = (0..self.n).filter(|&j| j != self.me);
        let open: BTreeSet<NodeId> = others
            .clone()
            .filter(|&j| Some(j) != first_marker_from)
            .collect();
        self.active.insert(
            id,
            Recording {
                state,
                sent: self.sent.clone(),
                received: self.received.clone(),
                channels: vec![Vec::new(); self.n],
                open,
            },
        );
        effects.push(SnapshotEffect::Recorded { id });
        effects.extend(others.map(|to| SnapshotEffect::SendMarker { to, id }));
        self.finish_if_closed(id, effects);
    }

    fn finish_if_closed(&mut self, id: SnapshotId, effects: &mut Vec<SnapshotEffect<S, M>>) {
        if self.active.get(&id).is_some_and(|r| r.open.is_empty()) {
            let rec = self.active.remove(&id).expect("checked");
            effects.push(SnapshotEffect::Complete(LocalSnapshot {
                id,
                node: self.me,
                state: rec.state,
                sent: rec.sent,
                received: rec.received,
                channels: rec.channels,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Recorder<&'static str, char>;

    fn complete(
        effects: &[SnapshotEffect<&'static str, char>],
    ) -> Option<LocalSnapshot<&'static str, char>> {
        effects.iter().find_map(|e| match e {
            SnapshotEffect::Complete(s) => Some(s.clone()),
            _ => None,
        })
    }

    #[test]
    fn two_concurrent_snapshots_record_independently() {
        // Node 1 of three. Snapshot A (from node 0) and B (from node 2) overlap.
        let mut r: R = Recorder::new(1, 3);
        let a = SnapshotId {
            initiator: 0,
            seq: 1,
        };
        let b = SnapshotId {
            initiator: 2,
            seq: 1,
        };

        let (m, eff) = r
            .on_envelope(0, Envelope::Marker { id: a }, || "s-at-a")
            .unwrap();
        assert!(m.is_none());
        assert_eq!(
            eff,
            vec![
                SnapshotEffect::Recorded { id: a },
                SnapshotEffect::SendMarker { to: 0, id: a },
                SnapshotEffect::SendMarker { to: 2, id: a },
            ]
        );
        // 'x' from node 2 is in flight for A (channel 2->1 still open for A).
        let (m, eff) = r
            .on_envelope(2, Envelope::Msg { seq: 1, body: 'x' }, || unreachable!())
            .unwrap();
        assert_eq!(m, Some('x'));
        assert!(eff.is_empty());
        // B's first marker arrives from node 2: records B, closes 2->1 for B only.
        let (_, eff) = r
            .on_envelope(2, Envelope::Marker { id: b }, || "s-at-b")
            .unwrap();
        assert!(eff.contains(&SnapshotEffect::Recorded { id: b }));
        // 'y' from node 0: A has closed 0->1, B is still recording it.
        r.on_envelope(0, Envelope::Msg { seq: 1, body: 'y' }, || unreachable!())
            .unwrap();
        // A's marker from node 2 completes A.
        let (_, eff) = r
            .on_envelope(2, Envelope::Marker { id: a }, || unreachable!())
            .unwrap();
        let part_a = complete(&eff).expect("A complete");
        assert_eq!(part_a.state, "s-at-a");
        assert_eq!(part_a.channels, vec![vec![], vec![], vec![(1, 'x')]]);
        assert_eq!(part_a.received, vec![0, 0, 0]);
        // B's marker from node 0 completes B.
        let (_, eff) = r
            .on_envelope(0, Envelope::Marker { id: b }, || unreachable!())
            .unwrap();
        let part_b = complete(&eff).expect("B complete");
        assert_eq!(part_b.state, "s-at-b");
        assert_eq!(part_b.channels, vec![vec![(1, 'y')], vec![], vec![]]);
        assert_eq!(part_b.received, vec![0, 0, 1]);
        assert_eq!(r.in_progress().count(), 0);
    }

    #[test]
    fn initiator_counts_sends_and_a_lone_node_completes_at_once() {
        let mut r: R = Recorder::new(0, 2);
        assert_eq!(r.wrap(1, 'a'), Envelope::Msg { seq: 1, body: 'a' });
        let (id, eff) = r.initiate("s");
        assert_eq!(
            id,
            SnapshotId {
                initiator: 0,
                seq: 1
            }
        );
        assert!(complete(&eff).is_none());
        let (_, eff) = r
            .on_envelope(1, Envelope::Marker { id }, || unreachable!())
            .unwrap();
        assert_eq!(complete(&eff).unwrap().sent, vec![0, 1]);

        let mut lone: R = Recorder::new(0, 1);
        let (_, eff) = lone.initiate("s");
        assert!(complete(&eff).is_some());
    }

    #[test]
    fn out_of_order_channel_is_refused_and_aborted_ids_stay_dead() {
        let mut r: R = Recorder::new(1, 2);
        let err = r
            .on_envelope(0, Envelope::Msg { seq: 2, body: 'z' }, || "s")
            .unwrap_err();
        assert_eq!(
            err,
            ChannelError::OutOfOrder {
                from: 0,
                expected: 1,
                got: 2
            }
        );
        let id = SnapshotId {
            initiator: 0,
            seq: 9,
        };
        assert!(!r.abort(id));
        let (_, eff) = r.on_envelope(0, Envelope::Marker { id }, || "s").unwrap();
        assert!(
            eff.is_empty(),
            "a marker for an aborted snapshot must not restart it"
        );
    }

    #[test]
    fn broken_variant_forgets_channel_contents() {
        let mut r: R = Recorder::new(1, 2).without_channel_recording();
        let (id, _) = r.initiate("s");
        r.on_envelope(0, Envelope::Msg { seq: 1, body: 'q' }, || unreachable!())
            .unwrap();
        let (_, eff) = r
            .on_envelope(0, Envelope::Marker { id }, || unreachable!())
            .unwrap();
        assert_eq!(complete(&eff).unwrap().channels, vec![vec![], vec![]]);
    }
}
