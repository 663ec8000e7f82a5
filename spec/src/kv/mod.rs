//! The replicated key/value state machine, applied on delivery: a typed
//! keyspace (strings, lists, sets, hashes, sorted sets) speaking Redis's
//! commands and Redis's error words, plus the bank example's
//! `TRANSFER from to amount` (moves value between two integer keys atomically
//! and refuses to overdraw).
//!
//! One module per type family: [`strings`] (strings and whole-key commands:
//! SET with NX/XX/GET, GETDEL, APPEND, INCRBY, RENAME, KEYS, SCAN, ...),
//! [`lists`], [`sets`], [`hashes`], [`zsets`]; [`glob`] is Redis's pattern match.
//! Writes are [`Op`]s (multicast, applied on delivery); reads are [`ReadOp`]s,
//! evaluated against the local replica only.
//!
//! ## Convergence rule, per mode
//! Under a total order every replica applies the same operations in the same
//! order, so plain application converges ([`Resolution::DeliveryOrder`]): every
//! operation, counters and pops included, means exactly what it means in Redis.
//!
//! Under FIFO or causal delivery, concurrent writes reach replicas in different
//! orders. There each key is a last-writer-wins register
//! ([`Resolution::LastWriterWins`]): every write carries a [`Stamp`]
//! `(Lamport time, origin node)`, unique and consistent with causality, and a
//! key takes a write only if the write's stamp exceeds the key's. Deletes leave
//! a stamped tombstone so an older write cannot resurrect the key; FLUSHALL
//! leaves a stamped watermark below which every write is void. Blind writes
//! (SET, MSET, DEL/UNLINK, FLUSHALL) travel as they are. Every other write
//! (INCR, APPEND, LPUSH, SPOP, HSET, ZADD, SET NX, RENAME, TRANSFER, ...) is a
//! read-modify-write: it is resolved *at the origin* against the origin's store
//! into [`Op::Assign`], the new whole value of each key it touches plus the
//! reply the origin computed ([`KvStore::resolve`]). So under these modes
//! concurrent read-modify-writes of one key keep only one of them (two
//! concurrent INCRs count once, two concurrent LPUSHes keep one push), and a
//! list or set travels whole with each change: use a total mode for counters,
//! queues, money.
//!
//! ## Determinism where Redis is random
//! SPOP removes the *smallest* members (byte order), so every replica pops the
//! same ones. Key expiry (EX, PX, EXPIRE, ...) is refused with [`NO_EXPIRY`]:
//! replicas share no clock at which to expire a key. TTL answers truthfully
//! (-1: no expiry, -2: no key).

mod entries;
pub mod glob;
pub mod hashes;
mod index;
pub mod lists;
mod prefetch;
pub mod sets;
mod small_bytes;
pub mod strings;
#[cfg(test)]
mod tests;
pub mod zsets;

use crate::NodeId;
use entries::Entries;
use imbl::{OrdMap, OrdSet, Vector};
use serde::{Deserialize, Serialize};
use std::fmt;

pub use prefetch::PREFETCH_AHEAD;
pub use small_bytes::SmallBytes;
pub use zsets::{Score, ZSet};

pub type Key = Vec<u8>;
pub type Value = Vec<u8>;

