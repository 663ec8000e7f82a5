//! Sleep sets: a depth-first search that does not take a step again where
//! another order of the same steps already reaches the state it would make
//! (Godefroid 1996, "Partial-Order Methods for the Verification of Concurrent
//! Systems", LNCS 1032, ch. 5, with its rule for a state met again), with
//! independence judged in the state at hand (Godefroid & Pirottin, "Refining
//! dependencies improves partial-order verification methods", CAV 1993).
//!
//! Persistent sets ([`crate::por`]) choose which steps a state takes; sleep
//! sets then skip some of those. When a state takes `u` and then `t`, and the
//! two commute there (each leaves the other enabled and both orders end in
//! the same state), the search need not take `u` after `t`: it takes `t`
//! after `u` and meets that state. So `u` sleeps in the state after `t`, and
//! in every state after that reached by steps that commute with it. A state
//! met again with fewer steps asleep takes the ones it slept through before.
//!
//! The model says which steps commute ([`Explained::independent`]) and gives
//! each step that may sleep a slot ([`Explained::slot`]) that names it in any
//! state where it is enabled, so that a visited state keeps its sleeping steps
//! as a bit set. A model that gives no slots is searched plainly.
//!
//! **What is kept.** Every complete run of the search without sleep sets (one
//! that ends in a state with no step; the graph must be acyclic) has a run
//! this search takes that differs from it only by swapping adjacent steps that
//! commute where they are swapped; the two runs end in the same state. What a
//! swap changes is the states between: a model whose properties judge those
//! must call steps independent only where the swap keeps what the properties
//! read (the bank: [`crate::por`]'s "Commuting steps"), and an
//! eventually-property must not tell the orders apart either (the tests pin a
//! counterexample lost by one that does). The search counts
//! fewer steps, and, on top of persistent sets, fewer states too: a state that
//! only some orders pass through need not be visited.
//!
//! **The order.** A state's steps are taken in the order the model offers
//! them (the first is pushed on the stack last). After each, the steps
//! offered later that commute with it sleep: they are taken from this state
//! later, with it awake. Any order keeps what is said above; how many states
//! the search meets depends on it. stateright offers an actor model's
//! receipts first, then its timers, so frames in flight are taken before a
//! replica's new writes, snapshots and flushes. On the 3-account bank this
//! met 50.4 M states where taking the steps last to first, as stateright's
//! own depth-first search does (and this one did before), met 55.2 M; both
//! were counted before more of one replica's steps commuted ([`crate::por`]'s
//! "Commuting steps"; 43.9 M now).
//!
//! stateright 0.31's checkers take every step a model offers, so this is a
//! checker of its own, for one thread: [`crate::verdict::check`] runs it per
//! part of a model side by side, as it runs stateright's. It judges properties
//! as stateright's depth-first search does: an invariant or an example in every
//! state it visits, an eventually-property on the path to a state with no step.

use crate::verdict::Explained;
use crate::visited::{Met, Visited};
use stateright::{Expectation, Model, Path};
use std::hash::Hash;

/// How far a search has got: unique states, states generated, the depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    pub unique: usize,
    pub total: usize,
    pub depth: usize,
}

