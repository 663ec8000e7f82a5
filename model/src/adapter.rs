//! The thin layer between the spec's pure transition functions and stateright.
//!
//! Nothing here decides anything about a protocol: it turns spec effects into
//! stateright `Out` commands and picks the network the spec is run on (how a
//! step reads to a person is [`crate::display`]'s). Every model file builds on it.

use crate::digest::Digest;
use gsmo_spec::multicast::{Effect, Mode, Multicast, Wire};
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::{PartSummary, SnapshotId};
use gsmo_spec::NodeId;
use stateright::actor::{model_timeout, Actor, Id, LossyNetwork, Network, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::hash::Hash;

/// The channels a model runs on. The spec assumes reliable FIFO channels;
/// every other kind breaks an assumption on purpose, to show what it buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Channels {
    /// Reliable FIFO channels: what the spec assumes (and TCP provides).
    Ordered,
    /// Reliable channels that may reorder messages.
    Unordered,
    /// Unordered channels that may also deliver a message more than once.
    Duplicating,
    /// FIFO channels that may lose messages.
    Lossy,
}

impl Channels {
    /// The stateright network that starts empty with this behaviour.
    pub fn network<M: Eq + Hash>(self) -> Network<M> {
        match self {
            Channels::Ordered | Channels::Lossy => Network::new_ordered(vec![]),
            Channels::Unordered => Network::new_unordered_nonduplicating(vec![]),
            Channels::Duplicating => Network::new_unordered_duplicating(vec![]),
        }
    }

    pub fn lossy(self) -> LossyNetwork {
        if self == Channels::Lossy {
            LossyNetwork::Yes
        } else {
            LossyNetwork::No
        }
    }

    /// Whether a channel keeps each sender's messages in order.
    pub fn is_fifo(self) -> bool {
        matches!(self, Channels::Ordered | Channels::Lossy)
    }

    pub fn name(self) -> &'static str {
        match self {
            Channels::Ordered => "ordered",
            Channels::Unordered => "unordered",
            Channels::Duplicating => "duplicating",
            Channels::Lossy => "lossy",
        }
    }
}

impl Display for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A node of the multicast models: one spec [`Multicast`] endpoint, which
/// multicasts up to `msgs` messages whenever the checker fires its timer.
#[derive(Clone, Debug)]
pub struct Multicaster {
    pub mode: Mode,
    pub n: usize,
    pub msgs: u64,
    /// Run the spec's deliberately broken variant of `mode`.
    pub broken: bool,
}

/// A [`Multicaster`]'s state: the spec endpoint plus a ghost log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MulticasterState {
    pub endpoint: Multicast<()>,
    /// Ghost: this node's sends and deliveries in order. The protocol never reads
    /// it; the properties judge it, since delivery order is what they are about.
    pub log: Vec<Event>,
    /// The hash of the above, once computed: a step changes one node, and
    /// the others' states, shared with the state before, need not be hashed
    /// again.
    pub digest: Digest,
}

impl MulticasterState {
    pub fn new(endpoint: Multicast<()>, log: Vec<Event>) -> Self {
        MulticasterState {
            endpoint,
            log,
            digest: Digest::default(),
        }
    }
}

impl Hash for MulticasterState {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let MulticasterState {
            endpoint,
            log,
            digest: cache,
        } = self;
        state.write_u64(cache.get(|| crate::digest::digest(&(endpoint, log))));
    }
}

/// The spontaneous steps a node may take; stateright fires armed timers in any order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Multicast the next message.
    Multicast,
    /// Issue the next client write.
    Write,
    /// Start a Chandy-Lamport snapshot here.
    Snapshot,
    /// Multicast the writes issued since the last multicast, as one batch.
    Flush,
    /// Suffer a fault, or let time pass ([`crate::faults`]).
    Fault(crate::faults::Fault),
}

