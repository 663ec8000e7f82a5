//! The snapshot abort policy ([`gsmo_spec::snapshot`]'s header: parts
//! acknowledged to the initiator, which alone commits, as in Flink's checkpoint
//! coordinator; aborts on timeout, unreachable peer, store failure), and the
//! promise that no client hangs, model checked over the K/V replica ([`Replica`])
//! with a crashing replica, a clock and a failing disk ([`crate::faults`]).
//!
//! Always:
//! * **commit xor abort**: no snapshot is committed at one replica and aborted
//!   at another, unless its initiator crashed (the one exception the spec
//!   documents: the initiator may commit and die before its verdict reaches
//!   everyone, who then abort on their own). Connections here come back at
//!   once, so a live initiator is never unreachable;
//! * **aborted leaves no part**: no replica keeps a part of a snapshot it
//!   aborted, and once quiet, every part on a disk is committed there;
//! * **convergence** and **integrity**, as in the kv model.
//!
//! Once quiet (nothing in flight and no live replica waits for a timer, a
//! state every path reaches because the budgets and timeouts are finite; an
//! `always` on it is sound whatever the cycles):
//! * **snapshots end**: every snapshot recorded anywhere is committed or
//!   aborted at every live replica;
//! * **writes answered**: every client write at a live replica was answered
//!   (a value, or an error such as `TIMEOUT` or `CLUSTERDOWN`).
//!
//! Broken variants are runtimes that do their duties wrongly ([`AdapterBug`]).

use crate::adapter::Channels;
use crate::faults::{AdapterBug, Fault, Faults};
use crate::kv::{self, Bugs, KvCfg, Replica};
use crate::verdict::Explained;
use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::integrity;
use gsmo_spec::snapshot::SnapshotId;
use stateright::actor::{ActorModel, ActorModelState};
use stateright::{Expectation, Model};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The abort model's configuration.
#[derive(Clone, Debug)]
pub struct AbortCfg {
    pub mode: Mode,
    pub nodes: usize,
    /// Client writes each replica issues.
    pub writes: u64,
    /// Snapshots started in all.
    pub snapshots: usize,
    /// Whether one replica may crash.
    pub crash: bool,
    /// Whether each replica's disk may refuse one part.
    pub store_failures: bool,
    /// Incoming connections each replica may lose.
    pub disconnects: usize,
    pub broken: Option<AdapterBug>,
}

impl Default for AbortCfg {
    fn default() -> Self {
        AbortCfg {
            mode: Mode::TotalSequencer,
            nodes: 2,
            writes: 0,
            snapshots: 1,
            crash: true,
            store_failures: true,
            disconnects: 0,
            broken: None,
        }
    }
}

// The properties' names (`sim --replay` judges the real nodes by them too).
pub const XOR: &str = "commit xor abort";
pub const NO_PART: &str = "aborted leaves no part";
pub const ENDS: &str = "snapshots end";
pub const ANSWERED: &str = "writes answered";

/// The property each broken runtime must violate.
pub fn caught_by(bug: AdapterBug) -> &'static str {
    match bug {
        AdapterBug::KeepsAbortedParts => NO_PART,
        AdapterBug::NoFailureDetector => ENDS,
        AdapterBug::SuspectsAtOnce => XOR,
        AdapterBug::NoClock => ANSWERED,
    }
}

pub type AbortModel = ActorModel<Replica, AbortCfg>;
type State = ActorModelState<Replica>;

impl AbortCfg {
    pub fn into_model(self) -> AbortModel {
        // The kv model's script and opening bank, so TRANSFERs may be refused too.
        let script = KvCfg {
            mode: self.mode,
            nodes: self.nodes,
            writes: self.writes,
            ..KvCfg::default()
        }
        .script();
        let replica = Replica {
            mode: self.mode,
            script: Arc::new(script),
            opening: kv::opening(self.nodes, 1),
            bugs: Bugs::default(),
            snapshots: self.snapshots > 0,
            batch: 1,
            max_snapshots: None,
            strict_fifo: true,
            faults: Faults {
                disconnects: self.disconnects,
                crash: self.crash,
                time: true,
                store_failures: self.store_failures,
                adapter: self.broken,
                ..Faults::default()
            },
            log_judged: true,
        };
        let mut model = ActorModel::new(self.clone(), ())
            .actors(vec![replica; self.nodes])
            .init_network(Channels::Ordered.network())
            .property(Expectation::Always, XOR, |_, s| commit_xor_abort(s).is_ok())
            .property(Expectation::Always, NO_PART, |_, s| no_part(s).is_ok())
            .property(Expectation::Always, ENDS, |_, s| snapshots_end(s).is_ok())
            .property(Expectation::Always, ANSWERED, |_, s| answered(s).is_ok())
            .property(Expectation::Always, "convergence", |_, s| {
                kv::converged(s).is_ok()
            })
            .property(Expectation::Always, "integrity", |_, s| {
                integrity(&kv::logs(&s.actor_states)).is_ok()
            });
        if self.snapshots > 0 {
            // Non-vacuity: both verdicts happen.
            model = model
                .property(Expectation::Sometimes, "a snapshot aborted", |_, s| {
                    s.actor_states.iter().any(|a| !a.ghost.aborted.is_empty())
                })
                .property(Expectation::Sometimes, "a snapshot committed", |_, s| {
                    s.actor_states.iter().any(|a| !a.ghost.committed.is_empty())
                });
        }
        model.within_boundary(|cfg, s| {
            crate::kv::snapshots_started(&s.actor_states) <= cfg.snapshots
                && s.actor_states.iter().filter(|a| a.ghost.crashed).count() <= 1
        })
    }
}

