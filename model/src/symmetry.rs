//! Symmetry reduction for the causal model: states that differ only by which
//! node is called what are explored once.
//!
//! CBCAST treats every node alike, so renaming the nodes consistently in every
//! piece of a state gives a state that behaves the same and satisfies the same
//! properties. "Every piece" is: each actor's spec endpoint (its id, vector
//! clock, per-origin delivery counts, hold-back queue keyed by message id),
//! its ghost log (message ids name their origin), the actors' order itself
//! with their timers, and the network (envelopes' source and destination,
//! channel keys, message ids and timestamps inside the messages). The spec
//! renames its own state ([`gsmo_spec::symmetry`]); this file renames what
//! stateright holds and picks the representative.
//!
//! The spec's types cannot implement stateright's `Rewrite` here (both are
//! foreign to this crate: the orphan rule), and giving the spec a stateright
//! dependency would tie the protocol to one checker. So the spec offers a pure
//! `Rename` and the model hands stateright a representative *function*
//! (`CheckerBuilder::symmetry_fn`) instead of implementing `Representative`.
//!
//! One wrinkle, and why the reduction is still exact for the properties: when
//! a receipt releases several held-back messages at once, the spec delivers
//! them in message-id order, so a renamed run may log those deliveries in
//! another order. Messages released together are concurrent (a causal
//! successor waits for its predecessor), the endpoint's state after the
//! receipt does not depend on the order, and swapping adjacent deliveries of
//! concurrent messages changes neither happened-before nor any property
//! (causal order, integrity, all delivered). The broken `fifo-only` variant
//! releases causally related messages together, so for it the reduction may
//! miss violations; the tests pin that it still catches its bug.
//!
//! Not symmetric, hence never reduced: the sequencer (node 0 orders), ISIS and
//! last-writer-wins (ties broken by node id), and the snapshot model's bank.
//! The bank's ring of transfers `i -> i + 1` would survive a rotation
//! `i -> i + r mod n` (the cyclic group, with the least rotation of a state as
//! representative), but the bank needs a total order, and neither survives:
//! the sequencer is node 0 (a rotated state has the sequencer's counters at
//! node `r`, which does not number anything), and ISIS breaks equal priorities
//! `(seq, node)` by node id, an order that a rotation does not keep (`n-1 < 0`
//! after rotating by one), so a rotated run may deliver in another order. Under
//! fifo or causal delivery rotation would hold, but the bank refuses them (a
//! concurrent `TRANSFER` is last-writer-wins there, which again breaks ties by
//! node id). Account `i` also moves `amount * (i + 1)`, which differs by account.

use crate::adapter::{Multicaster, MulticasterState};
use gsmo_spec::multicast::Wire;
use gsmo_spec::properties::Event;
use gsmo_spec::symmetry::{permute, Rename};
use stateright::actor::{ActorModelState, Envelope, Id, Network};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

type State = ActorModelState<Multicaster>;

/// `s` with every node `k` called `to[k]`.
pub fn rename(s: &State, to: &[usize]) -> State {
    let actors: Vec<Arc<MulticasterState>> = s
        .actor_states
        .iter()
        .map(|a| {
            Arc::new(MulticasterState::new(
                a.endpoint.rename(to),
                a.log.rename(to),
            ))
        })
        .collect();
    ActorModelState {
        actor_states: permute(&actors, to),
        network: rename_network(&s.network, to),
        timers_set: permute(&s.timers_set, to),
        random_choices: permute(&s.random_choices, to),
        crashed: permute(&s.crashed, to),
        history: s.history,
        actor_storages: permute(&s.actor_storages, to),
    }
}

fn rename_network(net: &Network<Wire<()>>, to: &[usize]) -> Network<Wire<()>> {
    let id = |i: Id| Id::from(to[usize::from(i)]);
    let env = |e: &Envelope<Wire<()>>| Envelope {
        src: id(e.src),
        dst: id(e.dst),
        msg: e.msg.rename(to),
    };
    match net {
        Network::Ordered(flows) => Network::Ordered(
            flows
                .iter()
                .map(|(&(src, dst), q)| {
                    ((id(src), id(dst)), q.iter().map(|m| m.rename(to)).collect())
                })
                .collect(),
        ),
        Network::UnorderedNonDuplicating(bag) => {
            Network::UnorderedNonDuplicating(bag.iter().map(|(e, &k)| (env(e), k)).collect())
        }
        Network::UnorderedDuplicating(set, last) => {
            Network::UnorderedDuplicating(set.iter().map(env).collect(), last.as_ref().map(env))
        }
    }
}

/// The representative of `s`'s class: nodes sorted by a summary that renaming
/// does not change (messages sent, log length, hold-back depth); among nodes
/// the summary cannot tell apart, the ordering whose renamed logs are least,
/// and among those the one whose whole renamed state hashes least. Every state
/// of a class yields the same candidates, so the same representative (up to a
/// hash collision, which stateright's fingerprints risk anyway); and it is
/// always a renaming of `s`, so merging stays sound whatever the hash does.
pub fn representative(s: &State) -> State {
    let key = |i: usize| {
        let a = &s.actor_states[i];
        (a.endpoint.sent(), a.log.len(), a.endpoint.holdback_depth())
    };
    let mut order: Vec<usize> = (0..s.actor_states.len()).collect();
    order.sort_by_key(|&i| key(i));
    // Cheap first: compare the candidates' renamed logs (a few events each).
    let mut best: Vec<(Vec<Vec<Event>>, Vec<usize>)> = Vec::new();
    for_each_tie_order(&mut order, 0, &key, &mut |order| {
        let mut to = vec![0; order.len()];
        for (rank, &old) in order.iter().enumerate() {
            to[old] = rank;
        }
        let logs: Vec<Vec<Event>> = order
            .iter()
            .map(|&old| s.actor_states[old].log.rename(&to))
            .collect();
        match best.first().map(|(b, _)| logs.cmp(b)) {
            Some(std::cmp::Ordering::Greater) => {}
            Some(std::cmp::Ordering::Equal) => best.push((logs, to)),
            _ => best = vec![(logs, to)],
        }
    });
    if let [(_, to)] = best.as_slice() {
        if to.iter().enumerate().all(|(k, &t)| k == t) {
            return s.clone();
        }
        return rename(s, to);
    }
    best.iter()
        .map(|(_, to)| {
            let r = rename(s, to);
            let mut h = DefaultHasher::new();
            r.hash(&mut h);
            (h.finish(), r)
        })
        .min_by_key(|(h, _)| *h)
        .expect("at least one ordering")
        .1
}

