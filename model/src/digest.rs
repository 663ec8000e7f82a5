//! Cheaper steps for the replica models, with exactly the same state counts.
//!
//! stateright hashes a whole state to fingerprint every successor, and judges
//! every property on every new state. For the kv and snapshot models (a whole
//! spec `Node` per replica) three costs grew with the path, not the step:
//! * a step changes one replica, yet every replica was hashed again. A replica
//!   remembers its hash in a [`Digest`] until it is cloned to be changed
//!   (stateright changes an actor only on a clone, through `Cow::to_mut`);
//! * a completed snapshot part never changes, yet it was copied with its
//!   replica at every step and again for every property. Parts are [`Sealed`]:
//!   shared, and hashed once;
//! * a completed snapshot was judged again in every later state. Verdicts are
//!   remembered by a digest of everything the judgement reads ([`holds`]).
//!
//! Why the counts cannot change: a digest is a hash of its value's content,
//! so equal values have equal digests and `Hash` stays consistent with `Eq`.
//! Distinct values collide with probability about 2^-64 per pair: the risk
//! stateright's 64-bit fingerprints already take for whole states. The tests'
//! pinned counts are unchanged.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

/// Fixed seeds: the same digests in every thread and run of one build.
static SEEDS: ahash::RandomState = ahash::RandomState::with_seeds(
    0x6773_6d6f_2d64_6967,
    0x6573_7420_6f66_2061,
    0x2073_7461_7465_2e2e,
    0x9e37_79b9_7f4a_7c15,
);

/// A stable 64-bit hash of `value`. aHash, as stateright's fingerprints:
/// states are hashed in many small writes, where it is several times faster
/// than SipHash.
pub fn digest<T: Hash + ?Sized>(value: &T) -> u64 {
    SEEDS.hash_one(value)
}

/// A stable 64-bit hash of what `write` feeds the hasher: for a value counted
/// by less than its `Hash` (`Node::hash_live`).
pub fn digest_with(write: impl FnOnce(&mut ahash::AHasher)) -> u64 {
    let mut h = SEEDS.build_hasher();
    write(&mut h);
    h.finish()
}

/// A value's hash, computed on first use ([`Memo`]).
pub type Digest = Memo<u64>;

/// Something computed from a value on first use and kept with it. A clone
/// starts empty, because a clone is what gets changed (stateright changes an
/// actor only on a clone); so the cache never outlives its content.
pub struct Memo<T>(OnceLock<T>);

impl<T: Copy> Memo<T> {
    /// The cached result, or `compute`'s (then cached).
    pub fn get(&self, compute: impl FnOnce() -> T) -> T {
        *self.0.get_or_init(compute)
    }
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(OnceLock::new())
    }
}

impl<T> Clone for Memo<T> {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

/// Not part of the value: every two caches are alike.
impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Memo<T> {}

impl<T> fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memo")
    }
}

/// Something computed from one part of a value, by a digest of that part.
/// Unlike [`Memo`], a clone keeps what was computed, as a candidate: the
/// clone's first [`Keyed::get`] reuses it if the part's digest is unchanged,
/// and computes afresh otherwise. So a step that leaves the part alone (most
/// receipts leave a replica's store alone) computes nothing.
pub struct Keyed<T> {
    now: OnceLock<(u64, T)>,
    /// What the value this was cloned from had computed.
    before: Option<(u64, T)>,
}

impl<T: Copy> Keyed<T> {
    /// The result for the part whose digest is `key`: kept, inherited or
    /// `compute`'s (then kept).
    pub fn get(&self, key: u64, compute: impl FnOnce() -> T) -> T {
        if let Some(&(k, v)) = self.now.get() {
            // Asked about another part than the one kept: not cached.
            return if k == key { v } else { compute() };
        }
        let v = match self.before {
            Some((k, v)) if k == key => v,
            _ => compute(),
        };
        // Two threads' first gets race only on one state, hence one key and
        // one result: either may keep it.
        let _ = self.now.set((key, v));
        v
    }
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Keyed {
            now: OnceLock::new(),
            before: None,
        }
    }
}

