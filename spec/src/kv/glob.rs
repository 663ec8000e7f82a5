//! Redis's glob patterns (KEYS, SCAN MATCH): `*` any run, `?` any byte,
//! `[abc]`, `[^abc]`, `[a-z]` classes, `\x` a literal `x`. Matched by the
//! classic one-star backtracking walk, so any pattern costs at most
//! O(pattern × key), never exponential time.

#[derive(Debug)]
enum Token {
    Star,
    Any,
    Byte(u8),
    /// Ranges (a single byte is `(b, b)`), negated or not.
    Class(Vec<(u8, u8)>, bool),
}

fn tokens(pattern: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        let c = pattern[i];
        i += 1;
        out.push(match c {
            b'*' => {
                if matches!(out.last(), Some(Token::Star)) {
                    continue;
                }
                Token::Star
            }
            b'?' => Token::Any,
            b'\\' if i < pattern.len() => {
                i += 1;
                Token::Byte(pattern[i - 1])
            }
            b'[' => {
                let negate = pattern.get(i) == Some(&b'^');
                if negate {
                    i += 1;
                }
                let mut ranges = Vec::new();
                // Like Redis, an unterminated class runs to the end of the pattern.
                while i < pattern.len() && pattern[i] != b']' {
                    let mut lo = pattern[i];
                    if lo == b'\\' && i + 1 < pattern.len() {
                        i += 1;
                        lo = pattern[i];
                    }
                    if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() {
                        let hi = pattern[i + 2];
                        ranges.push((lo.min(hi), lo.max(hi)));
                        i += 3;
                    } else {
                        ranges.push((lo, lo));
                        i += 1;
                    }
                }
                i += 1; // the `]`
                Token::Class(ranges, negate)
            }
            c => Token::Byte(c),
        });
    }
    out
}

fn one(t: &Token, b: u8) -> bool {
    match t {
        Token::Star => unreachable!("stars are handled by the walk"),
        Token::Any => true,
        Token::Byte(x) => *x == b,
        Token::Class(ranges, negate) => {
            ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)) != *negate
        }
    }
}

/// Whether `s` matches the glob `pattern`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let p = tokens(pattern);
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Token::Star) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(t) if one(t, s[si]) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|t| matches!(t, Token::Star))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_glob_patterns() {
        for (p, s, want) in [
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h*llo", "hllo", true), // a star matches the empty run too
            ("*llo", "llo", true),
            ("key*", "key", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-c]llo", "hbllo", true), // inside the range, not an endpoint
            ("h[a-c]llo", "h-llo", false), // a range's `-` is no member
            ("x[a-c]", "xd", false),      // the range ends at its own `c`
            ("[b-d]", "c", true),         // a range first in the pattern
            ("[b-d]", "a", false),
            ("key:*", "key:1", true),
            ("key:*", "counter:1", false),
            ("a\\*b", "a*b", true),
            ("[a-", "-", true), // unterminated, so `a-` is no range
            ("[a-", "b", false),
            ("ab[c-", "abc", true), // the same, further into the pattern
            ("ab[c-", "ab-", true),
            ("ab[c-", "abd", false),
            ("a\\*b", "axb", false),
            ("[\\a]", "a", true), // in a class a backslash escapes the next byte
            ("[\\a]", "\\", false),
            ("x[\\", "x\\", true), // a trailing backslash is itself
            ("a\\", "a\\", true),  // outside a class too
            ("a\\", "a", false),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
        }
    }
}
