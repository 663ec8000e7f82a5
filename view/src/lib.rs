//! # gsmo-view: gsmo for people
//!
//! How the protocol's messages, states and runs are shown to a person, in one
//! place, so `check`'s counterexamples, the model explorer and `gsmo trace show`
//! speak one language. Pure (no I/O), over `gsmo-spec`'s types; the model
//! (`gsmo-model`) and the node (`gsmo-node`) both depend on it, and it on
//! neither. It is not in `gsmo-spec` because nothing here is protocol: the
//! spec stays the algorithms and their predicates.
//!
//! | what                                                  | module        |
//! |-------------------------------------------------------|---------------|
//! | the text language (keys, values, ops, messages, store) | [`text`]      |
//! | space-time diagrams: events and messages in, SVG out  | [`spacetime`] |
//! | a real cluster's traces as a space-time diagram       | [`trace`]     |

pub mod spacetime;
pub mod text;
pub mod trace;
