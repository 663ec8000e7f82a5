//! Random interleavings over reliable FIFO channels: whatever the schedule, the
//! histories the spec's algorithms produce satisfy the spec's own predicates.

use gsmo_spec::kv::{Op, Reply};
use gsmo_spec::link::Frame;
use gsmo_spec::multicast::sequencer::SEQUENCER;
use gsmo_spec::multicast::{Effect, Mode, Multicast, Wire};
use gsmo_spec::node::{Command, LinkFrame, Node, Output};
use gsmo_spec::properties::{self, Event};
use gsmo_spec::sim::{Cluster, FifoNetwork};
use gsmo_spec::snapshot::{Envelope, SnapshotId};
use proptest::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;

/// One scheduling decision; indices are reduced modulo what is available.
#[derive(Clone, Debug)]
enum Action {
    /// Node `i % n` multicasts (or writes).
    Send(usize),
    /// The `k % busy`-th busy channel delivers its oldest message.
    Deliver(usize),
    /// Node `i % n` starts a snapshot.
    Snapshot(usize),
}

fn actions(max: usize, snapshots: bool) -> impl Strategy<Value = Vec<Action>> {
    let snap_weight = if snapshots { 1 } else { 0 };
    prop::collection::vec(
        prop_oneof![
            3 => any::<usize>().prop_map(Action::Send),
            6 => any::<usize>().prop_map(Action::Deliver),
            snap_weight => any::<usize>().prop_map(Action::Snapshot),
        ],
        0..max,
    )
}

fn mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(Mode::ALL.to_vec())
}

/// Runs bare multicast endpoints (payload = a counter) under a schedule and returns the logs.
fn run_multicast(mode: Mode, n: usize, schedule: &[Action]) -> Vec<Vec<Event>> {
    let mut nodes: Vec<Multicast<u32>> = (0..n).map(|i| Multicast::new(mode, i, n)).collect();
    let mut net: FifoNetwork<Wire<u32>> = FifoNetwork::new();
    let mut logs = vec![Vec::new(); n];
    let carry = |node: usize,
                 effects: Vec<Effect<u32>>,
                 net: &mut FifoNetwork<Wire<u32>>,
                 logs: &mut Vec<Vec<Event>>| {
        for e in effects {
            match e {
                Effect::Send { to, msg } => net.send(node, to, msg),
                Effect::Deliver { id, .. } => logs[node].push(Event::Deliver(id)),
            }
        }
    };
    let step = |a: &Action,
                nodes: &mut Vec<Multicast<u32>>,
                net: &mut FifoNetwork<Wire<u32>>,
                logs: &mut Vec<Vec<Event>>| {
        match a {
            Action::Send(i) => {
                let i = i % n;
                let (id, effects) = nodes[i].multicast(7);
                logs[i].push(Event::Send(id));
                carry(i, effects, net, logs);
            }
            Action::Deliver(k) | Action::Snapshot(k) => {
                let busy = net.busy();
                if let Some(&(from, to)) = busy.get(k % busy.len().max(1)) {
                    let msg = net.receive(from, to).expect("busy");
                    let effects = nodes[to].on_message(from, msg).expect("same mode");
                    carry(to, effects, net, logs);
                }
            }
        }
    };
    for a in schedule {
        step(a, &mut nodes, &mut net, &mut logs);
    }
    while net.in_flight() > 0 {
        step(&Action::Deliver(0), &mut nodes, &mut net, &mut logs);
    }
    assert!(
        nodes.iter().all(|m| m.holdback_depth() == 0),
        "quiescent nodes hold nothing back"
    );
    logs
}

fn check_orders(mode: Mode, logs: &[Vec<Event>]) -> Result<(), properties::Violation> {
    properties::promised_orders(mode, logs)?;
    properties::all_delivered(logs)
}

const BANK: [&str; 4] = ["acct:a", "acct:b", "acct:c", "acct:d"];
const OPENING: i64 = 100;

/// Failures are saved to `interleavings.proptest-regressions` (commit it) and
/// replayed first on every run; `GSMO_SEED=N` fixes proptest's generator too.
fn config() -> ProptestConfig {
    gsmo_spec::testing::proptest_config(160)
}

