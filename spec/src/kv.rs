//! The replicated key/value state machine, applied on delivery.
//!
//! Operations: `SET`, `MSET` (several keys in one ordered write), `DEL`,
//! `INCRBY`, and `TRANSFER from to amount`, the bank example: it moves value
//! between two integer keys atomically and refuses to overdraw.
//!
//! ## Convergence rule
//! Under a total order every replica applies the same operations in the same
//! order, so plain application converges ([`Resolution::DeliveryOrder`]).
//! Under FIFO or causal delivery, concurrent writes reach replicas in different
//! orders. There each key is a last-writer-wins register
//! ([`Resolution::LastWriterWins`]): every write carries a [`Stamp`]
//! `(Lamport time, origin node)`, unique and consistent with causality, and a
//! key takes a write only if the write's stamp exceeds the key's. Deletes leave
//! a stamped tombstone so an older `SET` cannot resurrect the key. Read-modify-
//! writes (`INCRBY`, `TRANSFER`) are resolved *at the origin* into absolute
//! assignments ([`KvStore::resolve`]), so concurrent increments of one key under
//! these modes keep only one of them: use a total mode for counters and money.

use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub type Key = Vec<u8>;
pub type Value = Vec<u8>;

/// A replicated write, as issued by a client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    Set { key: Key, value: Value },
    MSet { pairs: Vec<(Key, Value)> },
    Del { keys: Vec<Key> },
    IncrBy { key: Key, delta: i64 },
    Transfer { from: Key, to: Key, amount: i64 },
}

/// Orders writes for last-writer-wins: Lamport time, then origin node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    pub lamport: u64,
    pub node: NodeId,
}

/// A write as multicast: the operation and its stamp.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Write {
    pub stamp: Stamp,
    pub op: Op,
}

/// The result of an operation, in RESP's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Int(i64),
    Bulk(Option<Value>),
    Error(String),
}

/// How a replica applies delivered writes; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    DeliveryOrder,
    LastWriterWins,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Entry {
    /// `None` is a tombstone.
    value: Option<Value>,
    stamp: Stamp,
}

pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
pub const INSUFFICIENT_FUNDS: &str = "ERR insufficient funds";
pub const BAD_AMOUNT: &str = "ERR transfer amount must be positive";

/// One replica's store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvStore {
    entries: BTreeMap<Key, Entry>,
    /// Broken variant (model checker only, never persisted): a `TRANSFER`
    /// short of funds debits `from` and credits nobody.
    #[serde(skip)]
    debit_only_when_short: bool,
}

fn parse_int(v: Option<&Value>) -> Result<i64, Reply> {
    match v {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| Reply::Error(NOT_AN_INTEGER.into())),
    }
}