/// What a search found: how far it got, and for each property it discovered,
/// the path there as the index of each step among its state's actions (the
/// first, among the initial states). [`path`] replays one.
#[derive(Debug, Default)]
pub struct Searched {
    pub reached: Reached,
    pub discoveries: Vec<(&'static str, Vec<usize>)>,
}

/// A state to expand, with the steps asleep in it.
struct Pending<S, A> {
    state: S,
    asleep: Vec<A>,
    meeting: Meeting,
    depth: usize,
    /// The eventually-properties not yet met on this path.
    waiting: u64,
    /// The step's index among its state's actions (the initial state's
    /// index, for one): with the indices of the states above it on the
    /// search's path, the path here.
    index: usize,
}

/// Where a state on the stack stands with the visited set. A state's steps
/// are all taken before any result is met, and then met in the order taken,
/// the last one when it is popped (next): each lookup's cache miss overlaps
/// the work before it ([`Visited::expect`]), and the states meet as they
/// would one by one.
enum Meeting {
    /// Not met yet: its fingerprint and its sleeping slots.
    Due(u64, u64),
    /// Met, with what that found (a covered state is skipped when popped).
    Done(Met),
}

fn bit(slot: u32) -> u64 {
    1 << slot
}

/// Searches `model` depth first with sleep sets, asking it which steps
/// commute. Stops early once every property has a discovery; `depth` as
/// stateright's `target_max_depth`; `progress` is told how far it has got
/// now and then.
pub fn search<M>(model: &M, depth: Option<usize>, progress: impl FnMut(Reached)) -> Searched
where
    M: Explained,
    M::State: Clone + Hash,
    M::Action: Clone,
{
    search_visiting(model, depth, progress, |_, _| {})
}

/// [`search`], showing `visit` each state it expands the first time it does,
/// and whether the state has no step.
pub fn search_visiting<M>(
    model: &M,
    depth: Option<usize>,
    mut progress: impl FnMut(Reached),
    mut visit: impl FnMut(&M::State, bool),
) -> Searched
where
    M: Explained,
    M::State: Clone + Hash,
    M::Action: Clone,
{
    let properties = model.properties();
    assert!(properties.len() <= 64, "more properties than bits");
    let eventually = properties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.expectation == Expectation::Eventually)
        .fold(0u64, |bits, (i, _)| bits | 1 << i);
    let mut found: Vec<Option<Vec<usize>>> = vec![None; properties.len()];
    let mut left = properties.len();
    let mut seen = Visited::new();
    let mut stack = Vec::new();
    for (index, state) in model.init_states().into_iter().enumerate() {
        if model.within_boundary(&state)
            && matches!(seen.meet(model.fingerprint(&state), 0), Met::New)
        {
            stack.push(Pending {
                state,
                asleep: Vec::new(),
                meeting: Meeting::Done(Met::New),
                depth: 1,
                waiting: eventually,
                index,
            });
        }
    }
    let mut reached = Reached {
        unique: stack.len(),
        total: stack.len(),
        depth: 0,
    };
    let mut actions = Vec::new();
    let mut taken: Vec<M::Action> = Vec::new();
    let mut chosen: Vec<(usize, Option<u32>)> = Vec::new();
    let mut path: Vec<usize> = Vec::new();
    let mut expanded = 0usize;
    // The steps asleep in the state at hand; and emptied vectors of them, to
    // be filled again (a vector of its own per state was 1% of the 3-account
    // bank's search, in the allocator). A vector is made only when none is
    // spare, so there are never more than the stack has held at once.
    let mut asleep: Vec<M::Action> = Vec::new();
    let mut spare: Vec<Vec<M::Action>> = Vec::new();
    'search: while let Some(Pending {
        state,
        asleep: popped,
        meeting,
        depth: d,
        mut waiting,
        index,
    }) = stack.pop()
    {
        let mut done = std::mem::replace(&mut asleep, popped);
        done.clear();
        spare.push(done);
        let bounded = depth.is_some_and(|max| d >= max);
        actions.clear();
        let met = match meeting {
            Meeting::Done(met) => met,
            Meeting::Due(fp, bits) => {
                // Finding its steps first gives the memory time to answer.
                if !bounded {
                    model.actions(&state, &mut actions);
                }
                seen.meet(fp, bits)
            }
        };
        let again = match met {
            Met::New => None,
            Met::Again(before) => Some(before),
            Met::Covered => continue,
        };
        // Depth first, the states above this one on the path are the last
        // popped at each depth above it.
        path.truncate(d - 1);
        path.push(index);
        reached.depth = reached.depth.max(d);
        if bounded {
            continue;
        }
        expanded += 1;
        if expanded % 4096 == 0 {
            reached.unique = seen.len();
            progress(reached);
        }
        if again.is_none() {
            for (i, p) in properties.iter().enumerate() {
                let discovered = match p.expectation {
                    Expectation::Always => found[i].is_none() && !(p.condition)(model, &state),
                    Expectation::Sometimes => found[i].is_none() && (p.condition)(model, &state),
                    Expectation::Eventually => {
                        if waiting & 1 << i != 0 && (p.condition)(model, &state) {
                            waiting &= !(1 << i);
                        }
                        false
                    }
                };
                if discovered {
                    found[i] = Some(path.clone());
                    left -= 1;
                }
            }
            if left == 0 {
                break 'search;
            }
        }
        if matches!(meeting, Meeting::Done(_)) {
            model.actions(&state, &mut actions);
        }
        if again.is_none() {
            visit(&state, actions.is_empty());
        }
        if actions.is_empty() {
            // A path's end: an eventually-property not met on it fails here.
            for (i, f) in found.iter_mut().enumerate() {
                if waiting & 1 << i != 0 && f.is_none() {
                    *f = Some(path.clone());
                    left -= 1;
                }
            }
            if left == 0 {
                break 'search;
            }
            continue;
        }
        let asleep_now = asleep
            .iter()
            .filter_map(|u| model.slot(u))
            .fold(0, |bits, k| bits | bit(k));
        // Steps this state took when first met, if it is met again: those
        // that were not asleep then.
        taken.clear();
        if let Some(before) = again {
            taken.extend(
                actions
                    .iter()
                    .filter(|a| model.slot(a).is_some_and(|k| before & bit(k) == 0))
                    .cloned(),
            );
        }
        // The steps to take: those not asleep now and, in a state met again,
        // only those asleep when it was first met; last to first, as they are
        // pushed, so that they are taken first to last ("The order").
        chosen.clear();
        chosen.extend(actions.iter().enumerate().rev().filter_map(|(index, t)| {
            let slot = model.slot(t);
            let asleep = slot.is_some_and(|k| asleep_now & bit(k) != 0);
            let done = again.is_some_and(|before| slot.is_none_or(|k| before & bit(k) == 0));
            (!asleep && !done).then_some((index, slot))
        }));
        let mut state = Some(state);
        let first = stack.len();
        for (n, &(index, slot)) in chosen.iter().enumerate() {
            let t = &actions[index];
            let here = state.as_ref().expect("stepped from until the last step");
            let mut next_asleep = spare.pop().unwrap_or_default();
            next_asleep.extend(
                asleep
                    .iter()
                    .chain(&taken)
                    .filter(|u| model.independent(here, u, t))
                    .cloned(),
            );
            // Nothing reads the state after its last step, which may take it.
            let next = if n + 1 == chosen.len() {
                let last = state.take().expect("one last step");
                model.next_state_from(last, t.clone())
            } else {
                model.next_state(here, t.clone())
            };
            let Some(next) = next.filter(|next| model.within_boundary(next)) else {
                next_asleep.clear();
                spare.push(next_asleep);
                continue;
            };
            // Only a step whose result the search goes on from may sleep
            // after its later siblings.
            if slot.is_some() {
                taken.push(t.clone());
            }
            reached.total += 1;
            let bits = next_asleep
                .iter()
                .filter_map(|u| model.slot(u))
                .fold(0, |bits, k| bits | bit(k));
            let fp = model.fingerprint(&next);
            seen.expect(fp);
            stack.push(Pending {
                state: next,
                asleep: next_asleep,
                meeting: Meeting::Due(fp, bits),
                depth: d + 1,
                waiting,
                index,
            });
        }
        // All but the last, which is popped next and met then.
        let last = stack.len().saturating_sub(1).max(first);
        for next in &mut stack[first..last] {
            if let Meeting::Due(fp, bits) = next.meeting {
                next.meeting = Meeting::Done(seen.meet(fp, bits));
            }
        }
    }
    reached.unique = seen.len();
    Searched {
        reached,
        discoveries: properties
            .iter()
            .zip(found)
            .filter_map(|(p, f)| f.map(|path| (p.name, path)))
            .collect(),
    }
}

