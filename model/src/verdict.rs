//! Running a checker and judging what it found: the numbers (states, depth,
//! time) and, per property, PASS or a counterexample told action by action,
//! ending with the spec predicate's own account of the violation.

use crate::deadline::{Clock, Deadline};
use crate::wrap::Wrapper;
use stateright::{
    Checker, CheckerBuilder, Expectation, HasDiscoveries, Model, Path, UniformChooser,
};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A model that can explain itself: why a property fails, and what an action does.
pub trait Explained: Model {
    /// The spec predicate's description of how `property` fails in `state`, if it does.
    fn why(&self, property: &'static str, state: &Self::State) -> Option<String>;
    /// One action as a line of a counterexample.
    fn describe(&self, action: &Self::Action) -> String;
    /// The representative of a state's symmetry class, if the model has a sound
    /// symmetry ([`crate::symmetry`]); `None` (the default) if it has none.
    fn symmetry(&self) -> Option<Representative<Self>> {
        None
    }

    /// The model as parts whose state spaces are disjoint: each part's
    /// initial states are some of the model's, and no state is reachable in
    /// two parts. A depth-first search on several threads, without symmetry
    /// (a representative need not keep to its part), checks them side by
    /// side, one thread a part ([`check`]). `None` (the default): one part.
    fn parts(&self) -> Option<Vec<Self>>
    where
        Self: Sized,
    {
        None
    }

    /// A step's name in a sleep set ([`crate::sleep`]), below 64, the same in
    /// every state where the step is enabled; `None` (the default): the step
    /// never sleeps.
    fn slot(&self, _action: &Self::Action) -> Option<u32> {
        None
    }

    /// Whether steps `u` and `t`, both enabled in `state`, commute there in a
    /// way the properties cannot tell apart ([`crate::sleep`] says what that
    /// takes). The default: no two steps do.
    fn independent(&self, _state: &Self::State, _u: &Self::Action, _t: &Self::Action) -> bool {
        false
    }

    /// [`Model::next_state`] from a state the caller is done with, so that a
    /// model whose step copies the state may step the state itself instead:
    /// the sleep search's last step from a state ([`crate::sleep`]), which
    /// is most of its steps. The default copies as `next_state` does.
    fn next_state_from(&self, state: Self::State, action: Self::Action) -> Option<Self::State> {
        self.next_state(&state, action)
    }

    /// The 64-bit fingerprint the sleep search tells states apart by: the
    /// state's [`crate::digest::digest`] by default. A model may hash its
    /// states its own, cheaper way, so long as it hashes all of what they
    /// hold (equal states, equal fingerprints; others apart but for 2^-64).
    fn fingerprint(&self, state: &Self::State) -> u64
    where
        Self::State: Hash,
    {
        crate::digest::digest(state)
    }
}

/// A function from a state to the representative of its symmetry class.
pub type Representative<M> = fn(&<M as Model>::State) -> <M as Model>::State;

/// How the state space is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Breadth first: finds the shortest counterexample.
    Bfs,
    /// Depth first: less memory, longer counterexamples.
    Dfs,
    /// Random walks from this seed until the timeout; never complete.
    Simulation(u64),
}

/// Everything about a run that is not the model itself.
#[derive(Clone, Debug)]
pub struct Search {
    pub strategy: Strategy,
    /// Do not explore past this depth (the run is then incomplete).
    pub depth: Option<usize>,
    pub threads: usize,
    /// Stop after this long (the run is then incomplete unless it finished).
    pub timeout: Option<Duration>,
    /// Print progress to stderr on runs longer than a second.
    pub progress: bool,
    /// Explore one state per symmetry class (DFS and simulation only: stateright's
    /// BFS ignores symmetry). Counterexamples stay concrete paths: the checker
    /// continues every path with the state the action really produced and only
    /// *remembers* the representative, so a path's actions replay from the start.
    pub symmetry: bool,
    /// Explore a persistent set of each state's steps ([`crate::por`]); the
    /// job picks the reduced model, which the search runs like any other.
    pub por: bool,
    /// Depth first with sleep sets ([`crate::sleep`]) on top, where the
    /// model says which steps commute: fewer steps, and states, for the
    /// same verdicts.
    pub sleep: bool,
    /// On a counterexample, re-run breadth first, bounded by its length, for
    /// the shortest (this module's `shortest`). A depth-first search may
    /// leave it as found, to keep to its own small memory.
    pub shortest: bool,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            strategy: Strategy::Bfs,
            depth: None,
            threads: 1,
            timeout: None,
            progress: false,
            symmetry: false,
            por: false,
            sleep: false,
            shortest: true,
        }
    }
}

