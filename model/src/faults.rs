//! Faults for the models that run the whole replica ([`Node`]): broken
//! connections, crashed processes, a clock, failing disks. Shared by every
//! model whose actor is a replica, so each model only says which faults it
//! wants ([`Faults`]) and what it records of a replica's outputs.
//!
//! Nothing here decides anything about the protocol: these are the runtime's
//! duties (carry frames on the current connection, report connections coming
//! and going, tick, store parts and report the outcome), done the way
//! `impl/` does them, on stateright's FIFO network.
//!
//! * **Disconnect** (at most `disconnects` per replica): the connection *into*
//!   a replica from a peer breaks and a new one is accepted at once. Frames of
//!   the old connection still in flight are dropped on arrival (each frame
//!   carries its connection's number), so everything in flight is lost, as
//!   with TCP. The resume handshake is a message: the receiver tells the
//!   sender how far it delivered ([`Wire::Resume`]), and the sender resumes
//!   its link from there. The count cannot change while the message travels:
//!   the receiver drops the old connection's frames, and the sender sends
//!   nothing on the new one before the handshake.
//! * **Crash** (one replica at most, by the model's boundary): the process
//!   dies; its kernel closes its connections ([`Wire::Closed`]), so its peers
//!   see them go down. A crashed replica handles nothing more.
//! * **Tick**: a replica's clock advances one unit, whenever the spec has a
//!   timer that could fire (a pending write, a snapshot it may still abort, a
//!   peer that is down but not yet unreachable). Every such wait ends within
//!   its limit, so time is finite without a horizon.
//! * **Store failure**: a completed part is stored, or fails to store (at most
//!   once per replica), as a step of its own.
//!
//! Ghost records per replica ([`Ghost`]): the "disk" (parts added when stored,
//! removed on `SnapshotAborted`/`DropPart`), verdicts, unanswered client
//! requests, protocol errors. The properties over them live with the models.

use crate::adapter::{arm, part_summary, Step};
use crate::digest::{digest_with, Sealed, Shared};
use gsmo_spec::link::{Frame, LinkBug};
use gsmo_spec::node::{
    frame_bytes, frames_on_one_link, Command, Input, Limits, LinkFrame, Node, Output, RequestId,
    ACK_EVERY,
};
use gsmo_spec::snapshot::{AbortReason, SnapshotId};
use gsmo_spec::NodeId;
use stateright::actor::{Actor, Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// What travels between replicas: frames on a connection, and connection events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wire {
    /// A link frame on connection number `conn` of its channel. Sealed: a
    /// frame in flight is copied and hashed with every state until delivered.
    Frame { conn: u8, frame: Sealed<LinkFrame> },
    /// The receiver replaced the connection: resume on `conn` after the
    /// frames it delivered (`delivered`): the resume handshake.
    Resume { conn: u8, delivered: u64 },
    /// The sender's process died and its kernel closed its connections.
    Closed,
}

/// A fault step of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The connection from `peer` breaks; a new one is accepted.
    Disconnect { peer: NodeId },
    /// The clock advances one unit.
    Tick,
    /// The process dies.
    Crash,
    /// The part of `id` is stored (`ok`) or the disk refuses it.
    Store { id: SnapshotId, ok: bool },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Disconnect { peer } => write!(f, "loses its connection from n{peer}"),
            Fault::Tick => write!(f, "ticks"),
            Fault::Crash => write!(f, "CRASHES"),
            Fault::Store { id, ok: true } => write!(f, "stores its part of {id}"),
            Fault::Store { id, ok: false } => write!(f, "fails to store its part of {id}"),
        }
    }
}

/// A runtime that does its fault duties wrongly, for the checker to catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum AdapterBug {
    /// Keeps a part on disk after its snapshot is aborted.
    KeepsAbortedParts,
    /// Never reports a dead peer's connections as down.
    NoFailureDetector,
    /// Declares a peer unreachable at its first disconnect (jumps the clock).
    SuspectsAtOnce,
    /// Never ticks: no timer ever fires.
    NoClock,
}

/// Which faults a model injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// Incoming connections each replica may lose.
    pub disconnects: usize,
    /// Whether a replica may crash (how many: the model's boundary).
    pub crash: bool,
    /// Whether time passes (with [`Faults::LIMITS`]).
    pub time: bool,
    /// Whether storing a part may fail (once per replica).
    pub store_failures: bool,
    /// The link layer's deliberate bug (`Bypass`: no link layer).
    pub link: LinkBug,
    pub adapter: Option<AdapterBug>,
    /// Each link's buffer, in bytes, if small enough to fill: a peer that
    /// falls that far behind (any message delay, in a model) gets writes
    /// refused and the sequencer's acks held. `None`: the spec's 64 MiB,
    /// which no model fills.
    pub link_buffer: Option<u64>,
}