/// A replicated write, as issued by a client. New variants go at the end:
/// snapshot parts and traces store these by variant index.
///
/// Lone keys and values go through `serde_bytes`: under bincode the same bytes
/// as a `Vec<u8>` (a length, then the bytes; the golden snapshot files pin it),
/// but decoded with one copy instead of a visit per byte, which was a tenth of
/// a peer's CPU per `SET`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    Set {
        #[serde(with = "serde_bytes")]
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    MSet {
        pairs: Vec<(Key, Value)>,
    },
    /// DEL and UNLINK.
    Del {
        keys: Vec<Key>,
    },
    IncrBy {
        #[serde(with = "serde_bytes")]
        key: Key,
        delta: i64,
    },
    Transfer {
        #[serde(with = "serde_bytes")]
        from: Key,
        #[serde(with = "serde_bytes")]
        to: Key,
        amount: i64,
    },
    /// SET with NX / XX and/or GET; GETSET is `SET key value GET`.
    SetWith {
        #[serde(with = "serde_bytes")]
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
        cond: Option<SetCond>,
        get: bool,
    },
    GetDel {
        #[serde(with = "serde_bytes")]
        key: Key,
    },
    /// MSETNX, and SETNX (one pair): all keys set, or none.
    MSetNx {
        pairs: Vec<(Key, Value)>,
    },
    Append {
        #[serde(with = "serde_bytes")]
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    Rename {
        #[serde(with = "serde_bytes")]
        from: Key,
        #[serde(with = "serde_bytes")]
        to: Key,
    },
    /// FLUSHALL and FLUSHDB (there is one database).
    FlushAll,
    /// LPUSH (`left`) and RPUSH.
    Push {
        #[serde(with = "serde_bytes")]
        key: Key,
        values: Vec<Value>,
        left: bool,
    },
    /// LPOP (`left`) and RPOP; `count: None` answers one element, `Some` an array.
    Pop {
        #[serde(with = "serde_bytes")]
        key: Key,
        left: bool,
        count: Option<usize>,
    },
    SAdd {
        #[serde(with = "serde_bytes")]
        key: Key,
        members: Vec<Value>,
    },
    SPop {
        #[serde(with = "serde_bytes")]
        key: Key,
        count: Option<usize>,
    },
    HSet {
        #[serde(with = "serde_bytes")]
        key: Key,
        pairs: Vec<(Value, Value)>,
    },
    HDel {
        #[serde(with = "serde_bytes")]
        key: Key,
        fields: Vec<Value>,
    },
    ZAdd {
        #[serde(with = "serde_bytes")]
        key: Key,
        pairs: Vec<(Score, Value)>,
    },
    ZPopMin {
        #[serde(with = "serde_bytes")]
        key: Key,
        count: Option<usize>,
    },
    /// Last-writer-wins only: a read-modify-write resolved at its origin
    /// ([`KvStore::resolve`]): each key's new whole value (`None` deletes) and
    /// the reply the origin's client gets.
    Assign {
        pairs: Vec<(Key, Option<Data>)>,
        reply: Reply,
    },
}

impl Op {
    /// Whether the op writes without reading: [`KvStore::resolve`] leaves it as it is.
    pub fn is_blind(&self) -> bool {
        matches!(
            self,
            Op::Set { .. } | Op::MSet { .. } | Op::Del { .. } | Op::FlushAll | Op::Assign { .. }
        )
    }
}

impl Write {
    /// Roughly what this write costs on the wire and in a retained buffer:
    /// keys and values plus a fixed overhead, enough for byte bounds.
    pub fn approx_bytes(&self) -> u64 {
        let all = |vs: &[Value]| vs.iter().map(|v| v.len() + 8).sum::<usize>();
        let pairs =
            |ps: &[(Key, Value)]| ps.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
        let data: usize = match &self.op {
            Op::Set { key, value } | Op::SetWith { key, value, .. } | Op::Append { key, value } => {
                key.len() + value.len()
            }
            Op::MSet { pairs: ps } | Op::MSetNx { pairs: ps } => pairs(ps),
            Op::Del { keys } => all(keys),
            Op::IncrBy { key, .. }
            | Op::GetDel { key }
            | Op::Pop { key, .. }
            | Op::SPop { key, .. }
            | Op::ZPopMin { key, .. } => key.len() + 8,
            Op::Transfer { from, to, .. } | Op::Rename { from, to } => from.len() + to.len() + 8,
            Op::FlushAll => 8,
            Op::Push { key, values, .. } => key.len() + all(values),
            Op::SAdd { key, members } => key.len() + all(members),
            Op::HSet { key, pairs: ps } => key.len() + pairs(ps),
            Op::HDel { key, fields } => key.len() + all(fields),
            Op::ZAdd { key, pairs: ps } => {
                key.len() + ps.iter().map(|(_, m)| m.len() + 16).sum::<usize>()
            }
            Op::Assign { pairs: ps, .. } => ps
                .iter()
                .map(|(k, d)| k.len() + d.as_ref().map_or(0, Data::payload_bytes) + 8)
                .sum(),
        };
        data as u64 + 32
    }
}

/// SET's NX / XX condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SetCond {
    /// Only if the key does not exist.
    Nx,
    /// Only if the key exists.
    Xx,
}