/// Nothing in flight, and no live replica waits for a timer or its disk.
fn quiet(s: &State) -> bool {
    s.network.len() == 0
        && s.actor_states.iter().zip(&s.timers_set).all(|(a, t)| {
            a.ghost.crashed
                || !t.iter().any(|t| {
                    matches!(
                        t,
                        crate::adapter::Step::Fault(Fault::Tick | Fault::Store { .. })
                    )
                })
        })
}

fn live(s: &State) -> impl Iterator<Item = (usize, &kv::ReplicaState)> {
    s.actor_states
        .iter()
        .map(|a| &**a)
        .enumerate()
        .filter(|(_, a)| !a.ghost.crashed)
}

fn commit_xor_abort(s: &State) -> Result<(), String> {
    for (i, a) in s.actor_states.iter().enumerate() {
        for id in &a.ghost.committed {
            if s.actor_states[id.initiator].ghost.crashed {
                continue;
            }
            for (j, b) in s.actor_states.iter().enumerate() {
                if let Some((by, reason)) = b.ghost.aborted.get(id) {
                    return Err(format!(
                        "snapshot {id} committed at n{i} but aborted at n{j} (by n{by}: {reason}), and its initiator is alive"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn no_part(s: &State) -> Result<(), String> {
    for (i, a) in live(s) {
        if let Some(id) = a
            .ghost
            .disk
            .iter()
            .find(|id| a.ghost.aborted.contains_key(id))
        {
            return Err(format!("n{i} aborted {id} but keeps its part"));
        }
    }
    if quiet(s) {
        for (i, a) in live(s) {
            if let Some(id) = a.ghost.disk.difference(&a.ghost.committed).next() {
                return Err(format!(
                    "all is quiet, and n{i} keeps a part of {id}, which it never committed"
                ));
            }
        }
    }
    Ok(())
}

fn snapshots_end(s: &State) -> Result<(), String> {
    if !quiet(s) {
        return Ok(());
    }
    let recorded: BTreeSet<SnapshotId> = s
        .actor_states
        .iter()
        .flat_map(|a| a.ghost.recorded.iter().copied())
        .collect();
    for id in recorded {
        for (i, a) in live(s) {
            if !a.ghost.committed.contains(&id) && !a.ghost.aborted.contains_key(&id) {
                let waits = a.node.snapshot_waiting_on(id);
                return Err(format!(
                    "all is quiet, and snapshot {id} never ended at n{i} (it waits for {waits:?})"
                ));
            }
        }
    }
    Ok(())
}

fn answered(s: &State) -> Result<(), String> {
    if !quiet(s) {
        return Ok(());
    }
    for (i, a) in live(s) {
        if let Some(req) = a.ghost.unanswered.iter().next() {
            return Err(format!(
                "all is quiet, and n{i}'s client request {req} was never answered"
            ));
        }
    }
    Ok(())
}

impl Explained for AbortModel {
    fn why(&self, property: &'static str, s: &State) -> Option<String> {
        match property {
            XOR => commit_xor_abort(s).err(),
            NO_PART => no_part(s).err(),
            ENDS => snapshots_end(s).err(),
            ANSWERED => answered(s).err(),
            "convergence" => kv::converged(s).err().map(|v| v.to_string()),
            "integrity" => integrity(&kv::logs(&s.actor_states))
                .err()
                .map(|v| v.to_string()),
            _ => None,
        }
    }

    fn describe(&self, action: &<Self as Model>::Action) -> String {
        crate::display::action(action, crate::display::kv_wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    fn states(cfg: AbortCfg) -> usize {
        let snapshots = cfg.snapshots > 0;
        let checker = cfg.into_model().checker().spawn_bfs().join();
        if snapshots {
            checker.assert_properties();
        } else {
            // No snapshot: the verdict examples cannot happen; every always holds.
            for p in [XOR, NO_PART, ENDS, ANSWERED, "convergence", "integrity"] {
                checker.assert_no_discovery(p);
            }
        }
        checker.unique_state_count()
    }

    /// A config where clients write and nothing snapshots.
    fn writing() -> AbortCfg {
        AbortCfg {
            writes: 1,
            snapshots: 0,
            store_failures: false,
            ..AbortCfg::default()
        }
    }

    fn catches(bug: AdapterBug, cfg: AbortCfg) {
        let cfg = AbortCfg {
            broken: Some(bug),
            ..cfg
        };
        let checker = cfg
            .into_model()
            .checker()
            .finish_when(stateright::HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join();
        let p = caught_by(bug);
        let path = checker
            .discovery(p)
            .unwrap_or_else(|| panic!("{bug:?} not caught by {p}"));
        assert!(checker.model().why(p, path.last_state()).is_some());
    }

    const WRITING: usize = 582;

    #[test]
    fn every_snapshot_ends_once_and_every_write_is_answered() {
        assert_eq!(states(AbortCfg::default()), 37_091);
        assert_eq!(states(writing()), WRITING);
    }

    #[test]
    fn each_broken_runtime_is_caught() {
        catches(AdapterBug::KeepsAbortedParts, AbortCfg::default());
        catches(AdapterBug::NoFailureDetector, AbortCfg::default());
        catches(AdapterBug::NoClock, writing());
        let blips = AbortCfg {
            disconnects: 1,
            crash: false,
            store_failures: false,
            ..AbortCfg::default()
        };
        catches(AdapterBug::SuspectsAtOnce, blips);
    }
}
