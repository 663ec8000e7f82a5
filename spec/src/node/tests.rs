use super::*;
use crate::sim::Cluster;

/// Two causal replicas write `x` concurrently and each delivers its own
/// write first; returns both stores once everything is delivered.
fn concurrent_writes(how: Option<Resolution>) -> (KvStore, KvStore) {
    let nodes = (0..2)
        .map(|i| {
            let node = Node::new(i, 2, Mode::Causal);
            match how {
                Some(how) => node.with_resolution(how),
                None => node,
            }
        })
        .collect();
    let mut c = Cluster::from_nodes(nodes);
    for i in 0..2 {
        let value = format!("from-{i}").into_bytes();
        let op = Op::Set {
            key: b"x".to_vec(),
            value,
        };
        c.client(i, Command::Write(op));
    }
    c.quiesce().unwrap();
    (c.nodes[0].kv().clone(), c.nodes[1].kv().clone())
}

#[test]
fn causal_replicas_converge_by_stamp_but_not_by_delivery_order() {
    let (a, b) = concurrent_writes(None);
    assert_eq!(a, b);
    let (a, b) = concurrent_writes(Some(Resolution::DeliveryOrder));
    assert_ne!(a, b, "each kept the other's write, delivered last");
    assert_eq!(a.get(b"x"), Some(&b"from-1"[..]));
}

#[test]
fn incrby_answers_the_new_value_in_every_mode() {
    for mode in Mode::ALL {
        let mut c = Cluster::new(2, mode);
        let incr = |delta| {
            Command::Write(Op::IncrBy {
                key: b"n".to_vec(),
                delta,
            })
        };
        let a = c.client(0, incr(5));
        c.quiesce().unwrap();
        let b = c.client(1, incr(2));
        c.quiesce().unwrap();
        assert_eq!(c.replies[0][&a], Reply::Int(5), "{mode}");
        assert_eq!(c.replies[1][&b], Reply::Int(7), "{mode}");
    }
}

/// Only an increment answers with the number: under last-writer-wins it goes
/// out resolved into an assignment that carries its reply, while a client's own
/// `SET key 12` gets `OK`, as in Redis.
#[test]
fn a_set_of_a_number_answers_ok_in_every_mode() {
    for mode in Mode::ALL {
        let mut c = Cluster::new(2, mode);
        let set = c.client(
            0,
            Command::Write(Op::Set {
                key: b"n".to_vec(),
                value: b"12".to_vec(),
            }),
        );
        let incr = c.client(
            0,
            Command::Write(Op::IncrBy {
                key: b"n".to_vec(),
                delta: 1,
            }),
        );
        c.quiesce().unwrap();
        assert_eq!(c.replies[0][&set], Reply::Ok, "{mode}");
        assert_eq!(c.replies[0][&incr], Reply::Int(13), "{mode}");
    }
}

pub(super) fn set(key: &str) -> Command {
    Command::Write(Op::Set {
        key: key.into(),
        value: b"v".to_vec(),
    })
}

fn reply(out: &[Output]) -> Option<Reply> {
    out.iter().find_map(|o| match o {
        Output::Reply { reply, .. } => Some(reply.clone()),
        _ => None,
    })
}

/// `n` connected replicas in `mode`, all with `limits`.
pub(super) fn cluster(n: usize, mode: Mode, limits: Limits) -> Cluster {
    Cluster::from_nodes(
        (0..n)
            .map(|i| Node::new(i, n, mode).with_limits(limits))
            .collect(),
    )
}

fn tick(node: &mut Node, now: u64) -> Vec<Output> {
    node.handle(Input::Tick { now }).unwrap()
}