/// The path `indices` names ([`Searched::discoveries`]), replayed on `model`.
pub fn path<M>(model: &M, indices: &[usize]) -> Path<M::State, M::Action>
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    let (first, rest) = indices.split_first().expect("a path has a first state");
    let init = model.init_states().swap_remove(*first);
    let mut state = init.clone();
    let mut steps = Vec::new();
    let mut actions = Vec::new();
    for &i in rest {
        actions.clear();
        model.actions(&state, &mut actions);
        let action = actions[i].clone();
        state = model
            .next_state(&state, action.clone())
            .expect("a step the search took");
        steps.push(action);
    }
    Path::from_actions(model, init, &steps).expect("a path the search took")
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::{Checker, Property};

    /// Three counters that each count to 2, one step at a time: every order
    /// of the steps of different counters ends alike, and only the counts
    /// are judged, so any two steps of different counters are independent.
    /// `commute` says which pairs of counters the model calls so.
    #[derive(Clone)]
    struct Counters {
        commute: fn(usize, usize) -> bool,
    }

    const NONE: fn(usize, usize) -> bool = |_, _| false;
    const ALL: fn(usize, usize) -> bool = |_, _| true;

    impl Model for Counters {
        type State = [u8; 3];
        type Action = usize;

        fn init_states(&self) -> Vec<[u8; 3]> {
            vec![[0; 3]]
        }

        fn actions(&self, s: &[u8; 3], actions: &mut Vec<usize>) {
            actions.extend((0..3).filter(|&i| s[i] < 2));
        }

        fn next_state(&self, s: &[u8; 3], i: usize) -> Option<[u8; 3]> {
            let mut next = *s;
            next[i] += 1;
            Some(next)
        }

        fn properties(&self) -> Vec<Property<Self>> {
            vec![
                Property::always("counts to 2 at most", |_, s: &[u8; 3]| {
                    s.iter().all(|&c| c <= 2)
                }),
                Property::sometimes("all at 2", |_, s: &[u8; 3]| *s == [2; 3]),
                Property::eventually("one at 2", |_, s: &[u8; 3]| s.contains(&2)),
                // Missed by every path that counts 0 or 1 before 2 is done.
                Property::eventually("2 done first", |_, s: &[u8; 3]| *s == [0, 0, 2]),
            ]
        }
    }

    impl Explained for Counters {
        fn why(&self, _: &'static str, _: &[u8; 3]) -> Option<String> {
            None
        }
        fn describe(&self, i: &usize) -> String {
            format!("count {i}")
        }
        fn slot(&self, i: &usize) -> Option<u32> {
            Some(*i as u32)
        }
        fn independent(&self, _: &[u8; 3], u: &usize, t: &usize) -> bool {
            u != t && (self.commute)(*u, *t)
        }
        fn next_state_from(&self, s: [u8; 3], i: usize) -> Option<[u8; 3]> {
            HANDED.set(HANDED.get() + 1);
            self.next_state(&s, i)
        }
    }

    thread_local! {
        /// Steps taken from a state handed over, on this test's thread.
        static HANDED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn run(model: &Counters) -> (Searched, Vec<[u8; 3]>) {
        let mut visited = Vec::new();
        let found = search_visiting(model, None, |_| {}, |s, _| visited.push(*s));
        (found, visited)
    }

    /// A bound on depth is stateright's `target_max_depth`: a state at the
    /// bound is visited, not expanded.
    #[test]
    fn a_bounded_search_stops_where_stateright_does() {
        for max in [1, 2, 3, 5] {
            let plain = Counters { commute: NONE }
                .checker()
                .target_max_depth(max)
                .spawn_dfs()
                .join();
            let r = search(&Counters { commute: NONE }, Some(max), |_| {}).reached;
            let want = (plain.unique_state_count(), plain.state_count(), max);
            assert_eq!((r.unique, r.total, r.depth), want, "bound {max}");
        }
        // Depth 3: the states whose counts add up to 2 or less, and the
        // steps to them.
        let r = search(&Counters { commute: NONE }, Some(3), |_| {}).reached;
        assert_eq!((r.unique, r.total), (10, 13));
    }

    #[test]
    fn sleep_sets_visit_every_state_once_by_one_step() {
        // Stateright takes every step: 27 states, 54 steps.
        let plain = Counters { commute: NONE }.checker().spawn_dfs().join();
        assert_eq!((plain.unique_state_count(), plain.state_count()), (27, 55));
        let (found, mut visited) = run(&Counters { commute: NONE });
        let r = found.reached;
        assert_eq!((r.unique, r.total, r.depth), (27, 55, 7));
        // Each of the 26 states with a step hands itself to its last one.
        assert_eq!(HANDED.get(), 26);
        // With sleep sets alone, every state is still visited, each reached
        // by one step only.
        let (found, again) = run(&Counters { commute: ALL });
        let r = found.reached;
        assert_eq!((r.unique, r.total, r.depth), (27, 27, 7));
        visited.sort();
        let mut again = again;
        again.sort();
        assert_eq!(visited, again);
    }

    #[test]
    fn discoveries_are_paths_that_replay() {
        let model = Counters { commute: NONE };
        let (found, _) = run(&model);
        let names: Vec<_> = found.discoveries.iter().map(|(n, _)| *n).collect();
        // The invariant holds, and a 2 comes on every path; [0,0,2] does not.
        assert_eq!(names, ["all at 2", "2 done first"]);
        let example = path(&model, &found.discoveries[0].1);
        assert_eq!(*example.last_state(), [2; 3]);
        assert_eq!(example.into_actions().len(), 6);
        // A path to an end that never passed [0,0,2].
        let missed = path(&model, &found.discoveries[1].1).into_states();
        assert_eq!((missed.len(), missed[6]), (7, [2; 3]));
        assert!(!missed.contains(&[0, 0, 2]), "{missed:?}");
    }

    /// What the module doc's "What is kept" warns of: "2 done first" tells
    /// orders of the counters apart, so a model that calls them independent
    /// loses its counterexample. The bank's properties cannot tell apart the
    /// orders it calls independent ([`crate::por`]).
    #[test]
    fn a_property_that_tells_commuting_orders_apart_is_not_kept() {
        let (found, _) = run(&Counters { commute: ALL });
        let names: Vec<_> = found.discoveries.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["all at 2"]);
    }

    /// A state met again with fewer steps asleep takes those it slept
    /// through: here only counters 1 and 2 commute, so 8 states are met
    /// first with counter 2 asleep and later without, and take counter 2's
    /// step then. Skipping such a state as if it were covered takes 43 steps,
    /// not 51.
    #[test]
    fn a_state_met_again_takes_the_steps_it_slept_through() {
        let model = Counters {
            commute: |u, t| u + t == 3,
        };
        let mut visited = std::collections::BTreeSet::new();
        let found = search_visiting(&model, None, |_| {}, |s, _| _ = visited.insert(*s));
        assert_eq!(visited.len(), 27);
        let r = found.reached;
        assert_eq!((r.unique, r.total), (27, 51));
    }
}