/// What a checker found for one property.
#[derive(Clone, Debug)]
pub struct Finding {
    pub property: &'static str,
    pub expectation: Expectation,
    /// The path to the discovery, one line per action.
    pub path: Vec<String>,
    /// The spec predicate's account of the violation at the path's end.
    pub why: Option<String>,
}

impl Finding {
    /// A counterexample (always/eventually) rather than an example (sometimes).
    pub fn is_failure(&self) -> bool {
        self.expectation.discovery_is_failure()
    }
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub properties: Vec<(&'static str, Expectation)>,
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub elapsed: Duration,
    /// Whether the whole (bounded) state space was explored.
    pub complete: bool,
    /// Discoveries, in property order.
    pub findings: Vec<Finding>,
    /// Whether states were merged by symmetry (`unique_states` then counts classes).
    pub symmetry: bool,
    /// The process's peak resident memory so far (Linux), in bytes.
    pub peak_rss: Option<u64>,
    /// The parts the search ran side by side ([`Explained::parts`]), and how
    /// many at a time; `None`: one search of the whole.
    pub parts: Option<(usize, usize)>,
    /// The messages of model steps that panicked. The run then failed, whatever
    /// else it found: a panic is a bug in the model or the spec, and the states
    /// after it were never explored.
    pub panics: Vec<String>,
}

impl Verdict {
    /// Counterexamples to always/eventually properties.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_failure())
    }

    /// Sometimes-properties with no example although every state was seen:
    /// the model never reaches what it was meant to exercise.
    pub fn vacuous(&self) -> Vec<&'static str> {
        if !self.complete {
            return Vec::new();
        }
        self.properties
            .iter()
            .filter(|(name, e)| {
                *e == Expectation::Sometimes && !self.findings.iter().any(|f| f.property == *name)
            })
            .map(|(name, _)| *name)
            .collect()
    }

    /// PASS only if no always/eventually property has a counterexample and
    /// every sometimes-property has an example ([`Verdict::vacuous`]): an
    /// unreachable example means part of the model never runs, so the other
    /// verdicts could hold for the wrong reason.
    pub fn passed(&self) -> bool {
        self.panics.is_empty() && self.failures().next().is_none() && self.vacuous().is_empty()
    }

    /// How a run with a deliberately broken model is judged: caught only if the
    /// property the variant `promises` to violate is violated. Violating others
    /// instead does not count: the property meant to guard that bug let it by.
    /// A run whose model step panicked fails, broken variant or not.
    pub fn judge(&self, promises: Option<&'static str>) -> Outcome {
        match promises {
            _ if !self.panics.is_empty() => Outcome::Fail,
            None if self.passed() => Outcome::Pass,
            None => Outcome::Fail,
            Some(p) if self.failures().any(|f| f.property == p) => Outcome::Caught,
            Some(_) => Outcome::NotCaught,
        }
    }

    pub fn states_per_second(&self) -> f64 {
        self.unique_states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn finding(&self, property: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.property == property)
    }
}

/// The verdict on one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A correct model: every property holds, every example found.
    Pass,
    /// A correct model with a counterexample or a missing example, or any model
    /// whose step panicked.
    Fail,
    /// A broken variant, caught by the property it promises to violate.
    Caught,
    /// A broken variant whose promised property held (whatever else failed).
    NotCaught,
}

/// Progress on stderr, once a second after the first. It polls the checker
/// often (stateright's default is once a second), so a run is timed to within
/// a few milliseconds of its end rather than rounded up to whole seconds.
struct Progress {
    enabled: bool,
    next: Duration,
}

impl Progress {
    /// Prints the counts if a second has passed since the last print.
    fn tick(&mut self, counts: Counts, elapsed: Duration) {
        if self.enabled && elapsed >= self.next {
            self.next = elapsed + Duration::from_secs(1);
            eprintln!(
                "  ... {:>10} unique states, {:>11} total, depth {:>3}, {:>5.1} s",
                counts.unique,
                counts.total,
                counts.depth,
                elapsed.as_secs_f64()
            );
        }
    }
}

/// How far a search has got.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    unique: usize,
    total: usize,
    depth: usize,
}