impl Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Multicast => write!(f, "multicasts"),
            Step::Write => write!(f, "writes"),
            Step::Snapshot => write!(f, "starts a snapshot"),
            Step::Flush => write!(f, "flushes its batch"),
            Step::Fault(fault) => write!(f, "{fault}"),
        }
    }
}

/// Arms a step's timer: "this node may do this at any time from now on".
pub fn arm<A: Actor<Timer = Step>>(o: &mut Out<A>, step: Step) {
    o.set_timer(step, model_timeout());
}

/// Carries out multicast effects: sends go on the network, deliveries into the ghost log.
pub fn carry_out<A, P>(effects: Vec<Effect<P>>, log: &mut Vec<Event>, o: &mut Out<A>)
where
    A: Actor<Msg = Wire<P>>,
{
    for e in effects {
        match e {
            Effect::Send { to, msg } => o.send(Id::from(to), msg),
            Effect::Deliver { id, .. } => log.push(Event::Deliver(id)),
        }
    }
}

impl Actor for Multicaster {
    type Msg = Wire<()>;
    type State = MulticasterState;
    type Timer = Step;
    type Random = ();
    type Storage = ();

    fn on_start(&self, id: Id, _: &Option<()>, o: &mut Out<Self>) -> MulticasterState {
        let me = usize::from(id);
        if self.msgs > 0 {
            arm(o, Step::Multicast);
        }
        let endpoint = if self.broken {
            Multicast::broken(self.mode, me, self.n)
        } else {
            Multicast::new(self.mode, me, self.n)
        };
        MulticasterState::new(endpoint, Vec::new())
    }

    fn on_timeout(&self, _: Id, state: &mut Cow<MulticasterState>, _: &Step, o: &mut Out<Self>) {
        let s = state.to_mut();
        let (id, effects) = s.endpoint.multicast(());
        s.log.push(Event::Send(id));
        carry_out(effects, &mut s.log, o);
        if s.endpoint.sent() < self.msgs {
            arm(o, Step::Multicast);
        }
    }

    fn on_msg(
        &self,
        _: Id,
        state: &mut Cow<MulticasterState>,
        src: Id,
        msg: Wire<()>,
        o: &mut Out<Self>,
    ) {
        let s = state.to_mut();
        let effects = s
            .endpoint
            .on_message(usize::from(src), msg)
            .expect("every node of a model runs the same mode");
        carry_out(effects, &mut s.log, o);
    }
}

/// Each node's ghost log, in node order: the shape the spec predicates take.
pub fn logs(states: &[std::sync::Arc<MulticasterState>]) -> Vec<&[Event]> {
    states.iter().map(|s| s.log.as_slice()).collect()
}

/// Whether every node has multicast its quota and every message reached everyone.
pub fn all_done(msgs: u64, states: &[std::sync::Arc<MulticasterState>]) -> bool {
    states.iter().all(|s| s.endpoint.sent() == msgs)
        && gsmo_spec::properties::all_delivered(&logs(states)).is_ok()
}

/// What the model reports for a stored part: it stores nothing, so only the node.
pub fn part_summary(node: NodeId) -> PartSummary {
    PartSummary {
        node,
        ..PartSummary::default()
    }
}

/// Every snapshot whose parts all actors have completed, parts in node order
/// (`parts` picks an actor's completed parts out of its state).
pub fn complete_snapshots<S, P: Clone>(
    states: &[std::sync::Arc<S>],
    parts: impl Fn(&S) -> &BTreeMap<SnapshotId, P>,
) -> Vec<Vec<P>> {
    let Some(first) = states.first() else {
        return Vec::new();
    };
    parts(first)
        .keys()
        // Asked first, so that a snapshot some replica has not completed (in
        // nearly every state that holds a part) copies nothing.
        .filter(|id| states.iter().all(|a| parts(a).contains_key(id)))
        .map(|id| states.iter().map(|a| parts(a)[id].clone()).collect())
        .collect()
}
