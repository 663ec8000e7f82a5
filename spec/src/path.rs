//! A path of a model as spec-level steps: which replica took which [`Input`]
//! and what [`Output`]s its [`Node`] produced. `check kv|snapshot|abort
//! --save-path` writes one; `sim --replay` drives the real node's event loop
//! along it and compares. It lives here because both sides speak only spec
//! types.
//!
//! On disk: [`MAGIC`], then the [`SpecPath`] in bincode 2's standard
//! configuration over serde (JSON cannot hold the spec's maps keyed by
//! message ids); `sim --replay` prints it step by step.

use crate::node::{Input, Node, Output};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The first bytes of a saved path (the format's version included).
pub const MAGIC: &[u8] = b"gsmo-path 2\n";

/// One replica's step: the input it was fed and the outputs it produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub node: NodeId,
    pub input: Input,
    pub outputs: Vec<Output>,
}

/// The broken variants' flags that serialization leaves out on purpose (a
/// model's broken flag must never reach a snapshot file): the replay sets
/// them again on the starting replicas. The others (resolution, recorder,
/// link) travel with the [`Node`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knobs {
    /// The mode's broken multicast (`Multicast::broken`).
    pub broken_multicast: bool,
    /// A store whose short-of-funds `TRANSFER` debits without crediting.
    pub debit_only: bool,
}

/// Which model the path comes from: its properties are what the replay
/// judges the real nodes by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Model {
    /// The replicated K/V store (`check kv`).
    #[default]
    Kv,
    /// The Chandy-Lamport bank (`check snapshot`).
    Bank,
    /// The snapshot abort policy under crashes, time and failing disks (`check abort`).
    Abort,
}

/// A replica's process dies: it takes no step from `before` on, and its
/// peers see its connections go down (steps of their own in the path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    pub node: NodeId,
    /// The index of the first step after the crash.
    pub before: usize,
}

/// A whole path: the replicas as they started (their deliberate bugs
/// included: each is a knob of the spec) and the steps in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecPath {
    /// The `check` command line's model, e.g. `kv over fifo: ...`.
    pub title: String,
    pub model: Model,
    /// The property the path violates, if it is a counterexample.
    pub violates: Option<String>,
    /// The seed of a random path.
    pub seed: Option<u64>,
    /// The replicas before the first step, as serialized (see [`Knobs`]).
    pub nodes: Vec<Node>,
    pub knobs: Knobs,
    pub steps: Vec<Step>,
    pub crashes: Vec<Crash>,
    /// Whether nothing more can happen where the path ends (a crash aside):
    /// only then are "eventually" properties judged.
    pub ended: bool,
}

impl SpecPath {
    /// Replica `i` as it started, its broken flags included.
    pub fn start(&self, i: NodeId) -> Node {
        self.nodes[i]
            .clone()
            .with_bug_flags(self.knobs.broken_multicast, self.knobs.debit_only)
    }

    /// Whether replica `i` has crashed before step `k`.
    pub fn crashed(&self, i: NodeId, k: usize) -> bool {
        self.crashes.iter().any(|c| c.node == i && c.before <= k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_stops_only_its_own_replica_from_its_step_on() {
        // The replay feeds no input to a crashed replica: another replica, or
        // the step before the crash, must still run.
        let path = SpecPath {
            title: String::new(),
            model: Model::Kv,
            violates: None,
            seed: None,
            nodes: Vec::new(),
            knobs: Knobs::default(),
            steps: Vec::new(),
            crashes: vec![Crash { node: 1, before: 3 }],
            ended: false,
        };
        assert!(!path.crashed(1, 2));
        assert!(path.crashed(1, 3));
        assert!(path.crashed(1, 4));
        assert!(!path.crashed(0, 4));
        assert!(!path.crashed(2, 4));
    }
}
