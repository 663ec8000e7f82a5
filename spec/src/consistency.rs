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
//! skips it otherwise, ignores its reply, and lets nothing wait for it. Such
//! operations multiply the search, and so do many clients' interleavings: it
//! prunes four ways ([`check_key_within`]) and gives up, saying *undecided*,
//! after [`SEARCH_BUDGET`] states.

use crate::kv::{Key, Reply, Value, NOT_AN_INTEGER};
use crate::properties::Violation;
use std::collections::{BTreeMap, HashMap};

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
/// A search that visits [`SEARCH_BUDGET`] states gives up, and says so.
pub fn check_key_unknown(
    ops: &[ClientOp],
    unknown: &[ClientOp],
    order: Order,
) -> Result<Vec<usize>, Violation> {
    check_key_within(ops, unknown, order, SEARCH_BUDGET)
}

/// States a search for one key may visit before it gives up: about 7 s and
/// 0.4 GB here (8 clients of 6 `SET`s each, then a read of a value none
/// wrote). Deciding these criteria is NP-complete (Gibbons &
/// Korach 1997), and only histories with many writes of unknown outcome have
/// come near it; one that reaches the budget is reported as undecided, which
/// callers count as a failure, never as a pass.
pub const SEARCH_BUDGET: usize = 1 << 20;

