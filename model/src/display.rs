//! The models in the words a person reads, one place for all of them: an
//! action as `n0 → n1  data n0#1 SET x=0.1  [1,0]` (used by `check`'s
//! counterexamples and the explorer alike) and a state as a compact per-node
//! summary (store, clocks, hold-back queue, each snapshot's recording state,
//! messages in flight) instead of the derived `Debug` tree. Keys, values and
//! messages are spelled by [`gsmo_view::text`], the language `gsmo trace show`
//! speaks too.

use crate::adapter::{Multicaster, Step};
use crate::kv::Replica;
use crate::snapshot::{Bank, Ledger, Wire as BankWire};
use gsmo_spec::multicast::Wire;
use gsmo_spec::node::PeerMsg;
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::Envelope;
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

/// A bank's message: `transfer 1`, `marker 0-1`.
pub fn bank_msg(m: &BankWire) -> String {
    text::envelope(m, |t| format!("transfer {}", t.0))
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

/// A K/V model state: per replica its store, clocks, hold-back queue and
/// snapshots; then the network.
pub fn kv_state(s: &ActorModelState<Replica>) -> String {
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
                        text::wire(w, text::write)
                    );
                }
            }
            out.push('\n');
        }
    }
    network(&mut out, &s.network, kv_msg);
    out
}

/// A bank model state: per account its balance, channel counts and snapshots.
pub fn bank_state(s: &ActorModelState<Bank, Ledger>) -> String {
    let mut out = String::new();
    for (i, a) in s.actor_states.iter().enumerate() {
        let _ = writeln!(
            out,
            "n{i}  balance {}   sent {}  received {}",
            a.account.balance,
            text::vector(a.recorder.sent_counts()),
            text::vector(a.recorder.received_counts())
        );
        for id in a.recorder.in_progress() {
            let waiting: Vec<String> = a
                .recorder
                .waiting_on(id)
                .iter()
                .map(|j| format!("n{j}"))
                .collect();
            let _ = writeln!(
                out,
                "    snapshot {id}: recorded, waiting for markers from {}",
                waiting.join(", ")
            );
        }
        for (id, part) in &a.parts {
            let _ = write!(
                out,
                "    snapshot {id}: done, recorded balance {}",
                part.state.balance
            );
            for (from, msgs) in part.channels.iter().enumerate() {
                for (_, t) in msgs {
                    let _ = write!(out, "; in flight from n{from}: transfer {}", t.0);
                }
            }
            out.push('\n');
        }
    }
    network(&mut out, &s.network, bank_msg);
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

/// Marks an envelope's body as what the bank's arrows carry.
pub(crate) fn bank_arrow(m: &BankWire) -> (String, Option<u64>) {
    match m {
        Envelope::Msg { seq, body } => (format!("${}", body.0), Some(*seq)),
        Envelope::Marker { id } => (format!("M {id}"), None),
    }
}
