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
//!
//! An operation whose outcome is unknown (answered `TIMEOUT`, or in flight at
//! a node that crashed) may have taken effect at any point after it was
//! invoked, or never: [`check_per_key_unknown`] orders it if that helps and
//! skips it otherwise, ignores its reply, and lets nothing wait for it.

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
    check_key_unknown(ops, &[], order)
}

/// As [`check_key`], with `unknown` operations (same key) of unknown outcome:
/// each may be placed anywhere after its invocation (and its client's earlier
/// operations) or left out. The order found indexes `ops` then `unknown`.
pub fn check_key_unknown(
    ops: &[ClientOp],
    unknown: &[ClientOp],
    order: Order,
) -> Result<Vec<usize>, Violation> {
    let known = ops.len();
    let all: Vec<&ClientOp> = ops.iter().chain(unknown).collect();
    let n = all.len();
    let words = n.div_ceil(64).max(1);
    // must[b]: operations that have to come before b. An unknown operation
    // never returned, so nothing has to wait for it.
    let must: Vec<Bits> = (0..n)
        .map(|b| {
            let mut bits = vec![0; words];
            for a in (0..known).filter(|&a| a != b) {
                let before = match order {
                    Order::RealTime => all[a].ret < all[b].invoke,
                    Order::Program => {
                        all[a].client == all[b].client && (all[a].invoke, a) < (all[b].invoke, b)
                    }
                };
                if before {
                    set(&mut bits, a);
                }
            }
            bits
        })
        .collect();
    let mut required = vec![0; words];
    (0..known).for_each(|i| set(&mut required, i));
    let subset = |a: &Bits, b: &Bits| a.iter().zip(b).all(|(x, y)| x & !y == 0);

    let mut seen: HashSet<(Bits, Option<Value>)> = HashSet::new();
    // Depth-first search; each frame: (done, state, path, next candidate to try).
    let mut stack: Vec<(Bits, Option<Value>, usize)> = vec![(vec![0; words], None, 0)];
    let mut path: Vec<usize> = Vec::new();
    let mut deepest = 0;
    while let Some((done, state, next)) = stack.last().cloned() {
        if subset(&required, &done) {
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
                let (state2, reply) = step(&state, &all[i].call);
                if i < known && reply != all[i].reply {
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
    let key = all
        .first()
        .map(|o| String::from_utf8_lossy(&o.key).into_owned())
        .unwrap_or_default();
    let maybe = match unknown.len() {
        0 => String::new(),
        u => format!(" (and {u} of unknown outcome)"),
    };
    Err(Violation {
        property: criterion,
        detail: format!(
            "no legal order of the {known} operations on key {key:?}{maybe}; the longest legal prefix has {deepest}"
        ),
    })
}

/// Checks every key's sub-history; returns the number of operations checked.
pub fn check_per_key(ops: &[ClientOp], order: Order) -> Result<usize, Violation> {
    check_per_key_unknown(ops, &[], order)
}

/// As [`check_per_key`], with operations of unknown outcome (their replies
/// and return times are ignored; see [`check_key_unknown`]).
pub fn check_per_key_unknown(
    ops: &[ClientOp],
    unknown: &[ClientOp],
    order: Order,
) -> Result<usize, Violation> {
    type Split = (Vec<ClientOp>, Vec<ClientOp>);
    let mut by_key: BTreeMap<&Key, Split> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().0.push(op.clone());
    }
    for op in unknown {
        by_key.entry(&op.key).or_default().1.push(op.clone());
    }
    for (known, maybe) in by_key.values() {
        check_key_unknown(known, maybe, order)?;
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

    /// Real time orders `a` before `b` only if `a` returned strictly before `b`
    /// was invoked: one clock reading cannot tell which came first, so
    /// operations sharing an instant overlap, and no alarm is raised.
    #[test]
    fn operations_sharing_an_instant_overlap() {
        let h = vec![
            op(1, Call::Get, v("1"), 0, 5),
            op(0, Call::Set(b"1".to_vec()), Reply::Ok, 5, 6),
        ];
        assert_eq!(check_key(&h, Order::RealTime), Ok(vec![1, 0]));
        let mut later = h.clone();
        later[1].invoke = 6;
        later[1].ret = 7;
        assert!(check_key(&later, Order::RealTime).is_err());
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
    fn an_unknown_write_may_have_taken_effect_or_not_but_nothing_else_is_invented() {
        let timed_out = op(
            0,
            Call::Set(b"2".to_vec()),
            Reply::Error("TIMEOUT".into()),
            5,
            0,
        );
        let base = vec![op(0, Call::Set(b"1".to_vec()), Reply::Ok, 0, 1)];
        // A later read of "2" is explained only by the unknown write taking effect.
        let mut seen = base.clone();
        seen.push(op(1, Call::Get, v("2"), 10, 11));
        assert!(check_key(&seen, Order::Program).is_err());
        let order =
            check_key_unknown(&seen, std::slice::from_ref(&timed_out), Order::Program).unwrap();
        assert_eq!(order, vec![0, 2, 1]);
        // A read of "1" after it: the unknown write is left out (or later).
        let mut not_seen = base.clone();
        not_seen.push(op(0, Call::Get, v("1"), 20, 21));
        assert!(
            check_key_unknown(&not_seen, std::slice::from_ref(&timed_out), Order::RealTime).is_ok()
        );
        // It cannot take effect before it was invoked under real time,
        let mut early = base.clone();
        early.push(op(1, Call::Get, v("2"), 2, 3));
        assert!(
            check_key_unknown(&early, std::slice::from_ref(&timed_out), Order::RealTime).is_err()
        );
        // and a value nobody wrote is still a violation.
        let mut invented = base;
        invented.push(op(1, Call::Get, v("3"), 10, 11));
        let err = check_per_key_unknown(&invented, &[timed_out], Order::Program).unwrap_err();
        assert!(err.detail.contains("1 of unknown outcome"), "{err}");
    }

    #[test]
    fn unknown_increments_explain_larger_counts_but_not_lost_updates() {
        let maybe = op(2, Call::IncrBy(1), Reply::Error("TIMEOUT".into()), 0, 0);
        let h = vec![
            op(0, Call::IncrBy(1), Reply::Int(1), 1, 2),
            op(1, Call::IncrBy(1), Reply::Int(3), 3, 4),
        ];
        assert!(check_key(&h, Order::RealTime).is_err());
        assert!(check_key_unknown(&h, std::slice::from_ref(&maybe), Order::RealTime).is_ok());
        let lost = vec![
            op(0, Call::IncrBy(1), Reply::Int(1), 1, 2),
            op(1, Call::IncrBy(1), Reply::Int(1), 3, 4),
        ];
        assert!(check_key_unknown(&lost, &[maybe], Order::RealTime).is_err());
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
