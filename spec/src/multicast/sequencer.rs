//! Total-order multicast with a fixed sequencer (Chang & Maxemchuk 1984; Kaashoek's
//! Amoeba, "PB" method; Coulouris et al. §15.4.3).
//!
//! A sender keeps its message and sends it to node 0, the sequencer, alone
//! (`Submit`). The sequencer numbers each message as it arrives and sends it
//! on with its number to every other member (`Ordered { id, global, payload
//! }`), and the number alone to its sender (`Order { id, global }`), which
//! holds the data. Everyone delivers in `global` order. Because the
//! sequencer's input channels are FIFO it numbers each sender's messages in
//! send order, so the total order is FIFO as well.
//!
//! Why the data travels with the number, not from its sender to all (Amoeba's
//! "BB" method, which this module ran until protocol version 3): a fault
//! decision. Under BB a sender that crashed after its data reached the
//! sequencer and one member, but not another, left that other member holding a
//! number it could never deliver, and every later write with it, for good.
//! Under PB a member gets every numbered message from the one node that
//! numbered it, over one reliable FIFO link, so no crash but the sequencer's
//! can stall a survivor (a sender waits only for the number of its own). It
//! also sends fewer frames: three per message from another member (one in,
//! two out) where BB sent four, and the data as often (twice).
//!
//! `Data` is BB's message; nothing sends it now, but a snapshot taken by an
//! older build may hold it, and BB's `Order`s, in a channel's recorded state,
//! so they are still received exactly as before: a restored cluster finishes
//! the old messages the old way while numbering new ones the new way (the
//! number sequence is shared, so one total order covers both).

