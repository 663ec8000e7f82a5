use super::*;

type R = Recorder<&'static str, char>;

fn complete(
    effects: &[SnapshotEffect<&'static str, char>],
) -> Option<LocalSnapshot<&'static str, char>> {
    effects.iter().find_map(|e| match e {
        SnapshotEffect::Complete(s) => Some(s.clone()),
        _ => None,
    })
}

#[test]
fn a_part_stored_before_the_initiators_own_part_completes_still_counts() {
    // Initiator 0 of three: node 1 finishes and stores while 0 still
    // awaits node 2's marker.
    let mut r: R = Recorder::new(0, 3);
    let (id, _) = r.initiate("s");
    let summary = |node| PartSummary {
        node,
        ..PartSummary::default()
    };
    r.on_envelope(1, Envelope::Marker { id }, || "s").unwrap();
    let stored = Envelope::Stored {
        id,
        part: summary(1),
    };
    let (_, eff) = r.on_envelope(1, stored, || "s").unwrap();
    assert!(eff.is_empty());
    let (_, eff) = r.on_envelope(2, Envelope::Marker { id }, || "s").unwrap();
    assert!(complete(&eff).is_some());
    r.on_stored(id, Ok(summary(0)));
    assert_eq!(r.waiting_on(id), vec![2], "node 1's early part counted");
    let stored = Envelope::Stored {
        id,
        part: summary(2),
    };
    let (_, eff) = r.on_envelope(2, stored, || "s").unwrap();
    assert!(
        eff.iter()
            .any(|e| matches!(e, SnapshotEffect::Committed { .. })),
        "{eff:?}"
    );
}

#[test]
fn two_concurrent_snapshots_record_independently() {
    // Node 1 of three. Snapshot A (from node 0) and B (from node 2) overlap.
    let mut r: R = Recorder::new(1, 3);
    let a = SnapshotId {
        initiator: 0,
        seq: 1,
    };
    let b = SnapshotId {
        initiator: 2,
        seq: 1,
    };

    let (m, eff) = r
        .on_envelope(0, Envelope::Marker { id: a }, || "s-at-a")
        .unwrap();
    assert!(m.is_none());
    assert_eq!(
        eff,
        vec![
            SnapshotEffect::Recorded { id: a },
            SnapshotEffect::Send {
                to: 0,
                envelope: Envelope::Marker { id: a }
            },
            SnapshotEffect::Send {
                to: 2,
                envelope: Envelope::Marker { id: a }
            },
        ]
    );
    // 'x' from node 2 is in flight for A (channel 2->1 still open for A).
    let (m, eff) = r
        .on_envelope(2, Envelope::Msg { seq: 1, body: 'x' }, || unreachable!())
        .unwrap();
    assert_eq!(m, Some('x'));
    assert!(eff.is_empty());
    assert_eq!(r.in_flight_so_far().collect::<Vec<_>>(), [&'x']);
    // B's first marker arrives from node 2: records B, closes 2->1 for B only.
    let (_, eff) = r
        .on_envelope(2, Envelope::Marker { id: b }, || "s-at-b")
        .unwrap();
    assert!(eff.contains(&SnapshotEffect::Recorded { id: b }));
    // 'y' from node 0: A has closed 0->1, B is still recording it.
    r.on_envelope(0, Envelope::Msg { seq: 1, body: 'y' }, || unreachable!())
        .unwrap();
    assert_eq!(r.in_flight_so_far().collect::<Vec<_>>(), [&'x', &'y']);
    // A's marker from node 2 completes A.
    let (_, eff) = r
        .on_envelope(2, Envelope::Marker { id: a }, || unreachable!())
        .unwrap();
    let part_a = complete(&eff).expect("A complete");
    assert_eq!(part_a.state, "s-at-a");
    assert_eq!(part_a.channels, vec![vec![], vec![], vec![(1, 'x')]]);
    assert_eq!(part_a.received, vec![0, 0, 0]);
    // A complete records nothing more; what B recorded so far remains.
    assert_eq!(r.in_flight_so_far().collect::<Vec<_>>(), [&'y']);
    // B's marker from node 0 completes B.
    let (_, eff) = r
        .on_envelope(0, Envelope::Marker { id: b }, || unreachable!())
        .unwrap();
    let part_b = complete(&eff).expect("B complete");
    assert_eq!(part_b.state, "s-at-b");
    assert_eq!(part_b.channels, vec![vec![(1, 'y')], vec![], vec![]]);
    assert_eq!(part_b.received, vec![0, 0, 1]);
    assert_eq!(r.in_flight_so_far().count(), 0);
    assert_eq!(
        r.in_progress().count(),
        2,
        "both parts await their verdicts"
    );
}

