//! # gsmo-spec: the protocol, as pure state machines
//!
//! Every algorithm here is deterministic and free of I/O, time and randomness:
//! it takes an input (a client request, a message from a peer, a "start a
//! snapshot" order) and returns effects (send this, deliver that, reply, record).
//! The stateright model (`gsmo-model`) and the tokio node (`gsmo-node`) are thin
//! adapters over these same functions, and both judge themselves with the same
//! predicates in [`properties`].
//!
//! | concept                               | module                   |
//! |---------------------------------------|--------------------------|
//! | Lamport and vector clocks             | [`clock`]                |
//! | resumable reliable FIFO links         | [`link`]                 |
//! | FIFO / causal / total multicast       | [`multicast`]            |
//! | batching writes into one multicast    | [`batch`]                |
//! | Chandy-Lamport recorder               | [`snapshot`]             |
//! | replicated K/V state machine (typed)  | [`kv`] (one module per type family) |
//! | a replica: all of the above composed  | [`node`]                 |
//! | when a refused handshake stops a node | [`refusal`]              |
//! | a FIFO network simulation for tests   | [`sim`]                  |
//! | safety predicates over histories      | [`properties`]           |
//! | a model path as spec steps (replay)   | [`path`]                 |
//! | replaying a real node's trace         | [`trace`]                |
//! | linearizability / sequential consistency | [`consistency`]        |

pub mod batch;
pub mod clock;
pub mod consistency;
pub mod kv;
pub mod link;
pub mod multicast;
pub mod node;
pub mod path;
pub mod properties;
pub mod refusal;
pub mod sim;
pub mod snapshot;
pub mod symmetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

/// A cluster member, numbered `0..n`.
pub type NodeId = usize;
