//! The history predicates against their first definitions.
//!
//! `gsmo_spec::properties` keeps per-message facts in vectors under dense
//! indices because the model checker evaluates the predicates at every state.
//! The definitions they replaced (below, as they stood: hash sets keyed by
//! message id, one line per rule) are the oracle: on random histories, well
//! formed or not, both give the same verdict, down to the violation's text.

use gsmo_spec::multicast::MsgId;
use gsmo_spec::properties::{self, Event, Violation};
use gsmo_spec::NodeId;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The first definitions, kept as the oracle.
mod oracle {
    use super::*;

    fn fail<T>(property: &'static str, detail: String) -> Result<T, Violation> {
        Err(Violation { property, detail })
    }

    fn delivered(log: &[Event]) -> impl Iterator<Item = MsgId> + '_ {
        log.iter().filter_map(|e| match e {
            Event::Deliver(m) => Some(*m),
            Event::Send(_) => None,
        })
    }

    pub fn sent(logs: &[Vec<Event>]) -> impl Iterator<Item = MsgId> + '_ {
        logs.iter().flatten().filter_map(|e| match e {
            Event::Send(m) => Some(*m),
            Event::Deliver(_) => None,
        })
    }

    pub fn integrity(logs: &[Vec<Event>]) -> Result<(), Violation> {
        let sent: HashSet<MsgId> = sent(logs).collect();
        for (node, log) in logs.iter().enumerate() {
            let mut seen = HashSet::new();
            for m in delivered(log) {
                if !sent.contains(&m) {
                    return fail(
                        "integrity",
                        format!("node {node} delivered {m}, which nobody sent"),
                    );
                }
                if !seen.insert(m) {
                    return fail("integrity", format!("node {node} delivered {m} twice"));
                }
            }
        }
        Ok(())
    }

    pub fn fifo_order(logs: &[Vec<Event>]) -> Result<(), Violation> {
        for (node, log) in logs.iter().enumerate() {
            let mut next: HashMap<NodeId, u64> = HashMap::new();
            for m in delivered(log) {
                let want = next.entry(m.origin).or_insert(1);
                if m.seq != *want {
                    let detail = format!(
                        "node {node} delivered {m} while n{}#{} was next",
                        m.origin, want
                    );
                    return fail("fifo order", detail);
                }
                *want += 1;
            }
        }
        Ok(())
    }

    pub fn causal_order(logs: &[Vec<Event>]) -> Result<(), Violation> {
        let past = causal_pasts(logs);
        let width = past.values().map(Vec::len).max().unwrap_or(0);
        for (node, log) in logs.iter().enumerate() {
            let mut done: HashSet<MsgId> = HashSet::new();
            let mut prefix = vec![0u64; width];
            for b in delivered(log) {
                if let Some(before) = past.get(&b) {
                    if let Some(j) = (0..before.len()).find(|&j| before[j] > prefix[j]) {
                        let a = MsgId {
                            origin: j,
                            seq: prefix[j] + 1,
                        };
                        let detail = format!(
                            "node {node} delivered {b} before {a}, which happened before it"
                        );
                        return fail("causal order", detail);
                    }
                }
                done.insert(b);
                if let Some(p) = prefix.get_mut(b.origin) {
                    while done.contains(&MsgId {
                        origin: b.origin,
                        seq: *p + 1,
                    }) {
                        *p += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn causal_pasts(logs: &[Vec<Event>]) -> HashMap<MsgId, Vec<u64>> {
        let mut past: HashMap<MsgId, Vec<u64>> = HashMap::new();
        let sent: HashSet<MsgId> = sent(logs).collect();
        let width = logs
            .iter()
            .flatten()
            .map(|(Event::Send(m) | Event::Deliver(m))| m.origin + 1)
            .fold(logs.len(), usize::max);
        let note = |v: &mut Vec<u64>, m: MsgId| v[m.origin] = v[m.origin].max(m.seq);
        let mut pos = vec![0usize; logs.len()];
        let mut known: Vec<Vec<u64>> = vec![vec![0; width]; logs.len()];
        loop {
            let mut progressed = false;
            for (i, log) in logs.iter().enumerate() {
                while pos[i] < log.len() {
                    match log[pos[i]] {
                        Event::Send(m) => {
                            past.insert(m, known[i].clone());
                            note(&mut known[i], m);
                        }
                        Event::Deliver(m) => match past.get(&m) {
                            Some(p) => {
                                for (k, p) in known[i].iter_mut().zip(p) {
                                    *k = (*k).max(*p);
                                }
                                note(&mut known[i], m);
                            }
                            None if sent.contains(&m) => break,
                            None => {}
                        },
                    }
                    pos[i] += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        past
    }

    pub fn total_order(logs: &[Vec<Event>]) -> Result<(), Violation> {
        let orders: Vec<Vec<MsgId>> = logs.iter().map(|l| delivered(l).collect()).collect();
        for i in 0..orders.len() {
            let pos_i: HashMap<MsgId, usize> =
                orders[i].iter().enumerate().map(|(p, m)| (*m, p)).collect();
            for (j, order_j) in orders.iter().enumerate().skip(i + 1) {
                let common: Vec<MsgId> = order_j
                    .iter()
                    .copied()
                    .filter(|m| pos_i.contains_key(m))
                    .collect();
                if let Some(w) = common.windows(2).find(|w| pos_i[&w[0]] > pos_i[&w[1]]) {
                    let detail = format!(
                        "node {i} delivered {} before {}, node {j} the other way round",
                        w[1], w[0]
                    );
                    return fail("total order", detail);
                }
            }
        }
        Ok(())
    }

    pub fn all_delivered(logs: &[Vec<Event>]) -> Result<(), Violation> {
        let sent: BTreeSet<MsgId> = sent(logs).collect();
        for (node, log) in logs.iter().enumerate() {
            let got: BTreeSet<MsgId> = delivered(log).collect();
            if let Some(m) = sent.difference(&got).next() {
                return fail("all delivered", format!("node {node} never delivered {m}"));
            }
        }
        Ok(())
    }
}

type Predicate = fn(&[Vec<Event>]) -> Result<(), Violation>;

/// Each predicate beside its oracle.
const PAIRS: [(&str, Predicate, Predicate); 5] = [
    ("integrity", properties::integrity, oracle::integrity),
    ("fifo order", properties::fifo_order, oracle::fifo_order),
    (
        "causal order",
        properties::causal_order,
        oracle::causal_order,
    ),
    ("total order", properties::total_order, oracle::total_order),
    (
        "all delivered",
        properties::all_delivered,
        oracle::all_delivered,
    ),
];

/// A message id, mostly of a real node's early sends, sometimes of a node that
/// does not exist or a sequence number no run reaches.
fn msg_id(n: usize) -> impl Strategy<Value = MsgId> {
    let origin = prop_oneof![8 => 0..n, 1 => n..n + 2];
    let seq = prop_oneof![8 => 1u64..4, 1 => Just(0u64), 1 => Just(1u64 << 40)];
    (origin, seq).prop_map(|(origin, seq)| MsgId { origin, seq })
}

/// Histories of 1 to 4 nodes. Half are run-like: each node sends its own
/// messages in order, and delivers only messages sent somewhere, once each,
/// so the order predicates are reached past integrity.
fn histories() -> impl Strategy<Value = Vec<Vec<Event>>> {
    (1usize..5).prop_flat_map(|n| {
        let event = prop_oneof![
            1 => msg_id(n).prop_map(Event::Send),
            2 => msg_id(n).prop_map(Event::Deliver),
        ];
        let logs = prop::collection::vec(prop::collection::vec(event, 0..9), n);
        (logs, any::<bool>()).prop_map(|(logs, run_like)| if run_like { tidy(logs) } else { logs })
    })
}

/// Renumbers each node's sends as its own `1, 2, ...` and keeps only the first
/// delivery of each message some node sends.
fn tidy(logs: Vec<Vec<Event>>) -> Vec<Vec<Event>> {
    let logs: Vec<Vec<Event>> = logs
        .into_iter()
        .enumerate()
        .map(|(node, log)| {
            let mut seq = 0;
            log.into_iter()
                .map(|e| match e {
                    Event::Send(_) => {
                        seq += 1;
                        Event::Send(MsgId { origin: node, seq })
                    }
                    d => d,
                })
                .collect()
        })
        .collect();
    let sent: HashSet<MsgId> = oracle::sent(&logs).collect();
    logs.into_iter()
        .map(|log| {
            let mut seen = HashSet::new();
            log.into_iter()
                .filter(|e| match e {
                    Event::Send(_) => true,
                    Event::Deliver(m) => sent.contains(m) && seen.insert(*m),
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_predicate_gives_its_first_definitions_verdict() {
    let mut runner = TestRunner::new(gsmo_spec::testing::proptest_config(10_000));
    // How often each predicate held and failed: both sides must be reached.
    let verdicts = std::cell::RefCell::new([(0usize, 0usize); PAIRS.len()]);
    let outcome = runner.run(&histories(), |logs| {
        for (k, (name, fast, first)) in PAIRS.iter().enumerate() {
            let verdict = fast(&logs);
            prop_assert_eq!(&verdict, &first(&logs), "{}: {:?}", name, logs);
            let mut counts = verdicts.borrow_mut();
            match verdict {
                Ok(()) => counts[k].0 += 1,
                Err(_) => counts[k].1 += 1,
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    for ((name, ..), (held, failed)) in PAIRS.iter().zip(verdicts.into_inner()) {
        eprintln!("{name}: held {held}, failed {failed}");
        assert!(
            held >= 250 && failed >= 250,
            "{name} is not exercised on both sides"
        );
    }
}
