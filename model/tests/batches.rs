//! The kv model with batches of one and two writes: a replica may flush after
//! each write or let two share one multicast. Every property of the replica
//! still holds, and the broken variants are still caught through batches.

use gsmo_model::kv::{KvBug, KvCfg};
use gsmo_spec::multicast::Mode;
use stateright::{Checker, Model};

fn batched(mode: Mode, writes: u64) -> KvCfg {
    KvCfg {
        writes,
        snapshots: 0,
        batch: 2,
        ..KvCfg::new(mode)
    }
}

fn holds(c: KvCfg) -> usize {
    let checker = c.into_model().checker().spawn_bfs().join();
    checker.assert_properties();
    checker.unique_state_count()
}

#[test]
fn batches_keep_every_property_in_every_mode() {
    // fifo/causal need 3 writes: two blind SETs share a batch, the TRANSFER
    // (a read-modify-write) flushes them first.
    assert_eq!(holds(batched(Mode::Fifo, 3)), 4443);
    assert_eq!(holds(batched(Mode::Causal, 3)), 4443);
    assert_eq!(holds(batched(Mode::TotalSequencer, 2)), 1110);
    assert_eq!(holds(batched(Mode::TotalIsis, 2)), 3943);
}

#[test]
fn broken_variants_are_caught_through_batches() {
    let cases = [
        (Mode::Causal, 3, KvBug::DeliveryOrder),
        (Mode::Fifo, 3, KvBug::DeliveryOrder),
        (Mode::TotalSequencer, 2, KvBug::NoWait),
        (Mode::TotalIsis, 2, KvBug::NoTieBreak),
        (Mode::TotalSequencer, 2, KvBug::DebitOnly),
    ];
    for (mode, writes, bug) in cases {
        let c = KvCfg {
            broken: Some(bug),
            ..batched(mode, writes)
        };
        let checker = c.into_model().checker().spawn_bfs().join();
        assert!(
            checker.discovery(bug.caught_by()).is_some(),
            "{mode} {bug:?} not caught by {} with batches",
            bug.caught_by()
        );
    }
}
