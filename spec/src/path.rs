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
    pub nodes: Vec<Node>,
    pub steps: Vec<Step>,
}
