//! # gsmo-model: the gsmo protocol, model checked
//!
//! stateright `ActorModel`s whose actors are thin adapters over the
//! `gsmo-spec` transition functions, judged by the spec's own predicates:
//! the very code and the very definition of "correct" that the real cluster uses.
//!
//! | model                             | file          | checks                                                 |
//! |-----------------------------------|---------------|--------------------------------------------------------|
//! | causal multicast                  | [`causal`]    | causal order, integrity, all delivered                 |
//! | total order (sequencer, ISIS)     | [`total`]     | total order, FIFO order, integrity, all delivered      |
//! | Chandy-Lamport bank snapshot      | [`snapshot`]  | cut, channel state, conservation, termination, replay  |
//! | replicated K/V over every mode    | [`kv`]        | convergence, snapshot restores to one agreed state     |
//! | snapshot abort policy, crashes   | [`abort`]     | commit xor abort, no aborted part, all end, all answered |
//! | resumable FIFO link               | [`link`]      | fifo exactly once across disconnects, all delivered    |
//! | when a refused handshake stops a node | [`refusal`] | no node stops while another shares its configuration |
//!
//! [`replica`] is the actor every K/V-based model runs (the whole spec node),
//! and [`faults`] the broken links, crashes, clock and failing disks those
//! models may add. [`adapter`] turns spec effects into stateright commands;
//! [`verdict`] runs a checker (under a [`deadline`] that one thread keeps too)
//! and explains what it found; [`wrap`] lets a wrapping model keep the inner one's properties.
//! Fewer states: [`symmetry`] (causal) and [`por`], partial-order reduction (the
//! bank), with [`sleep`] sets on top; cheaper steps: [`digest`] (hashes kept
//! and shared) and [`transitions`] (a replica's steps remembered while the sleep
//! search runs). [`display`] says actions and states in
//! the words a person reads, [`picture`] draws a path as a space-time diagram,
//! and [`explore`] wraps a model for stateright's web explorer with both. The
//! `check` binary drives them all; [`replay`] saves a kv, snapshot or abort path as spec steps
//! for `sim --replay`.

pub mod abort;
pub mod adapter;
pub mod causal;
pub mod deadline;
pub mod digest;
pub mod display;
pub mod explore;
pub mod faults;
pub mod kv;
pub mod link;
pub mod picture;
pub mod por;
pub mod refusal;
pub mod replay;
pub mod replica;
pub mod sleep;
pub mod snapshot;
pub mod symmetry;
pub mod total;
pub mod transitions;
pub mod verdict;
mod visited;
#[cfg(test)]
mod walk;
pub mod wrap;

pub use adapter::Channels;
pub use causal::{CausalBug, CausalCfg};
pub use kv::{KvBug, KvCfg};
pub use link::{LinkCfg, LinkVariant};
pub use snapshot::{SnapshotBug, SnapshotCfg};
pub use total::{TotalBug, TotalCfg};
pub use verdict::{check, Explained, Search, Strategy, Verdict};
