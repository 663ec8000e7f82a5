//! The writes a replica issued and has not yet delivered, each with the client
//! request its delivery answers.
//!
//! A replica numbers its writes 1, 2, 3, ... and, in every mode, delivers them
//! in about that order, so they are kept in a deque indexed by number: issuing
//! appends, delivering the oldest pops the front, and a write answered out of
//! turn (a timeout, or a total order that puts it first) leaves a hole that is
//! dropped once it reaches an end. A `BTreeMap` keyed by id did the same with a
//! `memmove` of its front leaf on every delivery (3% of the issuing node's CPU
//! under pipelined `SET`). Issue times never decrease along the numbers, so the
//! overdue writes are a prefix and a tick reads only them.
//!
//! The layout is canonical (no hole at either end, `first` 0 when empty), so
//! two replicas waiting for the same writes are equal and hash alike, as the
//! model checker's state identity needs.

use super::RequestId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A write issued here and not yet delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) req: RequestId,
    /// When it was issued.
    pub(super) since: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct PendingWrites {
    /// The number of the write in `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Pending>>,
    /// How many slots hold a write.
    len: usize,
}

impl PendingWrites {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Write `seq` waits for delivery. Numbers only grow, so it goes at the back.
    pub(super) fn insert(&mut self, seq: u64, pending: Pending) {
        if self.slots.is_empty() {
            self.first = seq;
        }
        let at = seq
            .checked_sub(self.first)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|&at| at >= self.slots.len())
            .expect("write numbers only grow");
        self.slots.resize(at, None);
        self.slots.push_back(Some(pending));
        self.len += 1;
    }

    /// Write `seq`'s request, if it is still waiting.
    pub(super) fn remove(&mut self, seq: u64) -> Option<Pending> {
        let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        let taken = self.slots.get_mut(at)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        if self.slots.is_empty() {
            self.first = 0;
        }
        Some(taken)
    }

    /// Removes and returns the writes issued at or before `cutoff`, oldest first.
    pub(super) fn take_issued_by(&mut self, cutoff: u64) -> Vec<(u64, Pending)> {
        let overdue: Vec<(u64, Pending)> = self
            .slots
            .iter()
            .zip(self.first..)
            .filter_map(|(slot, seq)| slot.map(|p| (seq, p)))
            .take_while(|(_, p)| p.since <= cutoff)
            .collect();
        for (seq, _) in &overdue {
            self.remove(*seq);
        }
        overdue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn p(req: RequestId, since: u64) -> Pending {
        Pending { req, since }
    }

    #[test]
    fn in_order_and_out_of_turn() {
        let mut w = PendingWrites::default();
        for seq in 1..=4 {
            w.insert(seq, p(seq * 10, seq));
        }
        assert_eq!(w.remove(2), Some(p(20, 2)), "out of turn leaves a hole");
        assert_eq!(w.remove(2), None, "answered once");
        assert_eq!(w.len(), 3);
        assert_eq!(w.remove(1), Some(p(10, 1)));
        assert_eq!(
            (w.first, w.slots.len()),
            (3, 2),
            "the hole went with the front"
        );
        assert_eq!(w.remove(9), None);
        assert_eq!(w.take_issued_by(3), vec![(3, p(30, 3))]);
        assert_eq!(w.remove(4), Some(p(40, 4)));
        assert_eq!(w, PendingWrites::default(), "empty is one state");
    }

    #[derive(Clone, Debug)]
    enum Step {
        Issue,
        Deliver(u64),
        Tick(u64),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            prop_oneof![
                3 => Just(Step::Issue),
                3 => (0u64..12).prop_map(Step::Deliver),
                1 => (0u64..12).prop_map(Step::Tick),
            ],
            0..60,
        )
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config(256))]

        /// Against the `BTreeMap` it replaces: the same answers at every step,
        /// and equal contents always mean equal values (canonical layout).
        #[test]
        fn behaves_as_a_map_keyed_by_number(a in steps(), b in steps()) {
            let run = |steps: &[Step]| -> Result<(PendingWrites, BTreeMap<u64, Pending>), TestCaseError> {
                let (mut w, mut m) = (PendingWrites::default(), BTreeMap::new());
                let mut next = 0;
                for step in steps {
                    match *step {
                        Step::Issue => {
                            next += 1;
                            // Issue times never decrease along the numbers.
                            w.insert(next, p(next, next / 2));
                            m.insert(next, p(next, next / 2));
                        }
                        Step::Deliver(seq) => prop_assert_eq!(w.remove(seq), m.remove(&seq)),
                        Step::Tick(cutoff) => {
                            let want: Vec<(u64, Pending)> =
                                m.iter().filter(|(_, p)| p.since <= cutoff).map(|(s, p)| (*s, *p)).collect();
                            m.retain(|_, p| p.since > cutoff);
                            prop_assert_eq!(w.take_issued_by(cutoff), want);
                        }
                    }
                    prop_assert_eq!(w.len(), m.len());
                }
                Ok((w, m))
            };
            let (wa, ma) = run(&a)?;
            let (wb, mb) = run(&b)?;
            prop_assert_eq!(wa == wb, ma == mb);
        }
    }
}
