//! Renaming nodes: one permutation applied to every node id in a piece of state.
//!
//! Symmetry reduction in the model checker merges states that differ only by
//! which node is called what. That is sound only if *every* node id moves
//! together: vector-clock entries, message ids (their origin), per-node
//! counters, hold-back queues keyed by id. The state is private to the spec, so
//! the renaming lives here, next to it, as a pure function with no checker in
//! sight; the model (`gsmo-model`'s `symmetry.rs`) applies it to its actors and
//! renames its network's envelopes itself.
//!
//! Only what is symmetric implements [`Rename`]: the causal endpoint. The
//! sequencer (node 0 orders), ISIS (ties broken by node id) and the K/V store's
//! last-writer-wins stamps (ties broken by node id) are not, so renaming them
//! panics rather than merging inequivalent states.

use crate::clock::VectorClock;
use crate::multicast::{causal, fifo, MsgId, Wire};
use crate::properties::Event;
use crate::NodeId;

/// A value with node ids in it, renamed by `to` (`to[old] == new`, a permutation).
pub trait Rename: Sized {
    fn rename(&self, to: &[NodeId]) -> Self;
}

/// `v` indexed by node, re-indexed by `to`: `out[to[k]] == v[k]`.
pub fn permute<T: Clone>(v: &[T], to: &[NodeId]) -> Vec<T> {
    let mut out = v.to_vec();
    for (k, x) in v.iter().enumerate() {
        out[to[k]] = x.clone();
    }
    out
}

impl Rename for MsgId {
    fn rename(&self, to: &[NodeId]) -> Self {
        MsgId {
            origin: to[self.origin],
            seq: self.seq,
        }
    }
}

impl Rename for Event {
    fn rename(&self, to: &[NodeId]) -> Self {
        match self {
            Event::Send(m) => Event::Send(m.rename(to)),
            Event::Deliver(m) => Event::Deliver(m.rename(to)),
        }
    }
}

impl Rename for VectorClock {
    fn rename(&self, to: &[NodeId]) -> Self {
        VectorClock::from_entries(permute(self.entries(), to))
    }
}

impl<T: Rename> Rename for Vec<T> {
    fn rename(&self, to: &[NodeId]) -> Self {
        self.iter().map(|x| x.rename(to)).collect()
    }
}

impl<P: Clone> Rename for causal::Msg<P> {
    fn rename(&self, to: &[NodeId]) -> Self {
        causal::Msg {
            id: self.id.rename(to),
            ts: self.ts.rename(to),
            payload: self.payload.clone(),
        }
    }
}

impl<P: Clone> Rename for fifo::Msg<P> {
    fn rename(&self, to: &[NodeId]) -> Self {
        fifo::Msg {
            id: self.id.rename(to),
            payload: self.payload.clone(),
        }
    }
}

impl<P: Clone> Rename for Wire<P> {
    /// Panics on the total orders' messages: their algorithms are not symmetric.
    fn rename(&self, to: &[NodeId]) -> Self {
        match self {
            Wire::Causal(m) => Wire::Causal(m.rename(to)),
            Wire::Fifo(m) => Wire::Fifo(m.rename(to)),
            Wire::Sequencer(_) | Wire::Isis(_) => {
                panic!("the total orders break ties by node id: no symmetry to reduce by")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multicast::{Effect, Mode, Multicast};

    /// Renaming commutes with the protocol: running the renamed endpoint on the
    /// renamed input gives the renamed outcome.
    #[test]
    fn renaming_commutes_with_causal_delivery() {
        let to = [2, 0, 1];
        let mut a = Multicast::<()>::new(Mode::Causal, 0, 3);
        let mut b = Multicast::<()>::new(Mode::Causal, 1, 3);
        let (_, sent) = a.multicast(());
        let Effect::Send { msg, .. } = sent
            .into_iter()
            .find(|e| matches!(e, Effect::Send { to: 1, .. }))
            .expect("a send to node 1")
        else {
            unreachable!()
        };
        let mut b2 = b.rename(&to);
        let got = b.on_message(0, msg.clone()).expect("same mode");
        let got2 = b2.on_message(to[0], msg.rename(&to)).expect("same mode");
        assert_eq!(b.rename(&to), b2);
        let ids = |es: Vec<Effect<()>>| -> Vec<MsgId> {
            es.into_iter()
                .filter_map(|e| match e {
                    Effect::Deliver { id, .. } => Some(id),
                    Effect::Send { .. } => None,
                })
                .collect()
        };
        assert_eq!(ids(got).rename(&to), ids(got2));
        assert_eq!(b2.me(), 0);
        assert_eq!(b2.delivered(), &[0, 0, 1]);
        assert_eq!(
            b2.vector_clock().map(VectorClock::entries),
            Some(&[0, 0, 1][..])
        );
    }

    #[test]
    fn permute_moves_entry_k_to_to_k() {
        assert_eq!(permute(&['a', 'b', 'c'], &[2, 0, 1]), vec!['b', 'c', 'a']);
    }
}
