use super::*;
use stateright::{Checker, HasDiscoveries};

fn cfg(mode: Mode, nodes: usize, writes: u64, snapshots: usize) -> KvCfg {
    KvCfg {
        mode,
        nodes,
        writes,
        snapshots,
        channels: Channels::Ordered,
        broken: None,
        faults: Faults::default(),
        batch: 1,
    }
}

fn holds(c: KvCfg) -> usize {
    let checker = c.into_model().checker().spawn_bfs().join();
    checker.assert_properties();
    checker.unique_state_count()
}

/// Runs a broken variant; each of its `caught_by` property and `also` must
/// have a counterexample that the spec predicate itself explains.
fn catches(c: KvCfg, also: &[&'static str]) {
    let bug = c.broken.expect("a broken variant");
    let checker = c.into_model().checker().spawn_bfs().join();
    for property in [bug.caught_by()].iter().chain(also) {
        let path = checker
            .discovery(property)
            .unwrap_or_else(|| panic!("{bug:?} not caught by {property}"));
        let why = checker.model().why(property, path.last_state());
        assert!(
            why.is_some(),
            "{property}: the spec predicate must agree with the verdict: {path}"
        );
    }
}

// Counts since the link layer (issue 11) and the dead-ack reduction: a frame
// carries its link sequence number and a piggy-backed ack of the reverse
// channel, and a completed part is stored, acknowledged to the initiator and
// committed (two more messages per part). Without faults the acks are dead
// (`gsmo_spec::node::live`), so a write sent before or after its origin
// delivered the peer's write is one state again: 3 causal replicas are the
// causal multicast model's 690 (810 counting acks); 2 fifo replicas with a
// snapshot 1844 (2409 keeping committed parts, 3441 also counting acks).
#[test]
fn fifo_replicas_converge_and_restore() {
    assert_eq!(holds(cfg(Mode::Fifo, 2, 2, 1)), 1844);
}

#[test]
fn causal_replicas_converge_and_restore() {
    assert_eq!(holds(cfg(Mode::Causal, 2, 2, 1)), 1844);
}

#[test]
fn sequencer_replicas_converge_and_restore() {
    assert_eq!(holds(cfg(Mode::TotalSequencer, 2, 2, 1)), 6541);
}

#[test]
fn isis_replicas_converge_and_restore() {
    assert_eq!(holds(cfg(Mode::TotalIsis, 2, 2, 1)), 37498);
}

#[test]
fn three_causal_replicas_converge() {
    assert_eq!(holds(cfg(Mode::Causal, 3, 1, 0)), 690);
}

#[test]
fn delivery_order_without_total_order_diverges() {
    for mode in [Mode::Fifo, Mode::Causal] {
        let c = KvCfg {
            broken: Some(KvBug::DeliveryOrder),
            ..cfg(mode, 2, 1, 0)
        };
        let why = explain_violation(c, "convergence");
        assert!(why.contains("differ"), "{why}");
        // And what each replica holds, so the reader sees how they differ.
        assert!(
            why.contains("n0: x = ") && why.contains("n1: x = "),
            "{why}"
        );
    }
}

/// The model's explanation of the first violation of `property` it finds.
fn explain_violation(c: KvCfg, property: &'static str) -> String {
    let checker = c
        .into_model()
        .checker()
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let path = checker
        .discovery(property)
        .unwrap_or_else(|| panic!("{property} is never violated"));
    checker
        .model()
        .why(property, path.last_state())
        .expect("a violated property is explained")
}

#[test]
fn sequencer_without_waiting_diverges() {
    catches(
        KvCfg {
            broken: Some(KvBug::NoWait),
            ..cfg(Mode::TotalSequencer, 2, 1, 0)
        },
        &["convergence"],
    );
}

#[test]
fn isis_without_tie_break_diverges() {
    catches(
        KvCfg {
            broken: Some(KvBug::NoTieBreak),
            ..cfg(Mode::TotalIsis, 2, 1, 0)
        },
        &["convergence"],
    );
}

#[test]
fn snapshot_without_channel_recording_loses_writes() {
    for mode in [Mode::Causal, Mode::TotalSequencer] {
        let c = KvCfg {
            broken: Some(KvBug::NoChannelRecording),
            ..cfg(mode, 2, 1, 1)
        };
        let checker = c.into_model().checker().spawn_bfs().join();
        let path = checker
            .discovery("snapshot restores")
            .unwrap_or_else(|| panic!("{mode}: lost writes not caught"));
        let why = checker
            .model()
            .why("snapshot restores", path.last_state())
            .unwrap();
        assert!(why.contains("before the cut"), "{why}");
        // The cut itself is consistent: only restoring shows what is missing.
        checker.assert_no_discovery("consistent cut");
        checker.assert_no_discovery("convergence");
    }
}

#[test]
fn reordering_channels_break_the_restore() {
    catches(
        KvCfg {
            broken: Some(KvBug::Reordering),
            ..cfg(Mode::Causal, 2, 1, 1)
        },
        &[],
    );
}

fn disconnecting(mode: Mode, snapshots: usize) -> KvCfg {
    KvCfg {
        faults: Faults {
            disconnects: 1,
            ..Faults::default()
        },
        ..cfg(mode, 2, 1, snapshots)
    }
}

#[test]
fn the_link_layer_keeps_every_property_across_broken_connections() {
    assert_eq!(holds(disconnecting(Mode::TotalSequencer, 1)), 16_256);
    assert_eq!(holds(disconnecting(Mode::Causal, 0)), 340);
}

#[test]
fn without_the_link_layer_broken_connections_lose_writes() {
    catches(
        KvCfg {
            broken: Some(KvBug::NoLinkLayer),
            ..disconnecting(Mode::TotalSequencer, 1)
        },
        &["snapshot restores"],
    );
}

/// Links of one byte: any one frame fills a link, so writes are refused
/// (`TRYAGAIN`) and the sequencer holds its acks back whenever a frame of its
/// is unacked.
fn buffered(mode: Mode, nodes: usize, disconnects: usize) -> KvCfg {
    KvCfg {
        faults: Faults {
            disconnects,
            link_buffer: Some(1),
            ..Faults::default()
        },
        ..cfg(mode, nodes, 1, 0)
    }
}

/// Flow control refuses writes for a while, never for good: with nothing in
/// flight no link is full, the sequencer's held acks included (and it does
/// hold them: "acks held" is a `sometimes`).
#[test]
fn full_links_and_held_acks_drain_when_quiet() {
    assert_eq!(holds(buffered(Mode::TotalSequencer, 3, 0)), 1_737);
    assert_eq!(holds(buffered(Mode::Fifo, 3, 0)), 7_821);
}

/// An ack lost with a broken connection goes again when the next one is up,
/// not at the next tick: the models have no ticks here, so without that
/// "writes flow when quiet" fails (n0 loses its connection from n1 with n1's
/// ack on it, and refuses writes for good). (674 states before a hold kept
/// where it began, for a resume to tell.)
#[test]
fn an_ack_lost_with_a_connection_goes_on_the_next() {
    assert_eq!(holds(buffered(Mode::TotalSequencer, 2, 1)), 675);
}

/// A reconnect told the true resume point under the sequencer's hold lets a
/// member past it: in 7 steps, n1's write is numbered and relayed, n0's
/// connection from n1 breaks, and its resume acknowledges the write.
#[test]
fn a_leaky_resume_lets_a_member_past_the_hold() {
    for nodes in [2, 3] {
        catches(
            KvCfg {
                broken: Some(KvBug::LeakyResume),
                ..buffered(Mode::TotalSequencer, nodes, 1)
            },
            &[],
        );
    }
    let e = KvCfg {
        broken: Some(KvBug::LeakyResume),
        ..buffered(Mode::TotalSequencer, 2, 0)
    }
    .validate()
    .unwrap_err();
    assert!(e.contains("--disconnects 1"), "{e}");
    let e = KvCfg {
        broken: Some(KvBug::LeakyResume),
        ..buffered(Mode::Fifo, 2, 1)
    }
    .validate()
    .unwrap_err();
    assert!(
        e.contains("leaky-resume breaks the sequencer's ack hold"),
        "{e}"
    );
}

/// The sequencer lets its hold go without the acks it owes: a member whose
/// write arrived during the hold stays full.
#[test]
fn a_silent_release_leaves_a_member_refusing_writes() {
    catches(
        KvCfg {
            broken: Some(KvBug::SilentRelease),
            ..buffered(Mode::TotalSequencer, 3, 0)
        },
        &[],
    );
    let e = KvCfg {
        broken: Some(KvBug::SilentRelease),
        ..cfg(Mode::TotalSequencer, 3, 1, 0)
    }
    .validate()
    .unwrap_err();
    assert!(e.contains("--link-buffer"), "{e}");
}

#[test]
fn debit_only_transfer_is_caught_in_every_total_mode() {
    for mode in [Mode::TotalSequencer, Mode::TotalIsis] {
        let c = KvCfg {
            broken: Some(KvBug::DebitOnly),
            ..KvCfg::new(mode)
        };
        let why = explain_violation(c, "conservation");
        // The 2 the refused overdraft debited are gone (the shortest path to
        // it may also deliver the covered transfer: 0 and 0, or 1 and -1).
        assert!(
            why.contains("accounts hold 0, not 2: acct:"),
            "{mode}: {why}"
        );
    }
}

#[test]
fn unfinished_snapshots_and_unanswered_writes_fail_termination() {
    let c = KvCfg {
        channels: Channels::Lossy,
        ..cfg(Mode::TotalSequencer, 2, 1, 1)
    };
    let checker = c.into_model().checker().spawn_bfs().join();
    let path = checker.discovery("termination").expect("not terminated");
    let why = checker
        .model()
        .why("termination", path.last_state())
        .unwrap();
    assert!(why.contains("never"), "{why}");
}

#[test]
fn variants_of_other_modes_are_refused() {
    let bad = |mode, broken, snapshots| {
        KvCfg {
            broken: Some(broken),
            ..cfg(mode, 2, 1, snapshots)
        }
        .validate()
        .is_err()
    };
    assert!(bad(Mode::TotalIsis, KvBug::DeliveryOrder, 1));
    assert!(bad(Mode::TotalIsis, KvBug::NoWait, 1));
    assert!(bad(Mode::Causal, KvBug::NoTieBreak, 1));
    assert!(bad(Mode::Causal, KvBug::NoChannelRecording, 0));
    assert!(bad(Mode::Causal, KvBug::DebitOnly, 1));
    assert!(!bad(Mode::Causal, KvBug::DeliveryOrder, 0));
    let dup = KvCfg {
        channels: Channels::Duplicating,
        ..KvCfg::default()
    };
    assert!(dup.validate().is_err());
}

#[test]
fn random_walks_report_no_false_liveness_failures() {
    // stateright's simulation ends a walk one step outside the snapshot
    // bound and reports every eventually-property there; the verdict must
    // not take that for "nothing more can happen".
    let search = crate::verdict::Search {
        strategy: crate::verdict::Strategy::Simulation(1),
        timeout: Some(std::time::Duration::from_millis(300)),
        ..Default::default()
    };
    let v = crate::verdict::check(KvCfg::default().into_model(), &search);
    assert!(v.total_states > 0);
    assert!(v.passed(), "{:#?}", v.failures().collect::<Vec<_>>());
}

#[test]
fn restore_check_notices_a_dropped_channel_message() {
    // The restore property must be able to fail on a correct run's state:
    // drop a recorded in-flight write and the restore has to notice.
    let checker = cfg(Mode::Causal, 2, 1, 1)
        .into_model()
        .checker()
        .finish_when(HasDiscoveries::AnyOf(["write in flight recorded"].into()))
        .spawn_bfs()
        .join();
    let path = checker.discovery("write in flight recorded").unwrap();
    let s = path.last_state();
    let parts = &complete_snapshots(s)[0];
    assert!(restores(parts).is_ok());
    let mut doctored = parts.clone();
    for p in &mut doctored {
        for ch in &mut p.channels {
            ch.clear();
        }
    }
    assert!(restores(&doctored).is_err());
}

/// Counting states without acks is exact only below the ack thresholds, so a
/// fault-free run that could reach one is refused up front; with a fault the
/// acks are counted and the run is allowed.
#[test]
fn a_run_that_could_read_acks_is_refused_without_faults() {
    let big = cfg(Mode::Fifo, 2, 16, 0);
    let e = big.validate().unwrap_err();
    assert!(e.contains("64 frames") || e.contains("below 64"), "{e}");
    assert!(cfg(Mode::Fifo, 2, 15, 1).validate().is_ok(), "62 frames");
    let e = cfg(Mode::Fifo, 2, 15, 2).validate().unwrap_err();
    assert!(e.contains("could put 64 frames on one link"), "{e}");
    let counted = KvCfg {
        faults: Faults {
            disconnects: 1,
            ..Faults::default()
        },
        ..big
    };
    assert!(counted.validate().is_ok());
}

/// Termination, stated plainly and checked against `terminated_now` (which
/// finds the first gap lazily) in every state of two sequencer replicas with a
/// snapshot: a run has terminated when every write is issued and answered and
/// every snapshot started is complete at every replica (its part kept, or
/// committed and let go). States whose only gap is each kind are reached, so
/// each clause is judged, and the report names that gap.
#[test]
fn termination_waits_for_every_gap() {
    let model = cfg(Mode::TotalSequencer, 2, 2, 1).into_model();
    let mut only = BTreeSet::new();
    crate::walk::each_state(&model, |s, _| {
        let states = &s.actor_states;
        let unissued = states.iter().any(|a| a.issued < a.quota);
        let unanswered = states.iter().any(|a| a.node.pending_writes() > 0);
        let incomplete = states.iter().enumerate().any(|(i, a)| {
            (1..=a.snapshots_started as u64).any(|seq| {
                let id = SnapshotId { initiator: i, seq };
                states
                    .iter()
                    .any(|b| !b.parts.contains_key(&id) && !b.ghost.committed.contains(&id))
            })
        });
        let gaps = [unissued, unanswered, incomplete];
        assert_eq!(terminated_now(s), gaps == [false; 3], "{gaps:?}");
        if gaps.iter().filter(|&&g| g).count() == 1 {
            let report = terminated(s).unwrap_err().detail;
            let said = ["issued", "never answered", "never completed"];
            let k = gaps.iter().position(|&g| g).expect("one gap");
            assert!(report.contains(said[k]), "{gaps:?}: {report}");
            only.insert(k);
        }
    });
    assert_eq!(only, BTreeSet::from([0, 1, 2]), "each gap alone somewhere");
}
