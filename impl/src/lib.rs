//! # gsmo-node: the spec's state machines on real sockets
//!
//! A thin tokio adapter around [`gsmo_spec::node::Node`]: it feeds the replica
//! client requests and peer messages and carries out the outputs. It has no
//! protocol logic of its own, so what the model checker proved about the spec
//! is what runs here.
//!
//! | concept                                         | module        |
//! |-------------------------------------------------|---------------|
//! | cluster addresses, ports, node settings         | [`config`]    |
//! | peer framing (length prefix + bincode, limits)  | [`frame`]     |
//! | fault injection: delays, broken links, slow loop | [`fault`]     |
//! | peer handshake (version, cluster, mode, resume, HMAC proof) | [`handshake`] |
//! | secrets from files / env, constant-time compare | [`secret`]    |
//! | client door: maxclients, AUTH, output limits    | [`admission`] |
//! | the process's pages: huge pages off, resident set | [`pages`]   |
//! | peer connections: dial forever, accept, write   | [`peer`]      |
//! | sockets, wall clock, entropy (real or simulated) | [`net`]       |
//! | what the event loop takes (shared event types)  | [`event`]     |
//! | Redis (RESP2 and RESP3) codec and command table | [`resp`]      |
//! | Redis client connections, pipelining            | [`client`]    |
//! | the event loop that owns the replica            | [`runtime`]   |
//! | connection events into the spec's link layer    | [`links`]     |
//! | snapshot files behind the spec's decisions      | [`housekeeping`] |
//! | `INFO`                                          | [`info`]      |
//! | `INFO` `write_latency_usec`: writes' wait      | [`latency`]   |
//! | history text form and store digest              | [`history`]   |
//! | ShiViz event log                                | [`shiviz`]    |
//! | wiring one node together                        | [`serve`]     |
//! | a panicking task stops the node, never hangs it | [`supervise`] |
//! | `gsmo cluster`: local multi-process launcher    | [`launcher`]  |
//! | snapshots on disk: format, store, manifest,     | [`snapshot`]  |
//! | data-dir claim, verify, `gsmo snapshot` CLI     |               |
//! | recorded event traces for conformance checks    | [`tracefile`] |
//! | `gsmo trace check`                              | [`tracecheck`]|
//!
//! ## Consistency seen by a Redis client
//! A write (`SET`, `MSET`, `DEL`, `INCRBY`, `TRANSFER`) is replied to once the
//! node the client is connected to has *delivered* it in the cluster's order;
//! a read (`GET`) answers from that node's store at once. Under the total modes
//! every replica applies the same writes in the same order, so a client pinned
//! to one node sees sequential consistency (not linearizability: another
//! node may not have applied the write yet). Under `fifo` and `causal`,
//! concurrent writes to one key are resolved last-writer-wins and replicas
//! converge once quiet; read-modify-writes (`INCRBY`, `TRANSFER`) are resolved at
//! the origin there, so use a total mode for counters and money.

pub mod admission;
pub mod client;
pub mod config;
pub mod event;
pub mod fault;
pub mod frame;
pub mod handshake;
pub mod history;
pub mod housekeeping;
pub mod info;
pub mod latency;
pub mod launcher;
pub mod links;
pub mod net;
pub mod pages;
pub mod peer;
pub mod resp;
pub mod runtime;
pub mod secret;
pub mod serve;
pub mod shiviz;
pub mod snapshot;
pub mod supervise;
pub mod tracecheck;
pub mod tracefile;