/// [`check_key_unknown`] with a budget of `budget` states.
///
/// The search is Wing & Gong's, memoised as Lowe's, and four rules keep it
/// small where operations of unknown outcome or clients pile up (a client
/// whose writes all timed out multiplied the states by every subset of its
/// writes: 22 operations and 17 unknown ones on one key, from a `sim` seed,
/// did not finish in twenty minutes). Each keeps a legal order if there is
/// one:
/// * **Unknown operations that cannot matter are left out** (`mattering`).
/// * **A state with a read that can no longer be served is dead**, on keys of
///   only `GET` and `SET`: a pending read's value is neither the current one
///   nor one a pending `SET` writes, so every later state holds another
///   value. Without this rule a read of the empty key left behind by an early
///   `SET` doomed every interleaving of the rest, which the search then met
///   one by one (47 operations of 9 pipelining clients, from a `sim` seed,
///   gave up after 2^20 states; with it, the search takes 55).
/// * **A read that returns the current value is taken at once**, as the one
///   step of its state: in any legal order it can move here, as it changes
///   no value, its reply is this state's value, and what must follow it only
///   becomes possible sooner.
/// * **A state is its known operations done, its value, and the unknown
///   operations it used**, and one met before with the same known part and
///   value and a *subset* of its unknown ones is skipped: that earlier state
///   can do all this one can (nothing waits for an unknown operation, and it
///   may take the ones this one used, or never), so if it found no legal
///   order, neither can this one.
pub fn check_key_within(
    ops: &[ClientOp],
    unknown: &[ClientOp],
    order: Order,
    budget: usize,
) -> Result<Vec<usize>, Violation> {
    // Keys of only GET and SET: a value comes from a SET, or is the empty
    // key's before any.
    let plain = ops
        .iter()
        .chain(unknown)
        .all(|o| matches!(o.call, Call::Get | Call::Set(_)));
    let useful = mattering(ops, unknown, plain);
    let known = ops.len();
    let all: Vec<&ClientOp> = ops
        .iter()
        .chain(useful.iter().map(|&u| &unknown[u]))
        .collect();
    let n = all.len();
    let words = n.div_ceil(64).max(1);
    // On a plain key, each known read with the SETs that could serve it.
    let reads: Vec<(usize, Option<&Value>, Bits)> = match plain {
        false => Vec::new(),
        true => (0..known)
            .filter_map(|i| match (&all[i].call, &all[i].reply) {
                (Call::Get, Reply::Bulk(v)) => {
                    let mut writers = vec![0; words];
                    for (j, w) in all.iter().enumerate() {
                        if matches!(&w.call, Call::Set(x) if Some(x) == v.as_ref()) {
                            set(&mut writers, j);
                        }
                    }
                    Some((i, v.as_ref(), writers))
                }
                _ => None,
            })
            .collect(),
    };
    let dead = |done: &Bits, value: &Option<Value>| {
        reads.iter().any(|(i, v, writers)| {
            !has(done, *i)
                && *v != value.as_ref()
                && writers.iter().zip(done).all(|(w, d)| w & !d == 0)
        })
    };
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
    let enabled = |done: &Bits, i: usize| !has(done, i) && subset(&must[i], done);
    // The candidates a state tries, as a range of indices: a read returning
    // the state's value alone, else every operation.
    let tries = |done: &Bits, value: &Option<Value>| -> (usize, usize) {
        let reads =
            |i: &usize| all[*i].call == Call::Get && all[*i].reply == Reply::Bulk(value.clone());
        match (0..known).filter(reads).find(|&i| enabled(done, i)) {
            Some(i) => (i, i + 1),
            None => (0, n),
        }
    };
    // A done set split into its known operations and its unknown ones.
    let split = |done: &Bits| -> (Bits, Bits) {
        done.iter()
            .zip(&required)
            .map(|(d, r)| (d & r, d & !r))
            .unzip()
    };

    // By known operations done and value: the unknown ones used, minimal sets only.
    let mut seen: HashMap<(Bits, Option<Value>), Vec<Bits>> = HashMap::new();
    let mut states = 0usize;
    // Depth-first search; each frame: (done, value, next candidate, end of candidates).
    let start = vec![0; words];
    let (first, end) = tries(&start, &None);
    let mut stack: Vec<(Bits, Option<Value>, usize, usize)> = vec![(start, None, first, end)];
    let mut path: Vec<usize> = Vec::new();
    let mut deepest = 0;
    let criterion = match order {
        Order::RealTime => "linearizability",
        Order::Program => "sequential consistency",
    };
    let key = ops
        .iter()
        .chain(unknown)
        .next()
        .map(|o| String::from_utf8_lossy(&o.key).into_owned())
        .unwrap_or_default();
    let maybe = match unknown.len() {
        0 => String::new(),
        u => format!(" (and {u} of unknown outcome)"),
    };
    while let Some((done, state, next, end)) = stack.last().cloned() {
        if subset(&required, &done) {
            // Indices into `ops` then `unknown`.
            return Ok(path
                .into_iter()
                .map(|i| {
                    if i < known {
                        i
                    } else {
                        known + useful[i - known]
                    }
                })
                .collect());
        }
        match (next..end).find(|&i| enabled(&done, i)) {
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
                if dead(&done2, &state2) {
                    continue;
                }
                let (k, u) = split(&done2);
                let used = seen.entry((k, state2.clone())).or_default();
                if used.iter().any(|earlier| subset(earlier, &u)) {
                    continue;
                }
                used.retain(|later| !subset(&u, later));
                used.push(u);
                states += 1;
                if states > budget {
                    return Err(Violation {
                        property: criterion,
                        detail: format!(
                            "undecided: the search for a legal order of the {known} operations on key {key:?}{maybe} gave up after {budget} states, with a legal prefix of {deepest}"
                        ),
                    });
                }
                path.push(i);
                deepest = deepest.max(path.len());
                let (first, end) = tries(&done2, &state2);
                stack.push((done2, state2, first, end));
            }
        }
    }
    Err(Violation {
        property: criterion,
        detail: format!(
            "no legal order of the {known} operations on key {key:?}{maybe}; the longest legal prefix has {deepest}"
        ),
    })
}

