//! Reliable multicast with a chosen delivery order, behind one interface.
//!
//! The four orders (Coulouris et al., *Distributed Systems*, ch. 15; Birman & Joseph 1987):
//!
//! | mode              | file            | promise                                             |
//! |-------------------|-----------------|-----------------------------------------------------|
//! | `fifo`            | `fifo.rs`       | each sender's messages delivered in send order      |
//! | `causal`          | `causal.rs`     | `send(a) -> send(b)` implies `deliver(a)` first     |
//! | `total-sequencer` | `sequencer.rs`  | one global order, fixed by node 0; FIFO too         |
//! | `total-isis`      | `isis.rs`       | one global order by agreed priorities; FIFO too     |
//!
//! Every algorithm addresses its messages to *all* members, itself included. The
//! [`Multicast`] driver loops a node's messages to itself back through the same
//! receive rules at once, so the sender delivers its own message exactly as
//! everyone else does; other destinations become [`Effect::Send`]s for the
//! runtime (stateright or tokio) to carry over a FIFO channel.

pub mod causal;
pub mod fifo;
pub mod isis;
pub mod sequencer;

use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;
use std::hash::Hash;

/// What a multicast payload must be: hashable for the model checker, serialisable for the wire.
pub trait Payload: Clone + Eq + Hash + fmt::Debug {}
impl<T: Clone + Eq + Hash + fmt::Debug> Payload for T {}

/// The delivery order a cluster runs; every member must agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mode {
    Fifo,
    Causal,
    TotalSequencer,
    TotalIsis,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::Fifo,
        Mode::Causal,
        Mode::TotalSequencer,
        Mode::TotalIsis,
    ];

    /// The command-line spelling (`fifo`, `causal`, `total-sequencer`, `total-isis`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Fifo => "fifo",
            Mode::Causal => "causal",
            Mode::TotalSequencer => "total-sequencer",
            Mode::TotalIsis => "total-isis",
        }
    }

    /// Whether every member delivers the same messages in the same order.
    pub fn is_total(self) -> bool {
        matches!(self, Mode::TotalSequencer | Mode::TotalIsis)
    }

    /// Whether each sender's messages are delivered in send order (all four modes, over FIFO channels).
    pub fn is_fifo(self) -> bool {
        true
    }

    /// The peers node `me` of `n` cannot deliver its own writes without: none
    /// for fifo and causal (a write is delivered at its origin at once), node 0
    /// for the sequencer (it numbers every write), every peer for ISIS (each
    /// must propose a priority). While one of them is unreachable, writes at
    /// `me` cannot finish, so the replica refuses them instead of hanging.
    pub fn needs(self, me: NodeId, n: usize) -> Vec<NodeId> {
        match self {
            Mode::Fifo | Mode::Causal => Vec::new(),
            Mode::TotalSequencer => (me != 0).then_some(0).into_iter().collect(),
            Mode::TotalIsis => (0..n).filter(|&j| j != me).collect(),
        }
    }

    /// Whether the members that survive `crashed`'s crash still deliver the
    /// same messages (agreement): under the sequencer while the sequencer
    /// lives, since each message reaches them from it alone; not in the other
    /// modes, where a crashed sender's message (fifo, causal) or its agreed
    /// priority (ISIS) may have reached some survivors only, never relayed.
    pub fn survivors_agree(self, crashed: NodeId) -> bool {
        self == Mode::TotalSequencer && crashed != sequencer::SEQUENCER
    }

    /// Whether delivery respects happened-before. The total modes do *not* promise this:
    /// a sequencer or ISIS order may put a reply before the message it answers.
    pub fn is_causal(self) -> bool {
        matches!(self, Mode::Causal)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown mode `{s}`: expected fifo, causal, total-sequencer or total-isis")
            })
    }
}

/// A multicast message's identity: its origin and the origin's 1-based send count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId {
    pub origin: NodeId,
    pub seq: u64,
}

impl MsgId {
    /// The id of `origin`'s next multicast, counting it in `sent`: each
    /// origin numbers its multicasts 1, 2, 3, ... (FIFO, the sequencer and
    /// ISIS; causal's is its own entry of the vector timestamp).
    pub(crate) fn next(origin: NodeId, sent: &mut u64) -> MsgId {
        *sent += 1;
        MsgId { origin, seq: *sent }
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}#{}", self.origin, self.seq)
    }
}

/// Where an algorithm addresses a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Every member, the sender included.
    All,
    /// Every member but one (the sequencer's numbered message, whose sender
    /// holds the data and is sent the number alone).
    AllBut(NodeId),
    One(NodeId),
}