#[test]
fn initiator_counts_sends_and_a_lone_node_completes_at_once() {
    let mut r: R = Recorder::new(0, 2);
    assert_eq!(r.wrap(1, 'a'), Envelope::Msg { seq: 1, body: 'a' });
    let (id, eff) = r.initiate("s");
    assert_eq!(
        id,
        SnapshotId {
            initiator: 0,
            seq: 1
        }
    );
    assert!(complete(&eff).is_none());
    let (_, eff) = r
        .on_envelope(1, Envelope::Marker { id }, || unreachable!())
        .unwrap();
    assert_eq!(complete(&eff).unwrap().sent, vec![0, 1]);

    let mut lone: R = Recorder::new(0, 1);
    let (_, eff) = lone.initiate("s");
    assert!(complete(&eff).is_some());
}

#[test]
fn out_of_order_channel_is_refused_and_aborted_ids_stay_dead() {
    let mut r: R = Recorder::new(1, 2);
    let err = r
        .on_envelope(0, Envelope::Msg { seq: 2, body: 'z' }, || "s")
        .unwrap_err();
    assert_eq!(
        err,
        ChannelError::OutOfOrder {
            from: 0,
            expected: 1,
            got: 2
        }
    );
    let id = SnapshotId {
        initiator: 0,
        seq: 9,
    };
    assert_eq!(
        r.abort(id, AbortReason::Operator).len(),
        2,
        "told n0, ended here"
    );
    let (_, eff) = r.on_envelope(0, Envelope::Marker { id }, || "s").unwrap();
    assert!(
        eff.is_empty(),
        "a marker for an aborted snapshot must not restart it"
    );
}

#[test]
fn broken_variant_forgets_channel_contents() {
    let mut r: R = Recorder::new(1, 2).without_channel_recording();
    let (id, _) = r.initiate("s");
    r.on_envelope(0, Envelope::Msg { seq: 1, body: 'q' }, || unreachable!())
        .unwrap();
    let (_, eff) = r
        .on_envelope(0, Envelope::Marker { id }, || unreachable!())
        .unwrap();
    assert_eq!(complete(&eff).unwrap().channels, vec![vec![], vec![]]);
}

fn sends(effects: &[SnapshotEffect<&'static str, char>]) -> Vec<(NodeId, Envelope<char>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            SnapshotEffect::Send { to, envelope } => Some((*to, envelope.clone())),
            _ => None,
        })
        .collect()
}

fn summary(node: NodeId) -> PartSummary {
    PartSummary {
        node,
        ..PartSummary::default()
    }
}

/// Two nodes; n0 initiates, both parts complete. Returns (n0, n1, id).
fn both_parts_complete() -> (R, R, SnapshotId) {
    let mut a: R = Recorder::new(0, 2).with_timeout(100);
    let mut b: R = Recorder::new(1, 2).with_timeout(100);
    let (id, _) = a.initiate("a");
    let (_, eff) = b.on_envelope(0, Envelope::Marker { id }, || "b").unwrap();
    assert!(complete(&eff).is_some(), "n1 heard n0's marker: done");
    let (_, eff) = a
        .on_envelope(1, Envelope::Marker { id }, || unreachable!())
        .unwrap();
    assert!(complete(&eff).is_some());
    (a, b, id)
}

#[test]
fn the_initiator_commits_once_every_part_is_stored() {
    let (mut a, mut b, id) = both_parts_complete();
    assert!(
        a.on_stored(id, Ok(summary(0))).is_empty(),
        "n1's part missing"
    );
    assert_eq!(a.waiting_on(id), vec![1]);
    let eff = b.on_stored(id, Ok(summary(1)));
    let [(0, ack)] = &sends(&eff)[..] else {
        panic!("n1 acknowledges to the initiator: {eff:?}")
    };
    assert_eq!(b.waiting_on(id), vec![0], "n1 awaits the verdict");
    let (_, eff) = a.on_envelope(1, ack.clone(), || unreachable!()).unwrap();
    let parts = vec![summary(0), summary(1)];
    assert!(eff.contains(&SnapshotEffect::Committed {
        id,
        parts: parts.clone()
    }));
    let [(1, verdict)] = &sends(&eff)[..] else {
        panic!("the verdict goes to n1")
    };
    let (_, eff) = b
        .on_envelope(0, verdict.clone(), || unreachable!())
        .unwrap();
    assert_eq!(eff, vec![SnapshotEffect::Committed { id, parts }]);
    assert_eq!(a.in_progress().count() + b.in_progress().count(), 0);
    // Too late to abort: nothing happens.
    assert!(a.abort(id, AbortReason::Operator).is_empty());
}