proptest! {
    #![proptest_config(config())]

    /// [`Node::silent_head`]'s claims, at every step of random bank runs with
    /// snapshots over the sequencer (the only mode with silent receipts).
    #[test]
    fn silent_heads_send_nothing_and_commute(
        schedule in actions(90, true),
        transfers in prop::collection::vec((0usize..4, 0usize..4, 1i64..40), 1..40),
    ) {
        let mut c = Cluster::new(3, Mode::TotalSequencer);
        let mut next_transfer = transfers.iter().cycle();
        for a in &schedule {
            check_silent_heads(&c)?;
            bank_step(&mut c, a, &mut next_transfer);
        }
    }

    /// [`Node::quiet_towards`]'s claim, at every step of random bank runs with
    /// snapshots over the sequencer: a node quiet towards a peer, having
    /// recorded every snapshot started so far, hands the link to that peer no
    /// frame until a snapshot starts or it writes, whoever else steps (the
    /// model checker's reduction needs it only while the peer is idle). Only
    /// the sequencer is told how many messages the group multicasts, so only
    /// its promises end when any node writes.
    #[test]
    fn quiet_nodes_send_their_peer_nothing(
        schedule in actions(90, true),
        transfers in prop::collection::vec((0usize..4, 0usize..4, 1i64..40), 1..40),
    ) {
        let n = 3;
        let mut c = Cluster::new(n, Mode::TotalSequencer);
        let mut next_transfer = transfers.iter().cycle();
        let mut started = Vec::new();
        let mut recorded = vec![BTreeSet::new(); n];
        // (quiet node, peer) -> frames the node had sent the peer when it fell quiet.
        let mut promised: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for a in &schedule {
            let group_sent: u64 = c.nodes.iter().map(|x| x.state().multicast.sent()).sum();
            for (j, (node, seen)) in c.nodes.iter().zip(&mut recorded).enumerate() {
                seen.extend(node.snapshots_in_progress());
                let all_recorded = started.iter().all(|id| seen.contains(id));
                for i in (0..n).filter(|&i| i != j) {
                    let known = (j == SEQUENCER).then_some(group_sent);
                    if all_recorded && node.quiet_towards(i, known) {
                        promised.entry((j, i)).or_insert(node.link(i).sent());
                    }
                }
            }
            if let Some(id) = bank_step(&mut c, a, &mut next_transfer) {
                started.push(id);
                promised.clear();
            }
            if let Action::Send(i) = a {
                promised.retain(|&(j, _), _| j != i % n && j != SEQUENCER);
            }
            for (&(j, i), &sent) in &promised {
                prop_assert_eq!(
                    c.nodes[j].link(i).sent(), sent,
                    "node {} was quiet towards node {} but sent it a frame: {:?}", j, i, c.nodes[j]
                );
            }
        }
    }

    #[test]
    fn every_mode_keeps_its_promise(mode in mode(), n in 1usize..5, schedule in actions(80, false)) {
        let logs = run_multicast(mode, n, &schedule);
        if let Err(v) = check_orders(mode, &logs) {
            prop_assert!(false, "{mode}: {v}\nlogs: {logs:?}");
        }
    }

    /// The whole replica (multicast + K/V + recorder) under bank transfers and
    /// concurrent snapshots: replicas converge, every snapshot is a consistent
    /// cut with exact channel state, conserves money (total modes), and restores
    /// to one state holding exactly the writes sent before the cut.
    #[test]
    fn replicas_converge_and_snapshots_are_consistent(
        mode in mode(),
        n in 2usize..4,
        schedule in actions(70, true),
        transfers in prop::collection::vec((0usize..4, 0usize..4, 1i64..40), 1..40),
    ) {
        let mut c = Cluster::new(n, mode);
        let pairs = BANK.iter().map(|k| (k.as_bytes().to_vec(), OPENING.to_string().into_bytes())).collect();
        c.client(0, Command::Write(Op::MSet { pairs }));
        c.quiesce().unwrap();
        let keys: Vec<Vec<u8>> = BANK.iter().map(|k| k.as_bytes().to_vec()).collect();
        let total = OPENING * BANK.len() as i64;

        let mut next_transfer = transfers.iter().cycle();
        let mut snapshots = Vec::new();
        let mut requests = 1; // the opening MSET
        for a in &schedule {
            match a {
                Action::Send(i) => {
                    let (f, t, amount) = next_transfer.next().unwrap();
                    let op = Op::Transfer { from: keys[*f].clone(), to: keys[*t].clone(), amount: *amount };
                    c.client(i % n, Command::Write(op));
                    requests += 1;
                }
                Action::Deliver(k) => {
                    let busy = c.network.busy();
                    if let Some(&(from, to)) = busy.get(k % busy.len().max(1)) {
                        c.step(from, to).unwrap();
                    }
                }
                Action::Snapshot(i) => snapshots.extend(c.try_snapshot(i % n)),
            }
        }
        c.quiesce().unwrap();

        // Every request got exactly one reply, and replicas agree.
        let replies: usize = c.replies.iter().map(|r| r.len()).sum();
        prop_assert_eq!(requests, replies);
        prop_assert!(c.replies.iter().flat_map(|r| r.values()).all(|r| *r == Reply::Ok || matches!(r, Reply::Error(_))));
        for node in &c.nodes[1..] {
            prop_assert_eq!(node.kv(), c.nodes[0].kv(), "{} replicas diverged", mode);
        }
        if let Err(v) = check_orders(mode, &c.logs) {
            prop_assert!(false, "{mode}: {v}");
        }
        if mode.is_total() {
            prop_assert_eq!(c.nodes[0].kv().sum(&keys), Ok(total));
        }

        for id in snapshots {
            let parts = c.completed(id).expect("every snapshot completes on reliable channels");
            let check = properties::consistent_cut(&parts)
                .and_then(|_| properties::exact_channel_state(&parts))
                .and_then(|_| {
                    let sent: Vec<u64> = parts.iter().map(|p| p.state.multicast.sent()).collect();
                    let delivered: Vec<Vec<u64>> = parts.iter().map(|p| p.state.multicast.delivered().to_vec()).collect();
                    properties::consistent_delivery_vectors(&sent, &delivered)
                });
            if let Err(v) = check {
                prop_assert!(false, "snapshot {id}: {v}");
            }
            if mode.is_total() {
                for p in &parts {
                    let sum = p.state.kv.sum(&keys).unwrap() as i128;
                    prop_assert!(properties::conservation(total as i128, [sum], []).is_ok());
                }
            }
            // Restore into a fresh simulated cluster and let it settle.
            let mut restored = Cluster::restore(&parts).unwrap();
            restored.quiesce().unwrap();
            let sent_before_cut: Vec<u64> = parts.iter().map(|p| p.state.multicast.sent()).collect();
            for node in &restored.nodes {
                prop_assert_eq!(node.kv(), restored.nodes[0].kv(), "restored replicas diverged");
                prop_assert_eq!(node.state().multicast.delivered(), &sent_before_cut[..],
                    "a restored replica must hold exactly the writes sent before the cut");
                prop_assert_eq!(node.holdback_depth(), 0);
            }
        }
    }
}

