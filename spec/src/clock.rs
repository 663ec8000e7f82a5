//! Logical clocks: Lamport (1978) scalar clocks and Fidge/Mattern vector clocks.
//!
//! Vector clocks are the ordering layer's memory in causal multicast and the
//! snapshot verifier's evidence that a recorded cut is consistent.

use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A Lamport clock: a counter that only moves forward and jumps past any
/// timestamp it observes, so `a -> b` implies `L(a) < L(b)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LamportClock(pub u64);

impl LamportClock {
    /// Advances the clock for a local event (e.g. issuing a write) and returns the new time.
    pub fn tick(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    /// Absorbs a timestamp seen on a delivered message.
    pub fn observe(&mut self, seen: u64) {
        self.0 = self.0.max(seen);
    }
}

/// A vector clock over a fixed membership of `n` nodes.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorClock(Vec<u64>);

impl VectorClock {
    /// The zero clock for `n` nodes.
    pub fn new(n: usize) -> Self {
        VectorClock(vec![0; n])
    }

    /// Builds a clock from explicit entries (tests, recorded traces).
    pub fn from_entries(entries: Vec<u64>) -> Self {
        VectorClock(entries)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    pub fn entries(&self) -> &[u64] {
        &self.0
    }

    /// Increments this node's own entry and returns it.
    pub fn tick(&mut self, node: NodeId) -> u64 {
        self.0[node] += 1;
        self.0[node]
    }

    /// Pointwise maximum: what a receiver knows after learning what the sender knew.
    pub fn merge(&mut self, other: &VectorClock) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// `self <= other` pointwise: every event `self` has seen, `other` has seen too.
    pub fn le(&self, other: &VectorClock) -> bool {
        let n = self.0.len().max(other.0.len());
        (0..n).all(|i| self.get(i) <= other.get(i))
    }

    /// Neither clock dominates: the events are concurrent.
    pub fn concurrent(&self, other: &VectorClock) -> bool {
        self.partial_cmp(other).is_none()
    }
}

/// The happened-before partial order; `None` means concurrent.
impl PartialOrd for VectorClock {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.le(other), other.le(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }
}

/// ShiViz-friendly form: `{"n0":3,"n1":1}`, omitting zero entries.
impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        let mut first = true;
        for (i, v) in self.0.iter().enumerate().filter(|(_, v)| **v > 0) {
            if !first {
                write!(f, ",")?;
            }
            first = false;
            write!(f, "\"n{i}\":{v}")?;
        }
        write!(f, "}}")
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happened_before_and_concurrency() {
        let a = VectorClock::from_entries(vec![1, 0, 0]);
        let b = VectorClock::from_entries(vec![1, 1, 0]);
        let c = VectorClock::from_entries(vec![0, 0, 1]);
        assert!(a < b);
        assert!(b > a);
        assert!(a.concurrent(&c));
        assert!(!a.concurrent(&b));
        let mut m = b.clone();
        m.merge(&c);
        assert_eq!(m.entries(), &[1, 1, 1]);
        assert_eq!((m.len(), m.is_empty()), (3, false));
        assert!(VectorClock::new(0).is_empty());
        assert_eq!(m.to_string(), r#"{"n0":1,"n1":1,"n2":1}"#);
    }

    #[test]
    fn lamport_moves_past_observed_times() {
        let mut l = LamportClock::default();
        assert_eq!(l.tick(), 1);
        l.observe(7);
        assert_eq!(l.tick(), 8);
        l.observe(3);
        assert_eq!(l.0, 8);
    }
}