#[test]
fn a_store_failure_aborts_everywhere_and_a_late_part_is_dropped() {
    let (mut a, mut b, id) = both_parts_complete();
    let eff = b.on_stored(id, Err("No space left on device".into()));
    let reason = AbortReason::StoreFailed {
        error: "No space left on device".into(),
    };
    assert!(eff.contains(&SnapshotEffect::Aborted {
        id,
        by: 1,
        reason: reason.clone()
    }));
    let [(0, abort)] = &sends(&eff)[..] else {
        panic!("the abort goes to n0")
    };
    let (_, eff) = a.on_envelope(1, abort.clone(), || unreachable!()).unwrap();
    assert_eq!(eff, vec![SnapshotEffect::Aborted { id, by: 1, reason }]);
    // n0's own part finishes storing after the abort: it is deleted, not acknowledged.
    assert_eq!(
        a.on_stored(id, Ok(summary(0))),
        vec![SnapshotEffect::DropPart { id }]
    );
    assert_eq!(a.in_progress().count(), 0);
}

#[test]
fn a_timeout_names_whom_it_waited_for() {
    let mut a: R = Recorder::new(0, 3).with_timeout(100);
    let (id, _) = a.initiate("a");
    assert!(a.on_tick(99).is_empty());
    let eff = a.on_tick(100);
    let reason = AbortReason::TimedOut {
        after_ms: 100,
        waiting_on: vec![1, 2],
    };
    assert_eq!(
        reason.to_string(),
        "timed out after 0.1 s waiting for n1,n2"
    );
    assert!(eff.contains(&SnapshotEffect::Aborted { id, by: 0, reason }));
    assert_eq!(sends(&eff).len(), 2, "both peers are told");
}

#[test]
fn an_acknowledged_part_waits_for_the_verdict_unless_the_initiator_is_gone() {
    let (_, mut b, id) = both_parts_complete();
    b.on_stored(id, Ok(summary(1)));
    assert!(b.on_tick(1_000).is_empty(), "n1 may no longer decide");
    assert!(b.abort(id, AbortReason::Operator).is_empty());
    let eff = b.on_unreachable(0);
    assert_eq!(
        eff,
        vec![SnapshotEffect::Aborted {
            id,
            by: 1,
            reason: AbortReason::Unreachable { peer: 0 }
        }],
        "ends locally, tells nobody"
    );
}

/// n1 of two takes n0's marker for `id`: its only channel is closed by it,
/// so its part is complete at once.
/// Snapshot `seq` of initiator n0, the one the bounded-memory tests use.
fn id(seq: u64) -> SnapshotId {
    SnapshotId { initiator: 0, seq }
}

fn record_at_once(r: &mut R, id: SnapshotId) {
    let (_, eff) = r.on_envelope(0, Envelope::Marker { id }, || "s").unwrap();
    assert!(complete(&eff).is_some());
}

/// n1 of two records `id`, stores its part and hears n0 commit it.
fn commit_at_once(r: &mut R, id: SnapshotId) {
    record_at_once(r, id);
    r.on_stored(id, Ok(summary(1)));
    let verdict = Envelope::Committed {
        id,
        parts: vec![summary(0), summary(1)],
    };
    r.on_envelope(0, verdict, || unreachable!()).unwrap();
}