/// Calls `f` with every reordering of `order` that permutes only runs of equal
/// keys (from position `from` on).
fn for_each_tie_order<K: Ord>(
    order: &mut Vec<usize>,
    from: usize,
    key: &impl Fn(usize) -> K,
    f: &mut impl FnMut(&[usize]),
) {
    if from >= order.len() {
        f(order);
        return;
    }
    let end = (from..order.len())
        .find(|&j| key(order[j]) != key(order[from]))
        .unwrap_or(order.len());
    permute_run(order, from, end, key, f);
}

/// Every permutation of `order[at..end]` (by swaps), each followed by the next run's.
fn permute_run<K: Ord>(
    order: &mut Vec<usize>,
    at: usize,
    end: usize,
    key: &impl Fn(usize) -> K,
    f: &mut impl FnMut(&[usize]),
) {
    if at + 1 >= end {
        for_each_tie_order(order, end, key, f);
        return;
    }
    for j in at..end {
        order.swap(at, j);
        permute_run(order, at + 1, end, key, f);
        order.swap(at, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Channels;
    use crate::causal::{CausalBug, CausalCfg};
    use crate::verdict::{Search, Strategy};
    use stateright::{Checker, HasDiscoveries, Model, Path};
    use std::collections::HashSet;

    fn cfg(nodes: usize, msgs: u64, channels: Channels, broken: Option<CausalBug>) -> CausalCfg {
        CausalCfg {
            nodes,
            msgs,
            channels,
            broken,
        }
    }

    fn dfs(c: CausalCfg, symmetry: bool) -> usize {
        let search = Search {
            strategy: Strategy::Dfs,
            symmetry,
            ..Search::default()
        };
        let v = crate::verdict::check(c.into_model(), &search);
        assert!(v.passed() && v.complete);
        assert_eq!(v.symmetry, symmetry);
        v.unique_states
    }

    #[test]
    fn symmetry_pins_the_reduction() {
        let small = cfg(3, 1, Channels::Ordered, None);
        assert_eq!(dfs(small.clone(), false), 690);
        assert_eq!(dfs(small, true), 123);
        let reordering = cfg(2, 2, Channels::Unordered, None);
        assert_eq!(dfs(reordering.clone(), false), 165);
        assert_eq!(dfs(reordering, true), 87);
    }

    /// Every reachable state of the model, by plain search.
    fn reachable(c: CausalCfg) -> Vec<State> {
        let mut all = Vec::new();
        crate::walk::each_state(&c.into_model(), |s, _| all.push(s.clone()));
        all
    }

    /// The representative is canonical: every renaming of a state has the same
    /// one, so the reduced count is exactly the number of classes.
    #[test]
    fn the_representative_is_the_same_for_every_renaming() {
        let states = reachable(cfg(3, 1, Channels::Ordered, None));
        assert_eq!(states.len(), 690);
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let mut classes = HashSet::new();
        for s in &states {
            let r = representative(s);
            for to in &perms {
                assert_eq!(representative(&rename(s, to)), r);
            }
            // By digest: a state keeps its nodes' hashes in cells, which a
            // set's keys should not hold.
            classes.insert(crate::digest::digest(&r));
        }
        assert_eq!(classes.len(), 123);
    }

    /// Under symmetry the checker still reports the path it really took: its
    /// actions replay from the initial state to a state that violates the property.
    #[test]
    fn a_counterexample_under_symmetry_replays() {
        let model = cfg(3, 1, Channels::Ordered, Some(CausalBug::FifoOnly)).into_model();
        let checker = model
            .clone()
            .checker()
            .symmetry_fn(representative)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_dfs()
            .join();
        let path = checker.discovery("causal order").expect("caught");
        let init = path.clone().into_states().swap_remove(0);
        let replayed = Path::from_actions(&model, init, &path.clone().into_actions())
            .expect("the actions replay");
        assert_eq!(replayed.last_state(), path.last_state());
        let logs = crate::adapter::logs(&replayed.last_state().actor_states);
        assert!(gsmo_spec::properties::causal_order(&logs).is_err());
    }

    #[test]
    fn broken_variants_are_caught_under_symmetry() {
        for bug in [CausalBug::FifoOnly, CausalBug::Lossy] {
            let search = Search {
                strategy: Strategy::Dfs,
                symmetry: true,
                ..Search::default()
            };
            let v = crate::verdict::check(
                cfg(3, 1, Channels::Ordered, Some(bug)).into_model(),
                &search,
            );
            let f = v.finding(bug.caught_by()).expect("caught");
            assert!(!f.path.is_empty() && f.why.is_some(), "{f:#?}");
        }
    }
}
