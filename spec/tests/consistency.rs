//! The consistency checker against brute force.
//!
//! `gsmo_spec::consistency` prunes its search four ways (unknown operations
//! that cannot matter left out, states with a read that can no longer be
//! served cut, reads of the current value taken at once, states whose unknown
//! operations are a superset of an earlier one's skipped) and memoises it. The oracle below does none of that: it tries
//! every order of every subset of the unknown operations. On random small
//! histories, legal or not, both must give the same verdict under both
//! criteria, and every order the checker returns must replay legally.

use gsmo_spec::consistency::{check_key_within, Call, ClientOp, Order, SEARCH_BUDGET};
use gsmo_spec::kv::Reply;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// The register one key is: what the checker's sequential specification says.
fn step(value: &Option<Vec<u8>>, call: &Call) -> (Option<Vec<u8>>, Reply) {
    match call {
        Call::Get => (value.clone(), Reply::Bulk(value.clone())),
        Call::Set(v) => (Some(v.clone()), Reply::Ok),
        Call::Del => (None, Reply::Int(value.is_some() as i64)),
        Call::IncrBy(d) => {
            let now = match value {
                None => Some(0),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok()),
            };
            match now.and_then(|n| n.checked_add(*d)) {
                Some(n) => (Some(n.to_string().into_bytes()), Reply::Int(n)),
                None => (value.clone(), Reply::Error("not an integer".into())),
            }
        }
    }
}

/// Whether `a` must come before `b` (both indices into `ops` then `unknown`;
/// nothing waits for an unknown operation).
fn before(all: &[&ClientOp], known: usize, order: Order, a: usize, b: usize) -> bool {
    a < known
        && a != b
        && match order {
            Order::RealTime => all[a].ret < all[b].invoke,
            Order::Program => {
                all[a].client == all[b].client && (all[a].invoke, a) < (all[b].invoke, b)
            }
        }
}

/// Every order of every subset of the operations, known ones all included.
fn oracle(ops: &[ClientOp], unknown: &[ClientOp], order: Order) -> bool {
    let all: Vec<&ClientOp> = ops.iter().chain(unknown).collect();
    fn go(
        all: &[&ClientOp],
        known: usize,
        order: Order,
        done: &mut Vec<bool>,
        value: &Option<Vec<u8>>,
    ) -> bool {
        if done[..known].iter().all(|&d| d) {
            return true;
        }
        for i in 0..all.len() {
            let ready =
                !done[i] && (0..all.len()).all(|a| !before(all, known, order, a, i) || done[a]);
            if !ready {
                continue;
            }
            let (next, reply) = step(value, &all[i].call);
            if i < known && reply != all[i].reply {
                continue;
            }
            done[i] = true;
            let found = go(all, known, order, done, &next);
            done[i] = false;
            if found {
                return true;
            }
        }
        false
    }
    go(&all, ops.len(), order, &mut vec![false; all.len()], &None)
}

/// Whether `found` (indices into `ops` then `unknown`) is a legal order.
fn replays(ops: &[ClientOp], unknown: &[ClientOp], order: Order, found: &[usize]) -> bool {
    let all: Vec<&ClientOp> = ops.iter().chain(unknown).collect();
    let mut done = vec![false; all.len()];
    let mut value = None;
    for &i in found {
        let ready =
            !done[i] && (0..all.len()).all(|a| !before(&all, ops.len(), order, a, i) || done[a]);
        let (next, reply) = step(&value, &all[i].call);
        if !ready || (i < ops.len() && reply != all[i].reply) {
            return false;
        }
        done[i] = true;
        value = next;
    }
    done[..ops.len()].iter().all(|&d| d)
}

/// A small history on one key: up to 4 clients, calls and replies from small
/// sets (so that legal and illegal histories both come up), and up to 3
/// operations of unknown outcome.
fn histories() -> impl Strategy<Value = (Vec<ClientOp>, Vec<ClientOp>)> {
    let value = prop_oneof![
        Just(b"a".to_vec()),
        Just(b"b".to_vec()),
        Just(b"1".to_vec())
    ];
    let call = prop_oneof![
        4 => Just(Call::Get),
        4 => value.clone().prop_map(Call::Set),
        1 => Just(Call::Del),
        1 => Just(Call::IncrBy(1)),
    ];
    let reply = prop_oneof![
        Just(Reply::Ok),
        Just(Reply::Bulk(None)),
        value.prop_map(|v| Reply::Bulk(Some(v))),
        (0i64..3).prop_map(Reply::Int),
    ];
    let op = (0usize..4, call, reply, 0u64..20, 0u64..6).prop_map(
        |(client, call, reply, invoke, took)| {
            // A plausible reply half of the time: the call's own kind.
            ClientOp {
                client,
                key: b"k".to_vec(),
                reply: match (&call, reply) {
                    (Call::Set(_), _) => Reply::Ok,
                    (_, r) => r,
                },
                call,
                invoke,
                ret: invoke + took,
            }
        },
    );
    (
        prop::collection::vec(op.clone(), 0..7),
        prop::collection::vec(op, 0..4),
    )
}

#[test]
fn the_checker_gives_brute_forces_verdict() {
    let mut runner = TestRunner::new(gsmo_spec::testing::proptest_config(20_000));
    let verdicts = std::cell::RefCell::new((0usize, 0usize));
    let outcome = runner.run(&histories(), |(ops, unknown)| {
        for order in [Order::RealTime, Order::Program] {
            let found = check_key_within(&ops, &unknown, order, SEARCH_BUDGET);
            let legal = oracle(&ops, &unknown, order);
            prop_assert_eq!(
                found.is_ok(),
                legal,
                "{:?} {:?}: {:?}",
                order,
                found,
                (&ops, &unknown)
            );
            if let Ok(found) = &found {
                prop_assert!(
                    replays(&ops, &unknown, order, found),
                    "{:?}: {:?}",
                    order,
                    found
                );
            }
            let mut v = verdicts.borrow_mut();
            if legal {
                v.0 += 1;
            } else {
                v.1 += 1;
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let (legal, illegal) = verdicts.into_inner();
    eprintln!("legal {legal}, illegal {illegal}");
    assert!(
        legal >= 5_000 && illegal >= 5_000,
        "both verdicts exercised: {legal} / {illegal}"
    );
}