/// The unknown operations whose placing could explain a reply, by index. A
/// read of unknown outcome changes nothing. Where every operation on the key
/// is a `GET` or a `SET`, a `SET` whose value no known read returned can be
/// left out of any legal order: until the next write nothing reads the key,
/// as every read there would have returned that value. Increments and
/// deletes answer from the value in other ways, so with them every write stays.
fn mattering(ops: &[ClientOp], unknown: &[ClientOp], plain: bool) -> Vec<usize> {
    let read = |value: &Value| {
        let read = Reply::Bulk(Some(value.clone()));
        ops.iter().any(|o| o.call == Call::Get && o.reply == read)
    };
    (0..unknown.len())
        .filter(|&u| match &unknown[u].call {
            Call::Get => false,
            Call::Set(value) => !plain || read(value),
            Call::Del | Call::IncrBy(_) => true,
        })
        .collect()
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

    /// A row of a history taken from a `sim` seed: client, written value (or
    /// a read), reply (`-`: the write timed out; `nil`: the read found no
    /// value), invoke time.
    type Row<'a> = (usize, Option<&'a str>, &'a str, u64);

    fn row(&(client, write, reply, invoke): &Row) -> ClientOp {
        let (call, reply) = match (write, reply) {
            (Some(w), "-") => (Call::Set(w.into()), Reply::Error("TIMEOUT".into())),
            (Some(w), _) => (Call::Set(w.into()), Reply::Ok),
            (None, "nil") => (Call::Get, Reply::Bulk(None)),
            (None, r) => (Call::Get, v(r)),
        };
        op(client, call, reply, invoke, invoke)
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

    /// The pruning by unknown operations used: a state that used the write
    /// of "a" early does not stand for one that still has it. The search
    /// first takes "a", then "b", reads "b" and finds no "a" left for the
    /// second read; a state with "b" alone, the same known operations done
    /// and the same value, must still be tried, and it finds the order. On a
    /// key of GET and SET only the dead-read rule cuts the first branch
    /// before the memo sees it; an unknown DEL (never needed) takes that rule
    /// away, so the memo's subsets alone must keep the search right.
    #[test]
    fn a_state_that_used_an_unknown_write_does_not_stand_for_one_that_kept_it() {
        let maybe = |client, call| op(client, call, Reply::Error("TIMEOUT".into()), 0, 0);
        let set = |value: &str| Call::Set(value.as_bytes().to_vec());
        let known = vec![
            op(0, Call::Get, v("b"), 1, 2),
            op(0, Call::Get, v("a"), 3, 4),
        ];
        let plain = vec![maybe(1, set("a")), maybe(2, set("b"))];
        let mut with_del = plain.clone();
        with_del.push(maybe(3, Call::Del));
        for unknown in [plain, with_del] {
            for order in [Order::Program, Order::RealTime] {
                assert_eq!(
                    check_key_unknown(&known, &unknown, order),
                    Ok(vec![3, 0, 2, 1]),
                    "{order:?}, {} unknown",
                    unknown.len()
                );
            }
        }
    }

    /// Reads of the current value are taken at once: eight clients each
    /// write their own value and read it back. Tried in the order given (all
    /// writes first), the search without the rule meets 14,232 states before
    /// it puts each read after its own write; with it, 16: one an operation.
    #[test]
    fn a_read_of_the_current_value_is_taken_at_once() {
        let value = |c: usize| c.to_string().into_bytes();
        let writes = (0..8).map(|c| op(c, Call::Set(value(c)), Reply::Ok, 0, 1));
        let reads = (0..8).map(|c| op(c, Call::Get, Reply::Bulk(Some(value(c))), 2, 3));
        let h: Vec<ClientOp> = writes.chain(reads).collect();
        let order = check_key_within(&h, &[], Order::Program, h.len()).unwrap();
        assert_eq!(&order[..2], [0, 8], "each read right after its write");
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
    /// From `sim --seed 7115338 --clients 6 --max-batch 8 --pipeline 4 --ops 40`
    /// (total-sequencer, a crash): clients 2 and 5 wrote key k2 through a node
    /// that could no longer deliver, so 17 of its 39 writes timed out. Before
    /// subsets of unknown operations were pruned, this search ran for twenty
    /// minutes; now it is decided, legal, within a small budget.
    #[test]
    fn many_writes_of_unknown_outcome_are_decided_quickly() {
        let known: Vec<ClientOp> = [
            (0, Some("0.1"), "ok", 3001),
            (3, Some("3.0"), "ok", 31000),
            (3, Some("3.2"), "ok", 31001),
            (3, Some("3.6"), "ok", 37001),
            (0, Some("0.11"), "ok", 42001),
            (3, Some("3.10"), "ok", 41002),
            (4, None, "3.6", 31000),
            (0, Some("0.13"), "ok", 45001),
            (2, None, "0.1", 28000),
            (0, Some("0.18"), "ok", 62002),
            (3, Some("3.15"), "ok", 70003),
            (3, Some("3.19"), "ok", 82001),
            (2, Some("2.9"), "ok", 70001),
            (4, None, "3.19", 75002),
            (0, Some("0.24"), "ok", 104000),
            (1, Some("1.5"), "ok", 79001),
            (3, Some("3.20"), "ok", 105000),
            (3, Some("3.22"), "ok", 105001),
            (4, Some("4.8"), "ok", 109000),
            (5, Some("5.8"), "ok", 102000),
            (0, None, "2.13", 127003),
            (2, None, "5.8", 5118001),
        ]
        .iter()
        .map(row)
        .collect();
        let unknown: Vec<ClientOp> = [
            (1, Some("1.11"), "-", 117002),
            (5, Some("5.14"), "-", 143002),
            (2, Some("2.13"), "-", 109001),
            (5, Some("5.18"), "-", 5120001),
            (2, Some("2.17"), "-", 5118000),
            (5, Some("5.20"), "-", 10131000),
            (5, Some("5.22"), "-", 10131002),
            (5, Some("5.23"), "-", 10131003),
            (2, Some("2.21"), "-", 15121001),
            (5, Some("5.25"), "-", 15125001),
            (2, Some("2.24"), "-", 20129000),
            (2, Some("2.29"), "-", 25118001),
            (2, Some("2.31"), "-", 25118003),
            (2, Some("2.35"), "-", 30113002),
            (2, Some("2.38"), "-", 35109001),
            (2, Some("2.39"), "-", 35109002),
            (5, Some("5.39"), "-", 45100003),
        ]
        .iter()
        .map(row)
        .collect();
        let order = check_key_within(&known, &unknown, Order::Program, 10_000).unwrap();
        // Client 2's 2.13, whose outcome was unknown, just before client 0 reads it.
        let (wrote, read) = (known.len() + 2, 20);
        assert!(order.windows(2).any(|w| w == [wrote, read]), "{order:?}");
        // A budget too small to find it says so, and is no pass.
        let err = check_key_within(&known, &unknown, Order::Program, 3).unwrap_err();
        assert!(err.detail.starts_with("undecided: "), "{err}");
        // Client 0 reading a value that no write made cannot be explained.
        let mut invented = known.clone();
        invented[20].reply = v("2.99");
        let err = check_key_within(&invented, &unknown, Order::Program, SEARCH_BUDGET).unwrap_err();
        assert!(err.detail.starts_with("no legal order"), "{err}");
    }

    /// From `sim --seed 8300063 --mode total-isis --clients 9 --max-batch 16
    /// --pipeline 8`: 47 operations of 9 pipelining clients on key k0, no
    /// crash. Client 6 read the empty key first, so every order that puts a
    /// `SET` before that read is dead from there on; before such states were
    /// cut, the search met their interleavings one by one and gave up after
    /// 2^20 states; now it takes 55.
    #[test]
    fn a_read_that_can_no_longer_be_served_ends_the_branch() {
        let history: Vec<ClientOp> = [
            (6, None, "nil", 5999),
            (6, Some("6.7"), "", 6005),
            (4, Some("4.3"), "", 2001),
            (4, None, "6.7", 2003),
            (6, None, "6.7", 35999),
            (7, Some("7.2"), "", 17001),
            (8, Some("8.1"), "", 0),
            (8, None, "6.7", 2),
            (5, Some("5.15"), "", 103003),
            (1, Some("1.9"), "", 111000),
            (1, Some("1.12"), "", 111001),
            (1, Some("1.13"), "", 111002),
            (4, Some("4.21"), "", 120003),
            (5, Some("5.18"), "", 136000),
            (5, Some("5.20"), "", 136001),
            (5, Some("5.21"), "", 136002),
            (2, Some("2.10"), "", 37000),
            (2, Some("2.15"), "", 37004),
            (8, Some("8.10"), "", 114999),
            (8, Some("8.12"), "", 115000),
            (8, Some("8.14"), "", 115002),
            (0, Some("0.0"), "", 16999),
            (0, Some("0.4"), "", 17001),
            (0, Some("0.6"), "", 17003),
            (4, None, "8.19", 148002),
            (8, Some("8.19"), "", 170001),
            (1, Some("1.19"), "", 173000),
            (5, Some("5.28"), "", 172001),
            (8, None, "2.18", 198002),
            (6, Some("6.26"), "", 224000),
            (6, Some("6.27"), "", 224001),
            (6, Some("6.28"), "", 224002),
            (2, Some("2.18"), "", 182001),
            (1, Some("1.24"), "", 221999),
            (1, Some("1.27"), "", 222001),
            (1, None, "1.27", 222002),
            (1, Some("1.29"), "", 222003),
            (3, Some("3.10"), "", 151001),
            (2, None, "1.29", 460000),
            (7, None, "2.18", 190000),
            (7, Some("7.20"), "", 190001),
            (7, Some("7.22"), "", 190003),
            (3, Some("3.20"), "", 476002),
            (3, Some("3.22"), "", 476004),
            (3, Some("3.23"), "", 476005),
            (7, Some("7.26"), "", 513999),
            (7, Some("7.29"), "", 514001),
        ]
        .iter()
        .map(row)
        .collect();
        let order = check_key_within(&history, &[], Order::Program, 55).unwrap();
        assert_eq!(
            order[0], 0,
            "client 6's read of the empty key first: {order:?}"
        );
        let err = check_key_within(&history, &[], Order::Program, 54).unwrap_err();
        assert!(err.detail.starts_with("undecided: "), "{err}");
        // Client 6 reading its own write before making it cannot be explained.
        let mut early = history.clone();
        early[0].reply = v("6.7");
        let err = check_key_within(&early, &[], Order::Program, SEARCH_BUDGET).unwrap_err();
        assert!(err.detail.starts_with("no legal order"), "{err}");
    }

    /// A read's writers are a bit set of many words: one past the first 64
    /// operations still keeps the read servable.
    #[test]
    fn a_read_whose_write_lies_past_the_first_word_is_served() {
        let mut history: Vec<ClientOp> = (0..64)
            .map(|i| op(1, Call::Set(format!("x{i}").into_bytes()), Reply::Ok, i, i))
            .collect();
        history.push(op(0, Call::Set(b"v".to_vec()), Reply::Ok, 100, 100));
        history.push(op(2, Call::Get, v("v"), 200, 200));
        let order = check_key_within(&history, &[], Order::Program, 100).unwrap();
        assert_eq!(order.len(), 66);
        assert_eq!(&order[64..], [64, 65]);
    }

    /// Which unknown operations the search keeps: on a plain key, a SET whose
    /// value some known read returned; with a DEL or INCR on the key, every
    /// write; never a read.
    #[test]
    fn unknown_writes_no_read_observed_are_left_out() {
        let maybe = |call| op(1, call, Reply::Error("TIMEOUT".into()), 0, 0);
        let known = vec![
            op(0, Call::Get, v("a"), 1, 2),
            op(0, Call::Set(b"b".to_vec()), Reply::Ok, 3, 4),
        ];
        let unknown = vec![
            maybe(Call::Set(b"z".to_vec())),
            maybe(Call::Get),
            maybe(Call::Set(b"a".to_vec())),
            maybe(Call::Set(b"b".to_vec())),
        ];
        assert_eq!(mattering(&known, &unknown, true), [2]);
        assert_eq!(mattering(&known, &unknown, false), [0, 2, 3]);
    }
}