#[test]
fn verdicts_are_remembered_in_bounded_memory_and_old_ids_stay_finished() {
    // n1 of two: n0's snapshots 1..=K+10 are aborted here, and one committed.
    let mut r: R = Recorder::new(1, 2);
    let k = REMEMBERED_PER_INITIATOR as u64;
    for seq in 1..=k + 10 {
        record_at_once(&mut r, id(seq));
        if seq == 5 {
            r.on_stored(id(seq), Ok(summary(1)));
            let verdict = Envelope::Committed {
                id: id(seq),
                parts: vec![summary(0), summary(1)],
            };
            r.on_envelope(0, verdict, || unreachable!()).unwrap();
            assert_eq!(r.finished(id(seq)), Some(Outcome::Committed));
        } else {
            assert_eq!(r.abort(id(seq), AbortReason::Operator).len(), 2);
        }
    }
    assert_eq!(r.outcomes_remembered(), REMEMBERED_PER_INITIATOR);
    assert_eq!(r.finished(id(k + 10)), Some(Outcome::Aborted));
    assert_eq!(r.finished(id(5)), Some(Outcome::Forgotten));
    assert_eq!(r.finished(id(10)), Some(Outcome::Forgotten));
    assert_eq!(
        r.finished(id(11)),
        Some(Outcome::Aborted),
        "the 64 newest kept"
    );
    assert_eq!(r.finished(id(k + 11)), None, "not heard of yet");
    // A forgotten id is finished: its late marker starts nothing, a late abort
    // does not undo it (it may have committed: 5 did), a late part is dropped.
    let (_, eff) = r
        .on_envelope(0, Envelope::Marker { id: id(5) }, || "s")
        .unwrap();
    assert!(eff.is_empty(), "{eff:?}");
    let abort = Envelope::Abort {
        id: id(5),
        by: 0,
        reason: AbortReason::Operator,
    };
    let (_, eff) = r.on_envelope(0, abort, || unreachable!()).unwrap();
    assert!(eff.is_empty(), "{eff:?}");
    assert!(r.abort(id(3), AbortReason::Operator).is_empty());
    assert_eq!(
        r.on_stored(id(3), Ok(summary(1))),
        vec![SnapshotEffect::DropPart { id: id(3) }]
    );
    // Another initiator's verdicts have their own budget.
    let other = SnapshotId {
        initiator: 1,
        seq: 1,
    };
    let (_, eff) = r.initiate("s");
    assert!(!eff.is_empty());
    r.abort(other, AbortReason::Operator);
    assert_eq!(r.outcomes_remembered(), REMEMBERED_PER_INITIATOR + 1);
}

/// The budget counts committed and aborted verdicts together, whichever
/// there are: a run of commits alone is bounded too.
#[test]
fn a_run_of_commits_is_remembered_in_the_same_bounded_memory() {
    let mut r: R = Recorder::new(1, 2);
    let k = REMEMBERED_PER_INITIATOR as u64;
    for seq in 1..=k + 3 {
        commit_at_once(&mut r, id(seq));
        assert!(r.outcomes_remembered() <= REMEMBERED_PER_INITIATOR);
    }
    assert_eq!(r.outcomes_remembered(), REMEMBERED_PER_INITIATOR);
    assert_eq!(r.finished(id(3)), Some(Outcome::Forgotten));
    assert_eq!(r.finished(id(4)), Some(Outcome::Committed));
    assert_eq!(r.finished(id(k + 3)), Some(Outcome::Committed));
}

/// Forgetting is by a floor per initiator: ids below the oldest verdict kept.
/// An id at the floor that never had a verdict here (its markers never came)
/// is unknown, not forgotten.
#[test]
fn only_ids_below_the_oldest_verdict_kept_are_forgotten() {
    let mut r: R = Recorder::new(1, 2);
    let k = REMEMBERED_PER_INITIATOR as u64;
    for seq in (1..=k + 4).filter(|&seq| seq != 4) {
        commit_at_once(&mut r, id(seq));
    }
    assert_eq!(r.finished(id(3)), Some(Outcome::Forgotten));
    assert_eq!(r.finished(id(4)), None);
    assert_eq!(r.finished(id(5)), Some(Outcome::Committed));
}

/// n1 of two records n0's snapshot 1 (its part not yet stored), then commits
/// n0's snapshots 2..=K+3, whose verdicts push the forgetting floor past 1.
fn record_one_then_commit_past_it(r: &mut R) {
    record_at_once(r, id(1));
    for seq in 2..=REMEMBERED_PER_INITIATOR as u64 + 3 {
        commit_at_once(r, id(seq));
    }
}

/// n1 of two: n0's snapshot 1 is recorded here but not yet stored while
/// snapshots 2..=K+3 of the same initiator finish, which pushes the forgetting
/// floor past 1. Snapshot 1 is still in progress, not forgotten, and its
/// verdict, when it comes, still ends it (it was dropped, leaving the id in
/// progress for ever).
#[test]
fn an_old_snapshot_still_in_progress_below_the_forgetting_floor_still_ends() {
    let mut r: R = Recorder::new(1, 2);
    record_one_then_commit_past_it(&mut r);
    assert_eq!(r.finished(id(2)), Some(Outcome::Forgotten), "floor past 1");
    assert_eq!(r.finished(id(1)), None, "still in progress");
    assert_eq!(r.in_progress().collect::<Vec<_>>(), vec![id(1)]);
    r.on_stored(id(1), Ok(summary(1)));
    let parts = vec![summary(0), summary(1)];
    let verdict = Envelope::Committed {
        id: id(1),
        parts: parts.clone(),
    };
    let (_, eff) = r.on_envelope(0, verdict, || unreachable!()).unwrap();
    assert_eq!(eff, vec![SnapshotEffect::Committed { id: id(1), parts }]);
    assert_eq!(r.in_progress().count(), 0);
    assert_eq!(r.finished(id(1)), Some(Outcome::Forgotten));
    assert_eq!(r.outcomes_remembered(), REMEMBERED_PER_INITIATOR);
}

