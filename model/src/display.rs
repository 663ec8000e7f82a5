//! The models in the words a person reads, one place for all of them: an
//! action as `n0 → n1  data n0#1 SET x=0.1  [1,0]` (used by `check`'s
//! counterexamples and the explorer alike) and a state as a compact per-node
//! summary (store, clocks, hold-back queue, each snapshot's recording state,
//! messages in flight) instead of the derived `Debug` tree. Keys, values and
//! messages are spelled by [`gsmo_view::text`], the language `gsmo trace show`
//! speaks too.

use crate::adapter::{Multicaster, Step};
use crate::faults::Wire as ReplicaWire;
use crate::kv::ReplicasState;
use crate::link::{LinkAction, LinkState};
use gsmo_spec::link::Frame;
use gsmo_spec::multicast::Wire;
use gsmo_spec::node::{LinkFrame, PeerMsg};
use gsmo_spec::properties::Event;
use gsmo_view::text;
use stateright::actor::{ActorModelAction, ActorModelState, Id, Network};
use std::fmt::{Debug, Write as _};
use std::hash::Hash;

fn n(id: Id) -> String {
    format!("n{}", usize::from(id))
}

/// One step of a model, as a line of a counterexample or an explorer action.
pub fn action<Msg, R: Debug>(
    action: &ActorModelAction<Msg, Step, R>,
    msg: impl Fn(&Msg) -> String,
) -> String {
    match action {
        ActorModelAction::Deliver { src, dst, msg: m } => {
            format!("{} → {}  {}", n(*src), n(*dst), msg(m))
        }
        ActorModelAction::Drop(env) => {
            format!("{} → {}  lost: {}", n(env.src), n(env.dst), msg(&env.msg))
        }
        ActorModelAction::Timeout(id, step) => format!("{} {step}", n(*id)),
        ActorModelAction::Crash(id) => format!("{} crashes", n(*id)),
        ActorModelAction::Recover(id) => format!("{} recovers", n(*id)),
        ActorModelAction::SelectRandom { actor, random, .. } => {
            format!("{} picks {random:?}", n(*actor))
        }
    }
}

/// A multicast model's message: `data n0#1  [1,0,0]`, `agreed n0#1 at 2.1`.
pub fn multicast_msg(w: &Wire<()>) -> String {
    text::wire(w, |_| String::new())
}

/// A K/V replica's message: `data n0#1 SET x=0.1  [1,0]`, `marker 0-1`.
pub fn kv_msg(m: &PeerMsg) -> String {
    text::peer_msg(m)
}

/// A replica's link frame: `[1 ack 0] data n0#1 SET x=0.1  [1,0]`, `[ack 2]`.
pub fn kv_frame(f: &LinkFrame) -> String {
    text::link_frame(f)
}

/// What travels between replicas of the K/V and snapshot models
/// ([`crate::faults::Wire`]): a frame (on a replaced connection, with its
/// number), the resume handshake, or a dead process's closed connections.
pub fn kv_wire(w: &ReplicaWire) -> String {
    match w {
        ReplicaWire::Frame { conn: 0, frame } => kv_frame(frame),
        ReplicaWire::Frame { conn, frame } => format!("(connection {conn}) {}", kv_frame(frame)),
        ReplicaWire::Resume { conn, delivered } => {
            format!("new connection {conn}: resume after frame {delivered}")
        }
        ReplicaWire::Closed => "connection closed (process died)".to_string(),
    }
}

/// The link model's frame, its body a message number: `[2 ack 1] m3`, `[ack 1]`.
pub fn link_frame(f: &Frame<u8>) -> String {
    text::frame(f, |m| format!("m{m}"))
}

/// Every message in flight, `src → dst  message`, per channel in send order.
/// (An ordered network is read through its map: `iter_all` never ends on it.)
pub fn in_flight<M: Eq + Hash + Clone>(net: &Network<M>) -> Vec<(usize, usize, M)> {
    match net {
        Network::Ordered(map) => map
            .iter()
            .flat_map(|((s, d), q)| {
                q.iter()
                    .map(|m| (usize::from(*s), usize::from(*d), m.clone()))
            })
            .collect(),
        Network::UnorderedNonDuplicating(multiset) => multiset
            .iter()
            .flat_map(|(e, k)| {
                std::iter::repeat_n((usize::from(e.src), usize::from(e.dst), e.msg.clone()), *k)
            })
            .collect(),
        Network::UnorderedDuplicating(set, _) => set
            .iter()
            .map(|e| (usize::from(e.src), usize::from(e.dst), e.msg.clone()))
            .collect(),
    }
}

fn network<M: Eq + Hash + Clone>(out: &mut String, net: &Network<M>, msg: impl Fn(&M) -> String) {
    let msgs = in_flight(net);
    if msgs.is_empty() {
        out.push_str("in flight: nothing\n");
        return;
    }
    out.push_str("in flight:\n");
    for (s, d, m) in msgs {
        let _ = writeln!(out, "  n{s} → n{d}  {}", msg(&m));
    }
}

