//! The store's map from key to entry: a hash index for the point reads and
//! writes nearly every request makes, and the same keys in order for what
//! needs order (SCAN, KEYS, DUMP, and a replica's hash, equality and bytes).
//!
//! Why two maps: on an ordered map alone, a `GET` walks three 64-key B-tree
//! nodes by binary search, a cache miss per probe; it was 37% of a node's CPU
//! under `redis-benchmark -t get -P 16` at 100 k keys. The hash index
//! ([`super::index`]) finds a key in two hops, and an overwrite (the common
//! write) never touches the order. Both are persistent, so a snapshot still
//! copies the store in O(1).
//!
//! Only the order is ever iterated, so the hash map's layout (and its
//! per-process random hasher) never shows: a replica's state compares, prints
//! and serialises exactly as an `OrdMap<SmallBytes, V>` did, and model state
//! counts and snapshot files are unchanged. It hashes as one digest of the
//! same pairs in the same order, kept until the next change.

use super::index::Index;
use super::small_bytes::SmallBytes;
use imbl::OrdSet;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::sync::{Arc, OnceLock};

/// Keys to values, found by hash, iterated in key order.
///
/// Values sit behind an `Arc`, so that copying a shard of the index after a
/// snapshot copies pointers, not values. A node holding 632 k keys of 90-byte
/// values: 199 MB resident (values inline in the index measured no smaller;
/// imbl's hash trie, which the index replaced: 283 MB; docs/performance.md).
#[derive(Clone)]
pub(crate) struct Entries<V> {
    by_key: Index<V>,
    order: OrdSet<SmallBytes>,
    /// A digest of every (key, value) in key order, computed when first
    /// hashed and forgotten by every change. The model checker hashes a
    /// replica at each step, and most steps leave its store alone: hashing
    /// the store anew each time was 4% of a bank check.
    digest: OnceLock<u64>,
}

impl<V: Clone> Default for Entries<V> {
    fn default() -> Self {
        Entries {
            by_key: Index::default(),
            order: OrdSet::new(),
            digest: OnceLock::new(),
        }
    }
}

impl<V: Clone> Entries<V> {
    /// Shards of `n` keys on average, so that a few keys split shards.
    #[cfg(test)]
    fn with_shard_keys(n: usize) -> Self {
        Entries {
            by_key: Index::with_shard_keys(n),
            order: OrdSet::new(),
            digest: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        self.by_key.get(key).map(|v| &**v)
    }

    pub(crate) fn prefetch<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        touch: impl FnMut(&V),
    ) {
        self.by_key.prefetch(keys, touch);
    }

    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.digest.take();
        self.by_key.get_mut(key).map(Arc::make_mut)
    }

    /// Inserts or replaces; only a new key enters the order.
    pub(crate) fn insert(&mut self, key: SmallBytes, value: V) {
        self.digest.take();
        if self.by_key.insert(key.clone(), Arc::new(value)).is_none() {
            self.order.insert(key);
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.digest.take();
        if self.by_key.remove(key).is_some() {
            self.order.remove(key);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Every key and value, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SmallBytes, &V)> {
        self.order.iter().map(|k| (k, self.value_of(k)))
    }

    /// Every key and value in no particular order, by one walk of the index:
    /// for a pass over the whole store that needs no order, cheaper than
    /// [`Entries::iter`]'s lookup per key.
    pub(crate) fn unordered(&self) -> impl Iterator<Item = (&SmallBytes, &V)> {
        self.by_key.iter().map(|(k, v)| (k, &**v))
    }

    /// The keys in `range` and their values, in key order.
    pub(crate) fn range<'a, R>(&'a self, range: R) -> impl Iterator<Item = (&'a SmallBytes, &'a V)>
    where
        R: RangeBounds<&'a [u8]>,
    {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.order
            .range::<_, [u8]>(bounds)
            .map(|k| (k, self.value_of(k)))
    }

    /// Keeps the entries `keep` says yes to (a test of each entry alone).
    pub(crate) fn retain(&mut self, keep: impl Fn(&V) -> bool) {
        self.digest.take();
        for k in self.by_key.retain(keep) {
            self.order.remove(&k);
        }
    }

    fn value_of(&self, key: &SmallBytes) -> &V {
        self.by_key
            .get(key)
            .expect("every key in the order is in the hash index")
    }
}