impl Counts {
    fn of<M: Model>(checker: &impl Checker<M>) -> Self {
        Counts {
            unique: checker.unique_state_count(),
            total: checker.state_count(),
            depth: checker.max_depth(),
        }
    }

    /// Two searches of disjoint state spaces together.
    fn add(self, other: Counts) -> Counts {
        Counts {
            unique: self.unique + other.unique,
            total: self.total + other.total,
            depth: self.depth.max(other.depth),
        }
    }
}

impl From<crate::sleep::Reached> for Counts {
    fn from(r: crate::sleep::Reached) -> Self {
        Counts {
            unique: r.unique,
            total: r.total,
            depth: r.depth,
        }
    }
}

/// Checks `model` as `search` says and judges the result.
pub fn check<M>(model: M, search: &Search) -> Verdict
where
    M: Explained + Clone + Send + Sync + 'static,
    M::State: Clone + Debug + Hash + PartialEq + Send + Sync + 'static,
    M::Action: Clone + Debug + PartialEq + Send + Sync + 'static,
{
    let judge = model.clone();
    let properties: Vec<_> = model
        .properties()
        .iter()
        .map(|p| (p.name, p.expectation.clone()))
        .collect();
    let timeout = match search.strategy {
        // A simulation never runs out of walks: it needs a deadline.
        Strategy::Simulation(_) => Some(search.timeout.unwrap_or(Duration::from_secs(10))),
        _ => search.timeout,
    };
    let symmetry = search.symmetry && search.strategy != Strategy::Bfs;
    let mut progress = Progress {
        enabled: search.progress,
        next: Duration::from_secs(1),
    };
    let start = Instant::now();
    let parts = match search.strategy {
        Strategy::Dfs if search.threads > 1 && !symmetry => model.parts(),
        _ => None,
    }
    .filter(|parts| parts.len() > 1);
    let in_parts = parts
        .as_ref()
        .map(|parts| (parts.len(), at_once(search, parts.len())));
    let Finished {
        cut,
        counts: Counts {
            unique,
            total,
            depth,
        },
        discoveries,
        panics,
    } = match parts {
        Some(parts) => side_by_side(parts, search, timeout, &mut progress),
        None if search.sleep && search.strategy == Strategy::Dfs => {
            asleep(model, timeout, search.depth, |counts| {
                progress.tick(counts, start.elapsed())
            })
        }
        None => {
            let (mut builder, clock) =
                deadline_checker(model, search.strategy, search.threads, timeout);
            if let Some(d) = search.depth {
                builder = builder.target_max_depth(d);
            }
            if symmetry {
                let representative = judge
                    .symmetry()
                    .expect("--symmetry on a model without a sound symmetry");
                builder = builder.symmetry_fn(representative);
            }
            let tick = |counts| progress.tick(counts, start.elapsed());
            match search.strategy {
                Strategy::Bfs => finish(builder.spawn_bfs(), &clock, tick),
                Strategy::Dfs => finish(builder.spawn_dfs(), &clock, tick),
                Strategy::Simulation(seed) => {
                    finish(builder.spawn_simulation(seed, UniformChooser), &clock, tick)
                }
            }
        }
    };
    let elapsed = start.elapsed();
    let mut discoveries = discoveries;
    for p in judge.properties() {
        if p.expectation == Expectation::Eventually {
            if let Some(path) = discoveries.remove(p.name) {
                if let Some(path) = genuine(&judge, p.condition, &path) {
                    discoveries.insert(p.name, path);
                }
            }
        }
    }
    // Found all it looked for: the checker stopped early, the verdict is final.
    let all_found = discoveries.len() == properties.len();
    // A simulation's walks prove nothing, and are not searches to shorten.
    let searched = !matches!(search.strategy, Strategy::Simulation(_));
    let complete = panics.is_empty()
        && searched
        && search.depth.is_none_or(|d| depth < d)
        && (!cut || all_found);
    // Re-running to shorten a counterexample would meet a panic again, in
    // this thread.
    if search.shortest && searched && panics.is_empty() {
        for (name, expectation) in &properties {
            let Some(path) = discoveries.get(name) else {
                continue;
            };
            if expectation.discovery_is_failure() {
                let steps = steps(path);
                if let Some(p) = shortest(&judge, name, steps, search.threads, timeout) {
                    discoveries.insert(name, p);
                }
            }
        }
    }
    let findings = properties
        .iter()
        .filter_map(|(name, expectation)| {
            let path = discoveries.get(name)?;
            Some(Finding {
                property: name,
                expectation: expectation.clone(),
                path: path
                    .clone()
                    .into_actions()
                    .iter()
                    .map(|a| judge.describe(a))
                    .collect(),
                why: match expectation {
                    Expectation::Sometimes => None,
                    _ => judge.why(name, path.last_state()),
                },
            })
        })
        .collect();
    Verdict {
        properties,
        unique_states: unique,
        total_states: total,
        max_depth: depth,
        elapsed,
        complete,
        findings,
        symmetry,
        peak_rss: peak_rss(),
        parts: in_parts,
        panics,
    }
}