impl Faults {
    /// Tiny limits, in clock units, so a few ticks reach every timeout.
    pub const LIMITS: Limits = Limits {
        write_timeout_ms: 2,
        unreachable_after_ms: 1,
        snapshot_timeout_ms: 2,
        link_buffer_bytes: u64::MAX,
        max_batch: 1,
        nagle: false,
        max_snapshots: 4,
    };

    /// Whether any fault is on (the plain models run without any).
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// Whether the links' acknowledgement bookkeeping is dead under these
    /// faults, so that states are counted without it ([`gsmo_spec::node::Node::hash_live`]):
    /// only a disconnect's resume or a tick reads it below the thresholds (a
    /// crash is left out too, to keep the argument short; a failing disk and
    /// the adapter's bugs, which need ticks or act on parts, do not read it).
    /// The runtime checks the thresholds at every step ([`Runtime::feed`]).
    pub fn acks_unread(&self) -> bool {
        self.disconnects == 0
            && !self.crash
            && !self.time
            && self.link == LinkBug::None
            && self.link_buffer.is_none()
    }

    /// Refuses a fault-free run big enough to reach an ack threshold, where
    /// counting states without acks would not be exact: the spec's
    /// [`frames_on_one_link`] against [`ACK_EVERY`]. The runtime checks the
    /// exact condition at every step too ([`Runtime::feed`]).
    pub fn check_ack_budget(&self, writes: usize, snapshots: usize) -> Result<(), String> {
        let frames = frames_on_one_link(writes as u64, snapshots as u64);
        if !self.acks_unread() || frames < ACK_EVERY {
            return Ok(());
        }
        Err(format!(
            "{writes} writes and {snapshots} snapshot(s) could put {frames} frames on one link; \
             without faults the models count states without the links' acks, which is exact \
             only below {ACK_EVERY} (gsmo_spec::node::live): model fewer, or add \
             --disconnects 1 to count acks"
        ))
    }

    /// Sets up `node` for these faults: limits, link bug, connections up.
    pub fn node(&self, node: Node) -> Node {
        let node = if self.time {
            node.with_limits(Self::LIMITS)
        } else {
            node
        };
        let node = match self.link_buffer {
            Some(link_buffer_bytes) => {
                let limits = node.limits();
                node.with_limits(Limits {
                    link_buffer_bytes,
                    ..limits
                })
            }
            None => node,
        };
        let node = if self.link == LinkBug::None {
            node
        } else {
            node.with_link_bug(self.link)
        };
        node.connected()
    }

    /// Arms the fault steps of a fresh replica.
    pub fn arm<A: Actor<Timer = Step>>(&self, me: NodeId, n: usize, o: &mut Out<A>) {
        if self.disconnects > 0 {
            for peer in (0..n).filter(|&j| j != me) {
                arm(o, Step::Fault(Fault::Disconnect { peer }));
            }
        }
        if self.crash {
            arm(o, Step::Fault(Fault::Crash));
        }
    }
}

/// What the runtime side of one replica holds: connection numbers and ghosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// The current connection from each peer, and to each peer.
    conn_in: BTreeMap<NodeId, u8>,
    conn_out: BTreeMap<NodeId, u8>,
    disconnects: usize,
    store_failed: bool,
    pub crashed: bool,
    /// Client requests issued here and not answered yet.
    pub unanswered: BTreeSet<RequestId>,
    /// Snapshots this replica recorded (started or joined).
    pub recorded: BTreeSet<SnapshotId>,
    /// Parts on this replica's disk.
    pub disk: BTreeSet<SnapshotId>,
    /// Parts complete and not yet stored.
    pub storing: BTreeSet<SnapshotId>,
    pub committed: BTreeSet<SnapshotId>,
    /// Aborted snapshots, with who decided and why.
    pub aborted: BTreeMap<SnapshotId, (NodeId, AbortReason)>,
    /// A frame the replica refused (a broken channel).
    pub error: Option<String>,
}

impl Ghost {
    fn conn_in(&self, peer: NodeId) -> u8 {
        self.conn_in.get(&peer).copied().unwrap_or(0)
    }

    fn conn_out(&self, peer: NodeId) -> u8 {
        self.conn_out.get(&peer).copied().unwrap_or(0)
    }
}

/// The largest frame the fault-free models send ([`acks_unread_digest`]).
const FRAME_MAX: u64 = 4096;

/// A frame's digest without the ack it carries, for fault-free models; it
/// checks the frame is one [`Node::acks_unread`] allows for.
fn acks_unread_digest(frame: &LinkFrame) -> u64 {
    match frame {
        Frame::Data { body, .. } => assert!(
            frame_bytes(body) <= FRAME_MAX,
            "a {}-byte frame: the fault-free models count states without the links' \
             acknowledgements, exact only for frames of at most {FRAME_MAX} bytes",
            frame_bytes(body)
        ),
        Frame::Ack { .. } => panic!("an ack frame in a model without disconnects or ticks"),
    }
    digest_with(|h| frame.hash_live(h))
}