#[test]
fn an_unreachable_needed_peer_refuses_writes_at_once_and_reads_still_work() {
    let limits = Limits {
        unreachable_after_ms: 1_000,
        ..Limits::default()
    };
    let mut c = cluster(3, Mode::TotalIsis, limits);
    let n0 = &mut c.nodes[0];
    n0.handle(Input::LinkDown {
        peer: 2,
        outgoing: true,
    })
    .unwrap();
    tick(n0, 999);
    assert_eq!(n0.write_refusal(), None, "a short blip is not a failure");
    tick(n0, 13_000);
    let refused = reply(&n0.on_client(1, set("x"))).unwrap();
    assert_eq!(
        refused,
        Reply::Error("CLUSTERDOWN write refused: n2 unreachable for 13 s and total-isis needs every node to order writes; reads still work".into())
    );
    assert_eq!(n0.pending_writes(), 0, "nothing is left hanging");
    let read = reply(&n0.on_client(2, Command::Get { key: b"x".to_vec() }));
    assert_eq!(read, Some(Reply::Bulk(None)));
    // Causal delivers locally: the same outage refuses nothing.
    let mut causal = Node::new(0, 3, Mode::Causal).with_limits(limits);
    tick(&mut causal, 13_000);
    assert_eq!(causal.write_refusal(), None);
}

#[test]
fn a_replica_is_never_unreachable_to_itself() {
    let mut n0 = Node::new(0, 2, Mode::Fifo).connected();
    n0.start_snapshot().unwrap();
    let out = tick(&mut n0, 10_000);
    assert!(!n0.is_unreachable(0) && !n0.is_unreachable(1));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::SnapshotAborted { .. })),
        "{out:?}"
    );
}

/// A peer id is checked before it indexes anything: the replica itself and ids
/// past the cluster are refused as strangers, and the replica is left as it was.
#[test]
fn a_replica_refuses_inputs_naming_itself_or_a_stranger() {
    let mut n0 = Node::new(0, 2, Mode::Fifo).connected();
    let frame = n0
        .on_client(1, set("k"))
        .into_iter()
        .find_map(|o| match o {
            Output::Send { frame, .. } => Some(frame),
            _ => None,
        })
        .expect("a write goes to n1");
    let mut n1 = Node::new(1, 2, Mode::Fifo).connected();
    let before = n1.clone();
    for peer in [1, 2, 7] {
        let inputs = [
            Input::LinkUp { peer, delivered: 0 },
            Input::InboundUp { peer },
            Input::LinkDown {
                peer,
                outgoing: true,
            },
            Input::LinkDown {
                peer,
                outgoing: false,
            },
            Input::Peer {
                from: peer,
                frame: frame.clone(),
            },
        ];
        for input in inputs {
            assert_eq!(
                n1.handle(input.clone()),
                Err(PeerError::UnknownPeer(peer)),
                "{input:?}"
            );
        }
    }
    assert_eq!(n1, before);
    assert!(n1.on_peer(0, frame).is_ok(), "the member is heard");
}

#[test]
fn a_write_that_cannot_finish_times_out_naming_what_it_waits_for() {
    let limits = Limits {
        write_timeout_ms: 5_000,
        ..Limits::default()
    };
    let mut n0 = Node::new(0, 2, Mode::TotalSequencer).with_limits(limits);
    let mut n1 = Node::new(1, 2, Mode::TotalSequencer).with_limits(limits);
    n1.handle(Input::InboundUp { peer: 0 }).unwrap();
    n1.handle(Input::LinkUp {
        peer: 0,
        delivered: 0,
    })
    .unwrap();
    n0.handle(Input::Tick { now: 0 }).unwrap();
    let out = n1.on_client(7, set("x"));
    assert_eq!(reply(&out), None, "waits for node 0's order");
    n1.handle(Input::LinkDown {
        peer: 0,
        outgoing: true,
    })
    .unwrap();
    assert_eq!(reply(&tick(&mut n1, 4_999)), None);
    assert_eq!(
        reply(&tick(&mut n1, 5_000)),
        Some(Reply::Error("TIMEOUT write n1#1 not delivered in 5 s: waiting for n0, disconnected for 5 s; it may still be applied".into()))
    );
    assert_eq!(n1.pending_writes(), 0);
}

/// What INFO reports per channel: messages sent to and received from each peer.
#[test]
fn channel_counts_are_per_peer() {
    let mut c = Cluster::new(3, Mode::Fifo);
    c.client(0, set("k"));
    c.client(0, set("k"));
    c.quiesce().unwrap();
    assert_eq!(
        c.nodes[0].channel_counts(),
        (&[0, 2, 2][..], &[0, 0, 0][..])
    );
    assert_eq!(
        c.nodes[1].channel_counts(),
        (&[0, 0, 0][..], &[2, 0, 0][..])
    );
}