/// The peak resident set size of this process (`VmHWM`), where Linux tells it.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// A counterexample to an eventually-property as it should be: the condition
/// never holds on the path, and the path ends where nothing more can happen
/// within the boundary. stateright's simulation also reports walks that merely
/// closed a loop (they end where something can still happen), which prove
/// nothing, and walks stopped by the boundary, which end one step outside it:
/// those are judged where they were before that step.
fn genuine<M: Model>(
    model: &M,
    condition: fn(&M, &M::State) -> bool,
    path: &Path<M::State, M::Action>,
) -> Option<Path<M::State, M::Action>>
where
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    let mut path = path.clone();
    if !model.within_boundary(path.last_state()) {
        let init = path.clone().into_states().swap_remove(0);
        let mut actions = path.into_actions();
        actions.pop();
        path = Path::from_actions(model, init, &actions)?;
    }
    if path
        .clone()
        .into_states()
        .iter()
        .any(|s| condition(model, s))
    {
        return None;
    }
    let last = path.last_state();
    let mut actions = Vec::new();
    model.actions(last, &mut actions);
    let stuck = actions.into_iter().all(|a| {
        model
            .next_state(last, a)
            .is_none_or(|next| !model.within_boundary(&next))
    });
    stuck.then_some(path)
}

fn steps<S, A>(path: &Path<S, A>) -> usize
where
    S: Clone,
    A: Clone,
{
    path.clone().into_actions().len()
}

/// The shortest counterexample to `name`, if shorter than `longest` steps
/// (the shortest found before a re-run runs out of time).
///
/// stateright's BFS keeps the *last* violating state it dequeues, not the
/// first, so its counterexample can be longer than need be; a depth-first
/// search's is the path it happened to be on. Whether a
/// violation exists within k steps is monotone in k, so binary-search the
/// least such k with depth-bounded re-runs, each stopping at its first find.
fn shortest<M>(
    model: &M,
    name: &'static str,
    longest: usize,
    threads: usize,
    timeout: Option<Duration>,
) -> Option<Path<M::State, M::Action>>
where
    M: Model + Clone + Send + Sync + 'static,
    M::State: Clone + Debug + Hash + PartialEq + Send + Sync + 'static,
    M::Action: Clone + Debug + PartialEq + Send + Sync + 'static,
{
    let within = |k: usize| {
        // The initial states are at depth 1, and states at the target depth
        // are not checked: depth k + 2 checks every path of at most k steps.
        let (builder, clock) = deadline_checker(model.clone(), Strategy::Bfs, threads, timeout);
        let checker = builder
            .target_max_depth(k + 2)
            .finish_when(HasDiscoveries::AnyOf([name].into()))
            .spawn_bfs()
            .join();
        let cut = clock.stop();
        // Cut short without a find: whether one exists within k is unknown.
        match checker.discovery(name) {
            None if cut => Err(()),
            found => Ok(found),
        }
    };
    // Invariant: no violation within `lo - 1` steps; one within `hi`.
    let (mut lo, mut hi, mut best) = (0, longest, None);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match within(mid) {
            Ok(Some(p)) => {
                hi = steps(&p);
                best = Some(p);
            }
            Ok(None) => lo = mid + 1,
            Err(()) => break,
        }
    }
    best
}

/// A checker for `model` that stops at `timeout`, and its clock. A search gets
/// a [`Deadline`], which one thread keeps too; a simulation keeps stateright's
/// own, which it checks after every walk.
fn deadline_checker<M>(
    model: M,
    strategy: Strategy,
    threads: usize,
    timeout: Option<Duration>,
) -> (CheckerBuilder<Deadline<M>>, Clock)
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync,
{
    let simulation = matches!(strategy, Strategy::Simulation(_));
    let model = Deadline::new(model, timeout.filter(|_| !simulation));
    let clock = model.clock();
    let mut builder = model.checker().threads(threads.max(1));
    if let Some(t) = timeout.filter(|_| simulation) {
        builder = builder.timeout(t);
    }
    (builder, clock)
}

