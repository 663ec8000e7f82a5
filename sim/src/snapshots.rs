//! How each node ended each snapshot, read from its trace (the outputs its
//! spec node produced), so termination is judged on what the nodes decided
//! rather than on what `INFO` still lists: every snapshot a live node took
//! part in ends there, committed or aborted, never both; and no two nodes
//! decide differently, unless the initiator crashed (its commit may reach
//! some nodes only, as the model's `abort` checker allows).

use gsmo_spec::node::Output;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::trace::Trace;
use std::collections::BTreeMap;

/// A node's end of one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Recorded, not ended (yet).
    Open,
    Committed,
    Aborted,
    Both,
}

/// How the snapshots of a run ended among the live nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Committed at some live node.
    pub committed: u64,
    /// Aborted and committed at none.
    pub aborted: u64,
}

/// Tallies the snapshots the live nodes (`live[i]`) ended: a run whose
/// snapshots all abort (a part never stored, say) breaks no safety rule, so
/// the sweep asks for commits by this count.
pub fn tally(all: &[BTreeMap<SnapshotId, End>], live: &[bool]) -> Tally {
    let mut ended: BTreeMap<SnapshotId, bool> = BTreeMap::new();
    for (ends, _) in all.iter().zip(live).filter(|(_, &l)| l) {
        for (id, end) in ends {
            let committed = matches!(end, End::Committed | End::Both);
            if committed || *end == End::Aborted {
                *ended.entry(*id).or_default() |= committed;
            }
        }
    }
    let committed = ended.values().filter(|&&c| c).count() as u64;
    Tally {
        committed,
        aborted: ended.len() as u64 - committed,
    }
}

/// Every snapshot `trace`'s node recorded or ended, and how it ended it.
pub fn ends(trace: &Trace) -> BTreeMap<SnapshotId, End> {
    let mut ends = BTreeMap::new();
    for o in trace.steps.iter().flat_map(|s| &s.outputs) {
        let (id, to) = match o {
            Output::SnapshotRecorded { id } => (*id, End::Open),
            Output::SnapshotCommitted { id, .. } => (*id, End::Committed),
            Output::SnapshotAborted { id, .. } => (*id, End::Aborted),
            _ => continue,
        };
        let e = ends.entry(id).or_insert(to);
        *e = match (*e, to) {
            (End::Open, to) | (to, End::Open) => to,
            (a, b) if a == b => a,
            _ => End::Both,
        };
    }
    ends
}

/// Violations among the live nodes' ends (`live[i]`: node `i` did not
/// crash); `settled`: the run settled, so an open snapshot is one that never ends.
pub fn judge(
    all: &[BTreeMap<SnapshotId, End>],
    live: &[bool],
    crashed: Option<usize>,
    settled: bool,
) -> Vec<String> {
    let mut v = Vec::new();
    let mut decided: BTreeMap<SnapshotId, Vec<(usize, End)>> = BTreeMap::new();
    for (i, ends) in all.iter().enumerate().filter(|(i, _)| live[*i]) {
        for (id, end) in ends {
            match end {
                End::Both => v.push(format!("snapshot {id}: n{i} both committed and aborted it")),
                End::Open if settled => v.push(format!("snapshot {id}: n{i} never ended it")),
                End::Open => {}
                e => decided.entry(*id).or_default().push((i, *e)),
            }
        }
    }
    for (id, d) in decided {
        let by = |want| d.iter().find(|(_, e)| *e == want).map(|(i, _)| *i);
        if let (Some(c), Some(a)) = (by(End::Committed), by(End::Aborted)) {
            if crashed != Some(id.initiator) {
                v.push(format!("snapshot {id}: n{c} committed it, n{a} aborted it"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(initiator: usize) -> SnapshotId {
        SnapshotId { initiator, seq: 1 }
    }

    #[test]
    fn disagreeing_or_unended_snapshots_are_caught() {
        let of = |e: &[(SnapshotId, End)]| e.iter().copied().collect::<BTreeMap<_, _>>();
        let live = [true, true, false];
        let agree = [
            of(&[(id(0), End::Committed)]),
            of(&[(id(0), End::Committed)]),
            of(&[]),
        ];
        assert!(judge(&agree, &live, Some(2), true).is_empty());
        let split = [
            of(&[(id(0), End::Committed)]),
            of(&[(id(0), End::Aborted)]),
            of(&[]),
        ];
        assert_eq!(judge(&split, &live, Some(2), true).len(), 1);
        // Split by the crash of its initiator: allowed.
        let split2 = [
            of(&[(id(2), End::Committed)]),
            of(&[(id(2), End::Aborted)]),
            of(&[(id(2), End::Open)]),
        ];
        assert!(judge(&split2, &live, Some(2), true).is_empty());
        let open = [of(&[(id(1), End::Open)]), of(&[]), of(&[])];
        assert_eq!(judge(&open, &live, None, true).len(), 1);
        assert!(judge(&open, &live, None, false).is_empty());
        let both = [of(&[(id(1), End::Both)]), of(&[]), of(&[])];
        assert_eq!(judge(&both, &live, None, false).len(), 1);
    }
}
