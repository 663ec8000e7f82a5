//! The verdicts a recorder has seen (aborted, committed), kept in bounded memory.
//!
//! A verdict must outlive its snapshot: a late marker of an aborted id must not
//! start it afresh, and a late abort must not undo what a committed id wrote.
//! Kept for ever, that memory grows by one id per snapshot, and a node that
//! snapshots every second would carry millions. So each initiator's newest
//! [`REMEMBERED_PER_INITIATOR`] verdicts are kept exactly and older ids of that
//! initiator count as *finished, outcome forgotten*: a marker for one is
//! ignored (like any finished id's), an abort does not undo it (it may have
//! committed), and a part stored for it is dropped (a committed snapshot's parts
//! were all stored before its commit, so only an aborted one can still be
//! storing). Ids are evicted by count, not by a contiguous floor, because an
//! initiator's sequence jumps after a restore.

use super::SnapshotId;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Verdicts remembered exactly per initiator. The models take at most a
/// handful of snapshots, so they never reach it and their state counts do not
/// depend on it.
pub const REMEMBERED_PER_INITIATOR: usize = 64;

/// How a finished snapshot ended, as far as this node remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Aborted,
    Committed,
    /// Finished long enough ago that only the fact is kept.
    Forgotten,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Outcomes {
    aborted: BTreeSet<SnapshotId>,
    committed: BTreeSet<SnapshotId>,
    /// Per initiator: every id of it with a lower seq that is not in progress
    /// is finished (evicted from the two sets above).
    #[serde(default)]
    forgotten_below: BTreeMap<NodeId, u64>,
}

impl Outcomes {
    /// The verdict on `id`, if it has one. The caller rules out ids in progress
    /// (an old id may still be running while newer ones of its initiator finished).
    pub(super) fn of(&self, id: SnapshotId) -> Option<Outcome> {
        if self.aborted.contains(&id) {
            Some(Outcome::Aborted)
        } else if self.committed.contains(&id) {
            Some(Outcome::Committed)
        } else if self
            .forgotten_below
            .get(&id.initiator)
            .is_some_and(|&floor| id.seq < floor)
        {
            Some(Outcome::Forgotten)
        } else {
            None
        }
    }

    /// Records `id`'s verdict. The caller (the recorder's `settle`) rules out
    /// ids already finished, but not every id below the floor: one still in
    /// progress when newer ids of its initiator finished must still end, and is
    /// forgotten at once (it is its initiator's oldest).
    pub(super) fn insert(&mut self, id: SnapshotId, outcome: Outcome) {
        match outcome {
            Outcome::Aborted => self.aborted.insert(id),
            Outcome::Committed => self.committed.insert(id),
            Outcome::Forgotten => unreachable!("a verdict is never recorded as forgotten"),
        };
        self.evict(id.initiator);
    }

    /// Verdicts held exactly (the INFO field `snapshot_outcomes_remembered`).
    pub(super) fn remembered(&self) -> usize {
        self.aborted.len() + self.committed.len()
    }

    fn evict(&mut self, initiator: NodeId) {
        let of_initiator = |s: &BTreeSet<SnapshotId>| {
            s.range(
                SnapshotId { initiator, seq: 0 }..=SnapshotId {
                    initiator,
                    seq: u64::MAX,
                },
            )
            .count()
        };
        while of_initiator(&self.aborted) + of_initiator(&self.committed) > REMEMBERED_PER_INITIATOR
        {
            let oldest = |s: &BTreeSet<SnapshotId>| {
                s.range(SnapshotId { initiator, seq: 0 }..)
                    .next()
                    .copied()
                    .filter(|id| id.initiator == initiator)
            };
            let victim = match (oldest(&self.aborted), oldest(&self.committed)) {
                (Some(a), Some(c)) => a.min(c),
                (Some(a), None) => a,
                (None, Some(c)) => c,
                (None, None) => unreachable!("counted above"),
            };
            self.aborted.remove(&victim);
            self.committed.remove(&victim);
            let floor = self.forgotten_below.entry(initiator).or_insert(0);
            *floor = (*floor).max(victim.seq + 1);
        }
    }
}
