//! Lists: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN.

use super::command::{count_arg, int_arg, key, keys, read, write, Request};
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp};

pub(super) fn parse(name: &str, a: &[Bytes]) -> Result<Request, Request> {
    Ok(match name {
        "LPUSH" | "RPUSH" => write(Op::Push {
            key: key(&a[0]),
            values: keys(&a[1..]),
            left: name == "LPUSH",
        }),
        "LPOP" | "RPOP" => write(Op::Pop {
            key: key(&a[0]),
            left: name == "LPOP",
            count: a.get(1).map(count_arg).transpose()?,
        }),
        "LRANGE" => read(ReadOp::LRange {
            key: key(&a[0]),
            start: int_arg(&a[1])?,
            stop: int_arg(&a[2])?,
        }),
        "LLEN" => read(ReadOp::LLen { key: key(&a[0]) }),
        _ => unreachable!("{name} is not a list command"),
    })
}
