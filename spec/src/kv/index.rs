//! The store's hash index: a persistent hash map built from small ordinary
//! ones, by linear hashing (Litwin 1980, "Linear Hashing: A New Tool for File
//! and Table Addressing").
//!
//! Why not a hash trie: imbl's trie finds a key 100 k deep in four levels of
//! 32-slot nodes, a cache miss or two each, and a write checks each level's
//! `Arc` for sharing; that was a fifth of node 0's CPU under pipelined `GET`
//! and most of a peer's under `SET` (`perf`, docs/performance.md). Here a key
//! is one hop into a vector of shards and one probe of a `hashbrown` table.
//!
//! What keeps it persistent: the shards, the chunks of shards and the vector
//! of chunks each sit behind an `Arc`, so a copy (a snapshot's record point)
//! is O(1), and a write copies what it touches and a copy still shares: the
//! vector of chunks (pointers, once per copy), one chunk (at most 512
//! pointers) and one shard (a few dozen keys). With one flat vector of
//! shards, the first write after a copy of a 1 M-key store copied 31 k
//! pointers, each a cache miss to count: 0.3-0.5 ms on the event loop, and
//! ten times that at 10 M keys. What keeps every step short: the table grows
//! one shard at a time (the next in turn splits in two when the average shard
//! passes its bound), never rehashing the whole map at once on the event loop.
//! It never shrinks: like a Redis dict between resizes, deleted keys leave
//! their shards' capacity behind.

use super::small_bytes::SmallBytes;
use hashbrown::hash_table::{Entry, HashTable};
use std::sync::Arc;

/// One shard: a plain hash table, small enough to copy on a write after a
/// snapshot shared it.
type Shard<V> = HashTable<(SmallBytes, Arc<V>)>;

/// Keys per shard, on average, before the next shard splits.
const SHARD_KEYS: usize = 32;
/// Up to [`CHUNK`] shards, shared between copies until one writes.
type Chunk<V> = Vec<Arc<Shard<V>>>;

/// Shards per chunk. The first write after a copy copies the vector of
/// chunks and one chunk: at 1 M keys 62 and 512 pointers, at 100 M keys 6 k
/// and 512 (a flat vector of shards: 31 k and 3 M).
const CHUNK: usize = 512;

/// Where a key's shard number starts in its hash. A shard's table places a
/// key by the hash's low bits and tags it with its top 7, so the shard number
/// comes from neither: the keys of one shard share these bits, and would
/// otherwise crowd into the same buckets or tags.
const SHARD_BITS_FROM: u32 = 32;
/// Rounds of splits the hash has bits for (2^24 shards, 512 M keys at the
/// bound): past them, shards only grow.
const LEVEL_MAX: u32 = 57 - SHARD_BITS_FROM - 1;

/// Keys to values by hash; values behind an `Arc`, so that copying a shard
/// copies pointers, not values.
#[derive(Clone)]
pub(crate) struct Index<V> {
    /// Shard `i` is `chunks[i / CHUNK][i % CHUNK]`.
    chunks: Arc<Vec<Arc<Chunk<V>>>>,
    shards: usize,
    /// `2^level` shards at the start of this round of splits...
    level: u32,
    /// ...of which the first `split` have split in two already.
    split: usize,
    len: usize,
    /// Hashes a key once for both its shard and its place in it. aHash, not
    /// std's SipHash: hashing was a tenth of a lookup's CPU under `GET`. Keyed
    /// at random per process, so a client cannot choose colliding keys.
    hasher: ahash::RandomState,
    /// [`SHARD_KEYS`]; smaller in tests, so that a few keys split shards.
    shard_keys: usize,
    /// [`LEVEL_MAX`]; smaller in tests, so that a few keys reach it.
    level_max: u32,
}

impl<V> Default for Index<V> {
    fn default() -> Self {
        Index::sized(0, SHARD_KEYS)
    }
}

impl<V> Index<V> {
    #[cfg(test)]
    pub(crate) fn with_shard_keys(shard_keys: usize) -> Self {
        Index::sized(0, shard_keys)
    }

    /// An index that takes `keys` keys without a split (a restore knows how
    /// many it decodes).
    pub(crate) fn with_capacity(keys: usize) -> Self {
        Index::sized(keys, SHARD_KEYS)
    }