/// Whether the spec has a timer that could fire at `node`: then time passes.
/// (An over-approximation would only add states; missing one would hide a
/// timeout, so this follows the spec's timers: writes, snapshots it may
/// still abort, and peers down but not yet unreachable.)
pub fn wants_tick(node: &Node) -> bool {
    let me = node.id();
    node.pending_writes() > 0
        || node.snapshots_in_progress().into_iter().any(|id| {
            let acknowledged = id.initiator != me && node.snapshot_waiting_on(id) == [id.initiator];
            // An acknowledged part waits for the initiator's verdict; if the
            // initiator is unreachable already, the next tick aborts it.
            !acknowledged || node.is_unreachable(id.initiator)
        })
        || (0..node.cluster_size())
            .any(|j| j != me && node.down_since(j).is_some() && !node.is_unreachable(j))
}

/// One replica's runtime: the spec node, its ghost, and the faults it suffers.
pub struct Runtime<'a> {
    pub faults: &'a Faults,
    pub node: &'a mut Node,
    pub ghost: &'a mut Shared<Ghost>,
}

impl Runtime<'_> {
    /// The ghost, copied first if another state shares it.
    fn ghost_mut(&mut self) -> &mut Ghost {
        self.ghost.make_mut()
    }

    /// Feeds `input` and carries out the outputs that are the runtime's
    /// business (sends, replies, storing, the disk); returns every output, for
    /// the model to record what it judges.
    pub fn feed<A: Actor<Msg = Wire, Timer = Step>>(
        &mut self,
        input: Input,
        o: &mut Out<A>,
    ) -> Vec<Output> {
        if let Input::Client {
            req,
            cmd: Command::Write(_),
        } = &input
        {
            self.ghost_mut().unanswered.insert(*req);
        }
        let recorded = crate::replay::recording().then(|| input.clone());
        let outputs = match self.node.handle(input) {
            Ok(out) => {
                if let Some(input) = recorded {
                    crate::replay::record(self.node.id(), input, &out);
                }
                out
            }
            Err(e) => {
                // A correct runtime drops the connection; the ghost keeps the
                // evidence for the properties.
                self.ghost_mut().error.get_or_insert(e.to_string());
                Vec::new()
            }
        };
        if self.faults.acks_unread() {
            assert!(
                self.node.acks_unread(FRAME_MAX),
                "n{}: a link carried {ACK_EVERY} frames or {FRAME_MAX}-byte ones; the fault-free \
                 models count states without the links' acknowledgements, exact only below that \
                 (gsmo_spec::node::live): model fewer writes, or add --disconnects to count acks",
                self.node.id()
            );
        }
        let mut all = Vec::new();
        for output in outputs {
            let mut more = Vec::new();
            match &output {
                Output::Send { to, frame } => {
                    let conn = self.ghost.conn_out(*to);
                    let frame = if self.faults.acks_unread() {
                        Sealed::with_digest(frame.clone(), acks_unread_digest(frame))
                    } else {
                        Sealed::new(frame.clone())
                    };
                    o.send(Id::from(*to), Wire::Frame { conn, frame });
                }
                Output::Reply { req, .. } => {
                    self.ghost_mut().unanswered.remove(req);
                }
                Output::SnapshotRecorded { id } => {
                    self.ghost_mut().recorded.insert(*id);
                }
                Output::SnapshotComplete(part) => {
                    let id = part.id;
                    if self.faults.store_failures {
                        self.ghost_mut().storing.insert(id);
                        arm(o, Step::Fault(Fault::Store { id, ok: true }));
                        if !self.ghost.store_failed {
                            arm(o, Step::Fault(Fault::Store { id, ok: false }));
                        }
                    } else {
                        more = self.store(id, true, o);
                    }
                }
                Output::SnapshotCommitted { id, .. } => {
                    self.ghost_mut().committed.insert(*id);
                }
                Output::SnapshotAborted { id, by, reason } => {
                    self.ghost_mut().aborted.insert(*id, (*by, reason.clone()));
                    self.delete(*id);
                }
                Output::DropPart { id } => self.delete(*id),
                Output::Multicast { .. } | Output::Delivered { .. } => {}
            }
            all.push(output);
            all.extend(more);
        }
        all
    }

    fn delete(&mut self, id: SnapshotId) {
        if self.faults.adapter != Some(AdapterBug::KeepsAbortedParts) {
            self.ghost_mut().disk.remove(&id);
        }
    }

    /// The part of `id` is written (`ok`) or the disk refuses it.
    fn store<A: Actor<Msg = Wire, Timer = Step>>(
        &mut self,
        id: SnapshotId,
        ok: bool,
        o: &mut Out<A>,
    ) -> Vec<Output> {
        self.ghost_mut().storing.remove(&id);
        let result = if ok {
            self.ghost_mut().disk.insert(id);
            Ok(part_summary(self.node.id()))
        } else {
            self.ghost_mut().store_failed = true;
            Err("No space left on device (os error 28)".to_string())
        };
        self.feed(Input::Stored { id, result }, o)
    }

    /// Something arrived from `from`.
    pub fn on_wire<A: Actor<Msg = Wire, Timer = Step>>(
        &mut self,
        from: NodeId,
        wire: Wire,
        o: &mut Out<A>,
    ) -> Vec<Output> {
        if self.ghost.crashed {
            return Vec::new();
        }
        let out = match wire {
            // A frame of a connection replaced since: lost with it.
            Wire::Frame { conn, .. } if conn != self.ghost.conn_in(from) => Vec::new(),
            Wire::Frame { frame, .. } => {
                let frame = frame.into_inner();
                self.feed(Input::Peer { from, frame }, o)
            }
            Wire::Resume { conn, delivered } => {
                self.ghost_mut().conn_out.insert(from, conn);
                let down = Input::LinkDown {
                    peer: from,
                    outgoing: true,
                };
                let mut out = self.feed(down, o);
                out.extend(self.suspect(from, o));
                let up = Input::LinkUp {
                    peer: from,
                    delivered,
                };
                out.extend(self.feed(up, o));
                out
            }
            Wire::Closed if self.faults.adapter == Some(AdapterBug::NoFailureDetector) => {
                Vec::new()
            }
            Wire::Closed => {
                let mut out = Vec::new();
                for outgoing in [true, false] {
                    let down = Input::LinkDown {
                        peer: from,
                        outgoing,
                    };
                    out.extend(self.feed(down, o));
                }
                out.extend(self.suspect(from, o));
                out
            }
        };
        self.rearm(o);
        out
    }

    /// The broken runtime that takes any disconnect for a dead peer.
    fn suspect<A: Actor<Msg = Wire, Timer = Step>>(
        &mut self,
        _peer: NodeId,
        o: &mut Out<A>,
    ) -> Vec<Output> {
        if self.faults.adapter != Some(AdapterBug::SuspectsAtOnce) {
            return Vec::new();
        }
        let now = self.node.now() + self.node.limits().unreachable_after_ms;
        self.feed(Input::Tick { now }, o)
    }

    /// A fault step fires.
    pub fn on_fault<A: Actor<Msg = Wire, Timer = Step>>(
        &mut self,
        fault: Fault,
        o: &mut Out<A>,
    ) -> Vec<Output> {
        if self.ghost.crashed {
            return Vec::new();
        }
        let me = self.node.id();
        let out = match fault {
            Fault::Disconnect { peer } => {
                self.ghost_mut().disconnects += 1;
                let conn = self.ghost.conn_in(peer) + 1;
                self.ghost_mut().conn_in.insert(peer, conn);
                let mut out = self.feed(
                    Input::LinkDown {
                        peer,
                        outgoing: false,
                    },
                    o,
                );
                out.extend(self.suspect(peer, o));
                out.extend(self.feed(Input::InboundUp { peer }, o));
                let delivered = self.node.link(peer).resume_point();
                o.send(Id::from(peer), Wire::Resume { conn, delivered });
                if self.ghost.disconnects < self.faults.disconnects {
                    arm(o, Step::Fault(fault));
                } else {
                    for j in (0..self.node.cluster_size()).filter(|&j| j != me) {
                        o.cancel_timer(Step::Fault(Fault::Disconnect { peer: j }));
                    }
                }
                out
            }
            Fault::Tick => {
                let now = self.node.now() + 1;
                self.feed(Input::Tick { now }, o)
            }
            Fault::Crash => {
                self.ghost_mut().crashed = true;
                crate::replay::record_crash(me);
                for j in (0..self.node.cluster_size()).filter(|&j| j != me) {
                    o.send(Id::from(j), Wire::Closed);
                }
                return Vec::new();
            }
            Fault::Store { id, ok } => {
                o.cancel_timer(Step::Fault(Fault::Store { id, ok: !ok }));
                self.store(id, ok, o)
            }
        };
        self.rearm(o);
        out
    }

    /// After any step: time passes while the spec has a timer that could fire.
    pub fn rearm<A: Actor<Msg = Wire, Timer = Step>>(&self, o: &mut Out<A>) {
        let tick = Step::Fault(Fault::Tick);
        if self.ghost.crashed
            || !self.faults.time
            || self.faults.adapter == Some(AdapterBug::NoClock)
            || !wants_tick(self.node)
        {
            o.cancel_timer(tick);
        } else {
            arm(o, tick);
        }
    }
}
