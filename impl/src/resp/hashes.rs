//! Hashes: HSET, HGET, HGETALL, HDEL, HLEN.

use super::command::{key, keys, pairs, read, write, wrong_arity, Request};
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp};

pub(super) fn parse(name: &str, a: &[Bytes]) -> Result<Request, Request> {
    Ok(match name {
        "HSET" if a.len() % 2 == 0 => wrong_arity(name),
        "HSET" => write(Op::HSet {
            key: key(&a[0]),
            pairs: pairs(&a[1..]),
        }),
        "HGET" => read(ReadOp::HGet {
            key: key(&a[0]),
            field: key(&a[1]),
        }),
        "HGETALL" => read(ReadOp::HGetAll { key: key(&a[0]) }),
        "HDEL" => write(Op::HDel {
            key: key(&a[0]),
            fields: keys(&a[1..]),
        }),
        "HLEN" => read(ReadOp::HLen { key: key(&a[0]) }),
        _ => unreachable!("{name} is not a hash command"),
    })
}