/// A local read: never multicast, answered from this replica's store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadOp {
    Get {
        key: Key,
    },
    MGet {
        keys: Vec<Key>,
    },
    StrLen {
        key: Key,
    },
    Exists {
        keys: Vec<Key>,
    },
    Type {
        key: Key,
    },
    /// TTL (`ms: false`) and PTTL: no key expires, so -1, or -2 without a key.
    Ttl {
        key: Key,
        ms: bool,
    },
    Keys {
        pattern: Value,
    },
    Scan {
        cursor: u64,
        pattern: Option<Value>,
        count: usize,
    },
    DbSize,
    LRange {
        key: Key,
        start: i64,
        stop: i64,
    },
    LLen {
        key: Key,
    },
    SMembers {
        key: Key,
    },
    SCard {
        key: Key,
    },
    SIsMember {
        key: Key,
        member: Value,
    },
    HGet {
        key: Key,
        field: Value,
    },
    HGetAll {
        key: Key,
    },
    HLen {
        key: Key,
    },
    ZRange {
        key: Key,
        start: i64,
        stop: i64,
        with_scores: bool,
    },
    ZCard {
        key: Key,
    },
    ZScore {
        key: Key,
        member: Value,
    },
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

/// The result of an operation, in RESP's vocabulary. New variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Int(i64),
    Bulk(Option<Value>),
    Error(String),
    /// A simple string other than OK (TYPE's `string`, `list`, ...).
    Status(String),
    Array(Vec<Reply>),
    /// RESP2's `*-1` (LPOP key count on a missing key).
    NilArray,
}

/// How a replica applies delivered writes; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    DeliveryOrder,
    LastWriterWins,
}

/// A key's value, of one of Redis's types. The collections are persistent
/// (`imbl`), so cloning a store for a snapshot or a resolution is O(1).
///
/// A string is a [`SmallBytes`]: up to 22 bytes inline, in the entry, as
/// Redis embeds short strings (a `GET` misses the cache once less, a `SET`
/// allocates nothing for it). A list and a sorted set are boxed: inline,
/// imbl's `Vector` (64 bytes) made every value 64 bytes, strings included,
/// where a string (24 bytes, as a `Vec`) and a tag take 32, and each key's
/// entry a 96-byte allocation where it is now 64
/// (`a_value_is_as_small_as_a_vec`).
/// Serde, order, equality and hash see through both, so snapshots and model
/// state counts do not change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Data {
    Str(SmallBytes),
    List(Box<Vector<Value>>),
    Set(OrdSet<Value>),
    Hash(OrdMap<Value, Value>),
    ZSet(Box<ZSet>),
}