use super::{Algorithm, Dest, MsgId, Step};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fixed sequencer's node id.
pub const SEQUENCER: NodeId = 0;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg<P> {
    /// BB (before protocol version 4): a sender's data, to every member.
    Data { id: MsgId, payload: P },
    /// The sequencer's number for a message whose data the receiver holds:
    /// its own (and under BB, every member's, got from their senders).
    Order { id: MsgId, global: u64 },
    /// A sender's message, to the sequencer alone.
    Submit { id: MsgId, payload: P },
    /// The sequencer's number for a message, with the message, to every
    /// member but its sender.
    Ordered { id: MsgId, global: u64, payload: P },
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
    /// Broken variant: a sender delivers its own message at once, without
    /// waiting for its number (as FIFO and causal senders may).
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
            Msg::Submit { id, payload } => Msg::Submit {
                id,
                payload: f(id, payload),
            },
            Msg::Ordered {
                id,
                global,
                payload,
            } => Msg::Ordered {
                id,
                global,
                payload: f(id, payload),
            },
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
    /// one, and carries the message this node delivers next (or, for BB's
    /// messages, a piece of it: the data or the number). Only the sequencer
    /// sends on a receipt, and the correct variant delivers in `global` order
    /// whatever order numbers arrive in; the next message can only start the
    /// run of deliveries it is part of, never join two runs. The model
    /// checker's partial-order reduction takes such a receipt alone
    /// (`model/src/por.rs`).
    pub(crate) fn silent_head(&self, msg: &Msg<P>) -> bool {
        if self.me == SEQUENCER || self.no_wait {
            return false;
        }
        match msg {
            Msg::Order { global, .. } | Msg::Ordered { global, .. } => *global == self.next,
            Msg::Data { id, .. } => self.order.get(&self.next) == Some(id),
            Msg::Submit { .. } => false,
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

impl<P: Clone> Sequencer<P> {
    /// Numbers a message that reached the sequencer.
    fn number(&mut self) -> u64 {
        debug_assert_eq!(self.me, SEQUENCER, "only the sequencer numbers");
        self.assigned += 1;
        self.assigned
    }

    /// Whether this member delivers its own messages when it sends them: the
    /// broken variant's members other than the sequencer (the sequencer
    /// numbers its own at once, so delivers them at once anyway).
    fn delivers_at_send(&self) -> bool {
        self.no_wait && self.me != SEQUENCER
    }

    /// Delivers every message whose turn has come and whose data is here.
    fn deliver_ready(&mut self, out: &mut Vec<Step<P, Msg<P>>>) {
        while let Some(id) = self.order.get(&self.next).copied() {
            let Some(payload) = self.data.remove(&id) else {
                break;
            };
            self.order.remove(&self.next);
            self.next += 1;
            if !(self.delivers_at_send() && id.origin == self.me) {
                out.push(Step::Deliver(id, payload));
            }
        }
    }
}

impl<P: Clone> Algorithm<P> for Sequencer<P> {
    type Msg = Msg<P>;

    fn multicast(&mut self, payload: P, out: &mut Vec<Step<P, Msg<P>>>) -> MsgId {
        let id = MsgId::next(self.me, &mut self.sent);
        if self.delivers_at_send() {
            out.push(Step::Deliver(id, payload.clone()));
        }
        // Kept for delivery when its number comes back, which is all the
        // sequencer then sends here.
        self.data.insert(id, payload.clone());
        out.push(Step::Send(
            Dest::One(SEQUENCER),
            Msg::Submit { id, payload },
        ));
        id
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg<P>, out: &mut Vec<Step<P, Msg<P>>>) {
        match msg {
            Msg::Submit { id, payload } => {
                // Only the sequencer is sent a `Submit`; a member that is not
                // would have no number to give, and ignores it.
                if self.me == SEQUENCER {
                    let global = self.number();
                    out.push(Step::Send(Dest::One(id.origin), Msg::Order { id, global }));
                    out.push(Step::Send(
                        Dest::AllBut(id.origin),
                        Msg::Ordered {
                            id,
                            global,
                            payload,
                        },
                    ));
                }
                return;
            }
            Msg::Ordered {
                id,
                global,
                payload,
            } => {
                self.order.insert(global, id);
                self.data.insert(id, payload);
            }
            Msg::Data { id, payload } => {
                if self.me == SEQUENCER {
                    let global = self.number();
                    out.push(Step::Send(Dest::All, Msg::Order { id, global }));
                }
                self.data.insert(id, payload);
            }
            Msg::Order { id, global } => {
                self.order.insert(global, id);
            }
        }
        self.deliver_ready(out);
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

    /// Node 2 holds BB's number of message 1-1 (global 1) but not its data.
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

    /// BB's pieces, received from a restored snapshot's channels.
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

    fn ordered(origin: NodeId, seq: u64, global: u64) -> Msg<u32> {
        Msg::Ordered {
            id: id(origin, seq),
            global,
            payload: 10 * origin as u32 + seq as u32,
        }
    }

    fn delivered(out: &[Step<u32, Msg<u32>>]) -> Vec<MsgId> {
        out.iter()
            .filter_map(|s| match s {
                Step::Deliver(id, _) => Some(*id),
                Step::Send(..) => None,
            })
            .collect()
    }

    #[test]
    fn a_numbered_message_is_silent_only_when_it_is_the_next() {
        let s: Sequencer<u32> = Sequencer::new(2, 3, false);
        assert!(s.silent_head(&ordered(1, 1, 1)));
        assert!(!s.silent_head(&ordered(1, 1, 2)), "a later number");
        let submit = Msg::Submit {
            id: id(2, 1),
            payload: 7,
        };
        assert!(!s.silent_head(&submit), "not addressed here");
    }

    /// A member keeps its message and sends it to the sequencer alone; the
    /// sequencer numbers it and sends the data with its number to the others
    /// (itself included, so it delivers), the number alone to the sender.
    #[test]
    fn the_sequencer_sends_each_message_with_its_number() {
        let mut member: Sequencer<u32> = Sequencer::new(1, 3, false);
        let mut out = Vec::new();
        let sent = member.multicast(11, &mut out);
        let submit = Msg::Submit {
            id: sent,
            payload: 11,
        };
        assert!(matches!(&out[..], [Step::Send(Dest::One(SEQUENCER), m)] if *m == submit));
        assert_eq!(member.holdback_depth(), 1, "it waits for its number");
        let mut sequencer: Sequencer<u32> = Sequencer::new(SEQUENCER, 3, false);
        out.clear();
        sequencer.on_message(1, submit, &mut out);
        let number = Msg::Order {
            id: sent,
            global: 1,
        };
        assert!(matches!(
            &out[..],
            [Step::Send(Dest::One(1), n), Step::Send(Dest::AllBut(1), m)]
                if *n == number && *m == ordered(1, 1, 1)
        ));
        out.clear();
        member.on_message(SEQUENCER, number, &mut out);
        assert_eq!(delivered(&out), [sent]);
        assert_eq!(member.holdback_depth(), 0);
        // A submission to a member that is not the sequencer changes nothing.
        let mut other: Sequencer<u32> = Sequencer::new(2, 3, false);
        let before = other.clone();
        other.on_message(
            1,
            Msg::Submit {
                id: sent,
                payload: 11,
            },
            &mut out,
        );
        assert_eq!(other, before);
    }

    /// Through the driver: the sequencer delivers a member's write at once,
    /// sends the member its number and the other member the data with it;
    /// its own write it delivers at once and sends with the data to both.
    #[test]
    fn the_driver_sends_the_number_alone_to_the_sender_only() {
        use crate::multicast::{Effect, Mode, Multicast, Wire};
        let mut sequencer: Multicast<u32> = Multicast::new(Mode::TotalSequencer, SEQUENCER, 3);
        let submit = Wire::Sequencer(Msg::Submit {
            id: id(1, 1),
            payload: 11,
        });
        let effects = sequencer.on_message(1, submit).unwrap();
        let send = |to, msg| Effect::Send {
            to,
            msg: Wire::Sequencer(msg),
        };
        let number = Msg::Order {
            id: id(1, 1),
            global: 1,
        };
        let deliver = |id, payload| Effect::Deliver { id, payload };
        assert_eq!(
            effects,
            [
                send(1, number),
                send(2, ordered(1, 1, 1)),
                deliver(id(1, 1), 11)
            ]
        );
        let (mine, effects) = sequencer.multicast(1);
        let with_data = |to| send(to, ordered(0, 1, 2));
        assert_eq!(effects, [with_data(1), with_data(2), deliver(mine, 1)]);
    }

    /// Numbers arriving out of order (a reordering network) are held back:
    /// delivery follows `global`, not arrival.
    #[test]
    fn numbered_messages_are_delivered_in_global_order() {
        let mut s: Sequencer<u32> = Sequencer::new(2, 3, false);
        let mut out = Vec::new();
        s.on_message(0, ordered(1, 1, 2), &mut out);
        assert_eq!((delivered(&out), s.holdback_depth()), (vec![], 1));
        s.on_message(0, ordered(0, 1, 1), &mut out);
        assert_eq!(delivered(&out), [id(0, 1), id(1, 1)]);
        assert_eq!(s.holdback_depth(), 0);
    }

    /// A cluster restored from a snapshot of an older build (BB) finishes the
    /// old messages in its channels the old way: data from the sender and a
    /// number from the sequencer, in either order, while new messages are
    /// numbered after them in the same sequence.
    #[test]
    fn messages_of_the_older_protocol_are_still_delivered() {
        let mut member: Sequencer<u32> = Sequencer::new(2, 3, false);
        let mut out = Vec::new();
        member.on_message(
            1,
            Msg::Data {
                id: id(1, 1),
                payload: 11,
            },
            &mut out,
        );
        member.on_message(0, ordered(0, 1, 2), &mut out);
        assert!(delivered(&out).is_empty(), "number 1 is not here yet");
        member.on_message(
            0,
            Msg::Order {
                id: id(1, 1),
                global: 1,
            },
            &mut out,
        );
        assert_eq!(delivered(&out), [id(1, 1), id(0, 1)]);
        assert_eq!(member.holdback_depth(), 0);
        // The sequencer still answers old data with an old number, since the
        // other members got the same data from the sender.
        let mut sequencer: Sequencer<u32> = Sequencer::new(SEQUENCER, 3, false);
        out.clear();
        sequencer.on_message(
            1,
            Msg::Data {
                id: id(1, 2),
                payload: 12,
            },
            &mut out,
        );
        let order = Msg::Order {
            id: id(1, 2),
            global: 1,
        };
        assert!(matches!(&out[..], [Step::Send(Dest::All, m)] if *m == order));
    }

    /// The broken variant delivers its own message when it sends it, and not
    /// again when its number comes back.
    #[test]
    fn the_broken_variant_delivers_its_own_message_unnumbered() {
        let mut s: Sequencer<u32> = Sequencer::new(1, 3, true);
        let mut out = Vec::new();
        let sent = s.multicast(11, &mut out);
        assert_eq!(delivered(&out), [sent]);
        out.clear();
        s.on_message(0, ordered(2, 1, 1), &mut out);
        s.on_message(0, ordered(1, 1, 2), &mut out);
        assert_eq!(
            delivered(&out),
            [id(2, 1)],
            "its own is not delivered twice"
        );
        assert_eq!(s.next, 3);
        // The broken sequencer numbers its own at once, and delivers it once.
        let mut sequencer: Sequencer<u32> = Sequencer::new(SEQUENCER, 3, true);
        out.clear();
        let mine = sequencer.multicast(5, &mut out);
        assert!(delivered(&out).is_empty());
        let to_itself = |out: &mut Vec<Step<u32, Msg<u32>>>| match out.drain(..).next() {
            Some(Step::Send(Dest::One(SEQUENCER), m)) => m,
            other => panic!("a message to itself first, not {other:?}"),
        };
        let submit = to_itself(&mut out);
        sequencer.on_message(SEQUENCER, submit, &mut out);
        let number = to_itself(&mut out);
        sequencer.on_message(SEQUENCER, number, &mut out);
        assert_eq!(delivered(&out), [mine]);
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