impl<T: Copy> Clone for Keyed<T> {
    fn clone(&self) -> Self {
        Keyed {
            now: OnceLock::new(),
            before: self.now.get().copied().or(self.before),
        }
    }
}

/// Not part of the value: every two caches are alike.
impl<T> PartialEq for Keyed<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Keyed<T> {}

impl<T> fmt::Debug for Keyed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyed")
    }
}

/// `work`'s result for `key`, kept in `known`, which is emptied first when it
/// holds `bound` (a bound, not a loss: a forgotten result is worked out
/// again); and whether it was kept already. For the checker's per-thread
/// caches of pure functions of digests.
pub fn kept<K: Hash + Eq, V: Clone>(
    known: &mut ahash::AHashMap<K, V>,
    bound: usize,
    key: K,
    work: impl FnOnce() -> V,
) -> (V, bool) {
    if let Some(v) = known.get(&key) {
        return (v.clone(), true);
    }
    if known.len() >= bound {
        known.clear();
    }
    let v = work();
    known.insert(key, v.clone());
    (v, false)
}

/// A value shared by the states that hold it until a step changes it, and
/// hashed once per change: a replica's runtime ghost changes at a few steps
/// (a request, a snapshot's progress), yet it was hashed again with its
/// replica at every step (about 1% of a profile of the bank).
pub struct Shared<T>(Arc<(T, Digest)>);

impl<T: Hash> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new((value, Digest::default())))
    }

    /// The value to change, copied first if another state shares it; its
    /// digest is forgotten (a copy's starts empty, see [`Memo`]).
    pub fn make_mut(&mut self) -> &mut T
    where
        T: Clone,
    {
        let (value, digest) = Arc::make_mut(&mut self.0);
        *digest = Digest::default();
        value
    }
}

impl<T: Hash + Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0 .0
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 .0 == other.0 .0
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0 .1.get(|| digest(&self.0 .0)));
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0 .0.fmt(f)
    }
}

/// An immutable value, shared by every state that holds it and hashed once.
pub struct Sealed<T> {
    digest: u64,
    value: Arc<T>,
}

impl<T: Hash> Sealed<T> {
    pub fn new(value: T) -> Self {
        Sealed {
            digest: digest(&value),
            value: Arc::new(value),
        }
    }
}

impl<T> Sealed<T> {
    /// Sealed under a digest of part of `value` only (a digest of what the
    /// model counts it by; [`crate::faults::Faults::acks_unread`]).
    pub fn with_digest(value: T, digest: u64) -> Self {
        Sealed {
            digest,
            value: Arc::new(value),
        }
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The value, copied only if another state still shares it.
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.value)
    }
}

impl<T> Deref for Sealed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Clone for Sealed<T> {
    fn clone(&self) -> Self {
        Sealed {
            digest: self.digest,
            value: Arc::clone(&self.value),
        }
    }
}

impl<T: PartialEq> PartialEq for Sealed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
            && (Arc::ptr_eq(&self.value, &other.value) || self.value == other.value)
    }
}

impl<T: Eq> Eq for Sealed<T> {}

/// By value, as the value's own order.
impl<T: PartialOrd> PartialOrd for Sealed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<T: Ord> Ord for Sealed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T> Hash for Sealed<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl<T: fmt::Debug> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// Verdicts remembered at most; then the memo starts afresh (a bound, not a loss:
/// a forgotten verdict is computed again).
const REMEMBERED: usize = 1 << 20;

