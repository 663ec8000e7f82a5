//! Causal multicast with vector timestamps (Birman, Schiper & Stephenson, 1991,
//! "Lightweight causal and atomic group multicast", the CBCAST rule).
//!
//! `V[k]` counts the messages from `k` delivered here. A message from `j`
//! stamped `M` is delivered when `M[j] == V[j] + 1` (it is the next from `j`)
//! and `M[k] <= V[k]` for every `k != j` (everything its sender had delivered
//! before sending it has been delivered here). Delivery then sets `V[j] += 1`.

use super::{Algorithm, Dest, MsgId, Step};
use crate::clock::VectorClock;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Msg<P> {
    pub id: MsgId,
    pub ts: VectorClock,
    pub payload: P,
}

/// A total order for sorting (the model checker orders in-flight messages);
/// written by hand because `VectorClock`'s `PartialOrd` is happened-before.
impl<P: Ord> Ord for Msg<P> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.id, self.ts.entries(), &self.payload).cmp(&(
            other.id,
            other.ts.entries(),
            &other.payload,
        ))
    }
}

impl<P: PartialOrd> PartialOrd for Msg<P> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self.id, self.ts.entries(), &self.payload).partial_cmp(&(
            other.id,
            other.ts.entries(),
            &other.payload,
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Causal<P> {
    me: NodeId,
    clock: VectorClock,
    /// Kept sorted by id so that equal histories give equal (hash-equal) states.
    holdback: BTreeMap<MsgId, Msg<P>>,
    /// Broken variant: check only `M[j] == V[j] + 1` (FIFO), not the other entries.
    /// (Never serialized: a model's broken flag must not reach snapshot files.)
    #[serde(skip)]
    fifo_only: bool,
}

impl<P> Msg<P> {
    pub(crate) fn map<Q>(self, f: impl FnOnce(MsgId, P) -> Q) -> Msg<Q> {
        Msg {
            id: self.id,
            ts: self.ts,
            payload: f(self.id, self.payload),
        }
    }
}

impl<P> Causal<P> {
    pub(crate) fn map<Q>(self, mut f: impl FnMut(MsgId, P) -> Q) -> Causal<Q> {
        Causal {
            me: self.me,
            clock: self.clock,
            holdback: self
                .holdback
                .into_iter()
                .map(|(id, m)| (id, m.map(&mut f)))
                .collect(),
            fifo_only: self.fifo_only,
        }
    }

    pub(crate) fn new(me: NodeId, n: usize, fifo_only: bool) -> Self {
        Causal {
            me,
            clock: VectorClock::new(n),
            holdback: BTreeMap::new(),
            fifo_only,
        }
    }

    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    fn deliverable(&self, m: &Msg<P>) -> bool {
        let j = m.id.origin;
        let next = m.ts.get(j) == self.clock.get(j) + 1;
        next && (self.fifo_only
            || (0..self.clock.len()).all(|k| k == j || m.ts.get(k) <= self.clock.get(k)))
    }
}

impl<P: Clone> Algorithm<P> for Causal<P> {
    type Msg = Msg<P>;

    fn multicast(&mut self, payload: P, out: &mut Vec<Step<P, Msg<P>>>) -> MsgId {
        // Stamp with what this node has delivered plus this message; the clock
        // itself moves when the node delivers its own copy, by the same rule.
        let mut ts = self.clock.clone();
        let seq = ts.tick(self.me);
        let id = MsgId {
            origin: self.me,
            seq,
        };
        out.push(Step::Send(Dest::All, Msg { id, ts, payload }));
        id
    }

    fn on_message(&mut self, _from: NodeId, msg: Msg<P>, out: &mut Vec<Step<P, Msg<P>>>) {
        self.holdback.insert(msg.id, msg);
        // Each delivery can unblock others; rescan until nothing moves.
        while let Some(id) = self
            .holdback
            .values()
            .find(|m| self.deliverable(m))
            .map(|m| m.id)
        {
            let m = self.holdback.remove(&id).expect("found above");
            self.clock.tick(id.origin);
            out.push(Step::Deliver(id, m.payload));
        }
    }

    fn holdback_depth(&self) -> usize {
        self.holdback.len()
    }
}

/// Renaming nodes for symmetry reduction ([`crate::symmetry`]): CBCAST treats
/// every node alike, so its state renames entry by entry. Fields are listed,
/// not copied wholesale, so that a new field must say how it renames.
impl<P: Clone> crate::symmetry::Rename for Causal<P> {
    fn rename(&self, to: &[NodeId]) -> Self {
        Causal {
            me: to[self.me],
            clock: self.clock.rename(to),
            holdback: self
                .holdback
                .values()
                .map(|m| (m.id.rename(to), m.rename(to)))
                .collect(),
            fifo_only: self.fifo_only,
        }
    }
}
