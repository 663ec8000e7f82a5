//! A model path as a space-time diagram ([`gsmo_view::spacetime`]), for the
//! explorer's picture of the path so far.
//!
//! The K/V model's replicas are the spec's whole [`gsmo_spec::node::Node`]:
//! each step is re-fed to a copy of the replica it happened at, and its
//! [`Input`] and outputs are drawn by [`gsmo_view::trace::Drawer`], exactly as
//! `gsmo trace show` draws a real node's trace; the snapshot model's bank runs
//! the same replicas and is drawn alike. The multicast models are drawn from
//! what their actors send (stateright's own way: re-run the actor's handler on
//! the state before the step) and from the state after it.

use crate::adapter::{Multicaster, Step};
use crate::display;
use crate::faults::Wire;
use crate::kv::{KvModel, Replica, ReplicasState};
use crate::link::{LinkAction, LinkModel, LinkState};
use crate::refusal::{Dial, RefusalModel, RefusalState};
use crate::snapshot::{Ledger, SnapshotModel};
use gsmo_spec::link::Frame;
use gsmo_spec::node::{Input, LinkFrame};
use gsmo_spec::properties::Event;
use gsmo_view::spacetime::{Builder, Diagram, Kind, MsgKind};
use gsmo_view::text;
use gsmo_view::trace::Drawer;
use stateright::actor::{Actor, ActorModelAction, ActorModelState, Command, Out};
use std::borrow::Cow;

/// A path as stateright gives it: each state with the action taken from it.
pub type Steps<S, A> = [(S, Option<A>)];
type Action<A> = ActorModelAction<<A as Actor>::Msg, <A as Actor>::Timer, <A as Actor>::Random>;

/// What `actor` sends in `action` from `state`: stateright's own way of finding out.
fn sends<A: Actor>(actor: &A, state: &A::State, action: &Action<A>) -> Vec<(usize, A::Msg)> {
    let mut cow = Cow::Borrowed(state);
    let mut out = Out::new();
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            actor.on_msg(*dst, &mut cow, *src, msg.clone(), &mut out)
        }
        ActorModelAction::Timeout(id, timer) => actor.on_timeout(*id, &mut cow, timer, &mut out),
        _ => {}
    }
    out.into_iter()
        .filter_map(|c| match c {
            Command::Send(to, m) => Some((usize::from(to), m)),
            _ => None,
        })
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// The index in `steps` of the last action taken (the explorer's latest step).
fn last_action<S, A>(steps: &Steps<S, A>) -> Option<usize> {
    steps.iter().rposition(|(_, a)| a.is_some())
}

/// The K/V model: every step re-run on the replica it happened at.
pub fn kv(model: &KvModel, steps: &Steps<ReplicasState<()>, Action<Replica>>) -> Diagram {
    let title = format!(
        "kv over {}, {} replicas: {} steps",
        model.cfg.mode,
        model.actors.len(),
        steps.len().saturating_sub(1)
    );
    replicas(title, &model.actors, steps)
}

/// The bank: the same replicas, moving money by `TRANSFER`.
pub fn bank(
    model: &SnapshotModel,
    steps: &Steps<ReplicasState<Ledger>, Action<Replica>>,
) -> Diagram {
    let title = format!(
        "bank of {} accounts over {}: {} steps",
        model.actors.len(),
        model.cfg.mode,
        steps.len().saturating_sub(1)
    );
    replicas(title, &model.actors, steps)
}