/// One step an algorithm asks for; [`Multicast`] turns these into [`Effect`]s.
#[derive(Debug)]
pub(crate) enum Step<P, M> {
    Send(Dest, M),
    Deliver(MsgId, P),
}

/// The contract each ordering algorithm fulfils; kept crate-private so the only
/// public entry point is [`Multicast`], which adds self-delivery and counting.
pub(crate) trait Algorithm<P> {
    type Msg: Clone;
    /// Starts multicasting `payload`; returns its id.
    fn multicast(&mut self, payload: P, out: &mut Vec<Step<P, Self::Msg>>) -> MsgId;
    /// Handles one message received from `from` (possibly this node itself).
    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Vec<Step<P, Self::Msg>>);
    /// Messages received but not yet delivered.
    fn holdback_depth(&self) -> usize;
}

/// A message of one of the ordering protocols, as it travels between nodes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Wire<P> {
    Fifo(fifo::Msg<P>),
    Causal(causal::Msg<P>),
    Sequencer(sequencer::Msg<P>),
    Isis(isis::Msg<P>),
}

impl<P> Wire<P> {
    /// The application payload this message carries, if it is a data message.
    pub fn payload(&self) -> Option<&P> {
        match self {
            Wire::Fifo(m) => Some(&m.payload),
            Wire::Causal(m) => Some(&m.payload),
            Wire::Sequencer(
                sequencer::Msg::Data { payload, .. }
                | sequencer::Msg::Submit { payload, .. }
                | sequencer::Msg::Ordered { payload, .. },
            )
            | Wire::Isis(isis::Msg::Data { payload, .. }) => Some(payload),
            Wire::Sequencer(_) | Wire::Isis(_) => None,
        }
    }

    /// The same message with its payload replaced by `f(id, payload)`: how an
    /// old snapshot's messages are read into today's payload type.
    pub fn map<Q>(self, f: impl FnOnce(MsgId, P) -> Q) -> Wire<Q> {
        match self {
            Wire::Fifo(m) => Wire::Fifo(m.map(f)),
            Wire::Causal(m) => Wire::Causal(m.map(f)),
            Wire::Sequencer(m) => Wire::Sequencer(m.map(f)),
            Wire::Isis(m) => Wire::Isis(m.map(f)),
        }
    }

    /// The mode this message belongs to.
    pub fn mode(&self) -> Mode {
        match self {
            Wire::Fifo(_) => Mode::Fifo,
            Wire::Causal(_) => Mode::Causal,
            Wire::Sequencer(_) => Mode::TotalSequencer,
            Wire::Isis(_) => Mode::TotalIsis,
        }
    }
}

/// What the runtime must do after a multicast transition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect<P> {
    /// Put `msg` on the FIFO channel to `to` (never this node itself).
    Send { to: NodeId, msg: Wire<P> },
    /// Hand `payload` to the application, in this mode's order.
    Deliver { id: MsgId, payload: P },
}

/// A message for another mode arrived; the handshake should have refused its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrongMode {
    pub expected: Mode,
    pub got: Mode,
}

impl fmt::Display for WrongMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} message reached a {} node", self.got, self.expected)
    }
}

impl std::error::Error for WrongMode {}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Algo<P> {
    Fifo(fifo::Fifo<P>),
    Causal(causal::Causal<P>),
    Sequencer(sequencer::Sequencer<P>),
    Isis(isis::Isis<P>),
}

/// One member's multicast endpoint: the ordering algorithm plus the per-origin
/// delivery counts every mode keeps (the snapshot verifier's delivery vector).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Multicast<P> {
    me: NodeId,
    n: usize,
    algo: Algo<P>,
    sent: u64,
    delivered: Vec<u64>,
}

impl<P: Payload> Multicast<P> {
    /// A correct endpoint for member `me` of an `n`-member group.
    pub fn new(mode: Mode, me: NodeId, n: usize) -> Self {
        Self::build(mode, me, n, false)
    }

    /// The mode's deliberately broken variant, so the model checker can show it
    /// catches the violation: `fifo` without hold-back, `causal` with the FIFO-only
    /// condition, a `total-sequencer` member delivering its own message before
    /// its number arrives, `total-isis` without the node-id tie-break.
    pub fn broken(mode: Mode, me: NodeId, n: usize) -> Self {
        Self::build(mode, me, n, true)
    }

    fn build(mode: Mode, me: NodeId, n: usize, broken: bool) -> Self {
        assert!(me < n, "node id {me} out of range for a group of {n}");
        let algo = match mode {
            Mode::Fifo => Algo::Fifo(fifo::Fifo::new(me, n, broken)),
            Mode::Causal => Algo::Causal(causal::Causal::new(me, n, broken)),
            Mode::TotalSequencer => Algo::Sequencer(sequencer::Sequencer::new(me, n, broken)),
            Mode::TotalIsis => Algo::Isis(isis::Isis::new(me, n, broken)),
        };
        Multicast {
            me,
            n,
            algo,
            sent: 0,
            delivered: vec![0; n],
        }
    }

