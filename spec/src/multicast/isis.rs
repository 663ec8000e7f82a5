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
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    holdback: BTreeMap<MsgId, Held<P>>,
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
        let holdback = self.holdback.into_iter().map(|(id, h)| {
            let held = Held {
                payload: f(id, h.payload),
                priority: h.priority,
                agreed: h.agreed,
                arrival: h.arrival,
            };
            (id, held)
        });
        Isis {
            me: self.me,
            n: self.n,
            sent: self.sent,
            max_proposed: self.max_proposed,
            max_agreed: self.max_agreed,
            arrivals: self.arrivals,
            holdback: holdback.collect(),
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
            holdback: BTreeMap::new(),
            collecting: BTreeMap::new(),
            no_tie_break,
        }
    }

    /// The hold-back queue's sort key.
    fn key(&self, h: &Held<P>) -> (u64, u64) {
        if self.no_tie_break {
            (h.priority.seq, h.arrival)
        } else {
            (h.priority.seq, h.priority.node as u64)
        }
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
        self.sent += 1;
        let id = MsgId {
            origin: self.me,
            seq: self.sent,
        };
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
                self.holdback.insert(id, held);
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
                if let Some(h) = self.holdback.get_mut(&id) {
                    h.priority = priority;
                    h.agreed = true;
                }
            }
        }
        while let Some((&id, head)) = self.holdback.iter().min_by_key(|(_, h)| self.key(h)) {
            if !head.agreed {
                break;
            }
            let h = self.holdback.remove(&id).expect("present");
            out.push(Step::Deliver(id, h.payload));
        }
    }

    fn holdback_depth(&self) -> usize {
        self.holdback.len()
    }
}