/// The same, ended by a timeout: it aborts once, not again at every tick.
#[test]
fn an_old_snapshot_below_the_forgetting_floor_times_out_once() {
    let mut r: R = Recorder::new(1, 2).with_timeout(10);
    record_one_then_commit_past_it(&mut r);
    let eff = r.on_tick(10);
    assert!(
        eff.iter()
            .any(|e| matches!(e, SnapshotEffect::Aborted { id: a, .. } if *a == id(1))),
        "{eff:?}"
    );
    assert_eq!(r.in_progress().count(), 0);
    assert_eq!(r.on_tick(20), vec![], "aborted once");
}

#[test]
fn a_recorder_is_quiet_towards_a_peer_it_owes_no_report_or_commit() {
    let summary = |node| PartSummary {
        node,
        ..PartSummary::default()
    };
    // Node 1 of three, in node 0's snapshot: it owes 0 its `Stored` report
    // until its part is stored, and owes node 2 nothing.
    let mut r: R = Recorder::new(1, 3);
    let id = SnapshotId {
        initiator: 0,
        seq: 1,
    };
    assert!(r.quiet_towards(0) && r.quiet_towards(2));
    r.on_envelope(0, Envelope::Marker { id }, || "s").unwrap();
    assert!(!r.quiet_towards(0), "recording: the report is to come");
    assert!(r.quiet_towards(2));
    let (_, eff) = r.on_envelope(2, Envelope::Marker { id }, || "s").unwrap();
    assert!(complete(&eff).is_some());
    assert!(!r.quiet_towards(0), "complete, not yet stored");
    let eff = r.on_stored(id, Ok(summary(1)));
    assert!(matches!(
        &eff[..],
        [SnapshotEffect::Send {
            to: 0,
            envelope: Envelope::Stored { .. }
        }]
    ));
    assert!(
        r.quiet_towards(0),
        "reported: only the commit is to come, which sends nothing"
    );

    // Initiator 0 owes everyone its commit until it has every part.
    let mut r: R = Recorder::new(0, 3);
    let (id, _) = r.initiate("s");
    for peer in [1, 2] {
        r.on_envelope(peer, Envelope::Marker { id }, || "s")
            .unwrap();
    }
    r.on_stored(id, Ok(summary(0)));
    r.on_envelope(
        1,
        Envelope::Stored {
            id,
            part: summary(1),
        },
        || "s",
    )
    .unwrap();
    assert!(
        !r.quiet_towards(1) && !r.quiet_towards(2),
        "the commit is to come"
    );
    let (_, eff) = r
        .on_envelope(
            2,
            Envelope::Stored {
                id,
                part: summary(2),
            },
            || "s",
        )
        .unwrap();
    assert_eq!(
        eff.iter()
            .filter(|e| matches!(
                e,
                SnapshotEffect::Send {
                    envelope: Envelope::Committed { .. },
                    ..
                }
            ))
            .count(),
        2
    );
    assert!(r.quiet_towards(1) && r.quiet_towards(2));
}

/// A recorder copied mid-snapshot shares its recorded state, which still
/// compares and hashes by content.
#[test]
fn a_copied_recorder_shares_the_recorded_state_and_hashes_it_by_content() {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = |r: &R| BuildHasherDefault::<DefaultHasher>::default().hash_one(r);
    let mut a: R = Recorder::new(1, 3);
    let mut b: R = Recorder::new(1, 3);
    let id = SnapshotId {
        initiator: 0,
        seq: 1,
    };
    a.on_envelope(0, Envelope::Marker { id }, || "s").unwrap();
    b.on_envelope(0, Envelope::Marker { id }, || "s").unwrap();
    // Recorded apart, alike: equal, and hashed alike.
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
    let copy = a.clone();
    assert!(Arc::ptr_eq(
        &a.active[&id].state.0,
        &copy.active[&id].state.0
    ));
    let mut c: R = Recorder::new(1, 3);
    let other = SnapshotId {
        initiator: 0,
        seq: 2,
    };
    c.on_envelope(0, Envelope::Marker { id: other }, || "s")
        .unwrap();
    let mut d: R = Recorder::new(1, 3);
    d.on_envelope(0, Envelope::Marker { id }, || "t").unwrap();
    assert_ne!(a, d, "another recorded state");
    assert_ne!(hash(&a), hash(&d));
    assert_ne!(hash(&a), hash(&c));
}