#[test]
fn a_full_link_is_backpressure_not_loss() {
    let limits = Limits {
        link_buffer_bytes: 100,
        ..Limits::default()
    };
    let mut c = cluster(2, Mode::Fifo, limits);
    // n1 stalls: nothing n0 sends is acknowledged.
    let mut accepted = 0;
    let refusal = (0..1000)
        .find_map(|_| {
            let req = c.client(0, set("k"));
            match &c.replies[0][&req] {
                Reply::Error(e) => Some(e.clone()),
                _ => {
                    accepted += 1;
                    None
                }
            }
        })
        .expect("1000 writes into a 100-byte link and none refused");
    assert!(
        refusal.starts_with("TRYAGAIN link to n1 holds"),
        "{refusal}"
    );
    assert_eq!(accepted, 3, "34 bytes a write, 100 bytes of room");
    c.quiesce().unwrap();
    assert_eq!(
        c.delivered(1).len(),
        accepted,
        "everything accepted arrives"
    );
}

/// A peer that delivers promptly acknowledges by bytes too: with acks every
/// 64 frames alone, a sender whose buffer holds fewer than 64 frames refused
/// writes with TRYAGAIN although its peer was healthy (seen on a real
/// cluster: 4 MiB `--link-buffer`, pipelined 4 KB SETs, n1 named).
#[test]
fn a_healthy_peer_acknowledges_before_the_link_fills() {
    let limits = Limits {
        link_buffer_bytes: 400,
        ..Limits::default()
    };
    let mut c = cluster(2, Mode::Fifo, limits);
    for i in 0..200 {
        let req = c.client(0, set("k"));
        assert_eq!(c.replies[0][&req], Reply::Ok, "write {i}");
        c.quiesce().unwrap();
        let retained = c.nodes[0].link(1).retained_bytes();
        assert!(
            retained <= 400 / 4 + 34,
            "write {i}: {retained} bytes unacknowledged"
        );
    }
    assert_eq!(c.delivered(1).len(), 200);
}

/// With small frames and nothing flowing back to piggy-back on, a receiver
/// acks every 64th delivery, not sooner, and without waiting for a tick.
#[test]
fn a_receiver_acks_every_64_deliveries() {
    let mut c = Cluster::new(2, Mode::Fifo);
    for i in 1..=130u64 {
        c.client(0, set("k"));
        c.quiesce().unwrap();
        assert_eq!(c.nodes[0].link(1).acked(), i / 64 * 64, "after {i} writes");
    }
}

#[test]
fn a_dropped_connection_resumes_without_loss_or_duplicates() {
    for mode in Mode::ALL {
        let mut c = Cluster::new(3, mode);
        for k in ["a", "b", "c"] {
            c.client(0, set(k));
        }
        // The connection 0 -> 1 breaks with everything in flight lost.
        while c.network.receive(0, 1).is_some() {}
        let down = Input::LinkDown {
            peer: 1,
            outgoing: true,
        };
        assert!(c.nodes[0].handle(down).unwrap().is_empty());
        c.client(0, set("d"));
        c.quiesce().unwrap();
        let delivered = c.nodes[1].link(0).delivered();
        let out = c.nodes[0]
            .handle(Input::LinkUp { peer: 1, delivered })
            .unwrap();
        assert!(!out.is_empty(), "{mode}: the missing frames are resent");
        for o in out {
            if let Output::Send { to, frame } = o {
                c.network.send(0, to, frame);
            }
        }
        c.quiesce().unwrap();
        let logs: Vec<_> = (0..3).map(|i| c.logs[i].clone()).collect();
        crate::properties::promised_orders(mode, &logs).unwrap();
        crate::properties::all_delivered(&logs).unwrap();
        assert_eq!(c.delivered(1).len(), 4, "{mode}");
    }
}

