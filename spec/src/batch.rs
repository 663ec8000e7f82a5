//! Batching: a replica multicasts the writes that arrived since its last
//! multicast as one [`Batch`], so a burst of writes costs one place in the
//! order (one ISIS round, one sequencer number, one vector timestamp) instead
//! of one each.
//!
//! The ordering algorithms never look inside a batch: it is their payload.
//! Writes keep identities of their own ([`Batch::id`]), numbered per origin
//! like messages, so histories, replies and timeouts stay per write.
//!
//! When a batch goes out is an input: [`Input::Flush`](crate::node::Input::Flush)
//! (the runtime sends it when its input queue runs dry and the replica says
//! the batch is due, [`Node::flush_due`](crate::node::Node::flush_due): under
//! Nagle's rule for rounds a lone ISIS writer's batch waits for its open
//! round; no timer adds latency), or the batch is full
//! ([`Limits::max_batch`](crate::node::Limits) writes, or [`BATCH_BYTES`]).

use crate::kv::Write;
use crate::multicast::MsgId;
use crate::NodeId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A batch is full at this many bytes (by [`Write::approx_bytes`]); a write
/// that would pass it goes into the next batch, so a batch is one write or at
/// most this big, well under a peer frame's limit.
pub const BATCH_BYTES: u64 = 1 << 20;

/// Writes one replica multicast as one message, applied in order on delivery.
/// The writes are shared, not copied, by the message to each peer, the link's
/// resend buffer and the hold-back queue.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Batch {
    /// The origin's number of the first write; the others follow consecutively.
    pub first: u64,
    pub writes: Arc<Vec<Write>>,
}

impl Batch {
    /// The identity of write `i` of this batch from `origin`.
    pub fn id(&self, origin: NodeId, i: usize) -> MsgId {
        MsgId {
            origin,
            seq: self.first + i as u64,
        }
    }

    /// What the batch costs on the wire and in a retained buffer.
    pub fn approx_bytes(&self) -> u64 {
        self.writes.iter().map(Write::approx_bytes).sum()
    }
}

/// One write of a delivered batch, as [`Output::Delivered`] reports it: a
/// handle on the batch, not a copy. The issuing replica's batch is still
/// shared with its links' resend buffers when it delivers it, so owning the
/// write meant copying every key and value (5% of that node's CPU under
/// pipelined `SET`) for an output most runs only count.
///
/// It compares, hashes, prints and serialises as the [`Write`] itself, so a
/// trace file holds the same bytes; read back, it is a batch of one.
///
/// [`Output::Delivered`]: crate::node::Output::Delivered
#[derive(Clone)]
pub struct SharedWrite {
    batch: Arc<Vec<Write>>,
    index: usize,
}

impl SharedWrite {
    /// Write `index` of `batch`.
    pub fn new(batch: Arc<Vec<Write>>, index: usize) -> Self {
        assert!(
            index < batch.len(),
            "write {index} of a batch of {}",
            batch.len()
        );
        SharedWrite { batch, index }
    }
}

impl From<Write> for SharedWrite {
    fn from(w: Write) -> Self {
        SharedWrite::new(Arc::new(vec![w]), 0)
    }
}

impl Deref for SharedWrite {
    type Target = Write;
    fn deref(&self) -> &Write {
        &self.batch[self.index]
    }
}

impl PartialEq for SharedWrite {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SharedWrite {}

impl Hash for SharedWrite {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl fmt::Debug for SharedWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for SharedWrite {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedWrite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Write::deserialize(d).map(SharedWrite::from)
    }
}

/// The writes issued here since the last multicast.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outbox {
    writes: Vec<Write>,
    bytes: u64,
}

impl Outbox {
    /// The held writes' bytes (by [`Write::approx_bytes`]).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether `w` must go into a new batch: this one would pass [`BATCH_BYTES`].
    pub fn would_overflow(&self, w: &Write) -> bool {
        !self.is_empty() && self.bytes + w.approx_bytes() > BATCH_BYTES
    }

    /// Whether the batch must go now: `max` writes, or [`BATCH_BYTES`].
    pub fn is_full(&self, max: u64) -> bool {
        self.writes.len() as u64 >= max.max(1) || self.bytes >= BATCH_BYTES
    }

    pub fn push(&mut self, w: Write) {
        self.bytes += w.approx_bytes();
        self.writes.push(w);
    }

