//! FIFO multicast: per-sender sequence numbers and a hold-back queue.
//!
//! Coulouris et al., *Distributed Systems* (5th ed.), §15.4.3: the receiver keeps
//! `R[j]`, the number of messages delivered from `j`, and delivers a message
//! carrying `S` from `j` exactly when `S == R[j] + 1`; later ones wait.
//! Over FIFO channels the hold-back queue stays empty; it earns its keep when a
//! channel reorders (the model's unordered network shows this).

use super::{Algorithm, Dest, MsgId, Step};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Msg<P> {
    pub id: MsgId,
    pub payload: P,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fifo<P> {
    me: NodeId,
    sent: u64,
    /// `R[j]`: messages delivered from each origin.
    next: Vec<u64>,
    holdback: BTreeMap<MsgId, P>,
    /// Broken variant: deliver on arrival, ignoring sequence numbers. Never
    /// serialized: a model's broken flag must not reach snapshot files.
    #[serde(skip)]
    no_holdback: bool,
}

impl<P> Msg<P> {
    pub(crate) fn map<Q>(self, f: impl FnOnce(MsgId, P) -> Q) -> Msg<Q> {
        Msg {
            id: self.id,
            payload: f(self.id, self.payload),
        }
    }
}

impl<P> Fifo<P> {
    pub(crate) fn map<Q>(self, mut f: impl FnMut(MsgId, P) -> Q) -> Fifo<Q> {
        Fifo {
            me: self.me,
            sent: self.sent,
            next: self.next,
            holdback: self
                .holdback
                .into_iter()
                .map(|(id, p)| (id, f(id, p)))
                .collect(),
            no_holdback: self.no_holdback,
        }
    }

    pub(crate) fn new(me: NodeId, n: usize, no_holdback: bool) -> Self {
        Fifo {
            me,
            sent: 0,
            next: vec![0; n],
            holdback: BTreeMap::new(),
            no_holdback,
        }
    }
}

impl<P: Clone> Algorithm<P> for Fifo<P> {
    type Msg = Msg<P>;

    fn multicast(&mut self, payload: P, out: &mut Vec<Step<P, Msg<P>>>) -> MsgId {
        let id = MsgId::next(self.me, &mut self.sent);
        out.push(Step::Send(Dest::All, Msg { id, payload }));
        id
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg<P>, out: &mut Vec<Step<P, Msg<P>>>) {
        if self.no_holdback {
            self.next[msg.id.origin] += 1;
            out.push(Step::Deliver(msg.id, msg.payload));
            return;
        }
        self.holdback.insert(msg.id, msg.payload);
        let origin = msg.id.origin;
        // Only this origin's queue can have become deliverable.
        loop {
            let want = MsgId {
                origin,
                seq: self.next[origin] + 1,
            };
            match self.holdback.remove(&want) {
                Some(payload) => {
                    self.next[origin] += 1;
                    out.push(Step::Deliver(want, payload));
                }
                None => break,
            }
        }
    }

    fn holdback_depth(&self) -> usize {
        self.holdback.len()
    }
}