impl<V: Clone + PartialEq> PartialEq for Entries<V> {
    fn eq(&self, other: &Self) -> bool {
        // Persistent copies (a replica and its snapshot) share the index.
        if self.by_key.ptr_eq(&other.by_key) {
            return true;
        }
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<V: Clone + Eq> Eq for Entries<V> {}

/// One digest of each (key, value) in key order (as an `OrdMap` hashes), so
/// equal entries hash alike whatever their layout or history.
impl<V: Clone + Hash> Hash for Entries<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let digest = self.digest.get_or_init(|| {
            let mut h = std::hash::DefaultHasher::new();
            for pair in self.iter() {
                pair.hash(&mut h);
            }
            h.finish()
        });
        state.write_u64(*digest);
    }
}

impl<V: Clone + fmt::Debug> fmt::Debug for Entries<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As an `OrdMap` serialises: a map in key order (snapshot files depend on it).
///
/// The index is walked once and its entries sorted by key. Following the
/// order and looking each key up, as [`Entries::iter`] does, misses the cache
/// at every lookup: with the hash trie before, that was 73% of node 0's CPU
/// encoding a 1 M-key snapshot. The sort holds a copy of each key (inline up
/// to 22 bytes) and a reference to its value: 32 bytes a key for the length
/// of the encoding.
impl<V: Clone + Serialize> Serialize for Entries<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut all: Vec<(SmallBytes, &V)> =
            self.unordered().map(|(k, v)| (k.clone(), v)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        s.collect_map(all.iter().map(|(k, v)| (k, *v)))
    }
}

/// The most keys a decoded store's index is sized for up front (about 70 MB
/// of shards); a larger store grows as it is inserted.
const PRESIZE_MAX: usize = 1 << 20;

