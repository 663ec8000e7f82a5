//! Saves a path of a model whose actors are replicas ([`Replica`]: the kv
//! model, the snapshot bank, the abort model) as spec-level steps
//! ([`SpecPath`]) for `sim --replay`: the counterexample of a broken variant,
//! a seeded random walk of a correct one, or a path a person chose in the
//! explorer (its URL's action indices, `#/steps/0/2/1`).
//!
//! Every spec input a replica takes goes through [`crate::faults::Runtime::feed`],
//! which reports it here while recording is on (and so does a crash, which
//! is no spec step). Recording is per thread and only on while the path's
//! actions are re-applied one by one, so the checker's own threads never pay
//! for it.

use crate::abort::AbortCfg;
use crate::adapter::Step as Timer;
use crate::faults::Fault;
use crate::kv::{KvCfg, Replica};
use crate::snapshot::SnapshotCfg;
use gsmo_spec::node::{Input, Output};
use gsmo_spec::path::{Crash, Knobs, Model as PathModel, SpecPath, Step, MAGIC};
use gsmo_spec::NodeId;
use stateright::actor::{ActorModel, ActorModelAction};
use stateright::{Checker, HasDiscoveries, Model};
use std::cell::RefCell;
use std::fmt::Debug;
use std::hash::Hash;

/// What one model action did, in spec terms.
enum Recorded {
    Step(Step),
    Crash(NodeId),
}

thread_local! {
    static STEPS: RefCell<Option<Vec<Recorded>>> = const { RefCell::new(None) };
}

/// Whether this thread records spec steps now.
pub fn recording() -> bool {
    STEPS.with(|s| s.borrow().is_some())
}

fn push(r: Recorded) {
    STEPS.with(|s| {
        if let Some(steps) = s.borrow_mut().as_mut() {
            steps.push(r);
        }
    });
}

/// Records that replica `node` took `input` and produced `outputs`.
pub fn record(node: NodeId, input: Input, outputs: &[Output]) {
    push(Recorded::Step(Step {
        node,
        input,
        outputs: outputs.to_vec(),
    }));
}

/// Records that replica `node`'s process died.
pub fn record_crash(node: NodeId) {
    push(Recorded::Crash(node));
}

/// The spec steps of one model action taken in `state`.
fn steps_of<M: Model>(model: &M, state: &M::State, action: M::Action) -> (M::State, Vec<Recorded>) {
    STEPS.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let next = model.next_state(state, action);
    let steps = STEPS.with(|s| s.borrow_mut().take()).unwrap_or_default();
    (next.expect("the path's actions apply"), steps)
}

/// The seed of a random walk: `GSMO_SEED`, else a fresh one.
pub fn seed() -> u64 {
    match std::env::var("GSMO_SEED") {
        Ok(s) => s.trim().parse().expect("GSMO_SEED must be a number"),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(std::process::id() as u64);
            h.finish()
        }
    }
}

/// splitmix64: a walk is the same on every platform for a seed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which path of a model to save.
#[derive(Clone, Copy, Debug)]
pub enum Walk<'a> {
    /// The counterexample to this property (BFS, stopped at the first one,
    /// so shortest).
    Counterexample(&'static str),
    /// A random walk from this seed to where nothing more can happen within
    /// the boundary.
    Random(u64),
    /// The explorer's path: the initial state's index, then each action's
    /// index among the state's actions (its URL after `#/steps/`).
    Explorer(&'a [usize]),
}

impl Walk<'_> {
    /// A broken variant's promised property, or a seed, as `check` takes them.
    pub fn of(violates: Option<&'static str>, seed: u64) -> Walk<'static> {
        violates.map_or(Walk::Random(seed), Walk::Counterexample)
    }
}

/// The explorer's path text (`0/2/1`, or the whole URL) as indices.
pub fn explorer_indices(text: &str) -> Result<Vec<usize>, String> {
    let steps = text.rsplit_once("steps").map_or(text, |(_, s)| s);
    let steps = steps.split('?').next().unwrap_or_default();
    let indices: Result<Vec<usize>, _> = steps
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect();
    match indices {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "--explorer-path {text:?}: expected the explorer's path, e.g. 0/2/1 or \
             http://127.0.0.1:3000/#/steps/0/2/1"
        )),
    }
}