    /// The batch of everything held, numbered from `first`; the outbox is empty after.
    pub fn take(&mut self, first: u64) -> Batch {
        self.bytes = 0;
        Batch {
            first,
            writes: Arc::new(std::mem::take(&mut self.writes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SharedWrite;
    use crate::kv::{Op, Reply, Stamp, Write};
    use crate::multicast::{Mode, MsgId};
    use crate::node::{Command, Input, Limits, Node, Output};
    use crate::properties::{integrity, promised_orders, Event};
    use crate::sim::Cluster;
    use std::hash::BuildHasher;
    use std::sync::Arc;

    /// Replica `i` of `n` that multicasts at most `max_batch` writes at once.
    fn node(i: usize, n: usize, mode: Mode, max_batch: u64) -> Node {
        let limits = Limits {
            max_batch,
            ..Limits::default()
        };
        Node::new(i, n, mode).with_limits(limits)
    }

    fn cluster(n: usize, mode: Mode, max_batch: u64) -> Cluster {
        Cluster::from_nodes((0..n).map(|i| node(i, n, mode, max_batch)).collect())
    }

    /// Three replicas batching up to 8 writes, with Nagle's rule for rounds on or off.
    fn nagle_cluster(mode: Mode, nagle: bool) -> Cluster {
        let limits = Limits {
            max_batch: 8,
            nagle,
            ..Limits::default()
        };
        Cluster::from_nodes(
            (0..3)
                .map(|i| Node::new(i, 3, mode).with_limits(limits))
                .collect(),
        )
    }

    fn push(v: &str) -> Command {
        Command::Write(Op::Push {
            key: b"x".to_vec(),
            values: vec![v.into()],
            left: false,
        })
    }

    fn set_op(v: &str) -> Op {
        Op::Set {
            key: b"k".to_vec(),
            value: v.into(),
        }
    }

    fn set(v: &str) -> Command {
        Command::Write(set_op(v))
    }

    /// The issuing replica delivers its batch while its links still hold it
    /// for resending: the delivery points into that batch instead of copying it.
    #[test]
    fn a_delivered_write_is_the_batchs_own_not_a_copy() {
        let mut n0 = node(0, 3, Mode::Fifo, 10);
        for (req, v) in [(1, "a"), (2, "b")] {
            let cmd = set(v);
            assert!(n0.handle(Input::Client { req, cmd }).unwrap().is_empty());
        }
        let out = n0.handle(Input::Flush).unwrap();
        let delivered: Vec<&SharedWrite> = out
            .iter()
            .filter_map(|o| match o {
                Output::Delivered { write, .. } => Some(write),
                _ => None,
            })
            .collect();
        assert_eq!(delivered.len(), 2);
        assert_eq!(delivered[1].op, set_op("b"));
        assert!(Arc::ptr_eq(&delivered[0].batch, &delivered[1].batch));
        // Two deliveries and the two links' resend buffers.
        assert_eq!(Arc::strong_count(&delivered[0].batch), 4);
    }

    /// A trace file holds the write itself, and compares and hashes as it.
    #[test]
    fn a_shared_write_is_its_write_to_serde_eq_hash_and_debug() {
        let write = |v: &str| Write {
            stamp: Stamp {
                lamport: 3,
                node: 1,
            },
            op: set_op(v),
        };
        let batch = Arc::new(vec![write("a"), write("b")]);
        let shared = SharedWrite::new(batch.clone(), 1);
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&shared, config).unwrap();
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(write("b"), config).unwrap()
        );
        let (back, _): (SharedWrite, _) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!((&back, &*back), (&shared, &write("b")));
        assert_ne!(shared, SharedWrite::new(batch, 0));
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(&shared), h.hash_one(write("b")));
        assert_eq!(format!("{shared:?}"), format!("{:?}", write("b")));
    }

    /// A write that would take a batch past [`BATCH_BYTES`] starts the next
    /// one; it is not added first and the oversized batch sent after.
    #[test]
    fn a_batch_never_grows_past_its_byte_bound() {
        let mut c = cluster(2, Mode::Fifo, 100);
        let big = "v".repeat(600 << 10);
        c.client(0, set(&big));
        assert_eq!(
            (c.nodes[0].unflushed_writes(), c.nodes[0].link(1).sent()),
            (1, 0)
        );
        c.client(0, set(&big));
        let n0 = &c.nodes[0];
        assert_eq!((n0.unflushed_writes(), n0.link(1).sent()), (1, 1));
        // Exactly at the bound still fits; one byte more does not.
        let write = |len| crate::kv::Write {
            stamp: crate::kv::Stamp::default(),
            op: Op::Set {
                key: b"k".to_vec(),
                value: vec![0; len],
            },
        };
        let mut half = super::Outbox::default();
        half.push(write(1000));
        let room = (super::BATCH_BYTES - half.bytes() - write(0).approx_bytes()) as usize;
        assert_eq!(
            half.bytes() + write(room).approx_bytes(),
            super::BATCH_BYTES
        );
        assert!(!half.would_overflow(&write(room)));
        assert!(half.would_overflow(&write(room + 1)));
        // An empty outbox takes any write, however big: it goes alone.
        let mut empty = super::Outbox::default();
        let huge = crate::kv::Write {
            stamp: crate::kv::Stamp::default(),
            op: Op::Set {
                key: b"k".to_vec(),
                value: vec![0; 2 << 20],
            },
        };
        assert!(!empty.would_overflow(&huge));
        empty.push(huge.clone());
        assert!(empty.would_overflow(&huge) && empty.is_full(100));
    }

    #[test]
    fn a_writes_bytes_count_every_key_and_value_plus_overheads() {
        // The byte bounds (BATCH_BYTES, the retained-message bound) hold only
        // if every key and value is counted: 32 per write, 8 per element or
        // number, 16 per sorted-set member. Lengths 2 and 3, so a + that
        // became * or - shows.
        use crate::kv::{Data, Score, Stamp, Write};
        let (k, v) = (|| b"kk".to_vec(), || b"vvv".to_vec());
        let ops = [
            (
                Op::Set {
                    key: k(),
                    value: v(),
                },
                5,
            ),
            (
                Op::MSet {
                    pairs: vec![(k(), v()), (v(), k())],
                },
                26,
            ),
            (
                Op::Del {
                    keys: vec![k(), v()],
                },
                21,
            ),
            (Op::IncrBy { key: v(), delta: 7 }, 11),
            (
                Op::Transfer {
                    from: k(),
                    to: v(),
                    amount: 1,
                },
                13,
            ),
            (Op::FlushAll, 8),
            (
                Op::Push {
                    key: k(),
                    values: vec![v(), k()],
                    left: true,
                },
                23,
            ),
            (
                Op::SAdd {
                    key: v(),
                    members: vec![k()],
                },
                13,
            ),
            (
                Op::HSet {
                    key: k(),
                    pairs: vec![(v(), k())],
                },
                15,
            ),
            (
                Op::HDel {
                    key: k(),
                    fields: vec![v(), v()],
                },
                24,
            ),
            (
                Op::ZAdd {
                    key: k(),
                    pairs: vec![(Score::parse(b"2").unwrap(), v())],
                },
                21,
            ),
            (
                Op::Assign {
                    pairs: vec![(k(), Some(Data::Str(v().into()))), (v(), None)],
                    reply: Reply::Ok,
                },
                24,
            ),
        ];
        let mut outbox = super::Outbox::default();
        let mut total = 0;
        for (op, data) in ops {
            let w = Write {
                stamp: Stamp {
                    lamport: 1,
                    node: 0,
                },
                op,
            };
            assert_eq!(w.approx_bytes(), data + 32, "{:?}", w.op);
            total += data + 32;
            outbox.push(w);
        }
        assert_eq!(outbox.bytes(), total);
        let batch = outbox.take(1);
        assert_eq!((batch.approx_bytes(), outbox.bytes()), (total, 0));
    }

    #[test]
    fn a_batch_is_one_message_per_peer_and_its_writes_are_applied_in_order() {
        for mode in Mode::ALL {
            let mut c = cluster(3, mode, 8);
            // Node 1: a member, whose batch goes to the sequencer alone.
            let reqs: Vec<_> = ["a", "b", "c"]
                .iter()
                .map(|v| c.client(1, set(v)))
                .collect();
            assert_eq!(
                c.network.in_flight(),
                0,
                "{mode}: nothing goes before the flush"
            );
            assert_eq!(c.nodes[1].unflushed_writes(), 3);
            c.input(1, Input::Flush).unwrap();
            // The sequencer's members send to it alone; it multicasts.
            let peers = if mode == Mode::TotalSequencer { 1 } else { 2 };
            assert_eq!(
                c.network.in_flight(),
                peers,
                "{mode}: one data message per peer it goes to"
            );
            c.quiesce().unwrap();
            let ids: Vec<MsgId> = (1..=3).map(|seq| MsgId { origin: 1, seq }).collect();
            for i in 0..3 {
                assert_eq!(c.delivered(i), ids, "{mode}: n{i}");
                assert_eq!(c.nodes[i].kv().get(b"k"), Some(&b"c"[..]), "{mode}");
            }
            for r in reqs {
                assert_eq!(c.replies[1][&r], Reply::Ok, "{mode}: every client answered");
            }
            let sends = c.logs[1].iter().filter(|e| matches!(e, Event::Send(_)));
            assert_eq!(sends.count(), 3, "{mode}: history stays per write");
            promised_orders(mode, &c.logs).unwrap();
            integrity(&c.logs).unwrap();
        }
    }

    #[test]
    fn a_full_batch_goes_without_a_flush_and_numbering_continues() {
        let mut c = cluster(2, Mode::TotalIsis, 2);
        for v in ["a", "b", "c", "d", "e"] {
            c.client(1, push(v));
        }
        assert_eq!(c.nodes[1].unflushed_writes(), 1, "two full batches went");
        c.input(1, Input::Flush).unwrap();
        c.input(1, Input::Flush).unwrap(); // an empty outbox sends nothing
        c.quiesce().unwrap();
        assert_eq!(
            c.nodes[1].state().multicast.sent(),
            3,
            "3 batches of 5 writes"
        );
        assert_eq!(c.nodes[0].kv(), c.nodes[1].kv());
        let seqs: Vec<u64> = c.delivered(0).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }

    /// Under total-isis a lone writer's next batch waits for its open round
    /// (all three proposals in), and the step that closes it makes it due;
    /// without the rule it is due at once. Either way the writes are
    /// delivered everywhere in issue order.
    #[test]
    fn nagle_holds_a_lone_writers_next_batch_until_its_round_closes() {
        for nagle in [true, false] {
            let mut c = nagle_cluster(Mode::TotalIsis, nagle);
            assert!(!c.nodes[0].flush_due(), "nothing waits");
            c.client(0, set("a"));
            assert!(c.nodes[0].flush_due(), "no round open yet");
            c.input(0, Input::Flush).unwrap();
            c.client(0, set("b"));
            let mut due = vec![c.nodes[0].flush_due()];
            // Data to both peers, then their proposals back: the second closes the round.
            for (from, to) in [(0, 1), (0, 2), (1, 0), (2, 0)] {
                assert!(c.step(from, to).unwrap(), "{from}->{to} carried a message");
                due.push(c.nodes[0].flush_due());
            }
            let held = [false, false, false, false, true];
            let want = if nagle { held } else { [true; 5] };
            assert_eq!(due, want, "nagle {nagle}: due before and after each step");
            c.input(0, Input::Flush).unwrap();
            c.quiesce().unwrap();
            let ids: Vec<MsgId> = (1..=2).map(|seq| MsgId { origin: 0, seq }).collect();
            for i in 0..3 {
                assert_eq!(c.delivered(i), ids, "nagle {nagle}: n{i}");
                assert_eq!(c.nodes[i].kv().get(b"k"), Some(&b"b"[..]));
            }
        }
    }

    /// Once another member's message is held here, the rule holds nothing:
    /// that member multicasts too, and this one's rounds wait behind its.
    #[test]
    fn nagle_holds_nothing_while_another_member_multicasts() {
        // Both ways round: the other member's ids sort after the writer's, or before.
        for (me, other) in [(0, 1), (2, 0)] {
            let mut c = nagle_cluster(Mode::TotalIsis, true);
            c.client(me, set("a"));
            c.input(me, Input::Flush).unwrap();
            c.client(me, set("b"));
            assert!(!c.nodes[me].flush_due(), "n{me}: round open, alone");
            c.client(other, set("c"));
            c.input(other, Input::Flush).unwrap();
            assert!(c.step(other, me).unwrap(), "n{other}'s data reaches n{me}");
            assert!(c.nodes[me].flush_due(), "n{me} holds n{other}'s message");
            c.input(me, Input::Flush).unwrap();
            c.quiesce().unwrap();
            for i in 0..3 {
                assert_eq!(c.delivered(i).len(), 3, "n{i}");
                assert_eq!(c.delivered(i), c.delivered(0), "one total order");
            }
        }
    }

    /// The other modes deliver an origin's message without a round through
    /// every member, so their next batch is always due.
    #[test]
    fn nagle_never_holds_outside_isis() {
        for mode in [Mode::Fifo, Mode::Causal, Mode::TotalSequencer] {
            let mut c = nagle_cluster(mode, true);
            // Node 1: under the sequencer, its batch waits for node 0's number.
            c.client(1, set("a"));
            c.input(1, Input::Flush).unwrap();
            c.client(1, set("b"));
            assert!(c.nodes[1].flush_due(), "{mode}");
        }
    }

    #[test]
    fn last_writer_wins_flushes_before_a_read_modify_write() {
        for mode in [Mode::Fifo, Mode::Causal] {
            let mut c = cluster(2, mode, 8);
            c.client(0, set("5"));
            let incr = Command::Write(Op::IncrBy {
                key: b"k".to_vec(),
                delta: 1,
            });
            let r = c.client(0, incr);
            assert_eq!(
                c.nodes[0].unflushed_writes(),
                1,
                "{mode}: the SET went first"
            );
            c.input(0, Input::Flush).unwrap();
            c.quiesce().unwrap();
            assert_eq!(
                c.replies[0][&r],
                Reply::Int(6),
                "{mode}: it saw its own SET"
            );
            assert_eq!(c.nodes[1].kv().get(b"k"), Some(&b"6"[..]), "{mode}");
        }
    }
}
