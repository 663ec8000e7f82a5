//! What the event loop reacts to: the types the connection tasks ([`crate::peer`],
//! [`crate::client`]) and the loop ([`crate::runtime`]) share, in one module of
//! their own so neither side imports the other.

use crate::frame::PeerFrame;
use gsmo_spec::kv::Reply;
use gsmo_spec::node::Command;
use gsmo_spec::snapshot::{PartSummary, SnapshotId};
use gsmo_spec::NodeId;
use tokio::sync::{mpsc, oneshot};

/// Whether the `n`th (from 1) of a repeating event is logged at its own
/// level: the first and every 25th. The rest go to debug, so a peer that
/// re-dials once a second, or a stranger that keeps knocking, cannot fill the
/// log; the count in INFO stays exact.
pub fn loud(n: u64) -> bool {
    n == 1 || n % 25 == 0
}

/// What a client connection asks of the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    Kv(Command),
    Snapshot,
    /// INFO, optionally one section.
    Info(Option<String>),
    /// CONFIG RESETSTAT: empties INFO's write latency histogram and zeroes
    /// its event-loop counts.
    ResetStat,
    DbSize,
    History,
    Dump,
    Digest,
}

impl ClientRequest {
    /// A write to the store: multicast in the cluster's order and answered once
    /// delivered here. Everything else is answered at once.
    pub fn is_write(&self) -> bool {
        matches!(self, ClientRequest::Kv(Command::Write(_)))
    }
}

/// The replica's answer, in a form `resp` turns into a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Kv(Reply),
    Bulk(Vec<u8>),
    Int(i64),
    Array(Vec<Vec<u8>>),
    Error(String),
}

/// Everything the event loop reacts to.
#[derive(Debug)]
pub enum Input {
    /// Requests one connection sent back to back, all reads or all writes,
    /// answered together and in order once the last is: a pipeline costs one
    /// hand-over, one answer and one wake-up, not one per request.
    Client {
        reqs: Vec<ClientRequest>,
        reply: oneshot::Sender<Vec<Response>>,
    },
    /// A frame read on inbound connection `gen` from `from`.
    Peer {
        from: NodeId,
        gen: u64,
        frame: PeerFrame,
    },
    Link(LinkEvent),
    /// The ticker: time for the spec, periodic snapshots.
    Tick,
    /// A snapshot part finished writing (off the loop), or could not be written.
    Stored {
        id: SnapshotId,
        result: Result<PartSummary, String>,
    },
    /// The fault injector: break one peer connection now.
    FaultDisconnect {
        pick: u64,
    },
}

/// A connection's life, reported by its task.
#[derive(Debug)]
pub enum LinkEvent {
    /// Our connection `gen` to `peer` passed the handshake; the peer has
    /// delivered our frames through `delivered`. Frames for it go into `queue`.
    OutUp {
        peer: NodeId,
        gen: u64,
        delivered: u64,
        queue: mpsc::Sender<PeerFrame>,
    },
    /// Our connection `gen` to `peer` ended.
    OutDown {
        peer: NodeId,
        gen: u64,
        reason: String,
    },
    /// `peer` dialed us and passed the handshake: the loop answers with the
    /// resume point (how many of its frames we delivered) and a new
    /// generation; dropping `stop` later closes the connection.
    InHello {
        peer: NodeId,
        answer: oneshot::Sender<Admitted>,
    },
    /// Inbound connection `gen` from `peer` ended.
    InDown {
        peer: NodeId,
        gen: u64,
        reason: String,
    },
    /// The node at `peer`'s address refused our handshake or could not prove
    /// the secret: a misconfiguration on one side, or a stranger there.
    Refused { peer: NodeId, reason: String },
    /// A dial attempt failed (the peer is down or not started yet).
    DialFailed { peer: NodeId, reason: String },
}

/// The loop's answer to [`LinkEvent::InHello`].
#[derive(Debug)]
pub struct Admitted {
    pub gen: u64,
    pub delivered: u64,
    /// Resolves (its sender dropped) when the loop closes this connection.
    pub stop: oneshot::Receiver<()>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_repeating_event_is_logged_first_and_every_25th() {
        let loud: Vec<u64> = (1..=100).filter(|&n| super::loud(n)).collect();
        assert_eq!(loud, [1, 25, 50, 75, 100]);
    }
}