#[test]
fn a_snapshot_commits_once_every_part_is_stored() {
    // Each node tells the initiator its part is stored, under its own id; the
    // initiator commits when all n have, and then nothing stays in progress.
    for initiator in 0..3 {
        let mut c = Cluster::new(3, Mode::Fifo);
        c.client(0, set("a"));
        let id = c.snapshot(initiator);
        c.quiesce().unwrap();
        let parts = c.completed(id).unwrap_or_else(|| panic!("{id} incomplete"));
        let of: Vec<_> = parts.iter().map(|p| (p.id, p.node)).collect();
        assert_eq!(
            of,
            vec![(id, 0), (id, 1), (id, 2)],
            "one part per node, in order"
        );
        for (i, node) in c.nodes.iter().enumerate() {
            assert_eq!(node.snapshots_in_progress(), vec![], "n{i}: {id}");
        }
    }
}

#[test]
fn a_write_in_flight_at_the_cut_shows_while_its_channel_records() {
    // n1 records before n0's write reaches it: the write is in flight at the
    // cut, recorded when it arrives, and part of the part once n0's marker
    // closes the channel.
    let mut c = Cluster::new(2, Mode::Fifo);
    c.client(0, set("a"));
    c.input(0, Input::Flush).unwrap();
    let id = c.snapshot(1);
    assert_eq!(c.nodes[1].recorded_in_flight().count(), 0);
    assert!(c.step(0, 1).unwrap(), "the write arrives");
    let recorded: Vec<_> = c.nodes[1].recorded_in_flight().cloned().collect();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].payload().is_some(), "{recorded:?}");
    c.quiesce().unwrap();
    assert_eq!(c.nodes[1].recorded_in_flight().count(), 0, "complete");
    let parts = c.completed(id).expect("complete");
    assert_eq!(parts[1].channel_messages(), 1);
}

#[test]
fn a_restarted_replica_numbers_its_snapshots_past_those_on_disk() {
    // The runtime feeds the highest id found in the data dir, so a restart
    // never reuses the name of a snapshot already stored.
    let mut n0 = Node::new(0, 2, Mode::Fifo).connected();
    n0.handle(Input::SkipSnapshotIds { through: 5 }).unwrap();
    let (id, _) = n0.start_snapshot().unwrap();
    assert_eq!((id.initiator, id.seq), (0, 6));
    let (id, _) = n0.start_snapshot().unwrap();
    assert_eq!(id.seq, 7);
}

#[test]
fn a_replica_restored_from_its_own_snapshot_numbers_the_next_one_past_it() {
    // Only the initiator's ids are taken by the snapshot restored from; the
    // others number theirs from 1 as before.
    let mut c = Cluster::new(3, Mode::Fifo);
    c.snapshot(1);
    c.quiesce().unwrap();
    let id = c.snapshot(1);
    assert_eq!(id.seq, 2);
    c.quiesce().unwrap();
    let mut restored = Cluster::restore(&c.completed(id).unwrap()).unwrap();
    let next: Vec<_> = (0..3).map(|i| restored.snapshot(i)).collect();
    let seqs: Vec<_> = next.iter().map(|id| (id.initiator, id.seq)).collect();
    assert_eq!(seqs, vec![(0, 1), (1, 3), (2, 1)]);
}

/// A replica counts the writes it holds back (INFO's hold-back depth): a causal
/// replica handed n1's write before the n0 write n1 delivered first.
#[test]
fn a_replica_counts_the_writes_it_holds_back() {
    let mut c = Cluster::new(3, Mode::Causal);
    c.client(0, set("q"));
    while c.step(0, 1).unwrap() {}
    c.client(1, set("r"));
    assert!(c.step(1, 2).unwrap());
    assert_eq!(c.nodes[2].holdback_depth(), 1, "r waits for q");
    c.quiesce().unwrap();
    assert_eq!(c.nodes[2].holdback_depth(), 0);
}

/// The frame at the head of channel `from -> to` in `c`.
fn head(c: &Cluster, from: NodeId, to: NodeId) -> LinkFrame {
    c.network.head(from, to).expect("a frame in flight").clone()
}

