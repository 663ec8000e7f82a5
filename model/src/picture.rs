//! A model path as a space-time diagram ([`gsmo_view::spacetime`]), for the
//! explorer's picture of the path so far.
//!
//! The K/V model's replicas are the spec's whole [`gsmo_spec::node::Node`]:
//! each step is re-fed to a copy of the replica it happened at, and its
//! [`Input`] and outputs are drawn by [`gsmo_view::trace::Drawer`], exactly as
//! `gsmo trace show` draws a real node's trace. The bank and the multicast
//! models are drawn from what their actors send (stateright's own way: re-run
//! the actor's handler on the state before the step) and from the state after it.

use crate::adapter::{Multicaster, Step};
use crate::display;
use crate::kv::{self, KvModel, Replica};
use crate::snapshot::{Bank, Ledger, SnapshotModel};
use gsmo_spec::node::Input;
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::{Envelope, SnapshotId};
use gsmo_view::spacetime::{At, Builder, Diagram, Kind, MsgKind};
use gsmo_view::text;
use gsmo_view::trace::Drawer;
use stateright::actor::{Actor, ActorModelAction, ActorModelState, Command, Out};
use std::borrow::Cow;
use std::collections::BTreeSet;

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

/// The K/V model: every step re-fed to the spec replica it happened at.
pub fn kv(model: &KvModel, steps: &Steps<ActorModelState<Replica>, Action<Replica>>) -> Diagram {
    let n = model.actors.len();
    let title = format!(
        "kv over {}, {n} replicas: {} steps",
        model.cfg.mode,
        steps.len().saturating_sub(1)
    );
    let mut d = Drawer::new(title, n);
    let last = last_action(steps);
    for (k, (s, a)) in steps.iter().enumerate() {
        let (node, input) = match a {
            Some(ActorModelAction::Deliver { src, dst, msg }) => (
                usize::from(*dst),
                Input::Peer {
                    from: usize::from(*src),
                    msg: msg.clone(),
                },
            ),
            Some(ActorModelAction::Timeout(id, Step::Write)) => {
                let me = usize::from(*id);
                let k = s.actor_states[me].node.state().multicast.sent() + 1;
                (me, kv::write_input(me, k))
            }
            Some(ActorModelAction::Timeout(id, Step::Snapshot)) => {
                (usize::from(*id), Input::StartSnapshot)
            }
            _ => continue,
        };
        let outputs = s.actor_states[node]
            .node
            .clone()
            .handle(input.clone())
            .unwrap_or_default();
        let made = d.step(node, Some(&input), &outputs, None);
        if Some(k) == last {
            made.into_iter().for_each(|at| d.set_latest(at));
        }
    }
    d.finish()
}

fn bank_ids(s: &crate::snapshot::BankState) -> BTreeSet<SnapshotId> {
    s.recorder
        .in_progress()
        .chain(s.parts.keys().copied())
        .collect()
}

/// The lecture's bank: transfers, markers, record points and cuts.
pub fn bank(
    model: &SnapshotModel,
    steps: &Steps<ActorModelState<Bank, Ledger>, Action<Bank>>,
) -> Diagram {
    let n = model.actors.len();
    let mut b = Builder::new(
        format!(
            "bank of {n} accounts: {} steps",
            steps.len().saturating_sub(1)
        ),
        names(n),
    );
    b.set_clock_legend("bal N by an event: the account's balance after it");
    let last = last_action(steps);
    for (k, w) in steps.windows(2).enumerate() {
        let ((s, Some(a)), (next, _)) = (&w[0], &w[1]) else {
            continue;
        };
        let (me, first) = match a {
            ActorModelAction::Deliver { src, dst, msg } => {
                let (me, from) = (usize::from(*dst), usize::from(*src));
                let (_, seq) = display::bank_arrow(msg);
                let label = match msg {
                    Envelope::Msg { body, .. } => format!("receives {}", body.0),
                    Envelope::Marker { id } => format!("marker {id} from n{from}"),
                };
                (
                    me,
                    Some(b.receive(me, from, &display::bank_msg(msg), seq, Kind::Receive, label)),
                )
            }
            ActorModelAction::Timeout(id, Step::Transfer { to }) => {
                let me = usize::from(*id);
                if next.actor_states[me] == s.actor_states[me] {
                    continue;
                }
                let amount =
                    s.actor_states[me].account.balance - next.actor_states[me].account.balance;
                (
                    me,
                    Some(b.event(me, Kind::Local, format!("sends {amount} to n{to}"))),
                )
            }
            ActorModelAction::Timeout(id, Step::Snapshot) => (usize::from(*id), None),
            _ => continue,
        };
        let (before, after) = (&s.actor_states[me], &next.actor_states[me]);
        let mut made: Vec<At> = first.into_iter().collect();
        let mut record = None;
        for id in bank_ids(after).difference(&bank_ids(before)) {
            let at = b.event(me, Kind::Record, format!("records {id}"));
            b.record(&id.to_string(), at);
            record = Some(at);
            made.push(at);
        }
        for (to, m) in sends(&model.actors[me], before, a) {
            let (short, seq) = display::bank_arrow(&m);
            let (kind, from) = match &m {
                Envelope::Marker { .. } => (MsgKind::Marker, record.or(first)),
                Envelope::Msg { .. } => (MsgKind::Data, first),
            };
            if let Some(from) = from {
                b.send(from, to, kind, short, display::bank_msg(&m), seq);
            }
        }
        for (id, part) in after
            .parts
            .iter()
            .filter(|(id, _)| !before.parts.contains_key(id))
        {
            let snapshot = id.to_string();
            for (from, msgs) in part.channels.iter().enumerate() {
                for (seq, _) in msgs {
                    b.mark_recorded(from, me, *seq, &snapshot);
                }
            }
            if let Some(&at) = made.last() {
                b.annotate(
                    at,
                    &format!("; {snapshot} done, recorded bal {}", part.state.balance),
                );
            }
        }
        for &at in &made {
            b.set_clock(at, format!("bal {}", after.account.balance));
            if Some(k) == last {
                b.set_latest(at);
            }
        }
    }
    b.finish()
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
