//! A node's multicast history in text form, for `GSMO.HISTORY`, and a digest of
//! its store for `GSMO.DIGEST`.
//!
//! The text form (`send n0#3`, `deliver n1#2`) round-trips to
//! [`gsmo_spec::properties::Event`], so a test can fetch every node's history
//! over RESP and judge it with the very predicates the model checker uses.

use gsmo_spec::kv::KvStore;
use gsmo_spec::multicast::MsgId;
use gsmo_spec::properties::Event;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad history event `{0}`: expected `send nI#S` or `deliver nI#S`")]
pub struct ParseError(pub String);

pub fn format_event(e: &Event) -> String {
    match e {
        Event::Send(m) => format!("send {m}"),
        Event::Deliver(m) => format!("deliver {m}"),
    }
}

pub fn parse_event(s: &str) -> Result<Event, ParseError> {
    let err = || ParseError(s.to_string());
    let (kind, id) = s.trim().split_once(' ').ok_or_else(err)?;
    let id = parse_msg_id(id).ok_or_else(err)?;
    match kind {
        "send" => Ok(Event::Send(id)),
        "deliver" => Ok(Event::Deliver(id)),
        _ => Err(err()),
    }
}

/// Parses [`MsgId`]'s display form `n<origin>#<seq>`.
pub fn parse_msg_id(s: &str) -> Option<MsgId> {
    let (origin, seq) = s.strip_prefix('n')?.split_once('#')?;
    Some(MsgId {
        origin: origin.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// FNV-1a over the live keys and values (collections in their
/// [`gsmo_spec::kv::Data::render`] form) in key order, each length-prefixed so
/// that `("ab","c")` and `("a","bc")` differ. Replicas that converged agree.
pub fn digest(kv: &KvStore) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            h = (h ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    };
    for (k, v) in kv.iter() {
        eat(k);
        eat(&v.render());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsmo_spec::kv::{Op, Resolution, Stamp, Write};

    #[test]
    fn events_round_trip_and_garbage_is_refused() {
        for e in [
            Event::Send(MsgId { origin: 0, seq: 3 }),
            Event::Deliver(MsgId { origin: 12, seq: 1 }),
        ] {
            assert_eq!(parse_event(&format_event(&e)), Ok(e));
        }
        for bad in [
            "",
            "send",
            "send 0#3",
            "recv n0#1",
            "deliver n0#x",
            "send n0",
        ] {
            assert!(parse_event(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_separates_keys_from_values() {
        let store = |k: &str, v: &str| {
            let mut kv = KvStore::new();
            let op = Op::Set {
                key: k.into(),
                value: v.into(),
            };
            kv.apply(
                &Write {
                    stamp: Stamp::default(),
                    op,
                },
                Resolution::DeliveryOrder,
            );
            kv
        };
        assert_eq!(digest(&store("a", "b")), digest(&store("a", "b")));
        assert_ne!(digest(&store("ab", "c")), digest(&store("a", "bc")));
        assert_ne!(digest(&store("a", "b")), digest(&KvStore::new()));
        // FNV-1a itself, pinned: nodes of different builds compare digests.
        assert_eq!(digest(&store("a", "b")), 0x41c8_0da7_2d0a_ec94);
        assert_eq!(digest(&KvStore::new()), 0xcbf2_9ce4_8422_2325);
    }
}
