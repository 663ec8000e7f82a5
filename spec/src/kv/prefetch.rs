//! Looking a batch's keys up together before serving it, for the cache alone.
//!
//! A lookup in a store bigger than the cache is a chain of dependent misses
//! (the shard, its control bytes, the entry, the value), and between two
//! requests of a batch the node runs a microsecond of other work (parsing,
//! answering), so the processor never has two chains in flight. Looking the
//! batch's keys up first, one stage at a time across a group of keys
//! ([`Index::prefetch`](super::index)), overlaps the misses of a stage; serving
//! the batch then finds its lines in the cache. It changes nothing a caller
//! can see: a hint, like a prefetch instruction, but in safe code. `perf` on
//! node 0 under pipelined GETs had put a fifth of its time in the index's
//! probe; docs/performance.md has the numbers.

use super::{Data, Key, KvStore, Op, ReadOp, Value};

/// The most keys to look up ahead of serving them: 64 keys' lines (the
/// shard, control bytes, entry and value of each, 16 KB) stay in the cache
/// until they are served, where a batch of any size (`--max-batch` has no
/// upper bound) would evict its first keys before their turn.
pub const PREFETCH_AHEAD: usize = 64;

impl Op {
    /// Every key the op names, in order (FLUSHALL names none): what a
    /// read-modify-write reads ([`KvStore::resolve`]) and a batch prefetches.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        type Keys<'a> = (
            Option<&'a Key>,
            Option<&'a Key>,
            &'a [Key],
            &'a [(Key, Value)],
            &'a [(Key, Option<Data>)],
        );
        let (first, second, list, pairs, assigned): Keys<'_> = match self {
            Op::Set { key, .. }
            | Op::IncrBy { key, .. }
            | Op::SetWith { key, .. }
            | Op::GetDel { key }
            | Op::Append { key, .. }
            | Op::Push { key, .. }
            | Op::Pop { key, .. }
            | Op::SAdd { key, .. }
            | Op::SPop { key, .. }
            | Op::HSet { key, .. }
            | Op::HDel { key, .. }
            | Op::ZAdd { key, .. }
            | Op::ZPopMin { key, .. } => (Some(key), None, &[], &[], &[]),
            Op::Transfer { from, to, .. } | Op::Rename { from, to } => {
                (Some(from), Some(to), &[], &[], &[])
            }
            Op::Del { keys } => (None, None, keys, &[], &[]),
            Op::MSet { pairs } | Op::MSetNx { pairs } => (None, None, &[], pairs, &[]),
            Op::Assign { pairs, .. } => (None, None, &[], &[], pairs),
            Op::FlushAll => (None, None, &[], &[], &[]),
        };
        first
            .into_iter()
            .chain(second)
            .chain(list)
            .chain(pairs.iter().map(|(k, _)| k))
            .chain(assigned.iter().map(|(k, _)| k))
            .map(Vec::as_slice)
    }

    /// The key of an op that names exactly one (a batch prefetches those; an
    /// MSET or DEL of several prefetches its own).
    pub fn key(&self) -> Option<&[u8]> {
        let mut keys = self.keys();
        match (keys.next(), keys.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }
}

impl ReadOp {
    /// The key of a read that names exactly one; `None` for the rest
    /// (MGET, which prefetches its own, EXISTS, KEYS, SCAN, DBSIZE).
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            ReadOp::Get { key }
            | ReadOp::StrLen { key }
            | ReadOp::Type { key }
            | ReadOp::Ttl { key, .. }
            | ReadOp::LRange { key, .. }
            | ReadOp::LLen { key }
            | ReadOp::SMembers { key }
            | ReadOp::SCard { key }
            | ReadOp::SIsMember { key, .. }
            | ReadOp::HGet { key, .. }
            | ReadOp::HGetAll { key }
            | ReadOp::HLen { key }
            | ReadOp::ZRange { key, .. }
            | ReadOp::ZCard { key }
            | ReadOp::ZScore { key, .. } => Some(key),
            ReadOp::MGet { keys } | ReadOp::Exists { keys } if keys.len() == 1 => Some(&keys[0]),
            ReadOp::MGet { .. }
            | ReadOp::Exists { .. }
            | ReadOp::Keys { .. }
            | ReadOp::Scan { .. }
            | ReadOp::DbSize => None,
        }
    }
}

