//! A checker deadline that holds on one thread too.
//!
//! stateright 0.31 keeps its `timeout` in the job broker: a worker learns of it
//! only when it asks the broker for more work, which it does when its own queue
//! runs dry. A lone worker's queue runs dry only at the end of the search, so
//! `--threads 1 --timeout 25` ran for 21 minutes, to the last state. Two
//! workers stop only when one of them runs dry, which is likely, not certain.
//!
//! [`Deadline`] wraps the model instead: once the time is up, no state has a
//! next step and no state shows a property anything new (an invariant holds,
//! an example is not found, an eventually-property is met), so every worker
//! drains its queue at the cost of a few calls per state, and no verdict rests
//! on a state judged after the deadline. When the search has ended, its
//! [`Clock`] is stopped, which gives the states their steps back: stateright
//! rebuilds a discovery's path by replaying the model's actions.

use crate::wrap::{self, Wrapper};
use stateright::{Expectation, Model, Property};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// The search is on and in time.
const RUNNING: u8 = 0;
/// The time ran out while the search was on.
const CUT: u8 = 1;
/// The search has ended ([`Clock::stop`]); the model is itself again.
const STOPPED: u8 = 2;

/// `M`, explored until a deadline.
pub struct Deadline<M: Model> {
    model: M,
    properties: Vec<Property<M>>,
    clock: Clock,
    /// Dropped with the wrapper, which ends the timer's wait early.
    _timer: Option<Sender<()>>,
}

/// Where a search stands against its deadline, shared by the wrapper, its timer
/// and whoever ran the search.
#[derive(Clone)]
pub struct Clock(Arc<AtomicU8>);

impl Clock {
    /// Ends the search's deadline and tells whether the time had run out first.
    /// Call it after the search has ended and before its discoveries are read.
    pub fn stop(&self) -> bool {
        self.0.swap(STOPPED, Ordering::Relaxed) == CUT
    }

    fn is_cut(&self) -> bool {
        self.0.load(Ordering::Relaxed) == CUT
    }
}

impl<M: Model> Deadline<M> {
    /// `model`, cut off `timeout` from now (never, if `None`).
    pub fn new(model: M, timeout: Option<Duration>) -> Self {
        let clock = Clock(Arc::new(AtomicU8::new(RUNNING)));
        let timer = timeout.map(|t| {
            let (stop, stopped) = mpsc::channel::<()>();
            let clock = clock.clone();
            std::thread::Builder::new()
                .name("check-deadline".into())
                .spawn(move || {
                    // Not once the search has ended: its paths are being rebuilt.
                    if stopped.recv_timeout(t) == Err(RecvTimeoutError::Timeout) {
                        let (success, failure) = (Ordering::Relaxed, Ordering::Relaxed);
                        let _ = clock.0.compare_exchange(RUNNING, CUT, success, failure);
                    }
                })
                .expect("a thread for the checker's deadline");
            stop
        });
        Deadline {
            properties: wrap::take_properties(&model),
            model,
            clock,
            _timer: timer,
        }
    }

    /// The search's clock: stop it when the search has ended.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }
}

impl<M: Model> Wrapper for Deadline<M> {
    type Inner = M;
    fn inner(&self) -> &M {
        &self.model
    }
    fn inner_properties(&self) -> &[Property<M>] {
        &self.properties
    }
    fn inner_state(state: &M::State) -> &M::State {
        state
    }
    /// After the deadline, nothing new: a state then is not judged at all.
    fn holds(&self, i: usize, state: &M::State) -> bool {
        if self.clock.is_cut() {
            return self.properties[i].expectation != Expectation::Sometimes;
        }
        (self.properties[i].condition)(&self.model, state)
    }
}

impl<M: Model> Model for Deadline<M> {
    type State = M::State;
    type Action = M::Action;

    fn init_states(&self) -> Vec<M::State> {
        self.model.init_states()
    }

    fn actions(&self, state: &M::State, actions: &mut Vec<M::Action>) {
        if !self.clock.is_cut() {
            self.model.actions(state, actions)
        }
    }

