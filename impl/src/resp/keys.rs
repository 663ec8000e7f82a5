//! Strings and whole-key commands: arguments to [`Op`]s and [`ReadOp`]s.

use super::command::{int_arg, key, keys, local_error, pairs, read, syntax_error, write};
use super::command::{wrong_arity, Request};
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp, SetCond, NO_EXPIRY};

pub(super) fn parse(name: &str, a: &[Bytes]) -> Result<Request, Request> {
    Ok(match name {
        "GET" => read(ReadOp::Get { key: key(&a[0]) }),
        "SET" => set(a)?,
        "GETSET" => write(Op::SetWith {
            key: key(&a[0]),
            value: key(&a[1]),
            cond: None,
            get: true,
        }),
        "GETDEL" => write(Op::GetDel { key: key(&a[0]) }),
        "SETNX" => write(Op::MSetNx { pairs: pairs(a) }),
        "MSET" | "MSETNX" if a.len() % 2 != 0 => wrong_arity(name),
        "MSET" => write(Op::MSet { pairs: pairs(a) }),
        "MSETNX" => write(Op::MSetNx { pairs: pairs(a) }),
        "MGET" => read(ReadOp::MGet { keys: keys(a) }),
        "APPEND" => write(Op::Append {
            key: key(&a[0]),
            value: key(&a[1]),
        }),
        "STRLEN" => read(ReadOp::StrLen { key: key(&a[0]) }),
        "INCR" | "DECR" => write(Op::IncrBy {
            key: key(&a[0]),
            delta: if name == "INCR" { 1 } else { -1 },
        }),
        "INCRBY" => write(Op::IncrBy {
            key: key(&a[0]),
            delta: int_arg(&a[1])?,
        }),
        "DECRBY" => match int_arg(&a[1])?.checked_neg() {
            Some(delta) => write(Op::IncrBy {
                key: key(&a[0]),
                delta,
            }),
            None => local_error("ERR decrement would overflow"),
        },
        "DEL" | "UNLINK" => write(Op::Del { keys: keys(a) }),
        "EXISTS" => read(ReadOp::Exists { keys: keys(a) }),
        "TYPE" => read(ReadOp::Type { key: key(&a[0]) }),
        "RENAME" => write(Op::Rename {
            from: key(&a[0]),
            to: key(&a[1]),
        }),
        "KEYS" => read(ReadOp::Keys {
            pattern: key(&a[0]),
        }),
        "SCAN" => scan(a)?,
        "TTL" | "PTTL" => read(ReadOp::Ttl {
            key: key(&a[0]),
            ms: name == "PTTL",
        }),
        "EXPIRE" | "PEXPIRE" | "SETEX" => local_error(NO_EXPIRY),
        "TRANSFER" => write(Op::Transfer {
            from: key(&a[0]),
            to: key(&a[1]),
            amount: int_arg(&a[2])?,
        }),
        _ => unreachable!("{name} is not a keys command"),
    })
}

/// `SET key value [NX|XX] [GET]`; expiry options are refused, never ignored.
fn set(a: &[Bytes]) -> Result<Request, Request> {
    let (mut cond, mut get) = (None, false);
    const EXPIRY: [&[u8]; 5] = [b"EX", b"PX", b"EXAT", b"PXAT", b"KEEPTTL"];
    for opt in &a[2..] {
        let is = |word: &[u8]| opt.eq_ignore_ascii_case(word);
        if is(b"NX") && cond.is_none() {
            cond = Some(SetCond::Nx);
        } else if is(b"XX") && cond.is_none() {
            cond = Some(SetCond::Xx);
        } else if is(b"GET") && !get {
            get = true;
        } else if EXPIRY.iter().any(|w| is(w)) {
            return Err(local_error(NO_EXPIRY));
        } else {
            return Err(syntax_error());
        }
    }
    let (key, value) = (key(&a[0]), key(&a[1]));
    Ok(match (cond, get) {
        (None, false) => write(Op::Set { key, value }),
        _ => write(Op::SetWith {
            key,
            value,
            cond,
            get,
        }),
    })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type] (TYPE is refused).
fn scan(a: &[Bytes]) -> Result<Request, Request> {
    let cursor = std::str::from_utf8(&a[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| local_error("ERR invalid cursor"))?;
    let (mut pattern, mut count) = (None, 10);
    for opt in a[1..].chunks(2) {
        let [name, value] = opt else {
            return Err(syntax_error());
        };
        match name.to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(key(value)),
            b"COUNT" => match int_arg(value)? {
                n if n < 1 => return Err(syntax_error()),
                n => count = usize::try_from(n).unwrap_or(usize::MAX),
            },
            _ => return Err(syntax_error()),
        }
    }
    Ok(read(ReadOp::Scan {
        cursor,
        pattern,
        count,
    }))
}
