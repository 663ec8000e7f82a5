//! Sets: SADD, SPOP, SMEMBERS, SCARD, SISMEMBER. Members are kept in byte
//! order, so SMEMBERS answers the same on every replica, and SPOP removes the
//! *smallest* members: Redis picks at random, a replicated store must pick the
//! same member everywhere, and a rule of the state alone needs no agreement.

use super::{err, len, At, Data, KvStore, Reply, Value, WRONGTYPE};
use imbl::OrdSet;

impl KvStore {
    /// The set at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
    pub(crate) fn set(&self, key: &[u8]) -> Result<Option<&OrdSet<Value>>, Reply> {
        match self.data(key) {
            None => Ok(None),
            Some(Data::Set(s)) => Ok(Some(s)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    pub(crate) fn sadd(&mut self, key: &[u8], members: &[Value], at: At) -> Reply {
        let mut s = match self.set(key) {
            Err(e) => return e,
            Ok(s) => s.cloned().unwrap_or_default(),
        };
        let added = members
            .iter()
            .filter(|m| s.insert((*m).clone()).is_none())
            .count();
        self.put(key, Some(Data::Set(s)), at);
        Reply::Int(len(added))
    }

    pub(crate) fn spop(&mut self, key: &[u8], count: Option<usize>, at: At) -> Reply {
        let mut s = match self.set(key) {
            Err(e) => return e,
            Ok(None) if count.is_some() => return Reply::Array(Vec::new()),
            Ok(None) => return Reply::Bulk(None),
            Ok(Some(s)) => s.clone(),
        };
        let mut popped = Vec::new();
        for _ in 0..count.unwrap_or(1) {
            match s.remove_min() {
                Some(m) => popped.push(Reply::Bulk(Some(m))),
                None => break,
            }
        }
        let value = (!s.is_empty()).then_some(Data::Set(s));
        self.put(key, value, at);
        match count {
            Some(_) => Reply::Array(popped),
            None => popped.pop().unwrap_or(Reply::Bulk(None)),
        }
    }

    pub(crate) fn smembers(&self, key: &[u8]) -> Result<Reply, Reply> {
        Ok(Reply::Array(
            self.set(key)?
                .into_iter()
                .flatten()
                .map(|m| Reply::Bulk(Some(m.clone())))
                .collect(),
        ))
    }
}
