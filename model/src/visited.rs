//! The sleep search's visited states ([`crate::sleep`]): each fingerprint
//! with the slots asleep when it was last met.
//!
//! Open addressing with linear probing over one array, so that meeting a
//! state costs one cache miss, where hashbrown's control bytes, kept apart
//! from its entries, cost two (10% of the 3-account bank's search went to
//! them). Fingerprints are hashes already, so their low bits index it as they
//! are; 0 marks an empty entry, so fingerprint 0 counts as 1 (two states in
//! 2^64 more would be taken for one).
//!
//! **Grown in place.** The array doubles when three quarters full. Filling
//! a new array of twice the size from the old one keeps both alive at once,
//! and on the 3-node snapshot search the old ones made up to a third of the
//! peak (1.55-1.96 GB, against 1.21-1.24 GB grown in place, in the same
//! time). So the array is a mapping of its own that `mremap` extends (the
//! kernel moves the pages it has and adds zeroed ones after them), and its
//! entries are moved to their new places where they lie ([`Visited::grow`]).

use mapping::Entries;

/// One entry: a fingerprint (0: none) and the slots asleep with it.
type Entry = (u64, u64);

/// The visited states.
pub(crate) struct Visited {
    entries: Entries,
    len: usize,
}

/// What meeting a state found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Met {
    /// A new state, now kept with its sleeping slots.
    New,
    /// A state met before with these slots asleep, some not asleep now:
    /// it keeps only those asleep both times.
    Again(u64),
    /// A state met before with no slot asleep that is not asleep now.
    Covered,
}