/// Under the sequencer, n1's write reaches n2 from n0 alone, numbered and
/// with its data: silent at n2 at once. It is not silent asking for an ack,
/// out of its link's order, or from n2 itself; nor is anything reaching the
/// sequencer. (A number after the next, and BB's pieces, data and number
/// apart, are `multicast::sequencer`'s own tests.)
#[test]
fn the_next_delivery_is_a_silent_head() {
    let mut c = Cluster::new(3, Mode::TotalSequencer);
    c.client(1, set("k"));
    assert_eq!(c.network.in_flight(), 1, "to the sequencer alone");
    assert!(
        !c.nodes[0].silent_head(1, &head(&c, 1, 0)),
        "the sequencer answers a submission"
    );
    assert!(c.step(1, 0).unwrap(), "the sequencer numbers n1's write");
    assert!(
        !c.nodes[0].silent_head(0, &head(&c, 0, 2)),
        "not from itself"
    );
    let ordered = head(&c, 0, 2);
    assert!(c.nodes[2].silent_head(0, &ordered));
    let Frame::Data { seq, ack, body, .. } = ordered.clone() else {
        panic!("a data frame");
    };
    let asking = Frame::Data {
        seq,
        ack,
        body: body.clone(),
        ack_now: true,
    };
    assert!(!c.nodes[2].silent_head(0, &asking), "asks for an ack");
    let early = Frame::Data {
        seq: seq + 1,
        ack,
        body,
        ack_now: false,
    };
    assert!(
        !c.nodes[2].silent_head(0, &early),
        "not its link's next frame"
    );
    assert!(!c.nodes[2].silent_head(2, &ordered), "from n2 itself");
    c.client(0, set("j"));
    assert!(c.step(0, 2).unwrap());
    assert_eq!(c.delivered(2), [MsgId { origin: 1, seq: 1 }]);
    assert!(c.nodes[2].silent_head(0, &head(&c, 0, 2)), "now the next");
}

/// A frame that brings its link to an ack is not silent, even when its
/// message is: receiving it sends the ack.
#[test]
fn a_frame_that_brings_an_ack_is_not_silent() {
    let mut c = Cluster::new(3, Mode::TotalSequencer);
    // Each of n0's writes puts one message, numbered, on n0 -> n2.
    for k in 0..ACK_EVERY {
        c.client(0, set(&k.to_string()));
    }
    for _ in 1..ACK_EVERY {
        assert!(c.step(0, 2).unwrap());
    }
    let last = head(&c, 0, 2);
    let Frame::Data {
        body: Envelope::Msg { body, .. },
        ..
    } = &last
    else {
        panic!("a message");
    };
    assert!(
        c.nodes[2].state().multicast.silent_head(body),
        "the next number"
    );
    assert!(!c.nodes[2].silent_head(0, &last));
    let out = c.nodes[2].clone().on_peer(0, last).unwrap();
    assert!(out.iter().any(|o| matches!(o, Output::Send { to: 0, .. })));
}

#[test]
fn only_the_sequencer_speaks_on_a_receipt_until_every_message_is_numbered() {
    let mut c = Cluster::new(3, Mode::TotalSequencer);
    c.client(1, set("a"));
    c.input(1, Input::Flush).unwrap();
    assert!(c.step(1, 0).unwrap(), "the sequencer holds the data");
    let group_sent: u64 = c.nodes.iter().map(|n| n.state().multicast.sent()).sum();
    assert_eq!(group_sent, 1);
    // A member other than the sequencer never sends on a receipt, told the
    // total or not; nor is anyone quiet towards itself.
    for peer in [0, 2] {
        assert!(c.nodes[1].quiet_towards(peer, None));
    }
    assert!(!c.nodes[1].quiet_towards(1, None));
    // The sequencer has numbered the one message: quiet only if told that
    // the group multicasts no more.
    assert!(c.nodes[0].quiet_towards(2, Some(group_sent)));
    assert!(!c.nodes[0].quiet_towards(2, Some(group_sent + 1)));
    assert!(!c.nodes[0].quiet_towards(2, None));
    // Every ISIS member proposes a priority for every message it receives.
    let isis = Cluster::new(3, Mode::TotalIsis);
    assert!(!isis.nodes[1].quiet_towards(0, Some(0)));
}

/// Three replicas whose links hold 2,000 bytes, each write its own batch.
fn small_buffers(mode: Mode) -> Cluster {
    let limits = Limits {
        link_buffer_bytes: 2_000,
        max_batch: 1,
        ..Limits::default()
    };
    Cluster::from_nodes(
        (0..3)
            .map(|i| Node::new(i, 3, mode).with_limits(limits))
            .collect(),
    )
}

