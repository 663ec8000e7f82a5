//! Safety predicates as plain functions over recorded histories.
//!
//! The model checker evaluates them on its ghost history at every state; the
//! real-cluster tests and `gsmo snapshot verify` evaluate them on logs and
//! snapshot files. One definition of "correct", two very different judges.

use crate::multicast::{Mode, MsgId};
use crate::snapshot::LocalSnapshot;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A property failed; `detail` names the nodes and messages involved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    pub property: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.property, self.detail)
    }
}

impl std::error::Error for Violation {}

fn fail<T>(property: &'static str, detail: String) -> Result<T, Violation> {
    Err(Violation { property, detail })
}

/// Holds when there is no witness against `property`; else the first, told.
fn no_witness<W>(
    property: &'static str,
    witnesses: &[W],
    tell: impl Fn(&W) -> String,
) -> Result<(), Violation> {
    witnesses
        .first()
        .map_or(Ok(()), |w| fail(property, tell(w)))
}

/// One multicast event in a node's local history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// This node multicast the message.
    Send(MsgId),
    /// This node delivered the message to its application.
    Deliver(MsgId),
}

fn delivered<L: AsRef<[Event]>>(log: &L) -> impl Iterator<Item = MsgId> + '_ {
    log.as_ref().iter().filter_map(|e| match e {
        Event::Deliver(m) => Some(*m),
        Event::Send(_) => None,
    })
}

/// The messages a history names, sorted, each with a dense index.
///
/// The predicates run at every state the model checker visits. Keeping
/// per-message facts in vectors under these indices, not in hash sets keyed by
/// id, took a fifth to a quarter off a causal model's check: SipHashing each
/// id was most of the predicates' time. Lookups are binary searches, so a long
/// real run's history still costs O(n log n) time and linear memory.
/// `spec/tests/predicates.rs` holds them to the hash-set definitions they replaced.
struct Messages {
    /// Every id some event names, sorted, without repeats.
    ids: Vec<MsgId>,
    /// By index: whether some node sent it.
    sent: Vec<bool>,
}

impl Messages {
    fn of<L: AsRef<[Event]>>(logs: &[L]) -> Self {
        let mut named = Vec::with_capacity(logs.iter().map(|l| l.as_ref().len()).sum());
        named.extend(
            logs.iter()
                .flat_map(|l| l.as_ref().iter())
                .map(|e| match *e {
                    Event::Send(m) => (m, true),
                    Event::Deliver(m) => (m, false),
                }),
        );
        // A sent id sorts its send first, the one `dedup` keeps.
        named.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        named.dedup_by_key(|(m, _)| *m);
        let (ids, sent) = named.into_iter().unzip();
        Messages { ids, sent }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// `m`'s index, if some event names it.
    fn index(&self, m: MsgId) -> Option<usize> {
        self.ids.binary_search(&m).ok()
    }

    /// The index of a message an event names.
    fn named(&self, m: MsgId) -> usize {
        self.index(m)
            .expect("every message in the history is named")
    }
}

/// Integrity: a node delivers a message at most once, and only messages some
/// node sent ([`Histories::integrity`]).
pub fn integrity<L: AsRef<[Event]>>(logs: &[L]) -> Result<(), Violation> {
    Histories::of(logs).integrity()
}

/// Logs judged by several of the properties here: the messages they name are
/// sorted once, not once per property. The model checker judges three or
/// four of them in every state it visits; each function of the same name is
/// the one property on its own.
pub struct Histories<'a, L> {
    logs: &'a [L],
    msgs: Messages,
}

impl<'a, L: AsRef<[Event]>> Histories<'a, L> {
    pub fn of(logs: &'a [L]) -> Self {
        Histories {
            logs,
            msgs: Messages::of(logs),
        }
    }

    /// Integrity: a node delivers a message at most once, and only messages
    /// some node sent.
    pub fn integrity(&self) -> Result<(), Violation> {
        let msgs = &self.msgs;
        let mut seen = vec![false; msgs.len()];
        for (node, log) in self.logs.iter().enumerate() {
            seen.fill(false);
            for m in delivered(log) {
                let i = msgs.named(m);
                if !msgs.sent[i] {
                    return fail(
                        "integrity",
                        format!("node {node} delivered {m}, which nobody sent"),
                    );
                }
                if std::mem::replace(&mut seen[i], true) {
                    return fail("integrity", format!("node {node} delivered {m} twice"));
                }
            }
        }
        Ok(())
    }

