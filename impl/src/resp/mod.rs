//! The Redis front door, one file per concept:
//!
//! | concept                                                    | module         |
//! |------------------------------------------------------------|----------------|
//! | request framing: RESP arrays and inline commands, limits   | [`frame`]      |
//! | inline command splitting, as redis-cli quotes              | [`inline`]     |
//! | the command table, name lookup, dispatch to the families   | [`command`]    |
//! | strings and whole keys                                     | [`keys`]       |
//! | lists, sets, hashes, sorted sets                           | [`lists`], [`sets`], [`hashes`], [`zsets`] |
//! | connection commands (HELLO, CLIENT, COMMAND, ...), session | [`connection`] |
//! | server commands (INFO, CONFIG, admin)                      | [`server`]     |
//! | replies as RESP2 frames                                    | [`reply`]      |
//! | a reply's RESP3 / RESP2 typing on the wire                 | [`shape`]      |
//!
//! A request's command name is looked up once ([`Call::new`]); the gate
//! (`crate::admission`), the parser (with the connection's [`Session`]) and
//! the [`shape`] all take the resulting [`Call`]. Replies are encoded by the `redis-protocol`
//! crate, but for the few that dominate a workload (`+OK`, integers, bulk
//! strings, nulls), which [`shape::encode_response`] writes straight out.

pub mod command;
pub mod connection;
pub mod frame;
pub mod hashes;
pub mod inline;
pub mod keys;
pub mod lists;
pub mod reply;
pub mod server;
pub mod sets;
pub mod shape;
pub mod zsets;

pub use command::{lookup, parse_command, Call, CommandSpec, Family, Kind, Request, COMMANDS};
pub use connection::Session;
pub use frame::{RespCodec, RespError, MAX_ARGS, MAX_INLINE, MAX_REQUEST};
pub use reply::{error, ok, reply_frame, response_frame};