/// A state of the K/V or snapshot model: per replica its store, clocks,
/// hold-back queue and snapshots; then the network.
pub fn kv_state<H>(s: &ReplicasState<H>) -> String {
    let mut out = String::new();
    for (i, a) in s.actor_states.iter().enumerate() {
        let node = &a.node;
        let st = node.state();
        let _ = writeln!(
            out,
            "n{i}  {}   sent {}  delivered {}  held back {}  lamport {}",
            text::store(node.kv()),
            st.multicast.sent(),
            text::vector(st.multicast.delivered()),
            node.holdback_depth(),
            st.lamport.0
        );
        for id in node.snapshots_in_progress() {
            let waiting: Vec<String> = node
                .snapshot_waiting_on(id)
                .iter()
                .map(|j| format!("n{j}"))
                .collect();
            let _ = writeln!(
                out,
                "    snapshot {id}: recorded, waiting for markers from {}",
                waiting.join(", ")
            );
        }
        for id in &a.ghost.committed {
            let _ = writeln!(
                out,
                "    snapshot {id}: committed (judged when every part was complete, then let go)"
            );
        }
        for id in &a.judged {
            let _ = writeln!(
                out,
                "    snapshot {id}: done, judged when every part was complete, the part let go (--por)"
            );
        }
        for (id, part) in &a.parts {
            let _ = write!(
                out,
                "    snapshot {id}: done, recorded {}  delivered {}",
                text::store(&part.state.kv),
                text::vector(part.state.multicast.delivered())
            );
            for (from, msgs) in part.channels.iter().enumerate() {
                for (_, w) in msgs {
                    let _ = write!(
                        out,
                        "; in flight from n{from}: {}",
                        text::wire(w, text::batch)
                    );
                }
            }
            out.push('\n');
        }
    }
    network(&mut out, &s.network, kv_wire);
    out
}

/// A multicast model state: per node its counts, hold-back queue and log.
pub fn multicast_state(s: &ActorModelState<Multicaster>) -> String {
    let mut out = String::new();
    for (i, a) in s.actor_states.iter().enumerate() {
        let e = &a.endpoint;
        let log: Vec<String> = a
            .log
            .iter()
            .map(|ev| match ev {
                Event::Send(id) => format!("send {id}"),
                Event::Deliver(id) => format!("deliver {id}"),
            })
            .collect();
        let _ = writeln!(
            out,
            "n{i}  sent {}  delivered {}  held back {}   log: {}",
            e.sent(),
            text::vector(e.delivered()),
            e.holdback_depth(),
            if log.is_empty() {
                "-".into()
            } else {
                log.join(", ")
            }
        );
    }
    network(&mut out, &s.network, multicast_msg);
    out
}

/// One step of the link model, in the words of [`action`]:
/// `n0 → n1  [1 ack 0] m1`, `n0 → n1  lost: [2 ack 0] m2`.
/// A dial in the refusal model.
pub fn refusal_action(a: &crate::refusal::Dial) -> String {
    format!("n{} dials n{}", a.from, a.to)
}

/// The refusal model's state: each address's occupant, and which nodes stopped.
pub fn refusal_state(s: &crate::refusal::RefusalState) -> String {
    use crate::refusal::Occupant;
    let slots: Vec<String> = s
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let who = match slot.occupant {
                Occupant::Node(0) => "A".to_string(),
                Occupant::Node(c) => format!("{}", (b'A' + c) as char),
                Occupant::Stranger => "stranger".to_string(),
            };
            let met = if slot.refusals.has_met() { ", met" } else { "" };
            let stopped = if slot.stopped.is_some() {
                ", STOPPED"
            } else {
                ""
            };
            format!("n{i} {who}{met}{stopped}")
        })
        .collect();
    slots.join(" | ")
}

pub fn link_action(a: &LinkAction) -> String {
    match a {
        LinkAction::Send { from, to } => format!("n{from} sends to n{to}"),
        LinkAction::Deliver { from, to, k, f } => {
            let order = if *k > 0 { "  (out of order)" } else { "" };
            format!("n{from} → n{to}  {}{order}", link_frame(f))
        }
        LinkAction::Lose { from, to, f, .. } => {
            format!("n{from} → n{to}  lost: {}", link_frame(f))
        }
        LinkAction::Duplicate { from, to, f, .. } => {
            format!("n{from} → n{to}  duplicated: {}", link_frame(f))
        }
        LinkAction::Ack { from, to } => format!("n{from} acks to n{to}"),
        LinkAction::Disconnect { from, to } => {
            format!("connection n{from} → n{to} breaks, losing what is in flight")
        }
        LinkAction::Reconnect { from, to } => {
            format!("n{from} reconnects to n{to}, resuming after what n{to} delivered")
        }
    }
}

/// A link model state: per channel what was delivered and what is in flight.
pub fn link_state(s: &LinkState) -> String {
    let mut out = String::new();
    for (i, row) in s.wire.iter().enumerate() {
        for (j, frames) in row.iter().enumerate().filter(|(j, _)| *j != i) {
            let delivered: Vec<String> =
                s.delivered[i][j].iter().map(|m| format!("m{m}")).collect();
            let wire: Vec<String> = frames.iter().map(link_frame).collect();
            let _ = writeln!(
                out,
                "n{i} → n{j}  sent {}  delivered {}{}  in flight: {}",
                s.links[i][j].sent(),
                if delivered.is_empty() {
                    "-".into()
                } else {
                    delivered.join(",")
                },
                if s.broken[i][j] {
                    "  (connection dead)"
                } else {
                    ""
                },
                if wire.is_empty() {
                    "nothing".into()
                } else {
                    wire.join(", ")
                },
            );
        }
    }
    let _ = writeln!(
        out,
        "faults left {}  disconnects left {}  lost {}",
        s.faults_left, s.disconnects_left, s.lost
    );
    if let Some(e) = &s.error {
        let _ = writeln!(out, "error: {e}");
    }
    out
}
