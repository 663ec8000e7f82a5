//! The tests' plain search over a whole state graph, for tests that judge
//! every state or transition (the checkers do the real searching).

use crate::digest::digest;
use stateright::Model;
use std::collections::HashSet;
use std::hash::Hash;

/// Visits every state `model` reaches within its boundary, once each (told
/// apart by [`digest`]), with its successors within the boundary; returns how
/// many states it visited.
pub(crate) fn each_state<M>(model: &M, mut visit: impl FnMut(&M::State, &[M::State])) -> usize
where
    M: Model,
    M::State: Hash,
{
    let mut seen = HashSet::new();
    let mut todo: Vec<M::State> = model
        .init_states()
        .into_iter()
        .filter(|s| model.within_boundary(s))
        .collect();
    let (mut actions, mut next) = (Vec::new(), Vec::new());
    while let Some(s) = todo.pop() {
        if !seen.insert(digest(&s)) {
            continue;
        }
        model.actions(&s, &mut actions);
        next.extend(
            actions
                .drain(..)
                .filter_map(|a| model.next_state(&s, a))
                .filter(|t| model.within_boundary(t)),
        );
        visit(&s, &next);
        todo.append(&mut next);
    }
    seen.len()
}
