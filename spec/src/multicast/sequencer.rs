//! Total-order multicast with a fixed sequencer (Chang & Maxemchuk 1984; Kaashoek's
//! Amoeba; Coulouris et al. §15.4.3).
//!
//! A sender multicasts `Data`. Node 0, the sequencer, numbers each `Data` as it
//! arrives and multicasts `Order { id, global }`. Everyone delivers in `global`
//! order once it holds both the data and its number. Because the sequencer's
//! input channels are FIFO it numbers each sender's messages in send order, so
//! the total order is FIFO as well.

use super::{Algorithm, Dest, MsgId, Step};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fixed sequencer's node id.
pub const SEQUENCER: NodeId = 0;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg<P> {
    Data { id: MsgId, payload: P },
    Order { id: MsgId, global: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sequencer<P> {
    me: NodeId,
    sent: u64,
    /// Sequencer only: the last global number handed out.
    assigned: u64,
    /// The global number this node delivers next.
    next: u64,
    data: BTreeMap<MsgId, P>,
    order: BTreeMap<u64, MsgId>,
    /// Broken variant: deliver data on arrival, without waiting for its number.
    /// (Never serialized: a model's broken flag must not reach snapshot files.)
    #[serde(skip)]
    no_wait: bool,
}

impl<P> Msg<P> {
    pub(crate) fn map<Q>(self, f: impl FnOnce(MsgId, P) -> Q) -> Msg<Q> {
        match self {
            Msg::Data { id, payload } => Msg::Data {
                id,
                payload: f(id, payload),
            },
            Msg::Order { id, global } => Msg::Order { id, global },
        }
    }
}

impl<P> Sequencer<P> {
    pub(crate) fn map<Q>(self, mut f: impl FnMut(MsgId, P) -> Q) -> Sequencer<Q> {
        Sequencer {
            me: self.me,
            sent: self.sent,
            assigned: self.assigned,
            next: self.next,
            data: self
                .data
                .into_iter()
                .map(|(id, p)| (id, f(id, p)))
                .collect(),
            order: self.order,
            no_wait: self.no_wait,
        }
    }

    /// Whether receiving `msg` here sends nothing, in this state or any later
    /// one, and carries a piece (the data or the number) of the message this
    /// node delivers next. Only the sequencer sends on a receipt, and the
    /// correct variant delivers in `global` order whatever order data and
    /// numbers arrive in; a piece of the next message can only start the run of
    /// deliveries it is part of, never join two runs. The model checker's
    /// partial-order reduction takes such a receipt alone (`model/src/por.rs`).
    pub(crate) fn silent_head(&self, msg: &Msg<P>) -> bool {
        if self.me == SEQUENCER || self.no_wait {
            return false;
        }
        match msg {
            Msg::Order { global, .. } => *global == self.next,
            Msg::Data { id, .. } => self.order.get(&self.next) == Some(id),
        }
    }

    /// Whether no message this node may yet receive makes it send, given that
    /// the group multicasts `group_sent` messages in all: a member other than
    /// the sequencer never sends on a receipt, and the sequencer numbers data
    /// only until it has numbered every message.
    pub(crate) fn quiet(&self, group_sent: Option<u64>) -> bool {
        self.me != SEQUENCER || group_sent == Some(self.assigned)
    }

    pub(crate) fn new(me: NodeId, _n: usize, no_wait: bool) -> Self {
        Sequencer {
            me,
            sent: 0,
            assigned: 0,
            next: 1,
            data: BTreeMap::new(),
            order: BTreeMap::new(),
            no_wait,
        }
    }
}

impl<P: Clone> Algorithm<P> for Sequencer<P> {
    type Msg = Msg<P>;

    fn multicast(&mut self, payload: P, out: &mut Vec<Step<P, Msg<P>>>) -> MsgId {
        let id = MsgId::next(self.me, &mut self.sent);
        out.push(Step::Send(Dest::All, Msg::Data { id, payload }));
        id
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg<P>, out: &mut Vec<Step<P, Msg<P>>>) {
        match msg {
            Msg::Data { id, payload } => {
                if self.me == SEQUENCER {
                    self.assigned += 1;
                    out.push(Step::Send(
                        Dest::All,
                        Msg::Order {
                            id,
                            global: self.assigned,
                        },
                    ));
                }
                if self.no_wait {
                    out.push(Step::Deliver(id, payload));
                    return;
                }
                self.data.insert(id, payload);
            }
            Msg::Order { id, global } => {
                if self.no_wait {
                    return;
                }
                self.order.insert(global, id);
            }
        }
        while let Some(id) = self.order.get(&self.next).copied() {
            let Some(payload) = self.data.remove(&id) else {
                break;
            };
            self.order.remove(&self.next);
            self.next += 1;
            out.push(Step::Deliver(id, payload));
        }
    }

    fn holdback_depth(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: NodeId, seq: u64) -> MsgId {
        MsgId { origin, seq }
    }

    /// Node 2 holds the number of message 1-1 (global 1) but not its data.
    fn waiting_for_data() -> Sequencer<u32> {
        let mut s = Sequencer::new(2, 3, false);
        let mut out = Vec::new();
        s.on_message(
            0,
            Msg::Order {
                id: id(1, 1),
                global: 1,
            },
            &mut out,
        );
        assert!(out.is_empty());
        s
    }

    #[test]
    fn only_a_piece_of_the_next_delivery_is_a_silent_head() {
        let s = waiting_for_data();
        let data = |m| Msg::Data { id: m, payload: 7 };
        assert!(
            s.silent_head(&data(id(1, 1))),
            "the data the next number names"
        );
        assert!(!s.silent_head(&data(id(0, 1))), "data no number names yet");
        let fresh: Sequencer<u32> = Sequencer::new(2, 3, false);
        let order = |global| Msg::Order {
            id: id(0, 1),
            global,
        };
        assert!(fresh.silent_head(&order(1)), "the next number");
        assert!(!fresh.silent_head(&order(2)), "a later number");
    }

    #[test]
    fn the_sequencer_and_the_broken_variant_have_no_silent_heads() {
        let sequencer: Sequencer<u32> = Sequencer::new(SEQUENCER, 3, false);
        assert!(!sequencer.silent_head(&Msg::Order {
            id: id(1, 1),
            global: 1
        }));
        // It delivers data on arrival, so a receipt may jump the order.
        let broken: Sequencer<u32> = Sequencer::new(2, 3, true);
        assert!(!broken.silent_head(&Msg::Order {
            id: id(1, 1),
            global: 1
        }));
    }
}
