//! Total-order multicast by agreed priorities: the ISIS ABCAST protocol
//! (Birman & Joseph 1987), also attributed to Skeen.
//!
//! 1. The sender multicasts `Data`.
//! 2. Each receiver proposes `max(largest proposed, largest agreed) + 1`, paired
//!    with its own id, holds the message back as undeliverable and replies `Propose`.
//! 3. With all `n` proposals in, the sender multicasts `Agreed` with the largest.
//! 4. Receivers mark the message deliverable at the agreed priority, re-sort the
//!    hold-back queue and deliver from its head while the head is deliverable.
//!
//! Priorities are `(seq, node)` pairs compared lexicographically: the node id
//! breaks ties, which is what makes the order total. A message still waiting for
//! its agreement can only end at a priority above any already agreed here, so
//! delivering a deliverable head is safe.

use super::{Algorithm, Dest, MsgId, Step};
use crate::NodeId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// A proposed or agreed priority; the derived order is lexicographic, seq first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Priority {
    pub seq: u64,
    pub node: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg<P> {
    Data { id: MsgId, payload: P },
    Propose { id: MsgId, priority: Priority },
    Agreed { id: MsgId, priority: Priority },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Held<P> {
    payload: P,
    priority: Priority,
    agreed: bool,
    /// Local arrival number: only the broken variant orders ties by it (so
    /// it is never serialized, like the flag).
    #[serde(skip)]
    arrival: u64,
}

/// Where a held message sorts in the queue: `(seq, node)`, or `(seq, arrival)`
/// in the broken variant.
type Key = (u64, u64);

/// The hold-back queue: the held messages by id, and the same messages in
/// delivery order, so that finding the head is a lookup, not a scan of every
/// message held (a scan per `Agreed` made a replica's CPU per write grow with
/// the writes in flight: 64% of a peer's CPU with 800 in flight).
///
/// The order is derived from the entries, so only they are compared, hashed
/// and serialized (as the map they were before: snapshot files and model
/// state counts are unchanged); deserializing rebuilds the order.
#[derive(Clone, Debug)]
struct Holdback<P> {
    entries: BTreeMap<MsgId, Held<P>>,
    /// Every entry's `(key, id)`, sorted with the head last, so delivering it
    /// is a `pop`. A vector, not a `BTreeSet`: a model state clones this with
    /// every step, and a few entries copy cheaper than a B-tree node.
    order: Vec<(Key, MsgId)>,
    /// Broken variant: ties fall to local arrival order.
    no_tie_break: bool,
}

impl<P> Holdback<P> {
    fn new(no_tie_break: bool) -> Self {
        Holdback {
            entries: BTreeMap::new(),
            order: Vec::new(),
            no_tie_break,
        }
    }

    /// A held message's place in the queue.
    fn key(&self, h: &Held<P>) -> Key {
        if self.no_tie_break {
            (h.priority.seq, h.arrival)
        } else {
            (h.priority.seq, h.priority.node as u64)
        }
    }

    /// Where `(key, id)` is, or goes, in `order` (descending).
    fn place(&self, at: (Key, MsgId)) -> Result<usize, usize> {
        self.order.binary_search_by(|probe| at.cmp(probe))
    }

    /// Holds `id`, in place of any message held under that id.
    fn hold(&mut self, id: MsgId, held: Held<P>) {
        let key = self.key(&held);
        if let Some(old) = self.entries.insert(id, held) {
            self.unorder(self.key(&old), id);
        }
        if let Err(i) = self.place((key, id)) {
            self.order.insert(i, (key, id));
        }
    }

    fn unorder(&mut self, key: Key, id: MsgId) {
        if let Ok(i) = self.place((key, id)) {
            self.order.remove(i);
        }
    }

    /// `id` is deliverable at the agreed `priority`, if it is held here.
    fn agree(&mut self, id: MsgId, priority: Priority) {
        if let Some(mut h) = self.entries.remove(&id) {
            self.unorder(self.key(&h), id);
            h.priority = priority;
            h.agreed = true;
            self.hold(id, h);
        }
    }

    /// The head, removed, if it is deliverable.
    fn pop_deliverable(&mut self) -> Option<(MsgId, P)> {
        let &(_, id) = self.order.last()?;
        if !self.entries[&id].agreed {
            return None;
        }
        self.order.pop();
        let h = self.entries.remove(&id).expect("ordered entries are held");
        Some((id, h.payload))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether a message of an origin other than `me` is held. Ids order by
    /// origin first, so `me`'s run of ids is contiguous: another origin's id,
    /// if any, is first or last.
    fn holds_other_than(&self, me: NodeId) -> bool {
        let other = |e: Option<(&MsgId, _)>| e.is_some_and(|(id, _)| id.origin != me);
        other(self.entries.first_key_value()) || other(self.entries.last_key_value())
    }
}

impl<P: PartialEq> PartialEq for Holdback<P> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<P: Eq> Eq for Holdback<P> {}

impl<P: Hash> Hash for Holdback<P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl<P: Serialize> Serialize for Holdback<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(s)
    }
}