/// As an `OrdMap` deserialises (a later duplicate key replaces an earlier
/// one), each entry going straight into both structures. Going through an
/// `OrdMap` first built a third structure and compared every key into it: a
/// quarter of a node's user CPU restoring a 1 M-key part.
impl<'de, V: Clone + Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs<V>(PhantomData<V>);
        impl<'de, V: Clone + Deserialize<'de>> Visitor<'de> for Pairs<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from keys to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                // Sized for the keys the length prefix promises, within a
                // bound, so that a corrupt prefix cannot claim the memory.
                let keys = map.size_hint().unwrap_or(0).min(PRESIZE_MAX);
                let mut entries = Entries {
                    by_key: Index::with_capacity(keys),
                    order: OrdSet::new(),
                    digest: OnceLock::new(),
                };
                while let Some((k, v)) = map.next_entry()? {
                    entries.insert(k, v);
                }
                Ok(entries)
            }
        }
        d.deserialize_map(Pairs(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    use std::ops::Bound;

    #[derive(Clone, Debug)]
    enum Step {
        Insert(Vec<u8>, u8),
        Remove(Vec<u8>),
        Retain(u8),
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Short and long keys (inline and on the heap), with collisions likely.
        prop_oneof![
            prop::collection::vec(0u8..4, 0..3),
            prop::collection::vec(0u8..2, 20..26),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (key(), any::<u8>()).prop_map(|(k, v)| Step::Insert(k, v)),
            2 => key().prop_map(Step::Remove),
            1 => (1u8..4).prop_map(Step::Retain),
        ]
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config(256))]

        /// Against a `BTreeMap`: the same lookups, order, ranges, equality,
        /// hash and bytes as the `OrdMap` it replaced, whatever the history.
        #[test]
        fn behaves_as_an_ordered_map(steps in prop::collection::vec(step(), 0..40), from in key()) {
            // One key a shard: many splits, and a layout unlike `rebuilt`'s.
            let mut entries = Entries::<u8>::with_shard_keys(1);
            let mut model = BTreeMap::<Vec<u8>, u8>::new();
            for s in &steps {
                match s {
                    Step::Insert(k, v) => {
                        entries.insert(k.clone().into(), *v);
                        model.insert(k.clone(), *v);
                    }
                    Step::Remove(k) => {
                        entries.remove(k);
                        model.remove(k);
                    }
                    Step::Retain(m) => {
                        entries.retain(|v| v % m == 0);
                        model.retain(|_, v| *v % m == 0);
                    }
                }
                prop_assert_eq!(entries.len(), model.len());
            }
            let ours: Vec<_> = entries.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            let theirs: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(&ours, &theirs);
            for (k, v) in &model {
                prop_assert_eq!(entries.get(k), Some(v));
            }
            let ranged: Vec<_> = entries
                .range((Bound::Included(&from[..]), Bound::Unbounded))
                .map(|(k, _)| k.to_vec())
                .collect();
            let expected: Vec<_> = model.range(from.clone()..).map(|(k, _)| k.clone()).collect();
            prop_assert_eq!(ranged, expected);

            // Equality and bytes match the ordered map built from scratch.
            let ord: imbl::OrdMap<SmallBytes, u8> =
                model.iter().map(|(k, v)| (SmallBytes::from(k.clone()), *v)).collect();
            let hash = |e: &Entries<u8>| BuildHasherDefault::<DefaultHasher>::default().hash_one(e);
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(&entries, config).unwrap();
            prop_assert_eq!(&bytes, &bincode::serde::encode_to_vec(&ord, config).unwrap());
            prop_assert_eq!(format!("{entries:?}"), format!("{ord:?}"));
            let (back, _): (Entries<u8>, _) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
            prop_assert_eq!(&back, &entries);
            let mut rebuilt = Entries::default();
            for (k, v) in model.iter().rev() {
                rebuilt.insert(k.clone().into(), *v);
            }
            prop_assert_eq!(&rebuilt, &entries);
            // Equal entries hash alike, whatever their layout and history; a
            // change forgets the kept digest, in the copy that changed only.
            prop_assert_eq!(hash(&rebuilt), hash(&entries));
            if let Some((k, _)) = model.iter().next() {
                let mut changed = entries.clone();
                *changed.get_mut(k).unwrap() = model[k].wrapping_add(1);
                prop_assert_ne!(hash(&changed), hash(&entries));
                rebuilt.insert(k.clone().into(), model[k].wrapping_add(1));
                prop_assert_ne!(&rebuilt, &entries);
                prop_assert_eq!(hash(&rebuilt), hash(&changed));
                rebuilt.remove(k);
                prop_assert_ne!(hash(&rebuilt), hash(&changed));
                let mut emptied = entries.clone();
                emptied.retain(|_| false);
                prop_assert_eq!(hash(&emptied), hash(&Entries::default()));
            }
        }

        /// Decoding pairs in any order, duplicates included, gives what the
        /// `OrdMap` it replaced gave (bincode writes a map as a sequence of pairs).
        #[test]
        fn decodes_as_an_ordered_map(pairs in prop::collection::vec((key(), any::<u8>()), 0..40)) {
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(&pairs, config).unwrap();
            let (ord, _): (imbl::OrdMap<SmallBytes, u8>, _) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            let (ours, _): (Entries<u8>, _) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
            prop_assert_eq!(ours.len(), ord.len());
            let listed: Vec<_> = ours.iter().map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(listed, ord.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
            for (k, v) in &ord {
                prop_assert_eq!(ours.get(k), Some(v));
            }
        }
    }
}
