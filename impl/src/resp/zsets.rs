//! Sorted sets: ZADD (score member pairs; NX/XX/GT/LT/CH/INCR refused),
//! ZPOPMIN, ZRANGE by index \[WITHSCORES\], ZCARD, ZSCORE.

use super::command::{count_arg, int_arg, key, local_error, read, syntax_error, write, Request};
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp, Score};

pub(super) fn parse(name: &str, a: &[Bytes]) -> Result<Request, Request> {
    Ok(match name {
        "ZADD" => {
            if a[1..].len() % 2 != 0 {
                return Err(syntax_error());
            }
            let pairs = a[1..]
                .chunks(2)
                .map(|p| Ok((Score::parse(&p[0]).map_err(reply_error)?, key(&p[1]))))
                .collect::<Result<_, Request>>()?;
            write(Op::ZAdd {
                key: key(&a[0]),
                pairs,
            })
        }
        "ZPOPMIN" => write(Op::ZPopMin {
            key: key(&a[0]),
            count: a.get(1).map(count_arg).transpose()?,
        }),
        "ZRANGE" => {
            let with_scores = match a.get(3) {
                None => false,
                Some(o) if o.eq_ignore_ascii_case(b"WITHSCORES") => true,
                Some(_) => return Err(syntax_error()),
            };
            read(ReadOp::ZRange {
                key: key(&a[0]),
                start: int_arg(&a[1])?,
                stop: int_arg(&a[2])?,
                with_scores,
            })
        }
        "ZCARD" => read(ReadOp::ZCard { key: key(&a[0]) }),
        "ZSCORE" => read(ReadOp::ZScore {
            key: key(&a[0]),
            member: key(&a[1]),
        }),
        _ => unreachable!("{name} is not a sorted-set command"),
    })
}

fn reply_error(r: gsmo_spec::kv::Reply) -> Request {
    local_error(r.to_string())
}