/// Replicas of the spec's [`gsmo_spec::node::Node`]: each step re-run by the
/// replica's runtime on a copy of its state, and its input and the node's
/// outputs drawn by [`Drawer`], as `gsmo trace show` draws a real node's
/// trace. Connection events, crashes and ticks draw only what they send.
pub fn replicas<H>(
    title: String,
    actors: &[Replica],
    steps: &Steps<ReplicasState<H>, Action<Replica>>,
) -> Diagram {
    let mut d = Drawer::new(title, actors.len());
    let last = last_action(steps);
    for (k, (s, a)) in steps.iter().enumerate() {
        let Some(a) = a else { continue };
        let (node, input) = match a {
            ActorModelAction::Deliver { src, dst, msg } => {
                let from = usize::from(*src);
                let input = match msg {
                    Wire::Frame { frame, .. } => Some(Input::Peer {
                        from,
                        frame: LinkFrame::clone(frame),
                    }),
                    Wire::Resume { .. } | Wire::Closed => None,
                };
                (usize::from(*dst), input)
            }
            ActorModelAction::Timeout(id, Step::Write) => {
                let me = usize::from(*id);
                (me, Some(actors[me].next_write(me, &s.actor_states[me])))
            }
            ActorModelAction::Timeout(id, Step::Snapshot) => {
                (usize::from(*id), Some(Input::StartSnapshot))
            }
            ActorModelAction::Timeout(id, Step::Flush) => (usize::from(*id), Some(Input::Flush)),
            ActorModelAction::Timeout(id, Step::Fault(_)) => (usize::from(*id), None),
            _ => continue,
        };
        let mut state = s.actor_states[node].as_ref().clone();
        let mut out: Out<Replica> = Out::new();
        let mut rt = actors[node].runtime(&mut state);
        let outputs = match (a, &input) {
            (ActorModelAction::Deliver { src, msg, .. }, _) => {
                rt.on_wire(usize::from(*src), msg.clone(), &mut out)
            }
            (ActorModelAction::Timeout(_, Step::Fault(f)), _) => rt.on_fault(*f, &mut out),
            (_, Some(input)) => rt.feed(input.clone(), &mut out),
            _ => continue,
        };
        let made = d.step(node, input.as_ref(), &outputs, None);
        if Some(k) == last {
            made.into_iter().for_each(|at| d.set_latest(at));
        }
    }
    d.finish()
}

/// The causal and total-order models: multicasts, receipts held back, deliveries.
pub fn multicast(
    title: String,
    actors: &[Multicaster],
    steps: &Steps<ActorModelState<Multicaster>, Action<Multicaster>>,
) -> Diagram {
    let n = actors.len();
    let mut b = Builder::new(title, names(n));
    b.set_clock_legend(gsmo_view::trace::CLOCK_LEGEND);
    let last = last_action(steps);
    for (k, w) in steps.windows(2).enumerate() {
        let ((s, Some(a)), (next, _)) = (&w[0], &w[1]) else {
            continue;
        };
        let me = match a {
            ActorModelAction::Deliver { dst, .. } => usize::from(*dst),
            ActorModelAction::Timeout(id, _) => usize::from(*id),
            _ => continue,
        };
        let (before, after) = (&s.actor_states[me], &next.actor_states[me]);
        let new = &after.log[before.log.len().min(after.log.len())..];
        let delivered: Vec<_> = new
            .iter()
            .filter_map(|e| match e {
                Event::Deliver(id) => Some(*id),
                Event::Send(_) => None,
            })
            .collect();
        // The event this step is about, and the message it concerns.
        let (first, about) = match a {
            ActorModelAction::Deliver { src, msg, .. } => {
                let id = text::data_id(msg);
                let (kind, label) = match id {
                    Some(id) if delivered.contains(&id) => (Kind::Deliver, format!("deliver {id}")),
                    Some(id) => (Kind::HeldBack, format!("held {id}")),
                    None => (
                        Kind::Receive,
                        format!("recv {}", display::multicast_msg(msg)),
                    ),
                };
                let full = display::multicast_msg(msg);
                let at = b.receive(me, usize::from(*src), &full, None, kind, label);
                if let Some(id) = id {
                    b.set_msg_id(at, id.to_string());
                }
                (at, id)
            }
            _ => {
                let id = new.iter().find_map(|e| match e {
                    Event::Send(id) => Some(*id),
                    Event::Deliver(_) => None,
                });
                let label = id.map_or("multicasts".into(), |id| format!("{id} multicast"));
                (b.event(me, Kind::Local, label), id)
            }
        };
        let mut made = vec![first];
        for id in delivered.iter().filter(|id| Some(**id) != about) {
            let at = b.event(me, Kind::Deliver, format!("deliver {id}"));
            b.set_msg_id(at, id.to_string());
            made.push(at);
        }
        for (to, m) in sends(&actors[me], before, a) {
            let kind = if text::is_data(&m) {
                MsgKind::Data
            } else {
                MsgKind::Control
            };
            b.send(
                first,
                to,
                kind,
                text::wire_short(&m),
                display::multicast_msg(&m),
                None,
            );
        }
        for &at in &made {
            b.set_clock(at, text::vector(after.endpoint.delivered()));
            if Some(k) == last {
                b.set_latest(at);
            }
        }
    }
    b.finish()
}

