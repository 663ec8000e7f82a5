//! What a run without disconnects or ticks never reads, so that a model checker
//! may leave it out of a state's identity: dead-variable reduction (Holzmann,
//! *The Model Checker SPIN*, 1997, §3; Bozga, Fernandez & Ghirvu, "State space
//! reduction based on live variables analysis", SAS 1999).
//!
//! The links' acknowledgement bookkeeping is such state ([`Link::hash_live`]):
//! which acks arrived before which deliveries depends on the interleaving, not
//! on anything a replica does, and it is read only by a resume, a tick's ack
//! and the thresholds. The fault-free models count states by
//! [`Node::hash_live`] and check [`Node::acks_unread`] at every step they
//! compute, so the reduction is exact, not assumed: a run that could reach a
//! threshold stops with an error instead of being judged on merged states.
//!
//! [`Link::hash_live`]: crate::link::Link::hash_live

use super::{Node, ACK_EVERY};
use std::hash::{Hash, Hasher};

/// The most frames one client write puts on one link, in any mode: fifo and
/// causal send the write itself; the sequencer the write in to the sequencer,
/// or the sequencer's order out; ISIS the proposal request and the final
/// priority out, or a proposal back.
pub const FRAMES_PER_WRITE: u64 = 2;

/// The most frames one snapshot puts on one link while each part fits in one
/// frame: the marker, and on the initiator's links its verdict out or a part in.
pub const FRAMES_PER_SNAPSHOT: u64 = 2;

/// The most frames a run of `writes` client writes and `snapshots` snapshots,
/// wherever they start, can put on one link: what a model checker compares with
/// [`ACK_EVERY`] before it counts states without acks. An estimate for refusing
/// such runs early; [`Node::acks_unread`] is the exact rule, checked per step.
pub fn frames_on_one_link(writes: u64, snapshots: u64) -> u64 {
    FRAMES_PER_WRITE * writes + FRAMES_PER_SNAPSHOT * snapshots
}

impl Node {
    /// Hashes the node without its links' acknowledgement bookkeeping. Two
    /// nodes that hash alike behave alike for as long as [`Node::acks_unread`]
    /// holds and nothing disconnects or ticks.
    pub fn hash_live<H: Hasher>(&self, h: &mut H) {
        // Destructured, so that a new field cannot be left out unawares.
        let Node {
            me,
            n,
            state,
            recorder,
            outbox,
            pending,
            resolution,
            links,
            inbound_up,
            down_since,
            now,
            limits,
        } = self;
        (
            me, n, state, recorder, outbox, pending, resolution, inbound_up, down_since, now,
        )
            .hash(h);
        limits.hash(h);
        links.len().hash(h);
        for link in links {
            link.hash_live(h);
        }
    }