impl Data {
    /// TYPE's answer.
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::Str(_) => "string",
            Data::List(_) => "list",
            Data::Set(_) => "set",
            Data::Hash(_) => "hash",
            Data::ZSet(_) => "zset",
        }
    }

    /// Approximate bytes held.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Data::Str(v) => v.len(),
            Data::List(l) => l.iter().map(Vec::len).sum(),
            Data::Set(s) => s.iter().map(Vec::len).sum(),
            Data::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Data::ZSet(z) => z.iter().map(|(m, _)| m.len() + 8).sum(),
        }
    }

    /// A canonical byte form (a string is itself; a collection is its type and
    /// length-prefixed elements in order), for dumps and digests.
    pub fn render(&self) -> Vec<u8> {
        let Data::Str(v) = self else {
            let mut out = self.type_name().as_bytes().to_vec();
            let mut add = |b: &[u8]| {
                out.extend_from_slice(format!(" {}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            };
            match self {
                Data::List(l) => l.iter().for_each(|v| add(v)),
                Data::Set(s) => s.iter().for_each(|v| add(v)),
                Data::Hash(h) => h.iter().for_each(|(f, v)| {
                    add(f);
                    add(v)
                }),
                Data::ZSet(z) => z.iter().for_each(|(m, s)| {
                    add(m);
                    add(zsets::format_score(s).as_bytes())
                }),
                Data::Str(_) => unreachable!(),
            }
            return out;
        };
        v.to_vec()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Entry {
    /// `None` is a tombstone (last-writer-wins only).
    value: Option<Data>,
    stamp: Stamp,
}

pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_A_FLOAT: &str = "ERR value is not a valid float";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const SYNTAX: &str = "ERR syntax error";
pub const INSUFFICIENT_FUNDS: &str = "ERR insufficient funds";
pub const BAD_AMOUNT: &str = "ERR transfer amount must be positive";
pub const NO_EXPIRY: &str = "ERR gsmo does not expire keys (EX, PX, EXAT, PXAT, EXPIRE, ...): \
     replicas share no clock at which to delete a key in the same place of the order";

fn err(msg: &str) -> Reply {
    Reply::Error(msg.into())
}

/// Where and how a write lands: its stamp and the replica's resolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    stamp: Stamp,
    how: Resolution,
}

/// One replica's store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvStore {
    /// Keyed by [`SmallBytes`] (short keys inline, so a lookup misses the cache
    /// less), found by hash and iterated in key order.
    entries: Entries<Entry>,
    /// Live keys (tombstones excluded), kept so DBSIZE is O(1).
    live: usize,
    /// Last-writer-wins: the last FLUSHALL's stamp; any write stamped below it is void.
    flushed: Stamp,
    /// Broken variant (model checker only, never persisted): a `TRANSFER`
    /// short of funds debits `from` and credits nobody.
    #[serde(skip)]
    debit_only_when_short: bool,
}

pub(crate) fn parse_int(v: Option<&[u8]>) -> Result<i64, Reply> {
    match v {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| err(NOT_AN_INTEGER)),
    }
}

pub(crate) fn int_value(i: i64) -> Value {
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

    /// A store from snapshot format 1, where every value was a string:
    /// `(key, value or None for a tombstone, stamp)`.
    pub fn from_strings(entries: impl IntoIterator<Item = (Key, Option<Value>, Stamp)>) -> Self {
        let mut kv = KvStore::new();
        for (key, value, stamp) in entries {
            kv.live += usize::from(value.is_some());
            let value = value.map(|v| Data::Str(v.into()));
            kv.entries.insert(key.into(), Entry { value, stamp });
        }
        kv
    }

    /// A key's value, of any type.
    pub fn data(&self, key: &[u8]) -> Option<&Data> {
        self.entries.get(key).and_then(|e| e.value.as_ref())
    }

    /// A string key's value (`None` if missing or of another type).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        match self.data(key) {
            Some(Data::Str(v)) => Some(v),
            _ => None,
        }
    }

    /// Live keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Data)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k.as_bytes(), v)))
    }

    /// Number of live keys, O(1).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Approximate bytes held in live keys and values.
    pub fn payload_bytes(&self) -> usize {
        self.entries
            .unordered()
            .filter_map(|(k, e)| e.value.as_ref().map(|v| k.len() + v.payload_bytes()))
            .sum()
    }

    /// The string at `key` for a string command: `Ok(None)` if missing,
    /// WRONGTYPE if the key holds another type.
    pub(crate) fn string(&self, key: &[u8]) -> Result<Option<&[u8]>, Reply> {
        match self.data(key) {
            None => Ok(None),
            Some(Data::Str(v)) => Ok(Some(v)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    /// The integer at `key` (missing counts 0).
    pub(crate) fn int(&self, key: &[u8]) -> Result<i64, Reply> {
        parse_int(self.string(key)?)
    }

    /// Sum of the integer values of `keys` (missing keys count 0): the bank total.
    pub fn sum(&self, keys: &[Key]) -> Result<i64, Reply> {
        keys.iter()
            .try_fold(0i64, |acc, k| Ok(acc.saturating_add(self.int(k)?)))
    }

    /// Sum of the integer values of every live key starting with `prefix`
    /// (e.g. `acct:`): how `gsmo snapshot verify` checks bank conservation.
    pub fn sum_prefix(&self, prefix: &[u8]) -> Result<i64, Reply> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .try_fold(0i64, |acc, (k, _)| Ok(acc.saturating_add(self.int(k)?)))
    }

    /// Under last-writer-wins, turns a read-modify-write into the absolute
    /// assignment it means here and now ([`Op::Assign`]), so every replica can
    /// apply it by stamp. Errors (wrong type, not an integer, insufficient
    /// funds, ...) are decided at the origin and nothing is multicast. Blind
    /// writes are returned as they are.
    pub fn resolve(&self, op: Op) -> Result<Op, Reply> {
        if op.is_blind() {
            return Ok(op);
        }
        let keys: Vec<Key> = op.keys().map(<[u8]>::to_vec).collect();
        // An O(1) copy: the persistent maps share everything the op leaves alone.
        let mut scratch = self.clone();
        let at = At {
            stamp: Stamp::default(),
            how: Resolution::DeliveryOrder,
        };
        let reply = scratch.apply_op(&op, at);
        if let Reply::Error(_) = reply {
            return Err(reply);
        }
        let mut pairs: Vec<(Key, Option<Data>)> = Vec::with_capacity(keys.len());
        for k in keys {
            if !pairs.iter().any(|(seen, _)| *seen == k) {
                let v = scratch.data(&k).cloned();
                pairs.push((k, v));
            }
        }
        Ok(Op::Assign { pairs, reply })
    }

    /// Applies a delivered write and returns the reply its client gets.
    pub fn apply(&mut self, w: &Write, how: Resolution) -> Reply {
        self.apply_op(
            &w.op,
            At {
                stamp: w.stamp,
                how,
            },
        )
    }

    fn apply_op(&mut self, op: &Op, at: At) -> Reply {
        match op {
            Op::Set { key, value } => {
                self.put(key, Some(Data::Str(value[..].into())), at);
                Reply::Ok
            }
            Op::MSet { pairs } => {
                for window in pairs.chunks(PREFETCH_AHEAD) {
                    self.prefetch_window(window.iter().map(|(k, _)| &k[..]));
                    for (k, v) in window {
                        self.put(k, Some(Data::Str(v[..].into())), at);
                    }
                }
                Reply::Ok
            }
            Op::Del { keys } => {
                let mut removed = 0;
                for window in keys.chunks(PREFETCH_AHEAD) {
                    self.prefetch_window(window.iter().map(Vec::as_slice));
                    for k in window {
                        let live = self.data(k).is_some();
                        if self.put(k, None, at) && live {
                            removed += 1;
                        }
                    }
                }
                Reply::Int(removed)
            }
            Op::IncrBy { key, delta } => self.incr_by(key, *delta, at),
            Op::Transfer { from, to, amount } => self.transfer(from, to, *amount, at),
            Op::SetWith {
                key,
                value,
                cond,
                get,
            } => self.set_with(key, value, *cond, *get, at),
            Op::GetDel { key } => self.getdel(key, at),
            Op::MSetNx { pairs } => self.msetnx(pairs, at),
            Op::Append { key, value } => self.append(key, value, at),
            Op::Rename { from, to } => self.rename(from, to, at),
            Op::FlushAll => {
                self.flush(at);
                Reply::Ok
            }
            Op::Push { key, values, left } => self.push(key, values, *left, at),
            Op::Pop { key, left, count } => self.pop(key, *left, *count, at),
            Op::SAdd { key, members } => self.sadd(key, members, at),
            Op::SPop { key, count } => self.spop(key, *count, at),
            Op::HSet { key, pairs } => self.hset(key, pairs, at),
            Op::HDel { key, fields } => self.hdel(key, fields, at),
            Op::ZAdd { key, pairs } => self.zadd(key, pairs, at),
            Op::ZPopMin { key, count } => self.zpopmin(key, *count, at),
            Op::Assign { pairs, reply } => {
                for (k, v) in pairs {
                    self.put(k, v.clone(), at);
                }
                reply.clone()
            }
        }
    }

    /// Answers a local read.
    pub fn read(&self, r: &ReadOp) -> Reply {
        let result = match r {
            ReadOp::Get { key } => self.string(key).map(|v| Reply::Bulk(v.map(<[u8]>::to_vec))),
            ReadOp::MGet { keys } => Ok(Reply::Array(
                keys.chunks(PREFETCH_AHEAD)
                    .flat_map(|window| {
                        self.prefetch_window(window.iter().map(Vec::as_slice));
                        window.iter()
                    })
                    .map(|k| Reply::Bulk(self.get(k).map(<[u8]>::to_vec)))
                    .collect(),
            )),
            ReadOp::StrLen { key } => self
                .string(key)
                .map(|v| Reply::Int(len(v.map_or(0, <[u8]>::len)))),
            ReadOp::Exists { keys } => Ok(Reply::Int(len(keys
                .iter()
                .filter(|k| self.data(k).is_some())
                .count()))),
            ReadOp::Type { key } => Ok(Reply::Status(
                self.data(key).map_or("none", Data::type_name).into(),
            )),
            ReadOp::Ttl { key, .. } => {
                Ok(Reply::Int(if self.data(key).is_some() { -1 } else { -2 }))
            }
            ReadOp::Keys { pattern } => Ok(self.keys(pattern)),
            ReadOp::Scan {
                cursor,
                pattern,
                count,
            } => Ok(self.scan(*cursor, pattern.as_deref(), *count)),
            ReadOp::DbSize => Ok(Reply::Int(len(self.live))),
            ReadOp::LRange { key, start, stop } => self.lrange(key, *start, *stop),
            ReadOp::LLen { key } => self
                .list(key)
                .map(|l| Reply::Int(len(l.map_or(0, Vector::len)))),
            ReadOp::SMembers { key } => self.smembers(key),
            ReadOp::SCard { key } => self
                .set(key)
                .map(|s| Reply::Int(len(s.map_or(0, OrdSet::len)))),
            ReadOp::SIsMember { key, member } => self
                .set(key)
                .map(|s| Reply::Int(i64::from(s.is_some_and(|s| s.contains(member))))),
            ReadOp::HGet { key, field } => self
                .hash(key)
                .map(|h| Reply::Bulk(h.and_then(|h| h.get(field)).cloned())),
            ReadOp::HGetAll { key } => self.hgetall(key),
            ReadOp::HLen { key } => self
                .hash(key)
                .map(|h| Reply::Int(len(h.map_or(0, OrdMap::len)))),
            ReadOp::ZRange {
                key,
                start,
                stop,
                with_scores,
            } => self.zrange(key, *start, *stop, *with_scores),
            ReadOp::ZCard { key } => self
                .zset(key)
                .map(|z| Reply::Int(len(z.map_or(0, ZSet::len)))),
            ReadOp::ZScore { key, member } => self.zscore(key, member),
        };
        result.unwrap_or_else(|e| e)
    }

    /// Writes one key (`None` deletes); returns whether the write took effect.
    /// Under last-writer-wins a write loses to a newer stamp on the key or to
    /// a newer FLUSHALL, and a delete leaves a tombstone; in delivery order the
    /// key just goes.
    pub(crate) fn put(&mut self, key: &[u8], value: Option<Data>, at: At) -> bool {
        let lww = at.how == Resolution::LastWriterWins;
        if lww && at.stamp < self.flushed {
            return false;
        }
        let now_live = value.is_some();
        let remove = value.is_none() && !lww;
        // One lookup for an existing key (the common overwrite).
        let was_live = match self.entries.get_mut(key) {
            // Equal stamps only occur within one write (e.g. MSET of one key twice): later wins.
            Some(e) if lww && e.stamp > at.stamp => return false,
            Some(e) => {
                let was_live = e.value.is_some();
                if !remove {
                    *e = Entry {
                        value,
                        stamp: at.stamp,
                    };
                } else {
                    self.entries.remove(key);
                }
                was_live
            }
            None => {
                if !remove {
                    let entry = Entry {
                        value,
                        stamp: at.stamp,
                    };
                    self.entries.insert(key.into(), entry);
                }
                false
            }
        };
        self.live = self.live + usize::from(now_live) - usize::from(was_live);
        true
    }

    /// FLUSHALL: in delivery order, everything goes; under last-writer-wins,
    /// everything stamped below the flush goes, and so will any such write.
    fn flush(&mut self, at: At) {
        if at.how == Resolution::DeliveryOrder {
            self.entries = Entries::default();
            self.live = 0;
            return;
        }
        if at.stamp > self.flushed {
            self.flushed = at.stamp;
        }
        let flushed = self.flushed;
        self.entries.retain(|e| e.stamp > flushed);
        self.live = self
            .entries
            .iter()
            .filter(|(_, e)| e.value.is_some())
            .count();
    }
}

fn len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Redis's index range (negative counts from the end) over `n` elements,
/// as `start..end`; empty if nothing is in range.
pub(crate) fn index_range(start: i64, stop: i64, n: usize) -> std::ops::Range<usize> {
    let n = len(n);
    let start = if start < 0 { (n + start).max(0) } else { start };
    let stop = if stop < 0 { n + stop } else { stop.min(n - 1) };
    if start > stop || start >= n {
        0..0
    } else {
        start as usize..stop as usize + 1
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
            Reply::Status(s) => f.write_str(s),
            Reply::NilArray => f.write_str("(nil array)"),
            Reply::Array(items) => {
                f.write_str("[")?;
                for (i, r) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    r.fmt(f)?;
                }
                f.write_str("]")
            }
        }
    }
}
