//! Strings and whole-key commands: SET with NX/XX/GET, GETDEL, MSETNX, APPEND,
//! INCRBY, TRANSFER (the bank example), RENAME; and the keyspace reads KEYS
//! and SCAN.
//!
//! ## SCAN's cursor
//! Keys are kept in byte order, so a cursor names a place in that order: the
//! first 8 bytes of the next key to return, big-endian (shorter keys padded
//! with zeros). A scan resumes at the first key not below that place, so every
//! key present for the whole scan is returned (Redis's guarantee), and a batch
//! never ends between two keys sharing their first 8 bytes (COUNT is a hint,
//! as in Redis), so every call makes progress. Costs O(log n + COUNT).

use super::glob::glob_match;
use super::{err, int_value, At, Data, Key, KvStore, Reply, SetCond, Value};
use super::{BAD_AMOUNT, INSUFFICIENT_FUNDS, NOT_AN_INTEGER, NO_SUCH_KEY};
use std::ops::Bound;

impl KvStore {
    pub(crate) fn incr_by(&mut self, key: &[u8], delta: i64, at: At) -> Reply {
        match self.int(key).map(|v| v.checked_add(delta)) {
            Err(e) => e,
            Ok(None) => err("ERR increment or decrement would overflow"),
            Ok(Some(v)) => {
                self.put(key, Some(Data::Str(int_value(v).into())), at);
                Reply::Int(v)
            }
        }
    }

    fn transfer_balances(&self, from: &[u8], to: &[u8], amount: i64) -> Result<(i64, i64), Reply> {
        if amount <= 0 {
            return Err(err(BAD_AMOUNT));
        }
        let f = self.int(from)?;
        let t = self.int(to)?;
        if from == to {
            return Ok((f, f));
        }
        if f < amount && self.debit_only_when_short {
            return Ok((f - amount, t));
        }
        if f < amount {
            return Err(err(INSUFFICIENT_FUNDS));
        }
        let t = t.checked_add(amount).ok_or_else(|| err(NOT_AN_INTEGER))?;
        Ok((f - amount, t))
    }

    pub(crate) fn transfer(&mut self, from: &[u8], to: &[u8], amount: i64, at: At) -> Reply {
        match self.transfer_balances(from, to, amount) {
            Ok((f, t)) => {
                self.put(from, Some(Data::Str(int_value(f).into())), at);
                self.put(to, Some(Data::Str(int_value(t).into())), at);
                Reply::Ok
            }
            Err(e) => e,
        }
    }

    /// `SET key value [NX|XX] [GET]`: with GET the old string (WRONGTYPE if the
    /// key holds another type, and nothing is set), else OK, or nil when the
    /// condition stops it.
    pub(crate) fn set_with(
        &mut self,
        key: &[u8],
        value: &Value,
        cond: Option<SetCond>,
        get: bool,
        at: At,
    ) -> Reply {
        let old = if get {
            match self.string(key) {
                Ok(v) => v.map(<[u8]>::to_vec),
                Err(e) => return e,
            }
        } else {
            None
        };
        let exists = self.data(key).is_some();
        let go = match cond {
            None => true,
            Some(SetCond::Nx) => !exists,
            Some(SetCond::Xx) => exists,
        };
        if go {
            self.put(key, Some(Data::Str(value[..].into())), at);
        }
        match (get, go) {
            (true, _) => Reply::Bulk(old),
            (false, true) => Reply::Ok,
            (false, false) => Reply::Bulk(None),
        }
    }

    pub(crate) fn getdel(&mut self, key: &[u8], at: At) -> Reply {
        match self.string(key) {
            Err(e) => e,
            Ok(None) => Reply::Bulk(None),
            Ok(Some(v)) => {
                let v = v.to_vec();
                self.put(key, None, at);
                Reply::Bulk(Some(v))
            }
        }
    }

    /// MSETNX (and SETNX): 1 if every key was absent and all are now set, else 0.
    pub(crate) fn msetnx(&mut self, pairs: &[(Key, Value)], at: At) -> Reply {
        if pairs.iter().any(|(k, _)| self.data(k).is_some()) {
            return Reply::Int(0);
        }
        for (k, v) in pairs {
            self.put(k, Some(Data::Str(v[..].into())), at);
        }
        Reply::Int(1)
    }

    pub(crate) fn append(&mut self, key: &[u8], value: &[u8], at: At) -> Reply {
        let mut v = match self.string(key) {
            Err(e) => return e,
            Ok(v) => v.map(<[u8]>::to_vec).unwrap_or_default(),
        };
        v.extend_from_slice(value);
        let n = v.len();
        self.put(key, Some(Data::Str(v.into())), at);
        Reply::Int(super::len(n))
    }

    /// RENAME: moves a value of any type, replacing whatever `to` held.
    pub(crate) fn rename(&mut self, from: &[u8], to: &[u8], at: At) -> Reply {
        let Some(v) = self.data(from).cloned() else {
            return err(NO_SUCH_KEY);
        };
        if from != to {
            self.put(from, None, at);
            self.put(to, Some(v), at);
        }
        Reply::Ok
    }

    /// KEYS pattern: every live key matching, in byte order. O(n), as in Redis.
    pub(crate) fn keys(&self, pattern: &[u8]) -> Reply {
        Reply::Array(
            self.iter()
                .filter(|(k, _)| glob_match(pattern, k))
                .map(|(k, _)| Reply::Bulk(Some(k.to_vec())))
                .collect(),
        )
    }

    /// SCAN cursor [MATCH pattern] [COUNT count]: `[next cursor, [keys]]`; see the module docs.
    pub(crate) fn scan(&self, cursor: u64, pattern: Option<&[u8]>, count: usize) -> Reply {
        let mut start = cursor.to_be_bytes().to_vec();
        while start.last() == Some(&0) {
            start.pop();
        }
        let count = count.max(1);
        let mut keys = Vec::new();
        let mut last = None;
        let mut next = 0;
        let from = (Bound::Included(&start[..]), Bound::Unbounded);
        for (examined, (k, e)) in self.entries.range(from).enumerate() {
            let place = place_of(k);
            if examined >= count && last != Some(place) {
                // Keys ascend and `last` is some place, so `place` > 0: never "done" by mistake.
                next = place;
                break;
            }
            last = Some(place);
            if e.value.is_some() && pattern.is_none_or(|p| glob_match(p, k)) {
                keys.push(Reply::Bulk(Some(k.to_vec())));
            }
        }
        Reply::Array(vec![
            Reply::Bulk(Some(next.to_string().into_bytes())),
            Reply::Array(keys),
        ])
    }
}

/// A key's place in SCAN's order: its first 8 bytes, big-endian, zero-padded.
fn place_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}
