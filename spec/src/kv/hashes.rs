//! Hashes: HSET, HDEL, HGET, HGETALL, HLEN. Fields are kept in byte order, so
//! HGETALL answers the same on every replica. A hash left empty is deleted.

use super::{err, len, At, Data, KvStore, Reply, Value, WRONGTYPE};
use imbl::OrdMap;

impl KvStore {
    /// The hash at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
    pub(crate) fn hash(&self, key: &[u8]) -> Result<Option<&OrdMap<Value, Value>>, Reply> {
        match self.data(key) {
            None => Ok(None),
            Some(Data::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    pub(crate) fn hset(&mut self, key: &[u8], pairs: &[(Value, Value)], at: At) -> Reply {
        let mut h = match self.hash(key) {
            Err(e) => return e,
            Ok(h) => h.cloned().unwrap_or_default(),
        };
        let added = pairs
            .iter()
            .filter(|(f, v)| h.insert(f.clone(), v.clone()).is_none())
            .count();
        self.put(key, Some(Data::Hash(h)), at);
        Reply::Int(len(added))
    }

    pub(crate) fn hdel(&mut self, key: &[u8], fields: &[Value], at: At) -> Reply {
        let mut h = match self.hash(key) {
            Err(e) => return e,
            Ok(None) => return Reply::Int(0),
            Ok(Some(h)) => h.clone(),
        };
        let removed = fields.iter().filter(|f| h.remove(*f).is_some()).count();
        if removed > 0 {
            let value = (!h.is_empty()).then_some(Data::Hash(h));
            self.put(key, value, at);
        }
        Reply::Int(len(removed))
    }

    pub(crate) fn hgetall(&self, key: &[u8]) -> Result<Reply, Reply> {
        Ok(Reply::Array(
            self.hash(key)?
                .into_iter()
                .flatten()
                .flat_map(|(f, v)| [Reply::Bulk(Some(f.clone())), Reply::Bulk(Some(v.clone()))])
                .collect(),
        ))
    }
}
