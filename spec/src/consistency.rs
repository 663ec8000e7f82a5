//! Client-visible consistency of a key/value history: linearizability
//! (Herlihy & Wing 1990) and sequential consistency (Lamport 1979), decided by
//! Wing & Gong's search for a legal sequential order (1993) with Lowe's
//! memoisation of `(operations already ordered, register state)` (2017), so
//! histories of hundreds of operations per key check in milliseconds instead
//! of exploding like a naive permutation search.
//!
//! The two criteria differ only in which operations must precede which:
//! * [`Order::RealTime`] (linearizability): `a` before `b` if `a` returned before `b` was invoked.
//! * [`Order::Program`] (sequential consistency): `a` before `b` if one client issued `a` then `b`.
//!
//! Linearizability is compositional, so checking each key alone is exact.
//! Sequential consistency is not; per-key checking is a necessary condition,
//! which is what [`check_per_key`] reports for [`Order::Program`].

use crate::kv::{Key, Reply, Value, NOT_AN_INTEGER};
use crate::properties::Violation;
use std::collections::{BTreeMap, HashSet};

/// An operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Get,
    Set(Value),
    Del,
    IncrBy(i64),
}

/// One completed client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp {
    pub client: usize,
    pub key: Key,
    pub call: Call,
    pub reply: Reply,
    /// Monotonic invoke and return times (any unit, one clock for all clients).
    pub invoke: u64,
    pub ret: u64,
}

/// Which operations must keep their relative order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    RealTime,
    Program,
}

/// The register's sequential specification: the K/V store's semantics for one key.
fn step(state: &Option<Value>, call: &Call) -> (Option<Value>, Reply) {
    match call {
        Call::Get => (state.clone(), Reply::Bulk(state.clone())),
        Call::Set(v) => (Some(v.clone()), Reply::Ok),
        Call::Del => (None, Reply::Int(state.is_some() as i64)),
        Call::IncrBy(d) => {
            let cur = match state {
                None => Some(0),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok()),
            };
            match cur.and_then(|c| c.checked_add(*d)) {
                Some(n) => (Some(n.to_string().into_bytes()), Reply::Int(n)),
                None => (state.clone(), Reply::Error(NOT_AN_INTEGER.into())),
            }
        }
    }
}

type Bits = Vec<u64>;

