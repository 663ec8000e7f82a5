//! A path of a model as spec-level steps: which replica took which [`Input`]
//! and what [`Output`]s its [`Node`] produced. `check kv --save-path` writes
//! one; `sim --replay` drives the real node's event loop along it and
//! compares. It lives here because both sides speak only spec types.
//!
//! On disk: [`MAGIC`], then the [`SpecPath`] in bincode 2's standard
//! configuration over serde (JSON cannot hold the spec's maps keyed by
//! message ids); `sim --replay` prints it step by step.

use crate::node::{Input, Node, Output};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The first bytes of a saved path (the format's version included).
pub const MAGIC: &[u8] = b"gsmo-path 1\n";

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

/// A whole path: the replicas as they started (their deliberate bugs
/// included: each is a knob of the spec) and the steps in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecPath {
    /// The `check` command line's model, e.g. `kv over fifo: ...`.
    pub model: String,
    /// The property the path violates, if it is a counterexample.
    pub violates: Option<String>,
    /// The seed of a random path.
    pub seed: Option<u64>,
    /// The replicas before the first step, as serialized (see [`Knobs`]).
    pub nodes: Vec<Node>,
    pub knobs: Knobs,
    pub steps: Vec<Step>,
}

impl SpecPath {
    /// Replica `i` as it started, its broken flags included.
    pub fn start(&self, i: NodeId) -> Node {
        self.nodes[i]
            .clone()
            .with_bug_flags(self.knobs.broken_multicast, self.knobs.debit_only)
    }
}