    /// Whether no threshold can have read the links' acknowledgement
    /// bookkeeping yet, in any run that reached this state with no frame
    /// larger than `frame_max` bytes ([`super::frame_bytes`]): every link has
    /// carried and delivered fewer than [`ACK_EVERY`] frames (so no receiver
    /// acks on count), and even if none were ever acknowledged, each would
    /// retain less than its `ack_now` threshold and, with the unflushed batch,
    /// less than the link buffer. Every quantity read here is live, so states
    /// that [`Node::hash_live`] merges agree on it.
    pub fn acks_unread(&self, frame_max: u64) -> bool {
        let ack_now_at = super::ack_wanted_at(&self.limits);
        let buffer = self.limits.link_buffer_bytes;
        (0..self.n).filter(|&j| j != self.me).all(|j| {
            let link = &self.links[j];
            let most = link.sent().saturating_mul(frame_max);
            link.sent() < ACK_EVERY
                && link.delivered() < ACK_EVERY
                && most < ack_now_at
                && most.saturating_add(self.outbox.bytes()) < buffer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Frame;
    use crate::multicast::Mode;
    use crate::node::tests::{cluster, set};
    use crate::node::{Input, Limits};
    use crate::sim::Cluster;
    use std::hash::DefaultHasher;

    fn full(node: &Node) -> u64 {
        let mut h = DefaultHasher::new();
        node.hash(&mut h);
        h.finish()
    }

    fn live(node: &Node) -> u64 {
        let mut h = DefaultHasher::new();
        node.hash_live(&mut h);
        h.finish()
    }

    fn write(key: &str) -> Input {
        Input::Client {
            req: 1,
            cmd: set(key),
        }
    }

    #[test]
    fn nodes_that_differ_only_in_acknowledgements_hash_alike_and_go_on_alike() {
        let mut c = Cluster::new(2, Mode::Fifo);
        c.client(0, set("a"));
        c.quiesce().unwrap();
        let mut unacked = c.nodes[0].clone();
        let mut acked = unacked.clone();
        let ack = Frame::Ack { ack: 1 };
        acked
            .handle(Input::Peer {
                from: 1,
                frame: ack,
            })
            .unwrap();
        assert_eq!((unacked.link(1).acked(), acked.link(1).acked()), (0, 1));
        assert_ne!(full(&unacked), full(&acked));
        assert_eq!(live(&unacked), live(&acked));
        assert!(unacked.acks_unread(64) && acked.acks_unread(64));
        // The same input gives the same outputs, and the two stay alike.
        let a = unacked.handle(write("b")).unwrap();
        let b = acked.handle(write("b")).unwrap();
        assert_eq!(a, b);
        assert_eq!(live(&unacked), live(&acked));
        assert_ne!(live(&unacked), live(&c.nodes[0]), "what it wrote is live");
    }

    #[test]
    fn a_frame_hashes_alike_whatever_it_acknowledges() {
        let hash = |seq, ack| {
            let frame: Frame<u8> = Frame::Data {
                seq,
                ack,
                body: 7,
                ack_now: false,
            };
            let mut h = DefaultHasher::new();
            frame.hash_live(&mut h);
            h.finish()
        };
        assert_eq!(hash(3, 0), hash(3, 5));
        assert_ne!(hash(4, 0), hash(3, 0), "the sequence number is live");
    }

    /// The byte thresholds end the premise where retained bytes could first
    /// equal them: `ack_now` is asked for at the threshold, not past it, and a
    /// write is refused once retained plus unflushed bytes reach the buffer.
    #[test]
    fn acks_stay_unread_strictly_below_the_byte_thresholds() {
        // One frame sent; a 160-byte buffer asks for acks from 40 bytes.
        let limits = Limits {
            link_buffer_bytes: 160,
            ..Limits::default()
        };
        let mut c = cluster(2, Mode::Fifo, limits);
        c.client(0, set("k"));
        let n0 = &c.nodes[0];
        assert_eq!(n0.link(1).sent(), 1);
        assert!(n0.acks_unread(39));
        assert!(
            !n0.acks_unread(40),
            "one 40-byte frame would ask for an ack"
        );
        // Nothing sent yet; one unflushed write of `w` bytes against the buffer.
        let batched = |buffer| {
            let limits = Limits {
                link_buffer_bytes: buffer,
                max_batch: 100,
                ..Limits::default()
            };
            let mut n = Node::new(0, 2, Mode::Fifo).with_limits(limits).connected();
            n.handle(write("k")).unwrap();
            assert_eq!((n.unflushed_writes(), n.link(1).sent()), (1, 0));
            n
        };
        let w = batched(1 << 20).outbox.bytes();
        assert!(batched(w + 1).acks_unread(0));
        assert!(
            !batched(w).acks_unread(0),
            "the next write would be refused"
        );
    }

    /// Each threshold that reads the bookkeeping ends the premise exactly where it
    /// could first be reached.
    #[test]
    fn acks_stay_unread_below_every_threshold_and_not_at_it() {
        let mut c = Cluster::new(2, Mode::Fifo);
        for i in 1..=ACK_EVERY {
            c.client(0, set("k"));
            c.quiesce().unwrap();
            let (sender, receiver) = (&c.nodes[0], &c.nodes[1]);
            assert_eq!(sender.link(1).sent(), i);
            let below = i < ACK_EVERY;
            assert_eq!(sender.acks_unread(34), below, "sender after {i} frames");
            assert_eq!(
                receiver.acks_unread(34),
                below,
                "receiver after {i} deliveries"
            );
        }
        // Bytes: 63 frames of `frame_max` against the 1 MiB `ack_now` threshold.
        let mut c = Cluster::new(2, Mode::Fifo);
        for _ in 0..ACK_EVERY - 1 {
            c.client(0, set("k"));
        }
        let n0 = &c.nodes[0];
        assert!(n0.acks_unread((1 << 20) / ACK_EVERY));
        assert!(!n0.acks_unread((1 << 20) / (ACK_EVERY - 1) + 1));
    }

    /// The per-link frame budget holds for writes from one or every replica, one
    /// or two concurrent snapshots and both at once, in every mode, and is
    /// reached: a smaller constant would let a model miss a threshold.
    #[test]
    fn a_write_puts_at_most_two_frames_on_a_link_and_so_does_a_snapshot() {
        let mut most_per_write = 0;
        let mut most_per_snapshot = 0;
        for mode in Mode::ALL {
            let runs: [(&[usize], &[usize]); 7] = [
                (&[0], &[]),
                (&[1, 1], &[]),
                (&[0, 1, 2], &[]),
                (&[], &[0]),
                (&[], &[0, 1]),
                (&[0, 2], &[1]),
                (&[2, 2, 1], &[0, 2]),
            ];
            for (writers, initiators) in runs {
                let mut c = Cluster::new(3, mode);
                for &w in writers {
                    c.client(w, set("k"));
                }
                for &i in initiators {
                    c.snapshot(i);
                }
                c.quiesce().unwrap();
                let most = (0..3)
                    .flat_map(|i| (0..3).filter(move |&j| j != i).map(move |j| (i, j)))
                    .map(|(i, j)| c.nodes[i].link(j).sent())
                    .max()
                    .unwrap();
                let (w, s) = (writers.len() as u64, initiators.len() as u64);
                assert!(
                    most <= frames_on_one_link(w, s),
                    "{mode}: {w} writes and {s} snapshots put {most} frames on a link"
                );
                if s == 0 {
                    most_per_write = most_per_write.max(most / w);
                }
                if w == 0 {
                    most_per_snapshot = most_per_snapshot.max(most / s);
                }
            }
        }
        assert_eq!(most_per_write, FRAMES_PER_WRITE);
        assert_eq!(most_per_snapshot, FRAMES_PER_SNAPSHOT);
    }
}