fn int_value(i: i64) -> Value {
    i.to_string().into_bytes()
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The broken store whose short-of-funds `TRANSFER` debits without crediting.
    pub fn debit_only_when_short(mut self) -> Self {
        self.debit_only_when_short = true;
        self
    }

    /// A local read.
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.entries.get(key).and_then(|e| e.value.as_ref())
    }

    /// Live keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.entries.values().filter(|e| e.value.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held in live keys and values.
    pub fn payload_bytes(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Sum of the integer values of `keys` (missing keys count 0): the bank total.
    pub fn sum(&self, keys: &[Key]) -> Result<i64, Reply> {
        keys.iter().try_fold(0i64, |acc, k| {
            Ok(acc.saturating_add(parse_int(self.get(k))?))
        })
    }

    /// Sum of the integer values of every live key starting with `prefix`
    /// (e.g. `acct:`): how `gsmo snapshot verify` checks bank conservation.
    pub fn sum_prefix(&self, prefix: &[u8]) -> Result<i64, Reply> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .try_fold(0i64, |acc, (_, v)| {
                Ok(acc.saturating_add(parse_int(Some(v))?))
            })
    }

    /// Under last-writer-wins, turns a read-modify-write into the absolute
    /// assignment it means here and now, so every replica can apply it by stamp.
    /// Errors (not an integer, insufficient funds) are decided at the origin.
    pub fn resolve(&self, op: Op) -> Result<Op, Reply> {
        match op {
            Op::IncrBy { key, delta } => {
                let v = parse_int(self.get(&key))?
                    .checked_add(delta)
                    .ok_or_else(|| Reply::Error(NOT_AN_INTEGER.into()))?;
                Ok(Op::Set {
                    key,
                    value: int_value(v),
                })
            }
            Op::Transfer { from, to, amount } => {
                let (f, t) = self.transfer_balances(&from, &to, amount)?;
                Ok(Op::MSet {
                    pairs: vec![(from, int_value(f)), (to, int_value(t))],
                })
            }
            other => Ok(other),
        }
    }

    fn transfer_balances(&self, from: &Key, to: &Key, amount: i64) -> Result<(i64, i64), Reply> {
        if amount <= 0 {
            return Err(Reply::Error(BAD_AMOUNT.into()));
        }
        let f = parse_int(self.get(from))?;
        let t = parse_int(self.get(to))?;
        if from == to {
            return Ok((f, f));
        }
        if f < amount && self.debit_only_when_short {
            return Ok((f - amount, t));
        }
        if f < amount {
            return Err(Reply::Error(INSUFFICIENT_FUNDS.into()));
        }
        let t = t
            .checked_add(amount)
            .ok_or_else(|| Reply::Error(NOT_AN_INTEGER.into()))?;
        Ok((f - amount, t))
    }

    /// Applies a delivered write and returns the reply its client gets.
    pub fn apply(&mut self, w: &Write, how: Resolution) -> Reply {
        match &w.op {
            Op::Set { key, value } => {
                self.put(key, Some(value.clone()), w.stamp, how);
                Reply::Ok
            }
            Op::MSet { pairs } => {
                for (k, v) in pairs {
                    self.put(k, Some(v.clone()), w.stamp, how);
                }
                Reply::Ok
            }
            Op::Del { keys } => {
                let mut removed = 0;
                for k in keys {
                    let live = self.get(k).is_some();
                    if self.put(k, None, w.stamp, how) && live {
                        removed += 1;
                    }
                }
                Reply::Int(removed)
            }
            Op::IncrBy { key, delta } => {
                let v = match parse_int(self.get(key)) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                match v.checked_add(*delta) {
                    Some(v) => {
                        self.put(key, Some(int_value(v)), w.stamp, how);
                        Reply::Int(v)
                    }
                    None => Reply::Error(NOT_AN_INTEGER.into()),
                }
            }
            Op::Transfer { from, to, amount } => match self.transfer_balances(from, to, *amount) {
                Ok((f, t)) => {
                    self.put(from, Some(int_value(f)), w.stamp, how);
                    self.put(to, Some(int_value(t)), w.stamp, how);
                    Reply::Ok
                }
                Err(e) => e,
            },
        }
    }

    /// Writes one key; returns whether the write took effect.
    fn put(&mut self, key: &Key, value: Option<Value>, stamp: Stamp, how: Resolution) -> bool {
        match self.entries.get_mut(key) {
            // Equal stamps only occur within one write (e.g. MSET of one key twice): later wins.
            Some(e) if how == Resolution::LastWriterWins && e.stamp > stamp => false,
            Some(e) => {
                *e = Entry { value, stamp };
                true
            }
            None => {
                self.entries.insert(key.clone(), Entry { value, stamp });
                true
            }
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Ok => f.write_str("OK"),
            Reply::Int(i) => write!(f, "(integer) {i}"),
            Reply::Bulk(None) => f.write_str("(nil)"),
            Reply::Bulk(Some(v)) => write!(f, "{:?}", String::from_utf8_lossy(v)),
            Reply::Error(e) => f.write_str(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(lamport: u64, node: NodeId, op: Op) -> Write {
        Write {
            stamp: Stamp { lamport, node },
            op,
        }
    }
    fn set(k: &str, v: &str) -> Op {
        Op::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn operations_in_delivery_order() {
        let mut kv = KvStore::new();
        let d = Resolution::DeliveryOrder;
        assert_eq!(kv.apply(&w(1, 0, set("a", "10")), d), Reply::Ok);
        assert_eq!(
            kv.apply(
                &w(
                    2,
                    0,
                    Op::IncrBy {
                        key: "a".into(),
                        delta: 5
                    }
                ),
                d
            ),
            Reply::Int(15)
        );
        let t = Op::Transfer {
            from: "a".into(),
            to: "b".into(),
            amount: 20,
        };
        assert_eq!(
            kv.apply(&w(3, 0, t), d),
            Reply::Error(INSUFFICIENT_FUNDS.into())
        );
        let t = Op::Transfer {
            from: "a".into(),
            to: "b".into(),
            amount: 15,
        };
        assert_eq!(kv.apply(&w(4, 0, t), d), Reply::Ok);
        assert_eq!(kv.sum(&["a".into(), "b".into()]), Ok(15));
        assert_eq!(kv.get(b"b"), Some(&b"15".to_vec()));
        assert_eq!(
            kv.apply(
                &w(
                    5,
                    0,
                    Op::Del {
                        keys: vec!["a".into(), "zz".into()]
                    }
                ),
                d
            ),
            Reply::Int(1)
        );
        assert_eq!(kv.get(b"a"), None);
        assert_eq!(kv.apply(&w(6, 0, set("s", "x")), d), Reply::Ok);
        assert_eq!(
            kv.apply(
                &w(
                    7,
                    0,
                    Op::IncrBy {
                        key: "s".into(),
                        delta: 1
                    }
                ),
                d
            ),
            Reply::Error(NOT_AN_INTEGER.into())
        );
        assert_eq!(kv.len(), 2);
    }

    #[test]
    fn last_writer_wins_converges_in_either_order() {
        let lww = Resolution::LastWriterWins;
        let a = w(3, 1, set("k", "from-1"));
        let b = w(
            3,
            2,
            Op::Del {
                keys: vec!["k".into()],
            },
        );
        let c = w(2, 0, set("k", "old"));
        let mut x = KvStore::new();
        let mut y = KvStore::new();
        for op in [&a, &b, &c] {
            x.apply(op, lww);
        }
        for op in [&c, &b, &a] {
            y.apply(op, lww);
        }
        assert_eq!(x, y);
        assert_eq!(
            x.get(b"k"),
            None,
            "the delete at (3, n2) is the last writer"
        );
    }

    #[test]
    fn resolve_turns_read_modify_writes_into_assignments() {
        let mut kv = KvStore::new();
        kv.apply(&w(1, 0, set("a", "7")), Resolution::DeliveryOrder);
        assert_eq!(
            kv.resolve(Op::IncrBy {
                key: "a".into(),
                delta: 3
            }),
            Ok(set("a", "10"))
        );
        assert_eq!(
            kv.resolve(Op::Transfer {
                from: "a".into(),
                to: "b".into(),
                amount: 2
            }),
            Ok(Op::MSet {
                pairs: vec![("a".into(), "5".into()), ("b".into(), "2".into())]
            })
        );
        assert!(kv
            .resolve(Op::Transfer {
                from: "a".into(),
                to: "b".into(),
                amount: 0
            })
            .is_err());
    }
}
