//! Inline commands (`SET "a b" c` typed into telnet or piped to redis-cli),
//! split by the rules of Redis's `sdssplitargs`: arguments are separated by
//! whitespace; `"..."` takes the escapes `\n \r \t \b \a \\ \" \xHH`; `'...'`
//! takes only `\'`; a closing quote must be followed by whitespace or the end.

/// The arguments of one inline line; `None` if its quotes are unbalanced.
pub fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            if dq {
                match line.get(i) {
                    None => return None,
                    Some(b'\\')
                        if line.get(i + 1) == Some(&b'x') && hex_byte(line, i + 2).is_some() =>
                    {
                        cur.push(hex_byte(line, i + 2).expect("checked"));
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < n => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            c => c,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => cur.push(c),
                }
            } else if sq {
                match line.get(i) {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => cur.push(c),
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(&c) => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

fn hex_byte(line: &[u8], at: usize) -> Option<u8> {
    let hi = (*line.get(at)? as char).to_digit(16)?;
    let lo = (*line.get(at + 1)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

#[cfg(test)]
mod tests {
    use super::split;

    fn s(line: &str) -> Option<Vec<String>> {
        split(line.as_bytes()).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn quoting_follows_redis_cli() {
        assert_eq!(s("SET \"a b\" c").unwrap(), ["SET", "a b", "c"]);
        assert_eq!(s("  set  a   b ").unwrap(), ["set", "a", "b"]);
        assert_eq!(s("SET k 'it\\'s'").unwrap(), ["SET", "k", "it's"]);
        assert_eq!(
            s("SET k \"x\\n\\x41\\\"\"").unwrap(),
            ["SET", "k", "x\nA\""]
        );
        assert_eq!(s("SET k ''").unwrap(), ["SET", "k", ""]);
        // `\x` takes exactly two hex digits, else it is a plain `x`; another
        // escape followed by hex digits is that escape and the digits.
        assert_eq!(s("SET k \"\\xZZ\"").unwrap(), ["SET", "k", "xZZ"]);
        assert_eq!(s("SET k \"\\n41\"").unwrap(), ["SET", "k", "\n41"]);
        assert_eq!(
            s("SET k 'a\\nb'").unwrap(),
            ["SET", "k", "a\\nb"],
            "no escapes in single quotes"
        );
        assert_eq!(s("SET a \"b"), None);
        assert_eq!(s("SET a 'b"), None);
        assert_eq!(
            s("SET \"a\"b c"),
            None,
            "a closing quote must end the argument"
        );
        assert_eq!(s("SET 'a'b c"), None, "a closing single quote too");
        assert_eq!(s("SET 'a' b").unwrap(), ["SET", "a", "b"]);
        assert_eq!(s("").unwrap(), Vec::<String>::new());
    }
}