impl<'de, P: Deserialize<'de>> Deserialize<'de> for Holdback<P> {
    /// Only a correct endpoint is ever serialized, so the order is by `(seq, node)`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut holdback = Holdback::new(false);
        for (id, h) in BTreeMap::<MsgId, Held<P>>::deserialize(d)? {
            holdback.hold(id, h);
        }
        Ok(holdback)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Collecting {
    best: Priority,
    replies: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Isis<P> {
    me: NodeId,
    n: usize,
    sent: u64,
    max_proposed: u64,
    max_agreed: u64,
    #[serde(skip)]
    arrivals: u64,
    holdback: Holdback<P>,
    /// Sender side: proposals gathered so far for this node's own messages.
    collecting: BTreeMap<MsgId, Collecting>,
    /// Broken variant: compare priorities by `seq` alone; ties fall to local arrival order.
    /// (Never serialized: a model's broken flag must not reach snapshot files.)
    #[serde(skip)]
    no_tie_break: bool,
}

impl<P> Msg<P> {
    pub(crate) fn map<Q>(self, f: impl FnOnce(MsgId, P) -> Q) -> Msg<Q> {
        match self {
            Msg::Data { id, payload } => Msg::Data {
                id,
                payload: f(id, payload),
            },
            Msg::Propose { id, priority } => Msg::Propose { id, priority },
            Msg::Agreed { id, priority } => Msg::Agreed { id, priority },
        }
    }
}

impl<P> Isis<P> {
    pub(crate) fn map<Q>(self, mut f: impl FnMut(MsgId, P) -> Q) -> Isis<Q> {
        let entries = self.holdback.entries.into_iter().map(|(id, h)| {
            let held = Held {
                payload: f(id, h.payload),
                priority: h.priority,
                agreed: h.agreed,
                arrival: h.arrival,
            };
            (id, held)
        });
        let holdback = Holdback {
            entries: entries.collect(),
            order: self.holdback.order,
            no_tie_break: self.holdback.no_tie_break,
        };
        Isis {
            me: self.me,
            n: self.n,
            sent: self.sent,
            max_proposed: self.max_proposed,
            max_agreed: self.max_agreed,
            arrivals: self.arrivals,
            holdback,
            collecting: self.collecting,
            no_tie_break: self.no_tie_break,
        }
    }

    pub(crate) fn new(me: NodeId, n: usize, no_tie_break: bool) -> Self {
        Isis {
            me,
            n,
            sent: 0,
            max_proposed: 0,
            max_agreed: 0,
            arrivals: 0,
            holdback: Holdback::new(no_tie_break),
            collecting: BTreeMap::new(),
            no_tie_break,
        }
    }

    /// Whether one of this member's own messages still waits for proposals
    /// while no other member's message is held here: this member alone is
    /// multicasting, and a round of its own is open. Nagle's rule for rounds
    /// ([`crate::node::Node::flush_due`]) holds the next batch then.
    pub(crate) fn round_open_alone(&self) -> bool {
        !self.collecting.is_empty() && !self.holdback.holds_other_than(self.me)
    }

    fn better(&self, a: Priority, b: Priority) -> bool {
        if self.no_tie_break {
            a.seq > b.seq
        } else {
            a > b
        }
    }
}

impl<P: Clone> Algorithm<P> for Isis<P> {
    type Msg = Msg<P>;

    fn multicast(&mut self, payload: P, out: &mut Vec<Step<P, Msg<P>>>) -> MsgId {
        let id = MsgId::next(self.me, &mut self.sent);
        out.push(Step::Send(Dest::All, Msg::Data { id, payload }));
        id
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg<P>, out: &mut Vec<Step<P, Msg<P>>>) {
        match msg {
            Msg::Data { id, payload } => {
                self.max_proposed = self.max_proposed.max(self.max_agreed) + 1;
                let priority = Priority {
                    seq: self.max_proposed,
                    node: self.me,
                };
                // Only the broken variant needs arrival numbers; the correct one keeps
                // them at 0 so they do not split otherwise equal model states.
                let arrival = if self.no_tie_break {
                    self.arrivals += 1;
                    self.arrivals
                } else {
                    0
                };
                let held = Held {
                    payload,
                    priority,
                    agreed: false,
                    arrival,
                };
                self.holdback.hold(id, held);
                out.push(Step::Send(
                    Dest::One(id.origin),
                    Msg::Propose { id, priority },
                ));
                return; // a new undeliverable entry cannot unblock the head
            }
            Msg::Propose { id, priority } => {
                let c = self.collecting.entry(id).or_insert(Collecting {
                    best: priority,
                    replies: 0,
                });
                c.replies += 1;
                let (best, replies) = (c.best, c.replies);
                if self.better(priority, best) {
                    self.collecting.get_mut(&id).expect("inserted").best = priority;
                }
                if replies == self.n {
                    let c = self.collecting.remove(&id).expect("inserted");
                    out.push(Step::Send(
                        Dest::All,
                        Msg::Agreed {
                            id,
                            priority: c.best,
                        },
                    ));
                }
                return;
            }
            Msg::Agreed { id, priority } => {
                self.max_agreed = self.max_agreed.max(priority.seq);
                self.holdback.agree(id, priority);
            }
        }
        while let Some((id, payload)) = self.holdback.pop_deliverable() {
            out.push(Step::Deliver(id, payload));
        }
    }

    fn holdback_depth(&self) -> usize {
        self.holdback.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Out = Vec<Step<u32, Msg<u32>>>;

    fn sent(out: &mut Out) -> Vec<Msg<u32>> {
        out.drain(..)
            .filter_map(|s| match s {
                Step::Send(_, m) => Some(m),
                Step::Deliver(..) => None,
            })
            .collect()
    }

    fn delivered(out: &mut Out) -> Vec<MsgId> {
        out.drain(..)
            .filter_map(|s| match s {
                Step::Deliver(id, _) => Some(id),
                Step::Send(..) => None,
            })
            .collect()
    }

    /// Member 1 of three holds `2 * pairs` messages of member 0, proposed by
    /// all, none agreed yet; returns it and the `Agreed` member 0 sends for each.
    /// Member 2 has seen more and gets the first of each pair last, so the
    /// agreed order inverts the order in which member 1 proposed.
    fn holding(pairs: usize) -> (Isis<u32>, Vec<Msg<u32>>) {
        let mut members: Vec<Isis<u32>> = (0..3).map(|i| Isis::new(i, 3, false)).collect();
        let mut out = Out::new();
        for k in 0..3 {
            members[2].multicast(k, &mut out);
            for data in sent(&mut out) {
                members[2].on_message(2, data, &mut out);
            }
            let _ = sent(&mut out);
        }
        let mut agreed = Vec::new();
        for k in 0..pairs as u32 {
            members[0].multicast(2 * k, &mut out);
            let first = sent(&mut out).pop().expect("data");
            members[0].multicast(2 * k + 1, &mut out);
            let second = sent(&mut out).pop().expect("data");
            for (i, data) in [(0, &first), (1, &first), (0, &second), (1, &second)]
                .into_iter()
                .chain([(2, &second), (2, &first)])
            {
                members[i].on_message(0, data.clone(), &mut out);
                for propose in sent(&mut out) {
                    members[0].on_message(i, propose, &mut out);
                }
                agreed.extend(sent(&mut out));
            }
        }
        (members.swap_remove(1), agreed)
    }

    /// The head is found through the order, so the order must follow every
    /// change of priority: agreements arriving in reverse still deliver by
    /// agreed priority, each message once.
    #[test]
    fn the_queue_delivers_by_agreed_priority_whatever_the_arrival() {
        let (mut member, agreed) = holding(3);
        assert_eq!(agreed.len(), 6);
        assert_eq!(member.holdback_depth(), 6);
        let mut out = Out::new();
        let mut order = Vec::new();
        for a in agreed.iter().rev() {
            member.on_message(0, a.clone(), &mut out);
            order.extend(delivered(&mut out));
        }
        let mut by_priority: Vec<(Priority, MsgId)> = agreed
            .iter()
            .map(|m| match m {
                Msg::Agreed { id, priority } => (*priority, *id),
                _ => unreachable!("only agreements"),
            })
            .collect();
        by_priority.sort();
        let expected: Vec<MsgId> = by_priority.into_iter().map(|(_, id)| id).collect();
        assert_eq!(order, expected);
        assert_eq!(
            expected.iter().map(|id| id.seq).collect::<Vec<_>>(),
            [2, 1, 4, 3, 6, 5],
            "the agreed order inverts each pair"
        );
        assert_eq!(member.holdback_depth(), 0);
        assert!(member.holdback.order.is_empty());
    }

    /// A serialized endpoint (a snapshot part) carries the held messages as
    /// the map it always did; deserializing rebuilds their order, so the copy
    /// delivers what the original does.
    #[test]
    fn a_deserialized_queue_delivers_as_the_original() {
        let (mut member, agreed) = holding(2);
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&member, config).unwrap();
        let entries = bincode::serde::encode_to_vec(&member.holdback.entries, config).unwrap();
        assert!(
            bytes.windows(entries.len()).any(|w| w == entries),
            "the queue serializes as its map of entries"
        );
        let (mut copy, _): (Isis<u32>, _) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(copy, member);
        assert_eq!(copy.holdback.order, member.holdback.order);
        // Equality sees the held entries: one agreement more is another state.
        let mut one_more = member.clone();
        let Msg::Agreed { id, priority } = agreed[0] else {
            unreachable!("only agreements")
        };
        one_more.holdback.agree(id, priority);
        assert_ne!(one_more, member);
        let (mut out, mut copied) = (Out::new(), Out::new());
        for a in agreed {
            member.on_message(0, a.clone(), &mut out);
            copy.on_message(0, a, &mut copied);
        }
        let delivered_by_original = delivered(&mut out);
        assert_eq!(delivered_by_original.len(), 4);
        assert_eq!(delivered(&mut copied), delivered_by_original);
    }
}