/// Takes step `a` of a random bank run on `c`: a client's `TRANSFER` (the
/// next of `transfers`), a delivery, or a snapshot start, whose id it returns.
fn bank_step<'a>(
    c: &mut Cluster,
    a: &Action,
    transfers: &mut impl Iterator<Item = &'a (usize, usize, i64)>,
) -> Option<SnapshotId> {
    let n = c.nodes.len();
    match a {
        Action::Send(i) => {
            let (f, t, amount) = transfers.next().expect("an endless cycle");
            let key = |k: usize| BANK[k].as_bytes().to_vec();
            let op = Op::Transfer {
                from: key(*f),
                to: key(*t),
                amount: *amount,
            };
            c.client(i % n, Command::Write(op));
        }
        Action::Deliver(k) => {
            let busy = c.network.busy();
            if let Some(&(from, to)) = busy.get(k % busy.len().max(1)) {
                c.step(from, to).unwrap();
            }
        }
        Action::Snapshot(i) => return c.try_snapshot(i % n),
    }
    None
}

/// Whether `frame` would start a recording at `node`: a marker of a snapshot
/// it is not recording (a settled replica gets none, `model/src/por.rs`).
fn starts_recording(node: &Node, frame: &LinkFrame) -> bool {
    matches!(frame, Frame::Data { body: Envelope::Marker { id }, .. }
        if !node.snapshots_in_progress().contains(id))
}

/// `hash` run on a fresh hasher.
fn digest(hash: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    hash(&mut h);
    h.finish()
}

/// What `outputs` deliver, and send (each frame without the acknowledgement it
/// carries, which a run without faults never reads: `Node::hash_live`), in order.
fn delivered_and_sent(outputs: &[Output]) -> (Vec<String>, Vec<(usize, u64)>) {
    let delivered = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Delivered { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect();
    let sent = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { to, frame } => Some((*to, digest(|h| frame.hash_live(h)))),
            _ => None,
        })
        .collect();
    (delivered, sent)
}