/// Under the sequencer a stopped member's link fills at the sequencer, which
/// relays every member's writes to it. The sequencer then holds its acks
/// back, so the writing member's own link to it fills and its writes are
/// refused, and the sequencer's buffer stays bounded. Once the stopped member
/// takes its frames, acks go again at once and so do writes. (Without the hold, n1
/// never refuses and the sequencer keeps every write for n2.)
#[test]
fn a_stopped_member_backs_the_sequencers_relay_up_to_the_writer() {
    let mut c = small_buffers(Mode::TotalSequencer);
    // n2 is stopped: nothing reaches it, and it sends nothing.
    let mut refusal = None;
    for k in 0..1_000 {
        let req = c.client(1, set(&k.to_string()));
        if let Some(Reply::Error(e)) = c.replies[1].get(&req) {
            refusal = Some(e.clone());
            break;
        }
        while c.step(1, 0).unwrap() || c.step(0, 1).unwrap() {}
    }
    let why = refusal.expect("n1 never refused a write");
    assert!(why.starts_with("TRYAGAIN link to n0"), "{why}");
    assert!(
        why.contains("n0, or a member it relays to, is slow"),
        "n1 cannot tell n0 from n2: {why}"
    );
    assert!(
        c.nodes[0].link(1).acks_held(),
        "the sequencer holds n1's acks"
    );
    // A buffer's worth, plus what n1 had sent before its own filled.
    let held = c.nodes[0].link(2).retained_bytes();
    assert!(
        (2_000..2 * 2_000 + 200).contains(&held),
        "the sequencer holds {held} bytes for n2"
    );
    // n2 resumes. No tick: the sequencer's letting go acks n1 at once.
    c.quiesce().unwrap();
    assert!(!c.nodes[0].link(1).acks_held());
    let full: Vec<_> = c.nodes.iter().filter_map(|n| n.full_link(0)).collect();
    crate::properties::writes_flow(&full).unwrap();
    let req = c.client(1, set("again"));
    c.quiesce().unwrap();
    assert_eq!(c.replies[1][&req], Reply::Ok);
}

/// A member whose connection to the sequencer breaks during a hold is told,
/// on reconnecting, where the hold began, so it keeps refusing writes and the
/// sequencer's buffer for a stopped member stays where it was. Told the true
/// count (`LeakyResume`), every reconnect takes another buffer's writes.
#[test]
fn a_reconnect_does_not_let_the_sequencers_hold_go() {
    let held_after = |bug: LinkBug| {
        let limits = Limits {
            link_buffer_bytes: 2_000,
            max_batch: 1,
            ..Limits::default()
        };
        let mut c = Cluster::from_nodes(
            (0..3)
                .map(|i| {
                    Node::new(i, 3, Mode::TotalSequencer)
                        .with_limits(limits)
                        .with_link_bug(bug)
                })
                .collect(),
        );
        let (mut held, mut violation) = (Vec::new(), None);
        // n2 is stopped; n1 writes until refused, then its connection to n0
        // breaks and comes back, three times.
        for round in 0..4 {
            for k in 0..1_000 {
                c.client(1, set(&format!("{round}.{k}")));
                while c.step(1, 0).unwrap() || c.step(0, 1).unwrap() {}
                if c.nodes[1].write_refusal().is_some() {
                    break;
                }
            }
            assert!(c.nodes[1].write_refusal().is_some(), "n1 never refused");
            held.push(c.nodes[0].link(2).retained_bytes());
            let leaks: Vec<_> = c.nodes[0].leaked_hold(&c.nodes[1]).into_iter().collect();
            violation = violation.or(crate::properties::acks_stay_held(&leaks).err());
            let down = Input::LinkDown {
                peer: 0,
                outgoing: true,
            };
            c.input(1, down).unwrap();
            let down = Input::LinkDown {
                peer: 1,
                outgoing: false,
            };
            c.input(0, down).unwrap();
            c.input(0, Input::InboundUp { peer: 1 }).unwrap();
            let delivered = c.nodes[0].link(1).resume_point();
            c.input(1, Input::LinkUp { peer: 0, delivered }).unwrap();
            while c.step(1, 0).unwrap() || c.step(0, 1).unwrap() {}
        }
        (held, violation)
    };
    let (held, violation) = held_after(LinkBug::None);
    assert_eq!(violation, None);
    assert!(
        held.windows(2).all(|w| w[1] == w[0]),
        "the sequencer's buffer for n2 grew with reconnects: {held:?}"
    );
    let (held, violation) = held_after(LinkBug::LeakyResume);
    assert_eq!(violation.expect("caught").property, "held acks stay held");
    assert!(
        held.windows(2).all(|w| w[1] > w[0]),
        "the broken variant grows a buffer per reconnect: {held:?}"
    );
}