    fn next_state(&self, state: &M::State, action: M::Action) -> Option<M::State> {
        self.model.next_state(state, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        wrap::properties(self)
    }

    fn within_boundary(&self, state: &M::State) -> bool {
        self.model.within_boundary(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{check, Explained, Search, Strategy};
    use stateright::{Checker, Model};
    use std::time::Instant;

    /// An endless grid: from every point, a step right and a step up. Its
    /// invariant holds and its first example comes at once; its second example
    /// and its eventually-property never come, so no search ends on its own.
    #[derive(Clone)]
    struct Endless;

    impl Model for Endless {
        type State = (u32, u32);
        type Action = bool;

        fn init_states(&self) -> Vec<(u32, u32)> {
            vec![(0, 0)]
        }

        fn actions(&self, _: &(u32, u32), actions: &mut Vec<bool>) {
            actions.extend([false, true]);
        }

        fn next_state(&self, &(x, y): &(u32, u32), up: bool) -> Option<(u32, u32)> {
            Some(if up { (x, y + 1) } else { (x + 1, y) })
        }

        fn properties(&self) -> Vec<Property<Self>> {
            vec![
                Property::always("on the grid", |_, _| true),
                Property::sometimes("moved", |_, s: &(u32, u32)| *s != (0, 0)),
                Property::sometimes("far right", |_, s: &(u32, u32)| s.0 == u32::MAX),
                Property::eventually("far up", |_, s: &(u32, u32)| s.1 == u32::MAX),
            ]
        }
    }

    impl Explained for Endless {
        fn why(&self, _: &'static str, _: &(u32, u32)) -> Option<String> {
            None
        }

        fn describe(&self, up: &bool) -> String {
            if *up { "up" } else { "right" }.into()
        }
    }

    /// The run, on a thread of its own: a search that ignored its deadline
    /// would never answer, so the test waits a minute, not for ever.
    fn run(strategy: Strategy, threads: usize) -> (crate::Verdict, Duration) {
        let (tx, rx) = mpsc::channel();
        let search = Search {
            strategy,
            threads,
            timeout: Some(Duration::from_secs(1)),
            ..Search::default()
        };
        std::thread::spawn(move || {
            let start = Instant::now();
            let v = check(Endless, &search);
            let _ = tx.send((v, start.elapsed()));
        });
        rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("{strategy:?} on {threads} thread(s): still searching a minute after its 1 s deadline")
        })
    }

    #[test]
    fn every_search_stops_at_its_deadline_on_one_thread_too() {
        for strategy in [Strategy::Bfs, Strategy::Dfs] {
            for threads in [1, 2] {
                let (v, took) = run(strategy, threads);
                let at = format!("{strategy:?} on {threads} thread(s), {took:?}");
                assert!(!v.complete, "{at}: an endless search cannot be complete");
                assert!(v.unique_states > 1_000, "{at}: {} states", v.unique_states);
                // Found before the deadline (BFS keeps the last state found, DFS
                // the first), its path rebuilt after it, step by step.
                let found: Vec<_> = v.findings.iter().map(|f| f.property).collect();
                assert_eq!(found, ["moved"], "{at}");
                let path = &v.findings[0].path;
                assert!(!path.is_empty(), "{at}");
                assert!(
                    path.iter().all(|step| step == "up" || step == "right"),
                    "{at}: {path:?}"
                );
                eprintln!("{at}: {} states", v.unique_states);
            }
        }
    }

    #[test]
    fn the_search_with_sleep_sets_stops_at_its_deadline_too() {
        let (tx, rx) = mpsc::channel();
        let search = Search {
            strategy: Strategy::Dfs,
            sleep: true,
            timeout: Some(Duration::from_secs(1)),
            ..Search::default()
        };
        std::thread::spawn(move || _ = tx.send(check(Endless, &search)));
        let v = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("still searching a minute after its 1 s deadline");
        assert!(!v.complete && v.unique_states > 1_000);
        let found: Vec<_> = v.findings.iter().map(|f| f.property).collect();
        assert_eq!(found, ["moved"]);
        assert!(!v.findings[0].path.is_empty());
    }

    #[test]
    fn states_met_after_the_deadline_are_not_judged() {
        // Unwrapped, a state cut off by the deadline would be a dead end where
        // "far up" never held: a counterexample the model does not have.
        for threads in [1, 2] {
            let model = Deadline::new(Endless, Some(Duration::from_millis(300)));
            let clock = model.clock();
            let checker = model.checker().threads(threads).spawn_dfs().join();
            assert!(clock.stop(), "the search ended before its deadline");
            assert!(checker.unique_state_count() > 1_000);
            let mut found: Vec<_> = checker.discoveries().into_keys().collect();
            found.sort();
            assert_eq!(found, ["moved"], "on {threads} thread(s)");
        }
    }
}