impl Visited {
    pub(crate) fn new() -> Self {
        Visited {
            entries: Entries::zeroed(1 << 10),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key fingerprint `fp` is kept under (0 marks an empty entry) and
    /// the entry where looking for it starts.
    fn home(&self, fp: u64) -> (u64, usize) {
        let key = fp.max(1);
        (key, key as usize & (self.entries.len() - 1))
    }

    /// Asks the memory for the entry where `fp` is looked for first, so that
    /// meeting it a little later need not wait for it: the one cache miss of
    /// [`Visited::meet`] overlaps the work in between.
    pub(crate) fn expect(&self, fp: u64) {
        let (_, at) = self.home(fp);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is in every x86_64 target, and a prefetch neither reads
        // nor writes memory; it only hints the cache, at an entry in bounds.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(&self.entries[at]).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// Meets the state of fingerprint `fp` with `asleep` asleep.
    pub(crate) fn meet(&mut self, fp: u64, asleep: u64) -> Met {
        let (key, mut at) = self.home(fp);
        let mask = self.entries.len() - 1;
        loop {
            let (k, before) = &mut self.entries[at];
            if *k == key {
                if *before & !asleep == 0 {
                    return Met::Covered;
                }
                let was = *before;
                *before &= asleep;
                return Met::Again(was);
            }
            if *k == 0 {
                (*k, *before) = (key, asleep);
                self.len += 1;
                if self.len * 4 > self.entries.len() * 3 {
                    self.grow();
                }
                return Met::New;
            }
            at = (at + 1) & mask;
        }
    }

    /// Twice the entries, each moved to its place in the same memory.
    ///
    /// Every entry lies after its home with no empty entry between (nothing
    /// is ever removed), so an entry after the first empty one has its home
    /// between that empty entry and itself. Taken in order and put back from
    /// its new home (the same, where it lands no later than where it was; or
    /// as far again, in the new half), it passes only entries already put
    /// back: those before it, those in the new half, and, where its probe
    /// wraps past the end, those at the start, which are taken out first
    /// (their homes may be at the end) and put back last.
    fn grow(&mut self) {
        let old = self.entries.len();
        self.entries.double();
        let first_empty = (0..old)
            .find(|&at| self.entries[at].0 == 0)
            .expect("a quarter of the entries is empty");
        let wrapped: Vec<Entry> = (0..first_empty)
            .map(|at| std::mem::take(&mut self.entries[at]))
            .collect();
        for at in first_empty..old {
            let entry = std::mem::take(&mut self.entries[at]);
            if entry.0 != 0 {
                self.put(entry);
            }
        }
        for entry in wrapped {
            self.put(entry);
        }
    }

    /// Puts `entry`, not in the set, at the first empty entry from its home.
    fn put(&mut self, entry: Entry) {
        let mask = self.entries.len() - 1;
        let (_, mut at) = self.home(entry.0);
        while self.entries[at].0 != 0 {
            at = (at + 1) & mask;
        }
        self.entries[at] = entry;
    }
}

/// A zeroed array of entries that doubles in place: an anonymous mapping,
/// which `mremap` extends with zeroed pages without copying the ones it has.
/// It asks for huge (2 MB) pages, as mimalloc does for the large blocks the
/// array used to be: a lookup at random into a gigabyte misses the TLB less.
#[cfg(target_os = "linux")]
mod mapping {
    use super::Entry;
    use nix::sys::mman::{self, MRemapFlags, MapFlags, MmapAdvise, ProtFlags};
    use std::num::NonZeroUsize;
    use std::ptr::NonNull;

    pub(super) struct Entries {
        at: NonNull<Entry>,
        len: usize,
    }

    fn bytes(len: usize) -> usize {
        len.checked_mul(size_of::<Entry>())
            .expect("a table that fits")
    }

    /// Out of memory: the search cannot go on. The panic ends this part,
    /// and the verdict reports it.
    fn failed(what: &str, len: usize, e: nix::Error) -> ! {
        let mib = bytes(len).div_ceil(1 << 20);
        panic!("the visited set could not {what} {mib} MiB: {e}")
    }

    /// Asks for huge pages; only a hint, so a kernel without them is fine.
    fn huge(at: NonNull<Entry>, len: usize) {
        // SAFETY: the range is this mapping's own; the advice changes only
        // how the kernel backs it, never its contents.
        let _ = unsafe { mman::madvise(at.cast(), bytes(len), MmapAdvise::MADV_HUGEPAGE) };
    }

    impl Entries {
        pub(super) fn zeroed(len: usize) -> Self {
            let size = NonZeroUsize::new(bytes(len)).expect("a table with entries");
            let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
            // SAFETY: a new private anonymous mapping, aliasing nothing.
            let at = unsafe { mman::mmap_anonymous(None, size, prot, MapFlags::MAP_PRIVATE) }
                .unwrap_or_else(|e| failed("map", len, e))
                .cast();
            huge(at, len);
            Entries { at, len }
        }

        pub(super) fn double(&mut self) {
            let len = self.len * 2;
            // SAFETY: the mapping is this value's alone, and no reference
            // into it outlives this call (`&mut self`); it may move.
            let at = unsafe {
                mman::mremap(
                    self.at.cast(),
                    bytes(self.len),
                    bytes(len),
                    MRemapFlags::MREMAP_MAYMOVE,
                    None,
                )
            }
            .unwrap_or_else(|e| failed("grow to", len, e))
            .cast();
            huge(at, len);
            (self.at, self.len) = (at, len);
        }
    }

    impl std::ops::Deref for Entries {
        type Target = [Entry];
        fn deref(&self) -> &[Entry] {
            // SAFETY: `len` entries, mapped readable and zeroed at first,
            // hence valid pairs of integers; borrowed as `self` is.
            unsafe { std::slice::from_raw_parts(self.at.as_ptr(), self.len) }
        }
    }

    impl std::ops::DerefMut for Entries {
        fn deref_mut(&mut self) -> &mut [Entry] {
            // SAFETY: as in `deref`, and borrowed mutably as `self` is.
            unsafe { std::slice::from_raw_parts_mut(self.at.as_ptr(), self.len) }
        }
    }

    impl Drop for Entries {
        fn drop(&mut self) {
            // SAFETY: this value's own mapping, unmapped once.
            let _ = unsafe { mman::munmap(self.at.cast(), bytes(self.len)) };
        }
    }
}

/// Elsewhere, a vector that doubles by copying.
#[cfg(not(target_os = "linux"))]
mod mapping {
    use super::Entry;

    pub(super) struct Entries(Vec<Entry>);

    impl Entries {
        pub(super) fn zeroed(len: usize) -> Self {
            Entries(vec![(0, 0); len])
        }

        pub(super) fn double(&mut self) {
            self.0.resize(self.0.len() * 2, (0, 0));
        }
    }

    impl std::ops::Deref for Entries {
        type Target = [Entry];
        fn deref(&self) -> &[Entry] {
            &self.0
        }
    }

    impl std::ops::DerefMut for Entries {
        fn deref_mut(&mut self) -> &mut [Entry] {
            &mut self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The visited set keeps every state through its growth, each with the
    /// slots asleep every time it was met; a state is met again only with a
    /// slot awake that was asleep before. Fingerprints colliding on an entry
    /// (all below, at first) take the entries after it.
    #[test]
    fn the_visited_set_keeps_what_slept_each_time() {
        let mut seen = Visited::new();
        let n: u64 = 2_000;
        for fp in 0..n {
            assert_eq!(seen.meet(fp << 20, 0b110), Met::New);
        }
        // Fingerprint 0 counts as 1.
        assert_eq!(seen.meet(1, 0), Met::Again(0b110));
        assert_eq!(seen.len(), n as usize);
        assert_eq!(seen.entries.len(), 4096, "grown past 3/4 full, twice");
        for fp in 1..n {
            let fp = fp << 20;
            assert_eq!(seen.meet(fp, 0b111), Met::Covered);
            assert_eq!(seen.meet(fp, 0b011), Met::Again(0b110));
            assert_eq!(seen.meet(fp, 0b011), Met::Covered);
            assert_eq!(seen.meet(fp, 0b001), Met::Again(0b010));
            assert_eq!(seen.meet(fp, 0), Met::Covered);
        }
        assert_eq!(seen.len(), n as usize);
    }

    /// Growth in place keeps every entry, among them runs that wrap past
    /// the end: a third of the fingerprints here are spread evenly, a third
    /// have their homes at the start (entries 0 to 3), and a third at the
    /// last 24 entries at every size, whose runs wrap to the start over the
    /// others there and move to the new half at each doubling.
    #[test]
    fn growing_keeps_runs_that_wrap_past_the_end() {
        let mut seen = Visited::new();
        let n: u64 = 3_000;
        let spread = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let fp = |i: u64| match i % 3 {
            0 => spread(i),
            // Distinct high bits; the low 20 pick the home.
            1 => (spread(i) << 20) | (i % 4),
            _ => (spread(i) << 20) | ((1 << 20) - 1 - i % 24),
        };
        let distinct: std::collections::HashSet<u64> = (0..n).map(fp).collect();
        assert_eq!(distinct.len(), n as usize);
        for i in 0..n {
            assert_eq!(seen.meet(fp(i), i & 7), Met::New, "state {i}");
        }
        assert_eq!(seen.entries.len(), 1 << 12, "doubled twice");
        assert_eq!(seen.len(), n as usize);
        for i in 0..n {
            assert_eq!(seen.meet(fp(i), i & 7), Met::Covered, "state {i}");
        }
        // The entries at the start hold runs from the end.
        let mask = seen.entries.len() - 1;
        let wrapped = seen.entries[..64]
            .iter()
            .filter(|(k, _)| *k != 0 && (*k as usize & mask) > mask - 24)
            .count();
        assert!(wrapped > 0, "no run wraps past the end");
    }
}