/// A link that fills for a peer known to be down says so, rather than
/// "slow": writes wait for that peer to come back.
#[test]
fn a_full_link_to_an_unreachable_peer_says_how_long_it_has_been_down() {
    let mut c = small_buffers(Mode::Fifo);
    for outgoing in [true, false] {
        c.input(0, Input::LinkDown { peer: 2, outgoing }).unwrap();
    }
    c.input(0, Input::Tick { now: 5_500 }).unwrap();
    assert!(c.nodes[0].is_unreachable(2));
    while c.nodes[0].write_refusal().is_none() {
        c.client(0, set("a"));
        while c.step(0, 1).unwrap() || c.step(1, 0).unwrap() {}
    }
    let why = c.nodes[0].write_refusal().unwrap();
    assert!(
        why.starts_with("TRYAGAIN link to n2 holds")
            && why.ends_with(
                "n2 has been unreachable for 5.5 s; writes wait for it to come back; retry later"
            ),
        "{why}"
    );
}

/// Only the sequencer holds acks back: elsewhere a full link (here node 0's
/// to a stopped n2, under fifo) leaves the acks to others flowing, so no two
/// nodes can end up waiting on each other's.
#[test]
fn only_the_sequencer_holds_acks_back() {
    let mut c = small_buffers(Mode::Fifo);
    // n2 is stopped: n0 writes until its link to n2 is full.
    while c.nodes[0].write_refusal().is_none() {
        c.client(0, set("a"));
        while c.step(0, 1).unwrap() || c.step(1, 0).unwrap() {}
    }
    for k in 0..10 {
        c.client(1, set(&k.to_string()));
        while c.step(1, 0).unwrap() || c.step(0, 1).unwrap() {}
    }
    assert!(c.nodes[1].link(0).retained_bytes() > 0);
    c.input(0, Input::Tick { now: 1 }).unwrap();
    while c.step(0, 1).unwrap() {}
    assert_eq!(
        c.nodes[1].link(0).retained_bytes(),
        0,
        "n0 acked n1's frames"
    );
}

#[test]
fn a_replica_refuses_a_snapshot_beyond_its_bound_but_joins_its_peers() {
    let limits = Limits {
        max_snapshots: 1,
        ..Limits::default()
    };
    let mut c = cluster(2, Mode::Fifo, limits);
    let first = c.snapshot(0);
    // n0 is at its bound: its own start is refused, and changes nothing.
    let why = c.nodes[0].start_snapshot().unwrap_err();
    assert_eq!(
        why,
        format!("TRYAGAIN snapshot refused: 1 in progress here ({first}), the limit is 1; retry when one ends")
    );
    let before = c.nodes[0].clone();
    assert!(c.nodes[0].handle(Input::StartSnapshot).unwrap().is_empty());
    assert_eq!(c.nodes[0], before);
    // n1 starts its own, then n0's marker reaches it: at its bound too, it
    // takes part all the same (n0 would wait out its timeout otherwise).
    let second = c.snapshot(1);
    assert!(c.step(0, 1).unwrap());
    assert_eq!(c.nodes[1].snapshots_in_progress(), vec![first, second]);
    assert_eq!(c.nodes[1].own_snapshots_in_progress(), 1);
    assert!(c.nodes[1].snapshot_refusal().is_some());
    // Both complete, and then n0 may start again.
    c.quiesce().unwrap();
    assert!(c.completed(first).is_some() && c.completed(second).is_some());
    assert_eq!(c.nodes[0].snapshot_refusal(), None);
    assert_eq!(c.snapshot(0).seq, 2, "the refused start took no id");
}