impl KvStore {
    /// Looks `keys` up, loading each entry and a string's first byte, so
    /// that serving them next finds them in the cache; at most
    /// [`PREFETCH_AHEAD`] at a time are worth it. `black_box` keeps the
    /// optimiser from dropping loads whose results nobody reads. Returns how
    /// many keys it found, which only a test has use for.
    pub fn prefetch<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let mut found = 0;
        self.entries.prefetch(keys, |e| {
            found += 1;
            std::hint::black_box(match &e.value {
                Some(Data::Str(v)) => v.first().copied(),
                _ => None,
            });
        });
        found
    }

    /// Prefetches a window of a multi-key command's keys, if there is more
    /// than one: a lone key gains nothing from being looked up twice.
    pub(crate) fn prefetch_window<'a>(&self, window: impl ExactSizeIterator<Item = &'a [u8]>) {
        if window.len() > 1 {
            self.prefetch(window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Reply, Resolution, Stamp, Write};

    /// `key` names what the op writes: on an empty store, an op with a key
    /// leaves at most that key, and every op without one is a multi-key op.
    #[test]
    fn an_ops_key_is_the_key_it_writes() {
        let k = |s: &str| s.as_bytes().to_vec();
        let one_key = [
            Op::Set {
                key: k("a"),
                value: k("1"),
            },
            Op::IncrBy {
                key: k("b"),
                delta: 2,
            },
            Op::Append {
                key: k("c"),
                value: k("x"),
            },
            Op::Push {
                key: k("d"),
                values: vec![k("x")],
                left: true,
            },
            Op::SAdd {
                key: k("e"),
                members: vec![k("x")],
            },
            Op::HSet {
                key: k("f"),
                pairs: vec![(k("x"), k("y"))],
            },
        ];
        for op in one_key {
            let mut store = KvStore::new();
            let stamp = Stamp::default();
            store.apply(
                &Write {
                    stamp,
                    op: op.clone(),
                },
                Resolution::DeliveryOrder,
            );
            let written: Vec<&[u8]> = store.iter().map(|(key, _)| key).collect();
            assert_eq!(written, vec![op.key().unwrap()], "{op:?}");
        }
        let many = Op::MSet {
            pairs: vec![(k("a"), k("1")), (k("b"), k("2"))],
        };
        assert_eq!(many.key(), None);
        assert_eq!(Op::FlushAll.key(), None);
        let one = Op::MSet {
            pairs: vec![(k("a"), k("1"))],
        };
        assert_eq!(one.key(), Some(&b"a"[..]));
        assert_eq!(Op::Del { keys: vec![k("a")] }.key(), Some(&b"a"[..]));
        assert_eq!(
            Op::Del {
                keys: vec![k("a"), k("b")]
            }
            .key(),
            None
        );
    }

    /// `keys` names every key, in order: what a read-modify-write resolves.
    #[test]
    fn an_ops_keys_are_every_key_it_names() {
        let k = |s: &str| s.as_bytes().to_vec();
        let keys = |op: &Op| op.keys().map(<[u8]>::to_vec).collect::<Vec<_>>();
        let transfer = Op::Transfer {
            from: k("a"),
            to: k("b"),
            amount: 1,
        };
        assert_eq!(keys(&transfer), [k("a"), k("b")]);
        let msetnx = Op::MSetNx {
            pairs: vec![(k("c"), k("1")), (k("d"), k("2"))],
        };
        assert_eq!(keys(&msetnx), [k("c"), k("d")]);
        let assign = Op::Assign {
            pairs: vec![(k("e"), None)],
            reply: Reply::Ok,
        };
        assert_eq!(keys(&assign), [k("e")]);
        assert_eq!(keys(&Op::Del { keys: vec![k("f")] }), [k("f")]);
        assert!(keys(&Op::FlushAll).is_empty());
    }

    #[test]
    fn a_reads_key_is_the_key_it_reads() {
        let key = b"k".to_vec();
        assert_eq!(ReadOp::Get { key: key.clone() }.key(), Some(&key[..]));
        assert_eq!(
            ReadOp::HGet {
                key: key.clone(),
                field: b"f".to_vec()
            }
            .key(),
            Some(&key[..])
        );
        assert_eq!(
            ReadOp::MGet {
                keys: vec![key.clone()]
            }
            .key(),
            Some(&key[..])
        );
        assert_eq!(
            ReadOp::MGet {
                keys: vec![key.clone(), key]
            }
            .key(),
            None
        );
        assert_eq!(ReadOp::DbSize.key(), None);
    }

    #[test]
    fn prefetch_looks_up_the_store() {
        let mut store = KvStore::new();
        for key in ["a", "b"] {
            let op = Op::Set {
                key: key.into(),
                value: b"1".to_vec(),
            };
            let stamp = Stamp::default();
            store.apply(&Write { stamp, op }, Resolution::DeliveryOrder);
        }
        assert_eq!(store.prefetch([&b"a"[..], b"missing", b"b"]), 2);
    }

    /// MSET, MGET and DEL serve their keys a window at a time: every key,
    /// in order, across windows.
    #[test]
    fn multi_key_commands_span_windows() {
        let n = 2 * PREFETCH_AHEAD + 3;
        let key = |i: usize| format!("k{i}").into_bytes();
        let mut store = KvStore::new();
        let stamp = Stamp::default();
        let pairs = (0..n)
            .map(|i| (key(i), i.to_string().into_bytes()))
            .collect();
        let op = Op::MSet { pairs };
        store.apply(&Write { stamp, op }, Resolution::DeliveryOrder);
        assert_eq!(store.len(), n);
        // The n keys, then as many missing ones.
        let keys: Vec<_> = (0..2 * n).map(key).collect();
        let want = (0..2 * n).map(|i| Reply::Bulk((i < n).then(|| i.to_string().into_bytes())));
        let got = store.read(&ReadOp::MGet { keys: keys.clone() });
        assert_eq!(got, Reply::Array(want.collect()));
        let op = Op::Del { keys };
        let deleted = store.apply(&Write { stamp, op }, Resolution::DeliveryOrder);
        assert_eq!(deleted, Reply::Int(n as i64));
        assert!(store.is_empty());
    }
}
