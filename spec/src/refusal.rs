//! When a refused handshake stops a node, and when it must not.
//!
//! Every peer connection starts with a handshake (`impl/src/handshake.rs`):
//! both sides compare their view of the cluster (version, cluster id, mode,
//! size, ids, epoch) and prove they know the cluster secret. A dialer can be
//! turned away for good: the node at the address *refused* it (a mismatch), or
//! could not prove the secret. Which of the two is misconfigured, the handshake
//! cannot say: each side sees only that the other differs. And the party at a
//! peer's address may be a stranger (the peer is down and something else took
//! its port), whose refusal is worth nothing.
//!
//! So a refusal alone never stops a node that has already *met* the cluster:
//! once one handshake with any peer has completed, in either direction, a node
//! that knows the secret has confirmed this node's view, and any later refusal
//! is the other side's fault. The node keeps re-dialing the refuser (it may be
//! fixed, or the stranger gone) and says why in its logs and `INFO`. A node
//! that has met nobody gives up once *every* peer has refused it: then it is
//! almost surely the odd one out (a wrong secret, cluster id or mode, a node
//! of another epoch), and exiting with the reasons beats waiting for ever.
//!
//! Before this rule, any refusal stopped the dialer: a node restarted with a
//! wrong secret, or a stranger answering on a dead peer's port, took every
//! healthy node down as they re-dialed it.

use crate::NodeId;

/// What a refusal means for this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep this node up and re-dial the refuser later.
    Retry,
    /// Every peer refused and none ever completed a handshake: stop, saying why.
    GiveUp(String),
}

/// One node's record of its peers' handshake outcomes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Refusals {
    me: NodeId,
    /// Whether a handshake with any peer has completed, either way round.
    met: bool,
    /// Each peer's latest refusal, cleared when a handshake with it completes.
    refused: Vec<Option<String>>,
}

impl Refusals {
    /// Node `me` of an `n`-node cluster, before any handshake.
    pub fn new(me: NodeId, n: usize) -> Self {
        Refusals {
            me,
            met: false,
            refused: vec![None; n],
        }
    }

    /// A handshake with `peer` completed, this node dialing or accepting.
    pub fn met(&mut self, peer: NodeId) {
        self.met = true;
        self.refused[peer] = None;
    }

    /// `peer` refused this node's handshake (or could not prove the secret).
    pub fn refused(&mut self, peer: NodeId, reason: String) -> Verdict {
        self.refused[peer] = Some(reason);
        if self.met {
            return Verdict::Retry;
        }
        let mut all = Vec::new();
        for (j, why) in self.refused.iter().enumerate() {
            if j == self.me {
                continue;
            }
            match why {
                Some(why) => all.push(format!("node {j}: {why}")),
                None => return Verdict::Retry,
            }
        }
        Verdict::GiveUp(format!(
            "every peer refused this node's handshake, and none ever accepted it ({}); \
             this node's configuration differs from the cluster's",
            all.join("; ")
        ))
    }

    /// Why `peer` last refused this node, if it did and has not accepted since.
    pub fn refused_by(&self, peer: NodeId) -> Option<&str> {
        self.refused[peer].as_deref()
    }

    /// Whether any handshake has completed: refusals no longer stop this node.
    pub fn has_met(&self) -> bool {
        self.met
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_met_the_cluster_never_gives_up() {
        let mut r = Refusals::new(0, 3);
        r.met(1);
        assert_eq!(r.refused(2, "bad proof".into()), Verdict::Retry);
        // Even if the peer it met refuses it later (say, restarted wrong).
        assert_eq!(r.refused(1, "bad proof".into()), Verdict::Retry);
        assert_eq!(r.refused_by(2), Some("bad proof"));
        assert!(r.has_met());
    }

    #[test]
    fn a_node_every_peer_refuses_gives_up_with_every_reason() {
        let mut r = Refusals::new(2, 3);
        assert_eq!(r.refused(0, "wrong secret".into()), Verdict::Retry);
        // Node 1 is down: a failed dial is no refusal, so node 2 waits.
        assert_eq!(r.refused(0, "wrong secret".into()), Verdict::Retry);
        let Verdict::GiveUp(why) = r.refused(1, "cluster id differs".into()) else {
            panic!("refused by both peers");
        };
        assert!(
            why.contains("node 0: wrong secret") && why.contains("node 1: cluster id differs"),
            "{why}"
        );
        assert!(!r.has_met());
    }

    #[test]
    fn a_handshake_clears_the_peers_refusal() {
        let mut r = Refusals::new(0, 3);
        r.refused(1, "stranger".into());
        r.met(1);
        assert_eq!(r.refused_by(1), None);
        assert_eq!(r.refused(2, "x".into()), Verdict::Retry);
    }

    #[test]
    fn in_a_pair_one_refusal_is_every_refusal() {
        let mut r = Refusals::new(1, 2);
        assert!(matches!(
            r.refused(0, "mode differs".into()),
            Verdict::GiveUp(_)
        ));
    }
}