/// The spec-level path of a model of replicas along `walk`.
pub fn path<C, H>(
    model: ActorModel<Replica, C, H>,
    kind: PathModel,
    title: &str,
    walk: Walk,
) -> Result<SpecPath, String>
where
    C: Clone + Debug + Send + Sync + 'static,
    H: Clone + Debug + Eq + Hash + Send + Sync + 'static,
{
    let bugs = model.actors[0].bugs;
    let knobs = Knobs {
        broken_multicast: bugs.multicast,
        debit_only: bugs.debit_only,
    };
    let init = model.init_states().swap_remove(0);
    let nodes = init.actor_states.iter().map(|a| a.node.clone()).collect();
    let mut recorded = Vec::new();
    let last = match walk {
        Walk::Counterexample(p) => {
            let checker = model
                .clone()
                .checker()
                .finish_when(HasDiscoveries::AnyOf([p].into()))
                .spawn_bfs()
                .join();
            let path = checker
                .discovery(p)
                .ok_or_else(|| format!("the variant never violates {p}"))?;
            let last = path.last_state().clone();
            for (state, action) in path.into_vec() {
                if let Some(a) = action {
                    recorded.extend(steps_of(&model, &state, a).1);
                }
            }
            last
        }
        Walk::Random(seed) => {
            let mut rng = seed;
            let mut state = init;
            loop {
                let mut actions = enabled(&model, &state);
                if actions.is_empty() {
                    break state;
                }
                let a = actions.swap_remove((next(&mut rng) % actions.len() as u64) as usize);
                let (s, more) = steps_of(&model, &state, a);
                recorded.extend(more);
                state = s;
            }
        }
        Walk::Explorer(indices) => {
            // As stateright's explorer applies them: all actions, in order.
            let Some((&first, rest)) = indices.split_first() else {
                return Err("an explorer path starts with the initial state's index".into());
            };
            if first != 0 {
                return Err(format!(
                    "the model has one initial state, not {}",
                    first + 1
                ));
            }
            let mut state = init;
            for (step, &i) in rest.iter().enumerate() {
                let mut actions = Vec::new();
                model.actions(&state, &mut actions);
                if i >= actions.len() {
                    return Err(format!(
                        "explorer step {}: action {i} of {} does not exist",
                        step + 1,
                        actions.len()
                    ));
                }
                let a = actions.swap_remove(i);
                if model.next_state(&state, a.clone()).is_none() {
                    return Err(format!(
                        "explorer step {}: action {i} changes nothing",
                        step + 1
                    ));
                }
                let (s, more) = steps_of(&model, &state, a);
                recorded.extend(more);
                state = s;
            }
            state
        }
    };
    // A path past the boundary (the explorer shows such states) has not ended.
    let ended = Model::within_boundary(&model, &last)
        && enabled(&model, &last).iter().all(|a| {
            matches!(
                a,
                ActorModelAction::Drop(_)
                    | ActorModelAction::Timeout(_, Timer::Fault(Fault::Crash))
            )
        });
    let (mut steps, mut crashes) = (Vec::new(), Vec::new());
    for r in recorded {
        match r {
            Recorded::Step(s) => steps.push(s),
            Recorded::Crash(node) => crashes.push(Crash {
                node,
                before: steps.len(),
            }),
        }
    }
    Ok(SpecPath {
        title: title.to_string(),
        model: kind,
        violates: match walk {
            Walk::Counterexample(p) => Some(p.to_string()),
            _ => None,
        },
        seed: match walk {
            Walk::Random(seed) => Some(seed),
            _ => None,
        },
        nodes,
        knobs,
        steps,
        crashes,
        ended,
    })
}

/// The actions that lead somewhere within the model's boundary.
fn enabled<M: Model>(model: &M, state: &M::State) -> Vec<M::Action>
where
    M::Action: Clone,
{
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions.retain(|a| {
        model
            .next_state(state, a.clone())
            .is_some_and(|s| model.within_boundary(&s))
    });
    actions
}

/// The kv model's path (see [`path`]).
pub fn kv_path(cfg: KvCfg, title: &str, walk: Walk) -> Result<SpecPath, String> {
    path(cfg.into_model(), PathModel::Kv, title, walk)
}

/// The snapshot bank's path (see [`path`]).
pub fn snapshot_path(cfg: SnapshotCfg, title: &str, walk: Walk) -> Result<SpecPath, String> {
    path(cfg.into_model(), PathModel::Bank, title, walk)
}

/// The abort model's path (see [`path`]).
pub fn abort_path(cfg: AbortCfg, title: &str, walk: Walk) -> Result<SpecPath, String> {
    path(cfg.into_model(), PathModel::Abort, title, walk)
}

/// Writes `path` to `file`: [`MAGIC`], then bincode (what `sim --replay` reads).
pub fn save(path: &SpecPath, file: &std::path::Path) -> Result<(), String> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(
        bincode::serde::encode_to_vec(path, bincode::config::standard())
            .map_err(|e| e.to_string())?,
    );
    std::fs::write(file, bytes).map_err(|e| format!("cannot write {}: {e}", file.display()))
}
