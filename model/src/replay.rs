//! Saves a path of the kv model as spec-level steps ([`SpecPath`]) for
//! `sim --replay`: the counterexample of a broken variant, or a seeded random
//! walk of a correct one.
//!
//! Every spec input a replica takes goes through [`crate::faults::Runtime::feed`],
//! which reports it here while recording is on. Recording is per thread and
//! only on while the path's actions are re-applied one by one, so the
//! checker's own threads never pay for it.

use crate::kv::KvBug;
use crate::kv::KvCfg;
use gsmo_spec::node::{Input, Output};
use gsmo_spec::path::{Knobs, SpecPath, Step, MAGIC};
use gsmo_spec::NodeId;
use stateright::{Checker, Model};
use std::cell::RefCell;

thread_local! {
    static STEPS: RefCell<Option<Vec<Step>>> = const { RefCell::new(None) };
}

/// Whether this thread records spec steps now.
pub fn recording() -> bool {
    STEPS.with(|s| s.borrow().is_some())
}

/// Records that replica `node` took `input` and produced `outputs`.
pub fn record(node: NodeId, input: Input, outputs: &[Output]) {
    STEPS.with(|s| {
        if let Some(steps) = s.borrow_mut().as_mut() {
            steps.push(Step {
                node,
                input,
                outputs: outputs.to_vec(),
            });
        }
    });
}

/// The spec steps of one model action taken in `state`.
fn steps_of<M: Model>(model: &M, state: &M::State, action: M::Action) -> (M::State, Vec<Step>) {
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

/// The kv model's path: the counterexample to `violates` (found by BFS, so
/// shortest), or else a random walk from `seed` to where nothing more can
/// happen within the boundary.
pub fn kv_path(cfg: KvCfg, title: &str, violates: Option<&'static str>, seed: u64) -> SpecPath {
    let knobs = Knobs {
        broken_multicast: matches!(cfg.broken, Some(KvBug::NoWait | KvBug::NoTieBreak)),
        debit_only: cfg.broken == Some(KvBug::DebitOnly),
    };
    let model = cfg.into_model();
    let init = model.init_states().swap_remove(0);
    let nodes = init.actor_states.iter().map(|a| a.node.clone()).collect();
    let mut steps = Vec::new();
    match violates {
        Some(p) => {
            let path = model
                .clone()
                .checker()
                .spawn_bfs()
                .join()
                .discovery(p)
                .unwrap_or_else(|| panic!("the variant never violates {p}"));
            for (state, action) in path.into_vec() {
                if let Some(a) = action {
                    steps.extend(steps_of(&model, &state, a).1);
                }
            }
        }
        None => {
            let mut rng = seed;
            let mut state = init;
            loop {
                let mut actions = Vec::new();
                model.actions(&state, &mut actions);
                actions.retain(|a| {
                    model
                        .next_state(&state, a.clone())
                        .is_some_and(|s| Model::within_boundary(&model, &s))
                });
                if actions.is_empty() {
                    break;
                }
                let a = actions.swap_remove((next(&mut rng) % actions.len() as u64) as usize);
                let (s, more) = steps_of(&model, &state, a);
                steps.extend(more);
                state = s;
            }
        }
    }
    SpecPath {
        model: title.to_string(),
        violates: violates.map(str::to_string),
        seed: violates.is_none().then_some(seed),
        nodes,
        knobs,
        steps,
    }
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