/// Checks the claims of [`Node::silent_head`] on every channel head of `c` it
/// holds for: receiving it sends nothing; before it, its node delivers
/// nothing; and it commutes with every other receipt there that starts no
/// recording (same node after both, same deliveries and sends in the same
/// order). The model checker's partial-order reduction rests on them.
/// Returns how many silent heads it checked.
fn check_silent_heads(c: &Cluster) -> Result<usize, TestCaseError> {
    let busy = c.network.busy();
    let mut checked = 0;
    for &(from, to) in &busy {
        let frame = c.network.head(from, to).expect("busy");
        let node = &c.nodes[to];
        if !node.silent_head(from, frame) {
            continue;
        }
        checked += 1;
        let out = node.clone().on_peer(from, frame.clone()).unwrap();
        prop_assert!(
            delivered_and_sent(&out).1.is_empty(),
            "a silent receipt sent: {:?}",
            out
        );
        for &(other, _) in busy.iter().filter(|&&(o, t)| t == to && o != from) {
            let other_frame = c.network.head(other, to).expect("busy");
            if starts_recording(node, other_frame) {
                continue;
            }
            let (mut first, mut second) = (node.clone(), node.clone());
            let mut a = first.on_peer(from, frame.clone()).unwrap();
            a.extend(first.on_peer(other, other_frame.clone()).unwrap());
            let mut b = second.on_peer(other, other_frame.clone()).unwrap();
            prop_assert!(
                delivered_and_sent(&b).0.is_empty(),
                "node {} delivered before the silent head from {} arrived: {:?}",
                to,
                from,
                b
            );
            b.extend(second.on_peer(from, frame.clone()).unwrap());
            prop_assert_eq!(
                digest(|h| first.hash_live(h)),
                digest(|h| second.hash_live(h)),
                "the two orders left node {} apart:\n{:?}\n{:?}",
                to,
                first,
                second
            );
            prop_assert_eq!(delivered_and_sent(&a), delivered_and_sent(&b));
        }
    }
    Ok(checked)
}

/// The message a multicast's `effects` put on the channel to node `to`.
fn sent_to<P: Clone>(effects: &[Effect<P>], to: usize) -> Wire<P> {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Send { to: t, msg } if *t == to => Some(msg.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("nothing sent to n{to}"))
}

#[test]
fn causal_holds_back_a_reply_until_its_question_arrives() {
    // n0 multicasts q; n1 delivers q and multicasts r; n2 gets r first.
    let n = 3;
    let mut m: Vec<Multicast<&str>> = (0..n).map(|i| Multicast::new(Mode::Causal, i, n)).collect();
    let (_, eff_q) = m[0].multicast("q");
    m[1].on_message(0, sent_to(&eff_q, 1)).unwrap();
    let (_, eff_r) = m[1].multicast("r");
    let r_to_2 = sent_to(&eff_r, 2);
    assert!(
        m[2].on_message(1, r_to_2.clone()).unwrap().is_empty(),
        "r must wait for q"
    );
    assert_eq!(m[2].holdback_depth(), 1);
    let delivered: Vec<&str> = m[2]
        .on_message(0, sent_to(&eff_q, 2))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Deliver { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec!["q", "r"]);

    // The broken variant (FIFO condition only) delivers r at once.
    let mut broken = Multicast::<&str>::broken(Mode::Causal, 2, n);
    assert_eq!(broken.on_message(1, r_to_2).unwrap().len(), 1);
}

#[test]
fn fifo_holds_back_a_message_until_its_predecessor_arrives() {
    let mut m: Vec<Multicast<&str>> = (0..2).map(|i| Multicast::new(Mode::Fifo, i, 2)).collect();
    let a = sent_to(&m[0].multicast("a").1, 1);
    let b = sent_to(&m[0].multicast("b").1, 1);
    assert!(m[1].on_message(0, b).unwrap().is_empty(), "b waits for a");
    assert_eq!(m[1].holdback_depth(), 1);
    assert_eq!(m[1].on_message(0, a).unwrap().len(), 2, "a, then b");
    assert_eq!(m[1].holdback_depth(), 0);
}

#[test]
fn wrong_mode_is_refused() {
    let mut fifo = Multicast::<u8>::new(Mode::Fifo, 0, 2);
    let mut isis = Multicast::<u8>::new(Mode::TotalIsis, 1, 2);
    let (_, effects) = isis.multicast(1);
    let Effect::Send { msg, .. } = effects
        .into_iter()
        .find(|e| matches!(e, Effect::Send { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    let err = fifo.on_message(1, msg).unwrap_err();
    assert_eq!(err.to_string(), "a total-isis message reached a fifo node");
}