/// Whether `check` holds, computed once per `key`. `key` must be a digest of
/// everything `check` reads, the judgement's name included: then the memo
/// is a pure function's, shared safely by every checker thread and model.
pub fn holds(key: u64, check: impl FnOnce() -> bool) -> bool {
    static MEMO: OnceLock<Mutex<HashMap<u64, bool>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Mutex::default);
    let lock = || memo.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&v) = lock().get(&key) {
        return v;
    }
    let v = check();
    let mut m = lock();
    if m.len() >= REMEMBERED {
        m.clear();
    }
    m.insert(key, v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared value is hashed by its content, and again once changed,
    /// whether a copy still shares it or not.
    #[test]
    fn a_shared_value_is_hashed_again_once_changed() {
        let one = digest(&Shared::new(vec![1]));
        let two = digest(&Shared::new(vec![1, 2]));
        let mut a = Shared::new(vec![1]);
        assert_eq!(digest(&a), one);
        let b = a.clone();
        a.make_mut().push(2);
        assert_eq!((digest(&a), digest(&b)), (two, one));
        assert!(a != b && b == Shared::new(vec![1]));
        a.make_mut().pop();
        assert_eq!(digest(&a), one);
    }

    #[test]
    fn a_clone_forgets_the_cached_digest() {
        let d = Digest::default();
        assert_eq!(d.get(|| 7), 7);
        assert_eq!(d.get(|| 8), 7);
        assert_eq!(d.clone().get(|| 8), 8);
    }

    #[test]
    fn a_clone_reuses_a_keyed_result_only_for_the_same_key() {
        let k = Keyed::default();
        assert_eq!(k.get(1, || 10), 10);
        assert_eq!(k.get(1, || 11), 10);
        assert_eq!(k.get(2, || 20), 20, "another key is computed");
        assert_eq!(k.clone().get(1, || 12), 10, "inherited");
        assert_eq!(k.clone().get(3, || 30), 30, "recomputed");
        let grandchild = k.clone().clone();
        assert_eq!(grandchild.get(1, || 13), 10, "inherited through a clone");
    }

    #[test]
    fn sealed_values_hash_by_content() {
        let (a, b, c) = (
            Sealed::new(vec![1, 2]),
            Sealed::new(vec![1, 2]),
            Sealed::new(vec![2]),
        );
        assert_eq!(a, b);
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(a, c);
        assert_ne!(digest(&a), digest(&c));
    }

    /// No replica's cached hash is stale: in every reachable state of the
    /// default bank, each replica's cached digest is the one a fresh copy computes.
    #[test]
    fn cached_digests_match_fresh_ones_in_every_state() {
        let model = crate::snapshot::SnapshotCfg::default().into_model();
        let states = crate::walk::each_state(&model, |s, _| {
            for a in &s.actor_states {
                assert_eq!(digest(&**a), digest(&a.as_ref().clone()));
            }
        });
        // The bank's pinned count (snapshot.rs), reached by hashing the digests.
        assert_eq!(states, 2947);
    }

    /// The same for the bank's tally of its accounts (`crate::kv::accounts`),
    /// on the bank that loses money, so that the tally does change along the
    /// way: a cached tally that outlived a change would show there.
    #[test]
    fn cached_accounts_match_fresh_ones_in_every_state() {
        let model = crate::snapshot::SnapshotCfg {
            broken: Some(crate::snapshot::SnapshotBug::DebitOnly),
            ..Default::default()
        }
        .into_model();
        let mut tallies = std::collections::BTreeSet::new();
        let states = crate::walk::each_state(&model, |s, _| {
            for a in &s.actor_states {
                let cached = crate::kv::accounts(a);
                assert_eq!(cached, crate::kv::fresh_accounts(a.node.kv()));
                tallies.insert(cached);
            }
        });
        assert_eq!(states, 2947);
        // The opening 2; 0 once a transfer short of funds has debited its source
        // below zero and credited nobody; still 0 once the other transfer refills it.
        let seen: Vec<_> = tallies.into_iter().collect();
        assert_eq!(seen, [(0, false), (0, true), (2, false)]);
    }

    #[test]
    fn a_verdict_is_computed_once_per_key() {
        let key = digest("digest.rs test key");
        assert!(holds(key, || true));
        assert!(holds(key, || panic!("remembered")));
    }
}