    /// FIFO order, as [`fifo_order`] (which needs no sorted messages).
    pub fn fifo_order(&self) -> Result<(), Violation> {
        fifo_order(self.logs)
    }

    /// Causal order: if `send(a)` happened before `send(b)` and a node
    /// delivers `b`, it delivered `a` first. Happened-before is computed from
    /// the logs themselves (a node's earlier sends and deliveries,
    /// transitively), not from any algorithm's clocks, so a buggy clock cannot
    /// vouch for itself.
    pub fn causal_order(&self) -> Result<(), Violation> {
        let (logs, msgs) = (self.logs, &self.msgs);
        let past = Pasts::of(logs, msgs);
        let mut done = vec![false; msgs.len()];
        // Per origin, how many of its messages this node delivered without a gap.
        let mut prefix = vec![0u64; past.width()];
        for (node, log) in logs.iter().enumerate() {
            done.fill(false);
            prefix.fill(0);
            for b in delivered(log) {
                let ib = msgs.named(b);
                if let Some(before) = past.get(ib) {
                    if let Some(j) = (0..before.len()).find(|&j| before[j] > prefix[j]) {
                        let a = MsgId {
                            origin: j,
                            seq: prefix[j] + 1,
                        };
                        return fail(
                            "causal order",
                            format!(
                                "node {node} delivered {b} before {a}, which happened before it"
                            ),
                        );
                    }
                }
                done[ib] = true;
                if let Some(p) = prefix.get_mut(b.origin) {
                    let next = |p: u64| MsgId {
                        origin: b.origin,
                        seq: p + 1,
                    };
                    while msgs.index(next(*p)).is_some_and(|k| done[k]) {
                        *p += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Total order: any two nodes deliver the messages they both deliver in
    /// the same relative order.
    pub fn total_order(&self) -> Result<(), Violation> {
        let msgs = &self.msgs;
        let orders: Vec<Vec<usize>> = self
            .logs
            .iter()
            .map(|l| delivered(l).map(|m| msgs.named(m)).collect())
            .collect();
        // By message: where node i delivered it (its last delivery), if it did.
        let mut pos_i = vec![None; msgs.len()];
        for i in 0..orders.len() {
            pos_i.fill(None);
            for (p, &k) in orders[i].iter().enumerate() {
                pos_i[k] = Some(p);
            }
            for (j, order_j) in orders.iter().enumerate().skip(i + 1) {
                let common: Vec<usize> = order_j
                    .iter()
                    .copied()
                    .filter(|&k| pos_i[k].is_some())
                    .collect();
                if let Some(w) = common.windows(2).find(|w| pos_i[w[0]] > pos_i[w[1]]) {
                    return fail(
                        "total order",
                        format!(
                            "node {i} delivered {} before {}, node {j} the other way round",
                            msgs.ids[w[1]], msgs.ids[w[0]]
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Liveness at quiescence: every sent message has been delivered at every
    /// node.
    pub fn all_delivered(&self) -> Result<(), Violation> {
        self.delivered_everywhere(&self.msgs.sent, "all delivered")
    }

    /// Agreement at quiescence (reliable broadcast's; Hadzilacos & Toueg
    /// 1993): a message one of these nodes delivered, each of them delivered.
    /// Unlike [`Histories::all_delivered`] it asks nothing of a message none
    /// delivered, such as a crashed sender's that reached no one.
    pub fn agreement(&self) -> Result<(), Violation> {
        let mut somewhere = vec![false; self.msgs.len()];
        for m in self.logs.iter().flat_map(delivered) {
            somewhere[self.msgs.named(m)] = true;
        }
        self.delivered_everywhere(&somewhere, "agreement")
    }

    /// Whether every node delivered each message `wanted` marks, by index.
    fn delivered_everywhere(
        &self,
        wanted: &[bool],
        property: &'static str,
    ) -> Result<(), Violation> {
        let msgs = &self.msgs;
        let mut got = vec![false; msgs.len()];
        for (node, log) in self.logs.iter().enumerate() {
            got.fill(false);
            for m in delivered(log) {
                got[msgs.named(m)] = true;
            }
            // The first in id order, as the set difference of wanted and delivered gives it.
            if let Some(k) = (0..msgs.len()).find(|&k| wanted[k] && !got[k]) {
                let m = msgs.ids[k];
                return fail(property, format!("node {node} never delivered {m}"));
            }
        }
        Ok(())
    }
}

/// FIFO order: each node delivers each origin's messages in send order, without gaps.
pub fn fifo_order<L: AsRef<[Event]>>(logs: &[L]) -> Result<(), Violation> {
    for (node, log) in logs.iter().enumerate() {
        let mut next: BTreeMap<NodeId, u64> = BTreeMap::new();
        for m in delivered(log) {
            let want = next.entry(m.origin).or_insert(1);
            if m.seq != *want {
                return fail(
                    "fifo order",
                    format!(
                        "node {node} delivered {m} while n{}#{} was next",
                        m.origin, want
                    ),
                );
            }
            *want += 1;
        }
    }
    Ok(())
}

/// Causal order: if `send(a)` happened before `send(b)` and a node delivers `b`,
/// it delivered `a` first ([`Histories::causal_order`]).
pub fn causal_order<L: AsRef<[Event]>>(logs: &[L]) -> Result<(), Violation> {
    Histories::of(logs).causal_order()
}

/// For each sent message, its causal past as a vector: per origin, how many of
/// that origin's messages were sent before it (happened-before is downward
/// closed per origin, since an origin's sends are ordered). A vector per
/// message instead of a set keeps long real runs' checks linear in memory.
struct Pasts {
    width: usize,
    /// Row `k` (of `width`) is the past of message `k` of [`Messages`].
    rows: Vec<u64>,
    /// By message: whether its send was seen, so that its row is its past.
    known: Vec<bool>,
}

impl Pasts {
    fn of<L: AsRef<[Event]>>(logs: &[L], msgs: &Messages) -> Pasts {
        let width = msgs
            .ids
            .iter()
            .map(|m| m.origin + 1)
            .fold(logs.len(), usize::max);
        let mut rows = vec![0; width * msgs.len()];
        let mut known = vec![false; msgs.len()];
        let note = |v: &mut [u64], m: MsgId| v[m.origin] = v[m.origin].max(m.seq);
        let mut pos = vec![0usize; logs.len()];
        // What each node knows, as a past of the same shape.
        let mut knows = vec![0u64; width * logs.len()];
        // Advance nodes in any order that processes a send before its deliveries.
        loop {
            let mut progressed = false;
            for (i, log) in logs.iter().enumerate() {
                let log = log.as_ref();
                let mine = &mut knows[i * width..(i + 1) * width];
                while pos[i] < log.len() {
                    match log[pos[i]] {
                        Event::Send(m) => {
                            let k = msgs.named(m);
                            rows[k * width..(k + 1) * width].copy_from_slice(mine);
                            known[k] = true;
                            note(mine, m);
                        }
                        Event::Deliver(m) => {
                            let k = msgs.named(m);
                            if known[k] {
                                for (a, p) in mine.iter_mut().zip(&rows[k * width..(k + 1) * width])
                                {
                                    *a = (*a).max(*p);
                                }
                                note(mine, m);
                            } else if msgs.sent[k] {
                                // Its send is not processed yet; unsent messages are integrity's business.
                                break;
                            }
                        }
                    }
                    pos[i] += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        Pasts { width, rows, known }
    }

    /// The width of a past: none if no message has one.
    fn width(&self) -> usize {
        if self.known.contains(&true) {
            self.width
        } else {
            0
        }
    }

    /// Message `k`'s past, if its send was seen.
    fn get(&self, k: usize) -> Option<&[u64]> {
        self.known[k].then(|| &self.rows[k * self.width..(k + 1) * self.width])
    }
}

/// Total order: any two nodes deliver the messages they both deliver in the
/// same relative order ([`Histories::total_order`]).
pub fn total_order<L: AsRef<[Event]>>(logs: &[L]) -> Result<(), Violation> {
    Histories::of(logs).total_order()
}

/// The safety properties `mode` promises on delivery histories: integrity
/// always, then FIFO, causal and total order as the mode guarantees them.
/// The one place that says which order belongs to which mode.
pub fn promised_orders<L: AsRef<[Event]>>(mode: Mode, logs: &[L]) -> Result<(), Violation> {
    let histories = Histories::of(logs);
    histories.integrity()?;
    if mode.is_fifo() {
        fifo_order(logs)?;
    }
    if mode.is_causal() {
        histories.causal_order()?;
    }
    if mode.is_total() {
        histories.total_order()?;
    }
    Ok(())
}

/// Liveness at quiescence: every sent message has been delivered at every
/// node ([`Histories::all_delivered`]).
pub fn all_delivered<L: AsRef<[Event]>>(logs: &[L]) -> Result<(), Violation> {
    Histories::of(logs).all_delivered()
}

/// Agreement at quiescence: a message one of these nodes delivered, each of
/// them delivered ([`Histories::agreement`]).
pub fn agreement<L: AsRef<[Event]>>(logs: &[L]) -> Result<(), Violation> {
    Histories::of(logs).agreement()
}

/// A replica's link that holds its whole buffer unacknowledged: while there
/// is one, the replica refuses writes (`TRYAGAIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullLink {
    pub node: NodeId,
    pub peer: NodeId,
    /// Bytes retained, counting writes about to join the link.
    pub retained: u64,
    pub limit: u64,
}

/// Writes flow when quiet: once nothing is in flight and every connection
/// is up, no replica's link is full. Flow control (the sequencer's ack hold)
/// may refuse writes for a while, never for good: every frame was
/// delivered, so every ack owed must have gone.
pub fn writes_flow(full: &[FullLink]) -> Result<(), Violation> {
    no_witness("writes flow when quiet", full, |f| {
        format!(
            "nothing in flight, yet n{}'s link to n{} retains {} bytes (limit {}): \
             n{} refuses writes for good",
            f.node, f.peer, f.retained, f.limit, f.node
        )
    })
}

/// A replica's ack hold that a peer got past: the peer knows of `acked` of
/// its frames delivered, where the hold began at `held_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakedHold {
    pub node: NodeId,
    pub peer: NodeId,
    pub held_at: u64,
    pub acked: u64,
}

/// Held acks stay held: while a replica holds its acks to a peer, the peer
/// learns of no delivery beyond where the hold began, neither from a frame
/// nor from a reconnect's resume point. Otherwise the peer frees its buffer,
/// takes more writes, and the holder's memory passes its bound, by a buffer
/// per reconnect.
pub fn acks_stay_held(leaks: &[LeakedHold]) -> Result<(), Violation> {
    no_witness("held acks stay held", leaks, |l| {
        format!(
            "n{} holds its acks to n{} from frame {}, yet n{} knows of {} delivered: \
             n{} may take writes the hold should refuse",
            l.node, l.peer, l.held_at, l.peer, l.acked, l.peer
        )
    })
}

/// A replica with more snapshots of its own in progress than its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overbooked {
    pub node: NodeId,
    pub own: usize,
    pub limit: u64,
}

/// Snapshots stay bounded: no replica has more snapshots of its own in
/// progress than its bound ([`Node::snapshot_refusal`](crate::node::Node::snapshot_refusal)).
/// Each holds a copy of the state as it changes and the channels'
/// recordings, and ends in a write of the whole store: a client looping
/// `SNAPSHOT` must meet a refusal, not a replica growing without bound.
pub fn snapshots_bounded(over: &[Overbooked]) -> Result<(), Violation> {
    no_witness("snapshots bounded", over, |o| {
        format!(
            "n{} has {} snapshots of its own in progress, over its bound of {}",
            o.node, o.own, o.limit
        )
    })
}

/// Checks that `parts` are one complete snapshot: one part per node, same id, in node order.
fn complete_snapshot<S, M>(
    parts: &[LocalSnapshot<S, M>],
    property: &'static str,
) -> Result<(), Violation> {
    let n = parts.len();
    for (i, p) in parts.iter().enumerate() {
        if p.node != i {
            return fail(property, format!("part {i} belongs to node {}", p.node));
        }
        if p.id != parts[0].id {
            return fail(
                property,
                format!(
                    "node {i}'s part is of snapshot {}, not {}",
                    p.id, parts[0].id
                ),
            );
        }
        if p.sent.len() != n || p.received.len() != n || p.channels.len() != n {
            return fail(
                property,
                format!("node {i}'s part does not describe a {n}-node cluster"),
            );
        }
    }
    Ok(())
}

/// Consistent cut: no message is received before its receiver's record point
/// but sent after its sender's: for every channel `i -> j`,
/// `received_before_record(j, from i) <= sent_before_record(i, to j)`.
pub fn consistent_cut<S, M>(parts: &[LocalSnapshot<S, M>]) -> Result<(), Violation> {
    complete_snapshot(parts, "consistent cut")?;
    for (i, pi) in parts.iter().enumerate() {
        for (j, pj) in parts.iter().enumerate().filter(|(j, _)| *j != i) {
            if pj.received[i] > pi.sent[j] {
                return fail(
                    "consistent cut",
                    format!(
                        "node {j} recorded {} messages received from node {i}, which recorded only {} sent",
                        pj.received[i], pi.sent[j]
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Exact channel state, by position: the recorded state of channel `i -> j` is
/// precisely the messages sent before `i`'s record and received after `j`'s,
/// i.e. positions `received_j[i] + 1 ..= sent_i[j]`, in order.
pub fn exact_channel_state<S, M>(parts: &[LocalSnapshot<S, M>]) -> Result<(), Violation> {
    complete_snapshot(parts, "exact channel state")?;
    for (i, pi) in parts.iter().enumerate() {
        for (j, pj) in parts.iter().enumerate().filter(|(j, _)| *j != i) {
            let recorded: Vec<u64> = pj.channels[i].iter().map(|(seq, _)| *seq).collect();
            let expected: Vec<u64> = (pj.received[i] + 1..=pi.sent[j]).collect();
            if recorded != expected {
                return fail(
                    "exact channel state",
                    format!("channel {i}->{j} recorded positions {recorded:?}, in flight were {expected:?}"),
                );
            }
        }
    }
    Ok(())
}

/// Exact channel state, by content, against ground truth: `sent[i][j]` is every
/// message `i` put on channel `i -> j`, in order (the model's ghost history).
pub fn channel_contents_match<S, M: PartialEq + fmt::Debug>(
    parts: &[LocalSnapshot<S, M>],
    sent: &[Vec<Vec<M>>],
) -> Result<(), Violation> {
    exact_channel_state(parts)?;
    for (i, pi) in parts.iter().enumerate() {
        for (j, pj) in parts.iter().enumerate().filter(|(j, _)| *j != i) {
            let lo = pj.received[i] as usize;
            let hi = pi.sent[j] as usize;
            let truth = sent[i][j].get(lo..hi).unwrap_or(&[]);
            let recorded: Vec<&M> = pj.channels[i].iter().map(|(_, m)| m).collect();
            if recorded.len() != truth.len() || recorded.iter().zip(truth).any(|(a, b)| *a != b) {
                return fail(
                    "exact channel state",
                    format!("channel {i}->{j} recorded {recorded:?}, but {truth:?} was in flight"),
                );
            }
        }
    }
    Ok(())
}

/// Consistent cut, by delivery vectors: `delivered[j][i]` is how many of
/// `i`'s multicasts node `j` had delivered at its record point and `sent[i]`
/// how many `i` had multicast at its own. No node may have seen more of `i`'s
/// messages than `i` had sent before the cut. (Not `delivered[i][i]`: under a
/// total order a sender may deliver its own message after others do.)
pub fn consistent_delivery_vectors(sent: &[u64], delivered: &[Vec<u64>]) -> Result<(), Violation> {
    for (j, vj) in delivered.iter().enumerate() {
        for (i, own) in sent.iter().enumerate() {
            let seen = vj.get(i).copied().unwrap_or(0);
            if seen > *own {
                return fail(
                    "consistent cut",
                    format!("node {j} had delivered {seen} of node {i}'s messages, node {i} had sent only {own}"),
                );
            }
        }
    }
    Ok(())
}

/// Conservation: recorded balances plus money recorded in flight equal the total.
pub fn conservation(
    total: i128,
    balances: impl IntoIterator<Item = i128>,
    in_flight: impl IntoIterator<Item = i128>,
) -> Result<(), Violation> {
    let held: i128 = balances.into_iter().sum();
    let moving: i128 = in_flight.into_iter().sum();
    if held + moving != total {
        return fail(
            "conservation",
            format!(
                "balances {held} + in flight {moving} = {}, expected {total}",
                held + moving
            ),
        );
    }
    Ok(())
}

/// Convergence: replicas that delivered the same set of messages hold equal states.
pub fn convergence<S: PartialEq + fmt::Debug>(
    replicas: &[(BTreeSet<MsgId>, S)],
) -> Result<(), Violation> {
    let mut by_set: BTreeMap<&BTreeSet<MsgId>, (usize, &S)> = BTreeMap::new();
    for (i, (set, state)) in replicas.iter().enumerate() {
        match by_set.get(set) {
            Some((j, other)) if *other != state => {
                return fail(
                    "convergence",
                    format!(
                        "nodes {j} and {i} delivered the same {} messages but differ",
                        set.len()
                    ),
                )
            }
            Some(_) => {}
            None => {
                by_set.insert(set, (i, state));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;

    fn m(origin: NodeId, seq: u64) -> MsgId {
        MsgId { origin, seq }
    }

    #[test]
    fn integrity_rejects_duplicates_and_forgeries() {
        let ok = vec![
            vec![Send(m(0, 1)), Deliver(m(0, 1))],
            vec![Deliver(m(0, 1))],
        ];
        assert!(integrity(&ok).is_ok());
        let dup = vec![vec![Send(m(0, 1)), Deliver(m(0, 1)), Deliver(m(0, 1))]];
        assert_eq!(integrity(&dup).unwrap_err().property, "integrity");
        let forged = vec![vec![Deliver(m(1, 1))], vec![]];
        assert!(integrity(&forged)
            .unwrap_err()
            .detail
            .contains("nobody sent"));
    }

    #[test]
    fn fifo_rejects_out_of_order_and_gaps() {
        let ok = vec![
            vec![Send(m(0, 1)), Send(m(0, 2))],
            vec![Deliver(m(0, 1)), Deliver(m(0, 2))],
        ];
        assert!(fifo_order(&ok).is_ok());
        let swapped = vec![
            vec![Send(m(0, 1)), Send(m(0, 2))],
            vec![Deliver(m(0, 2)), Deliver(m(0, 1))],
        ];
        assert_eq!(fifo_order(&swapped).unwrap_err().property, "fifo order");
        let gap = vec![vec![Send(m(0, 1)), Send(m(0, 2))], vec![Deliver(m(0, 2))]];
        assert!(fifo_order(&gap).is_err());
    }

    #[test]
    fn causal_rejects_reply_before_question() {
        // n0 sends q; n1 delivers q then sends r; n2 delivers r before q.
        let q = m(0, 1);
        let r = m(1, 1);
        let good = vec![
            vec![Send(q), Deliver(q), Deliver(r)],
            vec![Deliver(q), Send(r), Deliver(r)],
            vec![Deliver(q), Deliver(r)],
        ];
        assert!(causal_order(&good).is_ok());
        let bad = vec![
            vec![Send(q), Deliver(q), Deliver(r)],
            vec![Deliver(q), Send(r), Deliver(r)],
            vec![Deliver(r), Deliver(q)],
        ];
        let v = causal_order(&bad).unwrap_err();
        assert_eq!(v.property, "causal order");
        assert!(
            v.detail.contains("node 2 delivered n1#1 before n0#1"),
            "{v}"
        );
        // Transitivity: n2's message depends on q through n1's.
        let s = m(2, 1);
        let transitive = vec![
            vec![Send(q), Deliver(q)],
            vec![Deliver(q), Send(r)],
            vec![Deliver(r), Send(s)],
            vec![Deliver(s)],
        ];
        assert!(
            causal_order(&transitive).is_err(),
            "node 3 lacks q and r before s"
        );
        // A delivery from a node whose log is missing (a partial set of
        // traces) is judged, not a panic: its send is not in the history,
        // which is integrity's business, not causal order's.
        let unseen_origin = vec![
            vec![Send(q), Deliver(q)],
            vec![Deliver(q), Deliver(m(2, 1))],
        ];
        assert!(causal_order(&unseen_origin).is_ok());
        // ... and the log goes on past it: what n1 sends after delivering a
        // message nobody sent still depends on what n1 delivered before.
        let past_a_stranger = vec![
            vec![Send(q), Deliver(q)],
            vec![Deliver(m(2, 1)), Deliver(q), Send(r)],
            vec![Deliver(r), Deliver(q)],
        ];
        let v = causal_order(&past_a_stranger).unwrap_err();
        assert!(
            v.detail.contains("node 2 delivered n1#1 before n0#1"),
            "{v}"
        );
        // Nor is a send filed under another node's log (a corrupt or
        // renumbered trace): origins are counted from the events themselves.
        let misfiled = vec![vec![Send(m(3, 1))], vec![Deliver(m(3, 1))]];
        assert!(causal_order(&misfiled).is_ok());
        // FIFO order is not enough: this history is FIFO but not causal.
        assert!(fifo_order(&bad).is_ok());
        // Each mode is judged by what it promises, and only that: FIFO lets
        // this history pass, causal refuses it for causal order, and the
        // total modes (no causal promise) for total order.
        for (mode, refused_for) in [
            (Mode::Fifo, None),
            (Mode::Causal, Some("causal order")),
            (Mode::TotalSequencer, Some("total order")),
            (Mode::TotalIsis, Some("total order")),
        ] {
            let verdict = promised_orders(mode, &bad).err().map(|v| v.property);
            assert_eq!(verdict, refused_for, "{mode}");
        }
        // n2 already delivered q's predecessor from n0: the per-origin prefix
        // must count it as one delivered, not let it vouch for q too.
        let (p, q2) = (m(0, 1), m(0, 2));
        let after_a_prefix = vec![
            vec![Send(p), Send(q2), Deliver(p), Deliver(q2)],
            vec![Deliver(p), Deliver(q2), Send(r), Deliver(r)],
            vec![Deliver(p), Deliver(r), Deliver(q2)],
        ];
        let v = causal_order(&after_a_prefix).unwrap_err();
        assert!(
            v.detail.contains("node 2 delivered n1#1 before n0#2"),
            "{v}"
        );
    }

    #[test]
    fn total_rejects_disagreeing_nodes() {
        let (a, b) = (m(0, 1), m(1, 1));
        let agree = vec![
            vec![Send(a), Deliver(a), Deliver(b)],
            vec![Send(b), Deliver(a), Deliver(b)],
        ];
        assert!(total_order(&agree).is_ok());
        let disagree = vec![
            vec![Send(a), Deliver(a), Deliver(b)],
            vec![Send(b), Deliver(b), Deliver(a)],
        ];
        let v = total_order(&disagree).unwrap_err();
        assert_eq!(v.property, "total order");
        // Names each node with its own order, the first pair first.
        assert_eq!(
            v.detail,
            "node 0 delivered n0#1 before n1#1, node 1 the other way round"
        );
        assert!(all_delivered(&agree).is_ok());
        let partial = vec![vec![Send(a), Deliver(a)], vec![]];
        assert!(all_delivered(&partial).is_err());
        // Agreement asks only for what some node delivered: a message sent
        // but delivered nowhere (its sender crashed) breaks no agreement.
        let lost = vec![vec![Deliver(a)], vec![Deliver(a)], vec![Send(b)]];
        assert!(agreement(&lost[..2]).is_ok());
        assert!(all_delivered(&lost).is_err());
        let v = agreement(&[vec![Deliver(a), Deliver(b)], vec![Deliver(b)]]).unwrap_err();
        assert_eq!(
            (v.property, v.detail.as_str()),
            ("agreement", "node 1 never delivered n0#1")
        );
    }

    fn part(
        node: NodeId,
        sent: Vec<u64>,
        received: Vec<u64>,
        channels: Vec<Vec<(u64, char)>>,
    ) -> LocalSnapshot<(), char> {
        let id = crate::snapshot::SnapshotId {
            initiator: 0,
            seq: 1,
        };
        LocalSnapshot {
            id,
            node,
            state: (),
            sent,
            received,
            channels,
        }
    }

    #[test]
    fn snapshot_predicates_reject_bad_cuts() {
        // 0 sent 2 to 1 before recording; 1 had received 1; message 2 in flight.
        let good = vec![
            part(0, vec![0, 2], vec![0, 0], vec![vec![], vec![]]),
            part(1, vec![0, 0], vec![1, 0], vec![vec![(2, 'b')], vec![]]),
        ];
        assert!(consistent_cut(&good).is_ok());
        assert!(exact_channel_state(&good).is_ok());
        assert!(channel_contents_match(
            &good,
            &[vec![vec![], vec!['a', 'b']], vec![vec![], vec![]]]
        )
        .is_ok());
        assert!(channel_contents_match(
            &good,
            &[vec![vec![], vec!['a', 'X']], vec![vec![], vec![]]]
        )
        .is_err());

        // Receiver counted a message the sender had not sent before its record.
        let inconsistent = vec![
            part(0, vec![0, 1], vec![0, 0], vec![vec![], vec![]]),
            part(1, vec![0, 0], vec![2, 0], vec![vec![], vec![]]),
        ];
        assert_eq!(
            consistent_cut(&inconsistent).unwrap_err().property,
            "consistent cut"
        );

        // Message 2 was in flight but the channel was recorded empty.
        let lost = vec![
            part(0, vec![0, 2], vec![0, 0], vec![vec![], vec![]]),
            part(1, vec![0, 0], vec![1, 0], vec![vec![], vec![]]),
        ];
        assert!(consistent_cut(&lost).is_ok());
        assert_eq!(
            exact_channel_state(&lost).unwrap_err().property,
            "exact channel state"
        );

        let mixed = vec![
            good[0].clone(),
            part(0, vec![0, 0], vec![1, 0], vec![vec![], vec![]]),
        ];
        assert!(consistent_cut(&mixed).is_err(), "two parts of node 0");

        // A part missing a channel's count or state describes another cluster.
        for short in [
            part(1, vec![0], vec![1, 0], vec![vec![(2, 'b')], vec![]]),
            part(1, vec![0, 0], vec![1], vec![vec![(2, 'b')], vec![]]),
            part(1, vec![0, 0], vec![1, 0], vec![vec![(2, 'b')]]),
        ] {
            let parts = [good[0].clone(), short];
            assert_eq!(
                consistent_cut(&parts).unwrap_err().property,
                "consistent cut"
            );
        }
    }

    #[test]
    fn vectors_conservation_and_convergence_can_fail() {
        assert!(consistent_delivery_vectors(&[2, 1], &[vec![1, 0], vec![2, 1]]).is_ok());
        assert!(consistent_delivery_vectors(&[1, 1], &[vec![1, 0], vec![2, 1]]).is_err());
        assert!(conservation(30, [10, 5, 10], [5]).is_ok());
        assert_eq!(
            conservation(30, [10, 10, 10], [5]).unwrap_err().property,
            "conservation"
        );
        let set: BTreeSet<MsgId> = [m(0, 1)].into();
        assert!(convergence(&[(set.clone(), 1), (set.clone(), 1), (BTreeSet::new(), 0)]).is_ok());
        assert!(convergence(&[(set.clone(), 1), (set, 2)]).is_err());
    }

    #[test]
    fn a_full_link_when_quiet_stops_writes_flowing() {
        assert!(writes_flow(&[]).is_ok());
        let full = FullLink {
            node: 1,
            peer: 0,
            retained: 44,
            limit: 1,
        };
        let v = writes_flow(&[full]).unwrap_err();
        assert_eq!(v.property, "writes flow when quiet");
        assert!(
            v.detail
                .contains("n1's link to n0 retains 44 bytes (limit 1)"),
            "{v}"
        );
    }

    #[test]
    fn a_peer_past_the_hold_breaks_it() {
        assert!(acks_stay_held(&[]).is_ok());
        let leak = LeakedHold {
            node: 0,
            peer: 2,
            held_at: 3,
            acked: 5,
        };
        let v = acks_stay_held(&[leak]).unwrap_err();
        assert_eq!(v.property, "held acks stay held");
        assert!(
            v.detail
                .contains("n0 holds its acks to n2 from frame 3, yet n2 knows of 5"),
            "{v}"
        );
    }
}