/// How many of `parts` parts a search checks at a time: a thread each, and
/// no thread without a part.
fn at_once(search: &Search, parts: usize) -> usize {
    search.threads.clamp(1, parts)
}

/// What one checker run found.
struct Finished<M: Model> {
    /// Whether the deadline cut the search short.
    cut: bool,
    counts: Counts,
    discoveries: std::collections::HashMap<&'static str, Path<M::State, M::Action>>,
    panics: Vec<String>,
}

/// Waits for the checker, then joins its threads. stateright's workers stop
/// when one panics (its job broker closes on unwinding) and the checker looks
/// done, so without the join a panicking model step would be judged on the
/// states explored before it: a PASS the model never earned. Then stops the
/// clock, so that the discoveries' paths can be rebuilt (which is why this
/// polls rather than use stateright's `report`: that rebuilds them first).
fn finish<M, C>(checker: C, clock: &Clock, mut polled: impl FnMut(Counts)) -> Finished<M>
where
    M: Model,
    C: Checker<M>,
    M::State: Clone + Debug + Hash + PartialEq,
    M::Action: Clone + Debug + PartialEq,
{
    while !checker.is_done() {
        polled(Counts::of(&checker));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut checker = checker;
    let panics = checker
        .handles()
        .into_iter()
        .filter_map(|h| h.join().err())
        .map(|payload| gsmo_view::text::panic_message(&*payload))
        .collect();
    let cut = clock.stop();
    Finished {
        cut,
        counts: Counts::of(&checker),
        discoveries: checker.discoveries(),
        panics,
    }
}

/// The model's own explanations and reductions, so that a search with a
/// deadline ([`crate::sleep`]) steps and sleeps as the model does. Not its
/// parts: the checker splits the model first, then gives each part a clock.
impl<M: Explained> Explained for Deadline<M> {
    fn why(&self, property: &'static str, state: &M::State) -> Option<String> {
        self.inner().why(property, state)
    }
    fn describe(&self, action: &M::Action) -> String {
        self.inner().describe(action)
    }
    fn symmetry(&self) -> Option<Representative<Self>> {
        self.inner().symmetry()
    }
    fn slot(&self, action: &M::Action) -> Option<u32> {
        self.inner().slot(action)
    }
    fn independent(&self, state: &M::State, u: &M::Action, t: &M::Action) -> bool {
        self.inner().independent(state, u, t)
    }
    fn next_state_from(&self, state: M::State, action: M::Action) -> Option<M::State> {
        self.inner().next_state_from(state, action)
    }
    fn fingerprint(&self, state: &M::State) -> u64
    where
        M::State: Hash,
    {
        self.inner().fingerprint(state)
    }
}

/// Searches `model` depth first with sleep sets ([`crate::sleep`]) on this
/// thread until `timeout`, telling `polled` how far it has got now and then.
/// A panic in the model ends the search and is reported, as stateright's
/// checkers report their threads'.
fn asleep<M>(
    model: M,
    timeout: Option<Duration>,
    depth: Option<usize>,
    mut polled: impl FnMut(Counts),
) -> Finished<Deadline<M>>
where
    M: Explained,
    M::State: Clone + Debug + Hash + PartialEq,
    M::Action: Clone + Debug + PartialEq,
{
    let model = Deadline::new(model, timeout);
    let clock = model.clock();
    let searched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Replica steps remembered while searching; the paths found are
        // replayed below, through the model itself.
        crate::transitions::remembering(|| {
            crate::sleep::search(&model, depth, |r| polled(r.into()))
        })
    }));
    let cut = clock.stop();
    match searched {
        Ok(found) => Finished {
            cut,
            counts: found.reached.into(),
            discoveries: found
                .discoveries
                .iter()
                .map(|(name, steps)| (*name, crate::sleep::path(&model, steps)))
                .collect(),
            panics: Vec::new(),
        },
        Err(payload) => Finished {
            cut,
            counts: Counts::default(),
            discoveries: Default::default(),
            panics: vec![gsmo_view::text::panic_message(&*payload)],
        },
    }
}

