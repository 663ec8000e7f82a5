//! Sets: SADD, SPOP (the smallest members: see `gsmo_spec::kv::sets`),
//! SMEMBERS, SCARD, SISMEMBER.

use super::command::{count_arg, key, keys, read, write, Request};
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp};

pub(super) fn parse(name: &str, a: &[Bytes]) -> Result<Request, Request> {
    Ok(match name {
        "SADD" => write(Op::SAdd {
            key: key(&a[0]),
            members: keys(&a[1..]),
        }),
        "SPOP" => write(Op::SPop {
            key: key(&a[0]),
            count: a.get(1).map(count_arg).transpose()?,
        }),
        "SMEMBERS" => read(ReadOp::SMembers { key: key(&a[0]) }),
        "SCARD" => read(ReadOp::SCard { key: key(&a[0]) }),
        "SISMEMBER" => read(ReadOp::SIsMember {
            key: key(&a[0]),
            member: key(&a[1]),
        }),
        _ => unreachable!("{name} is not a set command"),
    })
}
