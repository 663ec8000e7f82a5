//! Byte strings held inline when short: the store's keys, and its string values.
//!
//! **Keys.** A lookup in the store's B-tree compares the wanted key with some
//! 18 keys on its way down. With `Vec<u8>` keys each comparison first loads the
//! key's heap block, a cache miss per comparison in a store larger than the
//! cache: that was half the CPU of a `GET` in a 100 k-key store. Keys of up to
//! [`INLINE`] bytes (Redis keys usually are) live inside the tree node instead.
//!
//! **String values**, as Redis's embedded strings: a value of up to [`INLINE`]
//! bytes (a counter, a flag, `redis-benchmark`'s 3 bytes) lives in its key's
//! entry, so a `GET` finds it in the cache line it already loaded, and a `SET`
//! neither allocates it nor frees the value it replaces. Measured by
//! `cargo run --release -p gsmo-spec --example cost` (100 k keys, batches of
//! 200): 9-12% less of the spec's CPU per `GET`, 3-13% per `SET` on each
//! replica (docs/performance.md).
//!
//! Order, equality, hashing and `Debug` are those of the bytes, exactly as for
//! `Vec<u8>`, and so are the bincode bytes (serde's bytes form, which bincode
//! writes as it writes a `Vec<u8>`), so snapshots, traces and model
//! fingerprints do not change.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest byte string held inline (the type stays as small as a `Vec`: 24 bytes).
pub const INLINE: usize = 22;

#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(s: &[u8]) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s);
            SmallBytes::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            SmallBytes::Heap(s.into())
        }
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(s: Vec<u8>) -> Self {
        if s.len() <= INLINE {
            SmallBytes::from(&s[..])
        } else {
            SmallBytes::Heap(s.into_boxed_slice())
        }
    }
}

impl Deref for SmallBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SmallBytes {}

impl PartialOrd for SmallBytes {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallBytes {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `Vec<u8>` hashes: the slice.
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_bytes().fmt(f)
    }
}

/// As bytes, which bincode writes exactly as a `Vec<u8>` (a length, then the
/// bytes), but in one copy, not one serde call per byte: restoring a 1 M-key
/// part took a tenth less user CPU.
impl Serialize for SmallBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

/// From bytes, borrowed where the format allows, so a short string is copied
/// once, inline, and never allocated; or from a sequence of bytes, the form a
/// `Vec<u8>` takes in formats that describe themselves.
impl<'de> Deserialize<'de> for SmallBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = SmallBytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, s: &[u8]) -> Result<SmallBytes, E> {
                Ok(SmallBytes::from(s))
            }
            fn visit_byte_buf<E: de::Error>(self, s: Vec<u8>) -> Result<SmallBytes, E> {
                Ok(SmallBytes::from(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SmallBytes, A::Error> {
                let mut s = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element()? {
                    s.push(b);
                }
                Ok(SmallBytes::from(s))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    #[test]
    fn as_small_as_a_vec() {
        assert_eq!(
            std::mem::size_of::<SmallBytes>(),
            std::mem::size_of::<Vec<u8>>()
        );
    }

    /// The point of the type: a string of up to 22 bytes, from a slice or a
    /// `Vec`, costs no allocation of its own.
    #[test]
    fn short_strings_are_inline_and_long_ones_on_the_heap() {
        let inline = |k: &SmallBytes| matches!(k, SmallBytes::Inline { .. });
        for len in [0, 1, INLINE] {
            assert!(inline(&SmallBytes::from(vec![b'k'; len])), "{len} bytes");
            assert!(
                inline(&SmallBytes::from(&vec![b'k'; len][..])),
                "{len} bytes"
            );
        }
        assert!(!inline(&SmallBytes::from(vec![b'k'; INLINE + 1])));
        assert!(!inline(&SmallBytes::from(&vec![b'k'; INLINE + 1][..])));
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config(256))]

        /// Order, equality, hash, Debug and bincode bytes are those of `Vec<u8>`,
        /// on both sides of the inline limit.
        #[test]
        fn behaves_as_its_bytes(
            a in proptest::collection::vec(any::<u8>(), 0..2 * INLINE),
            b in proptest::collection::vec(any::<u8>(), 0..2 * INLINE),
        ) {
            let (ka, kb) = (SmallBytes::from(a.clone()), SmallBytes::from(&b[..]));
            prop_assert_eq!(ka.as_bytes(), &a[..]);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka.partial_cmp(&kb), a.partial_cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
            let h = std::collections::hash_map::RandomState::new();
            prop_assert_eq!(h.hash_one(&ka), h.hash_one(&a));
            prop_assert_eq!(format!("{ka:?}"), format!("{a:?}"));
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(&ka, config).unwrap();
            prop_assert_eq!(&bytes, &bincode::serde::encode_to_vec(&a, config).unwrap());
            let (back, _): (SmallBytes, _) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
            prop_assert_eq!(&back, &ka);
            // Also from the forms other formats hand over: bytes and a sequence.
            use serde::de::value::{BytesDeserializer, Error, SeqDeserializer};
            let from_bytes = SmallBytes::deserialize(BytesDeserializer::<Error>::new(&a)).unwrap();
            prop_assert_eq!(&from_bytes, &ka);
            let from_seq = SmallBytes::deserialize(SeqDeserializer::<_, Error>::new(a.iter().copied())).unwrap();
            prop_assert_eq!(&from_seq, &ka);
        }
    }
}
