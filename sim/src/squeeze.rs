//! Tight queues (`--queues N`): every bounded queue of the node at `N`
//! entries, so that the paths taken only when one is full run in every seed:
//! a client's reader waiting for a read slot or for room in its reply queue,
//! the event loop's input queue full (its senders wait), and a peer writer's
//! queue full (the connection is closed and the link resends on resume). The
//! judge asks the same of such a run as of any other: nothing lost, nothing
//! out of order, every request answered.

use crate::client::{info_field, peer_sum};

/// How often the live nodes met their queues' bounds, summed from INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Squeeze {
    /// A client's reader found every read slot taken (`client_read_slot_waits`).
    pub read_slot_waits: u64,
    /// A client's reader found its reply queue full (`client_reply_queue_waits`).
    pub reply_queue_waits: u64,
    /// Turns that found the input queue full (`input_queue_peak` at the bound), at
    /// most one a node: INFO keeps the peak, not a count.
    pub input_queue_full: u64,
    /// Peer connections closed for a full writer queue (`queue_full_closes`).
    pub peer_queue_closes: u64,
}

impl Squeeze {
    /// One node's counters, read from its `INFO` text (0 where absent).
    pub fn from_info(info: &str) -> Self {
        let field = |name| info_field(info, name).map_or(0, |v| v.parse().unwrap_or(0));
        let full = field("input_queue") > 0 && field("input_queue_peak") >= field("input_queue");
        Squeeze {
            read_slot_waits: field("client_read_slot_waits"),
            reply_queue_waits: field("client_reply_queue_waits"),
            input_queue_full: u64::from(full),
            peer_queue_closes: peer_sum(info, "queue_full_closes"),
        }
    }

    pub fn add(&mut self, o: &Squeeze) {
        self.read_slot_waits += o.read_slot_waits;
        self.reply_queue_waits += o.reply_queue_waits;
        self.input_queue_full += o.input_queue_full;
        self.peer_queue_closes += o.peer_queue_closes;
    }

    /// `, queues full: ...`, or nothing when no bound was met (so a sweep
    /// with the default queues prints the line it printed before).
    pub fn summary(&self) -> String {
        if *self == Squeeze::default() {
            return String::new();
        }
        format!(
            ", queues full: {} read slot waits, {} reply queue waits, {} input queues, \
             {} peer connections closed",
            self.read_slot_waits,
            self.reply_queue_waits,
            self.input_queue_full,
            self.peer_queue_closes
        )
    }
}