    /// The same endpoint with every payload it holds replaced by `f(id, payload)`:
    /// how an old snapshot's state is read into today's payload type.
    pub fn map<Q>(self, f: impl FnMut(MsgId, P) -> Q) -> Multicast<Q> {
        let algo = match self.algo {
            Algo::Fifo(a) => Algo::Fifo(a.map(f)),
            Algo::Causal(a) => Algo::Causal(a.map(f)),
            Algo::Sequencer(a) => Algo::Sequencer(a.map(f)),
            Algo::Isis(a) => Algo::Isis(a.map(f)),
        };
        Multicast {
            me: self.me,
            n: self.n,
            algo,
            sent: self.sent,
            delivered: self.delivered,
        }
    }

    pub fn mode(&self) -> Mode {
        match self.algo {
            Algo::Fifo(_) => Mode::Fifo,
            Algo::Causal(_) => Mode::Causal,
            Algo::Sequencer(_) => Mode::TotalSequencer,
            Algo::Isis(_) => Mode::TotalIsis,
        }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn group_size(&self) -> usize {
        self.n
    }

    /// Whether this member's next message would best wait for an earlier one
    /// of its own: under ISIS, while it alone multicasts and one of its own
    /// rounds is still collecting proposals. Never in the other modes, whose
    /// origin delivers its own message at once (FIFO, causal, the sequencer
    /// itself) or waits on one number from the sequencer, not on a round
    /// through every member.
    pub fn next_waits(&self) -> bool {
        match &self.algo {
            Algo::Isis(a) => a.round_open_alone(),
            Algo::Fifo(_) | Algo::Causal(_) | Algo::Sequencer(_) => false,
        }
    }

    /// Messages received (or sent) but not yet delivered here.
    pub fn holdback_depth(&self) -> usize {
        match &self.algo {
            Algo::Fifo(a) => a.holdback_depth(),
            Algo::Causal(a) => a.holdback_depth(),
            Algo::Sequencer(a) => a.holdback_depth(),
            Algo::Isis(a) => a.holdback_depth(),
        }
    }

    /// How many messages this node has multicast.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// How many messages from each origin this node has delivered.
    pub fn delivered(&self) -> &[u64] {
        &self.delivered
    }

    /// The causal mode's vector clock, if this is a causal endpoint.
    pub fn vector_clock(&self) -> Option<&crate::clock::VectorClock> {
        match &self.algo {
            Algo::Causal(a) => Some(a.clock()),
            _ => None,
        }
    }

    /// Multicasts `payload` to the group; this node's own delivery (if its rules
    /// allow it now) is among the returned effects.
    pub fn multicast(&mut self, payload: P) -> (MsgId, Vec<Effect<P>>) {
        let (me, n, mut effects) = (self.me, self.n, Vec::new());
        self.sent += 1;
        let (d, e) = (&mut self.delivered, &mut effects);
        let id = match &mut self.algo {
            Algo::Fifo(a) => run(me, n, a, Wire::Fifo, d, e, |a, s| a.multicast(payload, s)),
            Algo::Causal(a) => run(me, n, a, Wire::Causal, d, e, |a, s| a.multicast(payload, s)),
            Algo::Sequencer(a) => run(me, n, a, Wire::Sequencer, d, e, |a, s| {
                a.multicast(payload, s)
            }),
            Algo::Isis(a) => run(me, n, a, Wire::Isis, d, e, |a, s| a.multicast(payload, s)),
        };
        (id, effects)
    }

    /// Whether receiving `msg` here sends nothing, now or after any other
    /// receipt, and brings the next delivery closer without ever merging two
    /// runs of deliveries into one. Only the sequencer's non-sequencer members
    /// have such receipts (a piece of the next message in `global` order);
    /// every other mode sends on a receipt (ISIS's proposals) or delivers in
    /// arrival order (FIFO, causal), so it answers `false`.
    pub fn silent_head(&self, msg: &Wire<P>) -> bool {
        match (&self.algo, msg) {
            (Algo::Sequencer(a), Wire::Sequencer(m)) => a.silent_head(m),
            _ => false,
        }
    }

    /// Whether no message this endpoint may yet receive makes it send, given
    /// that the group multicasts `group_sent` messages in all, if known (no
    /// member knows it; a caller that does passes it). FIFO and causal
    /// members only deliver on a receipt; so does a sequencer member other
    /// than the sequencer, and the sequencer once it has numbered all
    /// `group_sent`; ISIS answers every message with a proposal, so never.
    pub fn quiet(&self, group_sent: Option<u64>) -> bool {
        match &self.algo {
            Algo::Fifo(_) | Algo::Causal(_) => true,
            Algo::Sequencer(a) => a.quiet(group_sent),
            Algo::Isis(_) => false,
        }
    }

    /// Handles a message that arrived on the channel from `from`.
    pub fn on_message(&mut self, from: NodeId, msg: Wire<P>) -> Result<Vec<Effect<P>>, WrongMode> {
        let (me, n, mut effects) = (self.me, self.n, Vec::new());
        let expected = self.mode();
        let (d, e) = (&mut self.delivered, &mut effects);
        match (&mut self.algo, msg) {
            (Algo::Fifo(a), Wire::Fifo(m)) => {
                run(me, n, a, Wire::Fifo, d, e, |a, s| a.on_message(from, m, s))
            }
            (Algo::Causal(a), Wire::Causal(m)) => run(me, n, a, Wire::Causal, d, e, |a, s| {
                a.on_message(from, m, s)
            }),
            (Algo::Sequencer(a), Wire::Sequencer(m)) => {
                run(me, n, a, Wire::Sequencer, d, e, |a, s| {
                    a.on_message(from, m, s)
                })
            }
            (Algo::Isis(a), Wire::Isis(m)) => {
                run(me, n, a, Wire::Isis, d, e, |a, s| a.on_message(from, m, s))
            }
            (_, other) => {
                return Err(WrongMode {
                    expected,
                    got: other.mode(),
                })
            }
        }
        Ok(effects)
    }
}

/// Runs one input through an algorithm and carries out everything it causes.
fn run<P, A: Algorithm<P>, R>(
    me: NodeId,
    n: usize,
    algo: &mut A,
    wrap: fn(A::Msg) -> Wire<P>,
    delivered: &mut [u64],
    effects: &mut Vec<Effect<P>>,
    input: impl FnOnce(&mut A, &mut Vec<Step<P, A::Msg>>) -> R,
) -> R {
    let mut steps = Vec::new();
    let r = input(algo, &mut steps);
    drive(me, n, algo, steps, wrap, delivered, effects);
    r
}

/// Carries an algorithm's steps out: sends to others become effects, sends to
/// this node are fed straight back in (FIFO, so a node sees its own messages in
/// the order it sent them), deliveries are counted and reported.
fn drive<P, A: Algorithm<P>>(
    me: NodeId,
    n: usize,
    algo: &mut A,
    steps: Vec<Step<P, A::Msg>>,
    wrap: fn(A::Msg) -> Wire<P>,
    delivered: &mut [u64],
    effects: &mut Vec<Effect<P>>,
) {
    let mut loopback: VecDeque<A::Msg> = VecDeque::new();
    let mut pending = steps;
    loop {
        for step in pending.drain(..) {
            match step {
                Step::Send(Dest::One(to), msg) if to == me => loopback.push_back(msg),
                Step::Send(Dest::One(to), msg) => effects.push(Effect::Send { to, msg: wrap(msg) }),
                Step::Send(all, msg) => {
                    let but = if let Dest::AllBut(but) = all {
                        Some(but)
                    } else {
                        None
                    };
                    for to in (0..n).filter(|&to| to != me && Some(to) != but) {
                        effects.push(Effect::Send {
                            to,
                            msg: wrap(msg.clone()),
                        });
                    }
                    if but != Some(me) {
                        loopback.push_back(msg);
                    }
                }
                Step::Deliver(id, payload) => {
                    delivered[id.origin] += 1;
                    effects.push(Effect::Deliver { id, payload });
                }
            }
        }
        match loopback.pop_front() {
            Some(msg) => algo.on_message(me, msg, &mut pending),
            None => break,
        }
    }
}

/// Renaming nodes for symmetry reduction ([`crate::symmetry`]). Only the causal
/// endpoint is symmetric: the sequencer is node 0, ISIS breaks ties by node id.
impl<P: Clone> crate::symmetry::Rename for Multicast<P> {
    fn rename(&self, to: &[NodeId]) -> Self {
        let algo = match &self.algo {
            Algo::Causal(a) => Algo::Causal(a.rename(to)),
            Algo::Fifo(_) | Algo::Sequencer(_) | Algo::Isis(_) => {
                panic!("only the causal endpoint renames (see crate::symmetry)")
            }
        };
        Multicast {
            me: to[self.me],
            n: self.n,
            algo,
            sent: self.sent,
            delivered: crate::symmetry::permute(&self.delivered, to),
        }
    }
}
