//! Lists: LPUSH / RPUSH, LPOP / RPOP (with a count), LRANGE, LLEN. A list is a
//! persistent vector: pushes and pops at either end are O(log n) and a copy is
//! O(1). A list that becomes empty is deleted, as in Redis.

use super::{err, index_range, len, At, Data, KvStore, Reply, Value, WRONGTYPE};
use imbl::Vector;

impl KvStore {
    /// The list at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
    pub(crate) fn list(&self, key: &[u8]) -> Result<Option<&Vector<Value>>, Reply> {
        match self.data(key) {
            None => Ok(None),
            Some(Data::List(l)) => Ok(Some(l)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    pub(crate) fn push(&mut self, key: &[u8], values: &[Value], left: bool, at: At) -> Reply {
        let mut l = match self.list(key) {
            Err(e) => return e,
            Ok(l) => l.cloned().unwrap_or_default(),
        };
        for v in values {
            if left {
                l.push_front(v.clone());
            } else {
                l.push_back(v.clone());
            }
        }
        let n = l.len();
        self.put(key, Some(Data::List(Box::new(l))), at);
        Reply::Int(len(n))
    }

    pub(crate) fn pop(&mut self, key: &[u8], left: bool, count: Option<usize>, at: At) -> Reply {
        let mut l = match self.list(key) {
            Err(e) => return e,
            Ok(None) if count.is_some() => return Reply::NilArray,
            Ok(None) => return Reply::Bulk(None),
            Ok(Some(l)) => l.clone(),
        };
        let mut popped = Vec::new();
        for _ in 0..count.unwrap_or(1) {
            match if left { l.pop_front() } else { l.pop_back() } {
                Some(v) => popped.push(Reply::Bulk(Some(v))),
                None => break,
            }
        }
        let value = (!l.is_empty()).then_some(Data::List(Box::new(l)));
        self.put(key, value, at);
        match count {
            Some(_) => Reply::Array(popped),
            None => popped.pop().unwrap_or(Reply::Bulk(None)),
        }
    }

    pub(crate) fn lrange(&self, key: &[u8], start: i64, stop: i64) -> Result<Reply, Reply> {
        let Some(l) = self.list(key)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let r = index_range(start, stop, l.len());
        Ok(Reply::Array(
            l.iter()
                .skip(r.start)
                .take(r.len())
                .map(|v| Reply::Bulk(Some(v.clone())))
                .collect(),
        ))
    }
}
