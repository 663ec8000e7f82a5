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
    /// Parses a score as Redis does (`string2d`, which is C's `strtod`): `1`,
    /// `-2.5`, `1e3`, `.5`, C's hex floats (`0x10`, `0x1.8p1`), and `inf` or
    /// `infinity` in any case with an optional sign. Refused, as there: NaN, a
    /// number too large for a double (`1e999`) or so small it rounds to zero
    /// (`1e-999`; `0e-999` is zero, not too small), spaces, anything left over.
    pub fn parse(s: &[u8]) -> Result<Score, Reply> {
        let text = std::str::from_utf8(s).map_err(|_| err(NOT_A_FLOAT))?;
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let f = match unsigned.get(..2) {
            Some("0x" | "0X") => parse_hex(&unsigned[2..]).map(|f| if negative { -f } else { f }),
            _ => text.parse::<f64>().ok().filter(|f| {
                // strtod's ERANGE, which Redis refuses: a finite number
                // written out that came back infinite or zero.
                let mantissa = unsigned.split(['e', 'E']).next().unwrap_or("");
                let overflow = f.is_infinite() && !unsigned.to_ascii_lowercase().starts_with("inf");
                let underflow = *f == 0.0 && mantissa.bytes().any(|d| matches!(d, b'1'..=b'9'));
                !overflow && !underflow
            }),
        };
        f.and_then(Score::new).ok_or_else(|| err(NOT_A_FLOAT))
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

/// C's hex float after its `0x` (`1.8p1` is 3): hex digits with an optional
/// point, at least one digit, then an optional binary exponent `p[+-]digits`.
/// Rounded once, to nearest with ties to even, like `strtod`; `None` for
/// malformed text and for a result that overflows or rounds to zero.
fn parse_hex(s: &str) -> Option<f64> {
    let (digits, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let hex = |t: &str| t.bytes().all(|c| c.is_ascii_hexdigit());
    if int.len() + frac.len() == 0 || !hex(int) || !hex(frac) {
        return None;
    }
    let mut e: i64 = match exp {
        None => 0,
        Some(t) => {
            let body = t.strip_prefix(['+', '-']).unwrap_or(t);
            if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Far past any double either way; saturating keeps the sign.
            let v = body
                .bytes()
                .fold(0i64, |v, d| (v * 10 + i64::from(d - b'0')).min(1 << 20));
            if t.starts_with('-') {
                -v
            } else {
                v
            }
        }
    };
    // The significand's first 30 hex digits (120 bits) exactly; later
    // nonzero digits only make it a little larger (`sticky`).
    let (mut m, mut sticky) = (0u128, false);
    for (i, c) in int.bytes().chain(frac.bytes()).enumerate() {
        let d = u128::from(char::from(c).to_digit(16).expect("checked hex"));
        let in_fraction = i >= int.len();
        if m >> 120 == 0 {
            m = m << 4 | d;
            e -= if in_fraction { 4 } else { 0 };
        } else {
            sticky |= d != 0;
            e += if in_fraction { 0 } else { 4 };
        }
    }
    if m == 0 {
        return Some(0.0);
    }
    // The value is m * 2^e, at least 2^top and below 2^(top + 1).
    let bits = 128 - i64::from(m.leading_zeros());
    let top = e + bits - 1;
    if top > 1023 {
        return None;
    }
    // 53 significant bits for a normal double, fewer below 2^-1022.
    let keep = if top >= -1022 { 53 } else { top + 1075 };
    if keep < 0 {
        return None;
    }
    let drop = bits - keep;
    let q = if drop <= 0 {
        m
    } else {
        let (q, rest) = (m >> drop, m & ((1u128 << drop) - 1));
        let half = 1u128 << (drop - 1);
        let up = rest > half || (rest == half && (sticky || q & 1 == 1));
        e += drop;
        q + u128::from(up)
    };
    // q fits in 54 bits and converts exactly, and q * 2^e is a double (or
    // overflows), so scaling by powers of two adds no second rounding. Below
    // 2^-1022, 2^e is no normal double: scale in two steps.
    let pow2 = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
    let f = if e >= -1022 {
        (q as f64) * pow2(e)
    } else {
        (q as f64) * pow2(e + 600) * pow2(-600)
    };
    (f != 0.0 && f.is_finite()).then_some(f)
}

/// A score as text: plain decimal with the fewest digits that read back to
/// the same double, so integral scores have no fraction (Rust's `Display`
/// never uses an exponent, and a `Score` is never -0.0); `inf` and `-inf`.
pub fn format_score(s: &Score) -> String {
    let f = s.0;
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    format!("{f}")
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
        self.put(key, Some(Data::ZSet(Box::new(z))), at);
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
        let value = (!z.is_empty()).then_some(Data::ZSet(Box::new(z)));
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
            ("1.", Some(1.0)),
            (".5", Some(0.5)),
            ("1e+3", Some(1000.0)),
            ("00012", Some(12.0)),
            ("1e", None),
            ("infinit", None),
            ("infx", None),
            ("nan(1)", None),
            ("0b1", None),
            // strtod's ERANGE towards zero: refused, unless the number was zero.
            ("1e-999", None),
            ("1e-400", None),
            ("0e-999", Some(0.0)),
            ("0.000e-999", Some(0.0)),
            ("1e-310", Some(1e-310)),
            // C's hex floats.
            ("0x10", Some(16.0)),
            ("0X1p3", Some(8.0)),
            ("0x1.8p1", Some(3.0)),
            ("-0x10", Some(-16.0)),
            ("0x", None),
            ("0x1g", None),
            ("0x1p-1080", None),
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
    fn hex_scores_round_once_as_strtod_does() {
        // Accepted or refused as redis-server 7 did with `ZADD`; the bits are
        // glibc's `strtod` (and Python's `float.fromhex`, which agree).
        for (text, bits) in [
            ("0x1p-1074", Some(0x1)),
            ("0x1.fffffffffffffp1023", Some(0x7fef_ffff_ffff_ffff)),
            ("0x1p1024", None),
            ("0x1.fffffffffffff8p1023", None), // rounds up past the largest double
            ("0x1.00000000000008p0", Some(0x3ff0_0000_0000_0000)), // a tie: to even
            ("0x1.00000000000018p0", Some(0x3ff0_0000_0000_0002)), // a tie: to even
            ("0x1.000000000000080001p0", Some(0x3ff0_0000_0000_0001)),
            // Just above a tie, by a digit past the 30 held exactly.
            (
                "0x1.0000000000000800000000000000001p0",
                Some(0x3ff0_0000_0000_0001),
            ),
            (
                "0x1.0000000000000800000000000000000p0",
                Some(0x3ff0_0000_0000_0000),
            ),
            ("0x0.8p-1074", None), // half the least double: a tie, to zero
            ("0x0.80001p-1074", Some(0x1)),
            ("0x1.8p-1074", Some(0x2)),
            ("0x.8", Some(0x3fe0_0000_0000_0000)),
            ("0x1.", Some(0x3ff0_0000_0000_0000)),
            ("0x1P+3", Some(0x4020_0000_0000_0000)),
            ("0x0p-99999", Some(0x0)),
            (
                "0x123456789abcdef0123456789abcdef0123p-100",
                Some(0x4232_3456_789a_bcdf),
            ),
            ("0x1p", None),
            ("0x.p1", None),
            ("0x1.2.3", None),
        ] {
            let got = Score::parse(text.as_bytes())
                .ok()
                .map(|s| s.get().to_bits());
            assert_eq!(got, bits, "{text:?}");
        }
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
