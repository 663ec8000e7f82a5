//! Sorted sets: ZADD, ZPOPMIN, ZRANGE (by index, optionally WITHSCORES),
//! ZCARD, ZSCORE. Each member has one score; members are ordered by score,
//! then by member bytes, exactly as Redis orders them, so ZPOPMIN is already
//! deterministic. Scores are floats without NaN (refused when parsed).

use super::{err, index_range, len, At, Data, KvStore, Reply, Value, NOT_A_FLOAT, WRONGTYPE};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A sorted-set score: a float that is never NaN and never -0.0, so equality,
/// order and hashing agree.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Score(f64);

impl Score {
    /// Parses a score as Redis's `strtod` does: `1`, `-2.5`, `1e3`, and `inf` or
    /// `infinity` in any case with an optional sign. Refused, as there: NaN, a
    /// number too large for a double (`1e999`), spaces, anything left over.
    /// (Redis also takes C's hex floats such as `0x10`; this does not.)
    pub fn parse(s: &[u8]) -> Result<Score, Reply> {
        let text = std::str::from_utf8(s).map_err(|_| err(NOT_A_FLOAT))?;
        let f: f64 = text.parse().map_err(|_| err(NOT_A_FLOAT))?;
        let overflow = f.is_infinite() && !text.to_ascii_lowercase().contains("inf");
        if overflow {
            return Err(err(NOT_A_FLOAT));
        }
        Score::new(f).ok_or_else(|| err(NOT_A_FLOAT))
    }

    pub fn new(f: f64) -> Option<Score> {
        (!f.is_nan()).then_some(Score(if f == 0.0 { 0.0 } else { f }))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Hash for Score {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// A score as Redis prints it: integral scores without a fraction.
pub fn format_score(s: &Score) -> String {
    let f = s.0;
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A sorted set: score by member, and (score, member) in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ZSet {
    scores: OrdMap<Value, Score>,
    order: OrdSet<(Score, Value)>,
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Members and scores, lowest score first.
    pub fn iter(&self) -> impl Iterator<Item = (&Value, &Score)> {
        self.order.iter().map(|(s, m)| (m, s))
    }

    /// Sets `member`'s score; true if the member is new.
    pub fn insert(&mut self, member: Value, score: Score) -> bool {
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.order.remove(&(old, member.clone()));
        }
        self.order.insert((score, member));
        old.is_none()
    }

    fn pop_min(&mut self) -> Option<(Score, Value)> {
        let (score, member) = self.order.remove_min()?;
        self.scores.remove(&member);
        Some((score, member))
    }
}

impl KvStore {
    /// The sorted set at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
    pub(crate) fn zset(&self, key: &[u8]) -> Result<Option<&ZSet>, Reply> {
        match self.data(key) {
            None => Ok(None),
            Some(Data::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    pub(crate) fn zadd(&mut self, key: &[u8], pairs: &[(Score, Value)], at: At) -> Reply {
        let mut z = match self.zset(key) {
            Err(e) => return e,
            Ok(z) => z.cloned().unwrap_or_default(),
        };
        let added = pairs
            .iter()
            .filter(|(s, m)| z.insert(m.clone(), *s))
            .count();
        self.put(key, Some(Data::ZSet(z)), at);
        Reply::Int(len(added))
    }

    pub(crate) fn zpopmin(&mut self, key: &[u8], count: Option<usize>, at: At) -> Reply {
        let mut z = match self.zset(key) {
            Err(e) => return e,
            Ok(None) => return Reply::Array(Vec::new()),
            Ok(Some(z)) => z.clone(),
        };
        let mut out = Vec::new();
        for _ in 0..count.unwrap_or(1) {
            let Some((s, m)) = z.pop_min() else { break };
            out.push(Reply::Bulk(Some(m)));
            out.push(Reply::Bulk(Some(format_score(&s).into_bytes())));
        }
        let value = (!z.is_empty()).then_some(Data::ZSet(z));
        self.put(key, value, at);
        Reply::Array(out)
    }

    pub(crate) fn zrange(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
        with_scores: bool,
    ) -> Result<Reply, Reply> {
        let Some(z) = self.zset(key)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let r = index_range(start, stop, z.len());
        let mut out = Vec::new();
        for (m, s) in z.iter().skip(r.start).take(r.len()) {
            out.push(Reply::Bulk(Some(m.clone())));
            if with_scores {
                out.push(Reply::Bulk(Some(format_score(s).into_bytes())));
            }
        }
        Ok(Reply::Array(out))
    }

    pub(crate) fn zscore(&self, key: &[u8], member: &[u8]) -> Result<Reply, Reply> {
        let score = self.zset(key)?.and_then(|z| z.scores.get(member));
        Ok(Reply::Bulk(score.map(|s| format_score(s).into_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::Score;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn scores_parse_as_redis_parses_them() {
        // Each answer is what redis-server 7 gave to `ZADD z <score> m`.
        for (text, want) in [
            ("1", Some(1.0)),
            ("-2.5", Some(-2.5)),
            ("1e3", Some(1000.0)),
            ("inf", Some(f64::INFINITY)),
            ("INF", Some(f64::INFINITY)),
            ("+inf", Some(f64::INFINITY)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("infinity", Some(f64::INFINITY)),
            ("Infinity", Some(f64::INFINITY)),
            ("+infinity", Some(f64::INFINITY)),
            ("-infinity", Some(f64::NEG_INFINITY)),
            ("nan", None),
            ("NaN", None),
            ("1e999", None),
            ("-1e999", None),
            (" 1", None),
            ("1_0", None),
            ("", None),
        ] {
            let got = Score::parse(text.as_bytes()).ok().map(Score::get);
            assert_eq!(got, want, "{text:?}");
        }
        assert_eq!(
            Score::parse(b"-0").unwrap().get().to_bits(),
            0.0f64.to_bits(),
            "never -0.0"
        );
    }

    #[test]
    fn a_score_hashes_by_its_value() {
        // The model checker tells states apart by hash: two stores whose
        // sorted sets differ only in a score must not look alike to it.
        let h = RandomState::new();
        let score = |s: &[u8]| h.hash_one(Score::parse(s).unwrap());
        assert_eq!(score(b"1.5"), score(b"1.50"));
        assert_ne!(score(b"1.5"), score(b"2"));
        assert_ne!(score(b"inf"), score(b"-inf"));
    }

    /// Equality agrees with order and hashing: replicas compare stores (and the
    /// model checker states) by it, so a score must differ from another score.
    #[test]
    fn scores_are_equal_exactly_when_their_values_are() {
        let s = |t: &[u8]| Score::parse(t).unwrap();
        assert_eq!(s(b"1.5"), s(b"1.50"));
        assert_eq!(s(b"-0"), s(b"0"));
        assert_ne!(s(b"1.5"), s(b"2"));
        assert_ne!(s(b"inf"), s(b"-inf"));
        assert!(s(b"-inf") < s(b"-1") && s(b"1") < s(b"1.5") && s(b"1.5") < s(b"inf"));
        assert_eq!(
            s(b"2").partial_cmp(&s(b"2.0")),
            Some(std::cmp::Ordering::Equal)
        );
    }
}