    fn sized(keys: usize, shard_keys: usize) -> Self {
        let shard_keys = shard_keys.max(1);
        // The fewest shards (a power of two) that hold `keys` within the bound.
        let level = keys
            .div_ceil(shard_keys)
            .max(1)
            .next_power_of_two()
            .ilog2()
            .min(LEVEL_MAX);
        let per_shard = keys.div_ceil(1 << level);
        // Room for the average shard and half again: most never grow.
        let capacity = per_shard + per_shard / 2;
        let shards = 1usize << level;
        // A power of two: whole chunks, or one chunk not yet full.
        let chunk = || {
            let n = CHUNK.min(shards);
            Arc::new(
                (0..n)
                    .map(|_| Arc::new(Shard::with_capacity(capacity)))
                    .collect(),
            )
        };
        let chunks = (0..shards.div_ceil(CHUNK)).map(|_| chunk()).collect();
        Index {
            chunks: Arc::new(chunks),
            shards,
            level,
            split: 0,
            len: 0,
            hasher: ahash::RandomState::new(),
            shard_keys,
            level_max: LEVEL_MAX,
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// What a shard's table needs to move an entry: the same hash as [`Index::hash`].
    fn rehash(hasher: &ahash::RandomState) -> impl Fn(&(SmallBytes, Arc<V>)) -> u64 + Copy + '_ {
        |(k, _)| hasher.hash_one(k.as_bytes())
    }

    /// The shard of a key hashing to `h`: `level` bits of it, or one bit more
    /// once that shard has split this round.
    fn shard_of(&self, h: u64) -> usize {
        let bits = (h >> SHARD_BITS_FROM) as usize;
        let low = bits & ((1 << self.level) - 1);
        if low < self.split {
            bits & ((1 << (self.level + 1)) - 1)
        } else {
            low
        }
    }

    fn shard(&self, i: usize) -> &Shard<V> {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    /// Whether shard `i` and the chunk and vector holding it are this
    /// index's alone, so that writing it copies nothing. Nothing here makes a
    /// `Weak`, so the strong counts say it.
    fn unshared(&self, i: usize) -> bool {
        Arc::strong_count(&self.chunks) == 1
            && Arc::strong_count(&self.chunks[i / CHUNK]) == 1
            && Arc::strong_count(&self.chunks[i / CHUNK][i % CHUNK]) == 1
    }

    /// Chunk `c`, copied first (with the vector) if a copy of the index
    /// shares it. Takes the field alone, so that the hasher stays at hand.
    fn chunk_mut(chunks: &mut Arc<Vec<Arc<Chunk<V>>>>, c: usize) -> &mut Chunk<V>
    where
        V: Clone,
    {
        Arc::make_mut(&mut Arc::make_mut(chunks)[c])
    }

    /// Shard `i`, copied first with whatever a copy of the index shares.
    fn shard_mut(chunks: &mut Arc<Vec<Arc<Chunk<V>>>>, i: usize) -> &mut Shard<V>
    where
        V: Clone,
    {
        Arc::make_mut(&mut Self::chunk_mut(chunks, i / CHUNK)[i % CHUNK])
    }

    /// Shard `i`, taken out of the index (left empty), unshared if no copy
    /// shares it.
    fn take_shard(&mut self, i: usize) -> Shard<V>
    where
        V: Clone,
    {
        let chunk = Self::chunk_mut(&mut self.chunks, i / CHUNK);
        Arc::unwrap_or_clone(std::mem::take(&mut chunk[i % CHUNK]))
    }

    /// Puts `shard` at `i`, or after the last shard if `i` is the count.
    fn put_shard(&mut self, i: usize, shard: Shard<V>)
    where
        V: Clone,
    {
        if i == self.shards {
            if i % CHUNK == 0 {
                Arc::make_mut(&mut self.chunks).push(Arc::new(Vec::with_capacity(CHUNK)));
            }
            self.shards += 1;
            Self::chunk_mut(&mut self.chunks, i / CHUNK).push(Arc::new(shard));
        } else {
            Self::chunk_mut(&mut self.chunks, i / CHUNK)[i % CHUNK] = Arc::new(shard);
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Arc<V>> {
        let h = self.hash(key);
        self.shard(self.shard_of(h))
            .find(h, |(k, _)| k.as_bytes() == key)
            .map(|(_, v)| v)
    }

    /// Looks `keys` up for the cache's sake (see `kv/prefetch.rs`), a stage
    /// at a time across a group of keys: every key's shard, then every key's
    /// entry, then `touch` on every value found. The loads of one stage do not
    /// wait on each other, so their misses overlap, where a lookup at a time
    /// waits for each miss in turn.
    pub(crate) fn prefetch<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        mut touch: impl FnMut(&V),
    ) {
        const GROUP: usize = 16;
        let mut keys = keys.into_iter();
        let mut group: [(&[u8], u64, usize); GROUP] = [(&[], 0, 0); GROUP];
        let mut found: [Option<&Arc<V>>; GROUP] = [None; GROUP];
        loop {
            let mut n = 0;
            for (slot, key) in group.iter_mut().zip(&mut keys) {
                let h = self.hash(key);
                let i = self.shard_of(h);
                std::hint::black_box(self.shard(i).len());
                *slot = (key, h, i);
                n += 1;
            }
            if n == 0 {
                return;
            }
            for (&(key, h, i), f) in group[..n].iter().zip(&mut found) {
                *f = self
                    .shard(i)
                    .find(h, |(k, _)| k.as_bytes() == key)
                    .map(|(_, v)| v);
            }
            for v in found[..n].iter().flatten() {
                touch(v);
            }
        }
    }

    /// `key`'s hash and its shard, ready to write, or `None` for a key the
    /// shard lacks where a snapshot may share it: a miss must not copy a
    /// shared shard, so there it looks first (where none shares it, the
    /// common case, the caller's one probe does).
    fn shard_for_write(&mut self, key: &[u8]) -> Option<(u64, &mut Shard<V>)>
    where
        V: Clone,
    {
        let h = self.hash(key);
        let i = self.shard_of(h);
        if !self.unshared(i) {
            self.shard(i).find(h, |(k, _)| k.as_bytes() == key)?;
        }
        Some((h, Self::shard_mut(&mut self.chunks, i)))
    }

    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Arc<V>>
    where
        V: Clone,
    {
        let (h, shard) = self.shard_for_write(key)?;
        shard
            .find_mut(h, |(k, _)| k.as_bytes() == key)
            .map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the value replaced.
    pub(crate) fn insert(&mut self, key: SmallBytes, value: Arc<V>) -> Option<Arc<V>>
    where
        V: Clone,
    {
        let h = self.hash(&key);
        let i = self.shard_of(h);
        let shard = Self::shard_mut(&mut self.chunks, i);
        match shard.entry(h, |(k, _)| *k == key, Self::rehash(&self.hasher)) {
            Entry::Occupied(mut e) => Some(std::mem::replace(&mut e.get_mut().1, value)),
            Entry::Vacant(e) => {
                e.insert((key, value));
                self.len += 1;
                if self.len > self.shards * self.shard_keys && self.level < self.level_max {
                    self.split_next();
                }
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Arc<V>>
    where
        V: Clone,
    {
        let (h, shard) = self.shard_for_write(key)?;
        let (_, v) = shard
            .find_entry(h, |(k, _)| k.as_bytes() == key)
            .ok()?
            .remove()
            .0;
        self.len -= 1;
        Some(v)
    }

    /// Splits the next shard in turn: its keys whose next hash bit is set
    /// move to a new shard at the end. One shard's keys, never the map's.
    fn split_next(&mut self)
    where
        V: Clone,
    {
        let bit = 1u64 << (SHARD_BITS_FROM + self.level);
        let from = self.split;
        let old = self.take_shard(from);
        // Each half starts about a shard's worth: no growing as it fills.
        let (mut stay, mut go) = (
            Shard::with_capacity(self.shard_keys),
            Shard::with_capacity(self.shard_keys),
        );
        let rehash = Self::rehash(&self.hasher);
        for entry in old {
            let h = rehash(&entry);
            let half = if h & bit == 0 { &mut stay } else { &mut go };
            half.insert_unique(h, entry, rehash);
        }
        self.put_shard(from, stay);
        self.put_shard(self.shards, go);
        self.split += 1;
        if self.split == 1 << self.level {
            self.level += 1;
            self.split = 0;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every entry, shard by shard: no order a caller may rely on.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SmallBytes, &Arc<V>)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .flat_map(|s| s.iter().map(|(k, v)| (k, v)))
    }

    /// Keeps the entries `keep` says yes to, and returns the keys of the
    /// others; copies only the shards it changes. `keep` is asked twice about
    /// an entry of a shard that changes, so it must not count.
    pub(crate) fn retain(&mut self, keep: impl Fn(&V) -> bool) -> Vec<SmallBytes>
    where
        V: Clone,
    {
        let mut gone = Vec::new();
        for i in 0..self.shards {
            if self.shard(i).iter().all(|(_, v)| keep(v)) {
                continue;
            }
            Self::shard_mut(&mut self.chunks, i).retain(|(k, v)| {
                let kept = keep(v);
                if !kept {
                    gone.push(k.clone());
                }
                kept
            });
        }
        self.len -= gone.len();
        gone
    }

    /// Whether `self` and `other` are copies of one map, unchanged since.
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chunks, &other.chunks)
    }

    /// Shards now (tests).
    #[cfg(test)]
    pub(crate) fn shards(&self) -> usize {
        self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index of `shard_keys`-key shards holding keys `0..keys`, each its own value.
    fn filled(keys: u32, shard_keys: usize) -> Index<u32> {
        let mut index = Index::with_shard_keys(shard_keys);
        for i in 0..keys {
            index.insert(SmallBytes::from(i.to_be_bytes().to_vec()), Arc::new(i));
        }
        index
    }

    #[test]
    fn splits_one_shard_at_a_time_and_finds_every_key() {
        let mut index = Index::with_shard_keys(4);
        for i in 0u32..1000 {
            index.insert(SmallBytes::from(i.to_be_bytes().to_vec()), Arc::new(i));
            // The average shard stays within its bound, grown one split per insert.
            assert!(index.len() <= index.shards() * 4);
            assert!(index.shards() <= index.len() / 4 + 2);
        }
        assert_eq!(index.shards(), 250);
        for i in 0u32..1000 {
            assert_eq!(index.get(&i.to_be_bytes()).map(|v| **v), Some(i));
        }
        assert_eq!(index.iter().count(), 1000);
    }

    /// What bounds the first write after a snapshot: it copies the vector of
    /// chunks, one chunk and one shard, and shares every other chunk.
    #[test]
    fn a_write_after_a_copy_copies_one_chunk_and_one_shard() {
        let mut index = filled(3 * CHUNK as u32, 1);
        let copy = index.clone();
        // A miss, or a retain that keeps all, copies nothing.
        let missing = 9_999_999u32.to_be_bytes();
        assert!(index.get_mut(&missing).is_none());
        assert!(index.remove(&missing).is_none());
        assert!(index.retain(|_| true).is_empty());
        assert!(index.ptr_eq(&copy));
        index.insert(SmallBytes::from(7u32.to_be_bytes().to_vec()), Arc::new(0));
        let shared = |a: &Index<u32>, b: &Index<u32>| {
            let chunks = a.chunks.iter().zip(b.chunks.iter());
            let shards = a
                .chunks
                .iter()
                .flat_map(|c| c.iter())
                .zip(b.chunks.iter().flat_map(|c| c.iter()));
            (
                chunks.filter(|(x, y)| Arc::ptr_eq(x, y)).count(),
                shards.filter(|(x, y)| Arc::ptr_eq(x, y)).count(),
            )
        };
        assert!(!Arc::ptr_eq(&index.chunks, &copy.chunks));
        assert_eq!(index.chunks.len(), 3);
        assert_eq!(shared(&index, &copy), (2, 3 * CHUNK - 1));
        assert_eq!(copy.get(&7u32.to_be_bytes()).map(|v| **v), Some(7));
        assert_eq!(index.get(&7u32.to_be_bytes()).map(|v| **v), Some(0));
    }

    /// After a write, the vector and the written chunk are the index's own
    /// but the chunk's other shards and the other chunks are still the
    /// copy's: a miss in any of them must look first and copy nothing, even
    /// where a key of the same 7-bit hashbrown tag sits in the shard.
    #[test]
    fn a_miss_beside_a_write_copies_nothing() {
        let mut index = filled(3 * CHUNK as u32, 1);
        let copy = index.clone();
        // Overwrite a key whose shard number differs from its chunk number
        // (so that `i / CHUNK` cannot stand in for `i % CHUNK`).
        let (key, written) = (0u32..)
            .map(|k| (k, index.shard_of(index.hash(&k.to_be_bytes()))))
            .find(|&(_, i)| i % CHUNK != i / CHUNK)
            .unwrap();
        index.insert(SmallBytes::from(key.to_be_bytes().to_vec()), Arc::new(0));
        assert_eq!(index.shards(), copy.shards(), "an overwrite splits nothing");
        assert!(index.unshared(written));
        // A missing key landing in shard `i` beside a stored key of its tag.
        let miss_in = |index: &Index<u32>, wanted: &dyn Fn(usize) -> bool| {
            (10_000_000u32..)
                .find(|m| {
                    let h = index.hash(&m.to_be_bytes());
                    let i = index.shard_of(h);
                    wanted(i)
                        && index
                            .shard(i)
                            .iter()
                            .any(|(k, _)| index.hash(k.as_bytes()) >> 57 == h >> 57)
                })
                .unwrap()
        };
        let same_chunk = miss_in(&index, &|i| i / CHUNK == written / CHUNK && i != written);
        let other_chunk = miss_in(&index, &|i| i / CHUNK != written / CHUNK);
        for m in [same_chunk, other_chunk] {
            let i = index.shard_of(index.hash(&m.to_be_bytes()));
            assert!(!index.unshared(i));
            assert!(index.get_mut(&m.to_be_bytes()).is_none());
            assert!(index.remove(&m.to_be_bytes()).is_none());
            let (c, j) = (i / CHUNK, i % CHUNK);
            assert!(Arc::ptr_eq(&index.chunks[c][j], &copy.chunks[c][j]));
            assert_eq!(
                Arc::ptr_eq(&index.chunks[c], &copy.chunks[c]),
                c != written / CHUNK
            );
        }
        assert_eq!(index.len(), copy.len());
    }

    /// Every key found is touched once, in order, across group boundaries;
    /// a missing key is skipped.
    #[test]
    fn prefetch_touches_each_key_found() {
        let index = filled(100, 2);
        let keys: Vec<[u8; 4]> = (90u32..130).map(u32::to_be_bytes).collect();
        let touched = std::cell::RefCell::new(Vec::new());
        index.prefetch(keys.iter().map(|k| &k[..]), |v| {
            touched.borrow_mut().push(*v)
        });
        assert_eq!(touched.into_inner(), (90u32..100).collect::<Vec<_>>());
        let keys: Vec<[u8; 4]> = (0u32..40).rev().map(u32::to_be_bytes).collect();
        let touched = std::cell::RefCell::new(Vec::new());
        index.prefetch(keys.iter().map(|k| &k[..]), |v| {
            touched.borrow_mut().push(*v)
        });
        assert_eq!(touched.into_inner(), (0u32..40).rev().collect::<Vec<_>>());
    }

    #[test]
    fn shard_numbers_stay_clear_of_the_bits_a_shard_uses() {
        // The last round's next bit is below hashbrown's 7 tag bits (57..=63).
        assert_eq!(SHARD_BITS_FROM + LEVEL_MAX, 56);
        let mut index = Index::with_shard_keys(1);
        index.level_max = 2;
        for i in 0u32..100 {
            index.insert(SmallBytes::from(i.to_be_bytes().to_vec()), Arc::new(i));
        }
        // Past the last round, shards only grow.
        assert_eq!(index.shards(), 4);
        for i in 0u32..100 {
            assert_eq!(index.get(&i.to_be_bytes()).map(|v| **v), Some(i));
        }
    }

    #[test]
    fn a_sized_index_takes_its_keys_without_a_split() {
        let mut index = Index::with_capacity(10_000);
        let shards = index.shards();
        assert_eq!(
            shards, 512,
            "10,000 keys at {SHARD_KEYS} a shard: 2^9 shards"
        );
        // Room for the average shard (20 keys) and half again, rounded up by
        // hashbrown to a power of two buckets: 30 asked, 56 given.
        for shard in index.chunks.iter().flat_map(|c| c.iter()) {
            assert_eq!(shard.capacity(), 56);
        }
        // Up to the bound (512 x 32 keys) no shard splits; one key more splits one.
        for i in 0u32..16_384 {
            index.insert(SmallBytes::from(i.to_be_bytes().to_vec()), Arc::new(i));
        }
        assert_eq!(index.shards(), shards);
        assert_eq!(index.get(&9_999u32.to_be_bytes()).map(|v| **v), Some(9_999));
        index.insert(SmallBytes::from(b"more".to_vec()), Arc::new(0));
        assert_eq!(index.shards(), shards + 1);
    }

    #[test]
    fn a_copy_is_untouched_by_writes_to_the_original() {
        let mut index = filled(100, 2);
        let copy = index.clone();
        assert!(copy.ptr_eq(&index));
        for i in 0u32..200 {
            index.insert(SmallBytes::from(i.to_be_bytes().to_vec()), Arc::new(i + 1));
        }
        index.remove(&7u32.to_be_bytes());
        assert!(!copy.ptr_eq(&index));
        assert_eq!(copy.len(), 100);
        assert_eq!(copy.iter().count(), 100);
        for i in 0u32..100 {
            assert_eq!(copy.get(&i.to_be_bytes()).map(|v| **v), Some(i));
        }
        assert_eq!(index.len(), 199);
        assert_eq!(index.get(&8u32.to_be_bytes()).map(|v| **v), Some(9));
        assert!(index.get(&7u32.to_be_bytes()).is_none());
    }
}