/// The link model: sends, acks and resends as arrows (a data frame's label is
/// its link sequence number), receipts, losses and broken connections.
/// The refusal model's dials: each a local event at the dialer, saying how
/// it went (met, refused, stopped).
pub fn refusal(model: &RefusalModel, steps: &Steps<RefusalState, Dial>) -> Diagram {
    let n = model.cfg.nodes;
    let title = format!(
        "refusal, {n} addresses: {} steps",
        steps.len().saturating_sub(1)
    );
    let mut b = Builder::new(title, names(n));
    let last = last_action(steps);
    for (k, w) in steps.windows(2).enumerate() {
        let ((_, Some(a)), (next, _)) = (&w[0], &w[1]) else {
            continue;
        };
        let outcome = if next[a.from].stopped.is_some() {
            "refused: STOPS"
        } else if next[a.from].refusals.refused_by(a.to).is_some() {
            "refused"
        } else {
            "met"
        };
        let label = format!("{}: {outcome}", display::refusal_action(a));
        let at = b.event(a.from, Kind::Local, label);
        if Some(k) == last {
            b.set_latest(at);
        }
    }
    b.finish()
}

pub fn link(model: &LinkModel, steps: &Steps<LinkState, LinkAction>) -> Diagram {
    let n = model.cfg.nodes;
    let title = format!("link, {n} nodes: {} steps", steps.len().saturating_sub(1));
    let mut b = Builder::new(title, names(n));
    let last = last_action(steps);
    for (k, w) in steps.windows(2).enumerate() {
        let ((s, Some(a)), (next, _)) = (&w[0], &w[1]) else {
            continue;
        };
        let label = display::link_action(a);
        let (at, from, to) = match a {
            LinkAction::Deliver { from, to, f, .. } => {
                let (seq, kind) = match f {
                    Frame::Data { seq, .. } => (Some(*seq), Kind::Deliver),
                    Frame::Ack { .. } => (None, Kind::Receive),
                };
                let full = display::link_frame(f);
                let at = b.receive(*to, *from, &full, seq, kind, full.clone());
                (at, *to, *from)
            }
            LinkAction::Send { from, to }
            | LinkAction::Ack { from, to }
            | LinkAction::Reconnect { from, to }
            | LinkAction::Disconnect { from, to } => {
                (b.event(*from, Kind::Local, label), *from, *to)
            }
            LinkAction::Lose { from, to, .. } | LinkAction::Duplicate { from, to, .. } => {
                (b.event(*from, Kind::Local, label), *from, *to)
            }
        };
        // Frames this step put on the wire from `from` (sends, acks, resends).
        if matches!(
            a,
            LinkAction::Send { .. } | LinkAction::Ack { .. } | LinkAction::Reconnect { .. }
        ) {
            let before = if matches!(a, LinkAction::Reconnect { .. }) {
                0
            } else {
                s.wire[from][to].len()
            };
            for f in next.wire[from][to].iter().skip(before) {
                let (kind, short, seq) = match f {
                    Frame::Data { seq, body, .. } => {
                        (MsgKind::Data, format!("m{body}"), Some(*seq))
                    }
                    Frame::Ack { ack } => (MsgKind::Control, format!("ack {ack}"), None),
                };
                b.send(at, to, kind, short, display::link_frame(f), seq);
            }
        }
        if Some(k) == last {
            b.set_latest(at);
        }
    }
    b.finish()
}