fn has(bits: &Bits, i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

fn set(bits: &mut Bits, i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// Finds a legal sequential order of `ops` (all on one key) that respects
/// `order`; returns it as indices into `ops`, or why none exists.
pub fn check_key(ops: &[ClientOp], order: Order) -> Result<Vec<usize>, Violation> {
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    // must[b]: operations that have to come before b.
    let must: Vec<Bits> = (0..n)
        .map(|b| {
            let mut bits = vec![0; words];
            for a in (0..n).filter(|&a| a != b) {
                let before = match order {
                    Order::RealTime => ops[a].ret < ops[b].invoke,
                    Order::Program => {
                        ops[a].client == ops[b].client && (ops[a].invoke, a) < (ops[b].invoke, b)
                    }
                };
                if before {
                    set(&mut bits, a);
                }
            }
            bits
        })
        .collect();
    let subset = |a: &Bits, b: &Bits| a.iter().zip(b).all(|(x, y)| x & !y == 0);

    let mut seen: HashSet<(Bits, Option<Value>)> = HashSet::new();
    // Depth-first search; each frame: (done, state, path, next candidate to try).
    let mut stack: Vec<(Bits, Option<Value>, usize)> = vec![(vec![0; words], None, 0)];
    let mut path: Vec<usize> = Vec::new();
    let mut deepest = 0;
    while let Some((done, state, next)) = stack.last().cloned() {
        if path.len() == n {
            return Ok(path);
        }
        let candidate = (next..n).find(|&i| !has(&done, i) && subset(&must[i], &done));
        match candidate {
            None => {
                stack.pop();
                path.pop();
            }
            Some(i) => {
                stack.last_mut().expect("non-empty").2 = i + 1;
                let (state2, reply) = step(&state, &ops[i].call);
                if reply != ops[i].reply {
                    continue;
                }
                let mut done2 = done.clone();
                set(&mut done2, i);
                if seen.insert((done2.clone(), state2.clone())) {
                    path.push(i);
                    deepest = deepest.max(path.len());
                    stack.push((done2, state2, 0));
                }
            }
        }
    }
    let criterion = match order {
        Order::RealTime => "linearizability",
        Order::Program => "sequential consistency",
    };
    let key = ops
        .first()
        .map(|o| String::from_utf8_lossy(&o.key).into_owned())
        .unwrap_or_default();
    Err(Violation {
        property: criterion,
        detail: format!(
            "no legal order of the {n} operations on key {key:?}; the longest legal prefix has {deepest}"
        ),
    })
}

/// Checks every key's sub-history; returns the number of operations checked.
pub fn check_per_key(ops: &[ClientOp], order: Order) -> Result<usize, Violation> {
    let mut by_key: BTreeMap<&Key, Vec<ClientOp>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    for key_ops in by_key.values() {
        check_key(key_ops, order)?;
    }
    Ok(ops.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, reply: Reply, invoke: u64, ret: u64) -> ClientOp {
        ClientOp {
            client,
            key: b"x".to_vec(),
            call,
            reply,
            invoke,
            ret,
        }
    }
    fn v(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        let h = vec![
            op(0, Call::Set(b"1".to_vec()), Reply::Ok, 0, 10),
            op(1, Call::Get, Reply::Bulk(None), 1, 3),
            op(1, Call::Get, v("1"), 4, 6),
            op(2, Call::IncrBy(2), Reply::Int(3), 5, 12),
            op(1, Call::Get, v("3"), 13, 14),
        ];
        assert_eq!(check_key(&h, Order::RealTime).unwrap().len(), 5);
        assert!(check_key(&h, Order::Program).is_ok());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_not_linearizable_but_may_be_sequential() {
        let h = vec![
            op(0, Call::Set(b"1".to_vec()), Reply::Ok, 0, 1),
            op(1, Call::Get, Reply::Bulk(None), 2, 3), // another client, later, reads nothing
        ];
        let err = check_key(&h, Order::RealTime).unwrap_err();
        assert_eq!(err.property, "linearizability");
        assert!(
            check_key(&h, Order::Program).is_ok(),
            "client 1's read may be ordered first"
        );
    }

    #[test]
    fn a_client_not_seeing_its_own_write_is_not_sequentially_consistent() {
        let h = vec![
            op(0, Call::Set(b"1".to_vec()), Reply::Ok, 0, 1),
            op(0, Call::Get, Reply::Bulk(None), 2, 3),
        ];
        assert_eq!(
            check_key(&h, Order::Program).unwrap_err().property,
            "sequential consistency"
        );
    }

    #[test]
    fn wrong_increment_results_are_caught_and_long_histories_stay_fast() {
        let bad = vec![
            op(0, Call::IncrBy(1), Reply::Int(1), 0, 5),
            op(1, Call::IncrBy(1), Reply::Int(1), 1, 6), // lost update
        ];
        assert!(check_key(&bad, Order::RealTime).is_err());
        // 400 concurrent-ish increments by 8 clients: memoisation keeps this quick.
        let mut h = Vec::new();
        for i in 0..400u64 {
            h.push(op(
                (i % 8) as usize,
                Call::IncrBy(1),
                Reply::Int(i as i64 + 1),
                i * 10,
                i * 10 + 25,
            ));
        }
        assert!(check_per_key(&h, Order::RealTime).is_ok());
        h[399].reply = Reply::Int(7);
        assert!(check_per_key(&h, Order::RealTime).is_err());
    }
}