/// Checks `parts`, whose state spaces are disjoint ([`Explained::parts`]),
/// depth first on `search.threads` threads, each taking the next part and
/// checking it alone, and adds up what they found. stateright's own threads
/// share one set of visited states, one map of discoveries and the states
/// themselves, and lose over a quarter of the second core to it
/// (`docs/performance.md`, "Two threads are not two cores"); parts share
/// nothing. The counts are exact sums, as no state is in two parts; a
/// discovery is the first part's to find it, in part order. The deadline is
/// one for all parts; a part not started by then, or not after a panic, makes
/// the search incomplete.
fn side_by_side<M>(
    parts: Vec<M>,
    search: &Search,
    timeout: Option<Duration>,
    progress: &mut Progress,
) -> Finished<Deadline<M>>
where
    M: Explained + Send + Sync + 'static,
    M::State: Clone + Debug + Hash + PartialEq + Send + Sync + 'static,
    M::Action: Clone + Debug + PartialEq + Send + Sync + 'static,
{
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    let count = parts.len();
    let threads = at_once(search, count);
    let queue = Mutex::new(parts.into_iter().enumerate().collect::<VecDeque<_>>());
    let running: Vec<Mutex<Counts>> = (0..threads).map(|_| Mutex::default()).collect();
    let done: Mutex<Vec<(usize, Finished<Deadline<M>>)>> = Mutex::default();
    let (panicked, idle) = (AtomicBool::new(false), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for slot in &running {
            let (queue, done, panicked, idle) = (&queue, &done, &panicked, &idle);
            scope.spawn(move || {
                // Counted on the way out, even unwinding, so the wait below ends
                // and the scope passes the panic on.
                let _leaving = Leaving(idle);
                loop {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    if panicked.load(Ordering::Relaxed) || left == Some(Duration::ZERO) {
                        break;
                    }
                    // In the order the model gave them.
                    let next = queue.lock().expect("no panic holding it").pop_front();
                    let Some((i, part)) = next else {
                        break;
                    };
                    let polled = |counts| *slot.lock().expect("no panic holding it") = counts;
                    let found = if search.sleep {
                        asleep(part, left, search.depth, polled)
                    } else {
                        let (mut builder, clock) = deadline_checker(part, Strategy::Dfs, 1, left);
                        if let Some(d) = search.depth {
                            builder = builder.target_max_depth(d);
                        }
                        finish(builder.spawn_dfs(), &clock, polled)
                    };
                    *slot.lock().expect("no panic holding it") = Counts::default();
                    panicked.fetch_or(!found.panics.is_empty(), Ordering::Relaxed);
                    done.lock().expect("no panic holding it").push((i, found));
                }
            });
        }
        while idle.load(Ordering::Relaxed) < threads {
            let finished = done
                .lock()
                .expect("no panic holding it")
                .iter()
                .fold(Counts::default(), |sum, (_, f)| sum.add(f.counts));
            let all = running.iter().fold(finished, |sum, c| {
                sum.add(*c.lock().expect("no panic holding it"))
            });
            progress.tick(all, start.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let mut done = done.into_inner().expect("no panic holding it");
    done.sort_by_key(|(i, _)| *i);
    let mut all = Finished {
        // Parts never started leave the search incomplete.
        cut: done.len() < count,
        counts: Counts::default(),
        discoveries: Default::default(),
        panics: Vec::new(),
    };
    for (_, part) in done {
        all.cut |= part.cut;
        all.counts = all.counts.add(part.counts);
        for (name, path) in part.discoveries {
            all.discoveries.entry(name).or_insert(path);
        }
        all.panics.extend(part.panics);
    }
    all
}

/// Adds one to its counter when dropped: a thread of [`side_by_side`] leaving.
struct Leaving<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Property;

    /// Counts from 0 to 5; with `panic_at`, the step to that number panics,
    /// as a spec assertion inside a replica's step would.
    #[derive(Clone)]
    struct Counter {
        panic_at: Option<u8>,
    }

    impl Model for Counter {
        type State = u8;
        type Action = ();

        fn init_states(&self) -> Vec<u8> {
            vec![0]
        }

        fn actions(&self, state: &u8, actions: &mut Vec<()>) {
            if *state < 5 {
                actions.push(());
            }
        }

        fn next_state(&self, state: &u8, _: ()) -> Option<u8> {
            assert_ne!(Some(state + 1), self.panic_at, "the counter broke");
            Some(state + 1)
        }

        fn properties(&self) -> Vec<Property<Self>> {
            vec![
                Property::always("at most five", |_, s| *s <= 5),
                Property::sometimes("two", |_, s| *s == 2),
            ]
        }
    }

    impl Explained for Counter {
        fn why(&self, _: &'static str, _: &u8) -> Option<String> {
            None
        }

        fn describe(&self, _: &()) -> String {
            "count".into()
        }
    }

    fn strategies() -> [Strategy; 3] {
        [Strategy::Bfs, Strategy::Dfs, Strategy::Simulation(7)]
    }

    /// A simulation runs until its timeout unless it panics; 30 s is the panic's deadline.
    fn search(strategy: Strategy, threads: usize) -> Search {
        let seconds = match strategy {
            Strategy::Simulation(_) if threads == 2 => 1,
            _ => 30,
        };
        Search {
            strategy,
            threads,
            timeout: Some(Duration::from_secs(seconds)),
            ..Search::default()
        }
    }

    #[test]
    fn a_model_step_that_panics_fails_the_run_in_every_strategy() {
        for strategy in strategies() {
            for threads in [1, 2] {
                let v = check(Counter { panic_at: Some(3) }, &search(strategy, threads));
                let at = format!("{strategy:?} on {threads} thread(s)");
                assert!(!v.panics.is_empty(), "{at}: the panic went unnoticed");
                assert!(v.panics.iter().all(|p| p == "assertion `left != right` failed: the counter broke\n  left: Some(3)\n right: Some(3)"), "{at}: {:?}", v.panics);
                assert!(
                    !v.complete,
                    "{at}: a run cut short by a panic is not complete"
                );
                assert!(!v.passed(), "{at}");
                assert_eq!(v.judge(None), Outcome::Fail, "{at}");
                assert_eq!(v.judge(Some("at most five")), Outcome::Fail, "{at}");
            }
        }
    }

    #[test]
    fn the_same_model_without_the_panic_passes() {
        for strategy in strategies() {
            let v = check(Counter { panic_at: None }, &search(strategy, 2));
            assert!(v.panics.is_empty(), "{strategy:?}");
            assert_eq!(v.judge(None), Outcome::Pass, "{strategy:?}");
            assert_eq!(v.complete, strategy != Strategy::Simulation(7));
        }
        let v = check(Counter { panic_at: None }, &search(Strategy::Bfs, 1));
        assert_eq!((v.unique_states, v.max_depth), (6, 6));
    }

    /// Counters from each of `starts`: below 1,000 up by five, from 1,000 up
    /// to [`LONG`] (a ladder of 100,001 states), from [`ENDLESS`] up for ever.
    /// Each start is a part of its own (or `parts` says which starts make a
    /// part): their states are disjoint. `bad` breaks an invariant there,
    /// `panic_at` panics stepping there; `104` is an example only the part
    /// from 100 has.
    #[derive(Clone)]
    struct Ladders {
        starts: Vec<u32>,
        parts: Option<Vec<Vec<u32>>>,
        bad: Option<u32>,
        panic_at: Option<u32>,
    }

    const LONG: u32 = 101_000;
    const ENDLESS: u32 = 1_000_000;

    impl Model for Ladders {
        type State = u32;
        type Action = ();

        fn init_states(&self) -> Vec<u32> {
            self.starts.clone()
        }

        fn actions(&self, state: &u32, actions: &mut Vec<()>) {
            let climbs = match *state {
                s if s < 1000 => s % 100 < 5,
                s => !(LONG..ENDLESS).contains(&s),
            };
            if climbs {
                actions.push(());
            }
        }

        fn next_state(&self, state: &u32, _: ()) -> Option<u32> {
            assert_ne!(Some(state + 1), self.panic_at, "the ladder broke");
            Some(state + 1)
        }

        fn properties(&self) -> Vec<Property<Self>> {
            vec![
                Property::always("not bad", |m: &Ladders, s| Some(*s) != m.bad),
                Property::sometimes("104", |_, s| *s == 104),
            ]
        }
    }

    impl Explained for Ladders {
        fn why(&self, _: &'static str, _: &u32) -> Option<String> {
            None
        }

        fn describe(&self, _: &()) -> String {
            "up".into()
        }

        fn parts(&self) -> Option<Vec<Self>> {
            let starts = match &self.parts {
                Some(parts) => parts.clone(),
                None => self.starts.iter().map(|&s| vec![s]).collect(),
            };
            let part = |starts| Ladders {
                starts,
                parts: None,
                ..self.clone()
            };
            (self.starts.len() > 1).then(|| starts.into_iter().map(part).collect())
        }
    }

    fn ladders() -> Ladders {
        Ladders {
            starts: vec![0, 100, 200],
            parts: None,
            bad: None,
            panic_at: None,
        }
    }

    #[test]
    fn parts_checked_side_by_side_add_up_to_the_whole() {
        let whole = check(ladders(), &search(Strategy::Dfs, 1));
        let parts = check(ladders(), &search(Strategy::Dfs, 2));
        for v in [&whole, &parts] {
            assert_eq!((v.unique_states, v.total_states, v.max_depth), (18, 18, 6));
            assert!(v.complete);
            // The example is in one part only, and counts for the whole.
            assert_eq!(v.judge(None), Outcome::Pass, "vacuous: {:?}", v.vacuous());
        }
        // One part: nothing to put side by side.
        let one = Ladders {
            starts: vec![100],
            ..ladders()
        };
        assert_eq!(check(one, &search(Strategy::Dfs, 2)).unique_states, 6);
    }

    /// Several threads check the parts the model gives, not the whole: parts
    /// that leave a start out (no model should) leave its states out.
    #[test]
    fn a_search_on_several_threads_checks_the_parts() {
        let two_of_three = Ladders {
            parts: Some(vec![vec![0], vec![100]]),
            ..ladders()
        };
        let v = check(two_of_three.clone(), &search(Strategy::Dfs, 2));
        assert_eq!(v.unique_states, 12);
        assert_eq!(v.parts, Some((2, 2)), "two parts, two at a time");
        let whole = check(two_of_three.clone(), &search(Strategy::Dfs, 1));
        assert_eq!((whole.unique_states, whole.parts), (18, None));
        let wide = check(two_of_three, &search(Strategy::Dfs, 4));
        assert_eq!(wide.parts, Some((2, 2)), "no more at a time than parts");
    }

    #[test]
    fn a_part_that_fails_or_panics_fails_the_whole() {
        let bad = Ladders {
            bad: Some(203),
            ..ladders()
        };
        let v = check(bad, &search(Strategy::Dfs, 2));
        assert_eq!(v.judge(Some("not bad")), Outcome::Caught);
        assert_eq!(v.finding("not bad").map(|f| f.path.len()), Some(3));
        let panics = Ladders {
            panic_at: Some(102),
            ..ladders()
        };
        let v = check(panics, &search(Strategy::Dfs, 2));
        assert_eq!(v.panics.len(), 1, "{:?}", v.panics);
        assert!(!v.complete);
        assert_eq!(v.judge(None), Outcome::Fail);
    }

    /// After a panic no part starts: the run has failed, and the rest would
    /// only cost time. The part from 200 panics at its first step while the
    /// other thread climbs the long ladder; the parts queued behind never run.
    #[test]
    fn no_part_starts_after_a_panic() {
        let panics = Ladders {
            starts: vec![200, 1000, 0, 100],
            panic_at: Some(201),
            ..ladders()
        };
        let v = check(panics, &search(Strategy::Dfs, 2));
        assert_eq!(v.panics.len(), 1, "{:?}", v.panics);
        assert!(v.unique_states > 100_000, "{}", v.unique_states);
        assert!(v.finding("104").is_none(), "the part from 100 ran");
    }

    /// One deadline for all parts: a part it cuts, or one it leaves
    /// unstarted, leaves the whole incomplete, however the others ended.
    #[test]
    fn a_part_cut_by_the_deadline_leaves_the_whole_incomplete() {
        let endless = Ladders {
            starts: vec![ENDLESS, 0, 100],
            ..ladders()
        };
        let search = Search {
            timeout: Some(Duration::from_millis(500)),
            ..search(Strategy::Dfs, 2)
        };
        let v = check(endless, &search);
        assert!(!v.complete);
        // Both ladders of five finished, beside the endless one.
        assert!(v.unique_states > 12, "{}", v.unique_states);
        assert!(v.finding("104").is_some());
        // Out of time before the first part: nothing checked, nothing complete.
        let none = Search {
            timeout: Some(Duration::ZERO),
            ..search
        };
        let v = check(ladders(), &none);
        assert_eq!((v.unique_states, v.complete), (0, false));
    }
}
