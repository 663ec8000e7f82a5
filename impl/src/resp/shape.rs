//! How a reply is typed on the wire, in RESP2 and in RESP3 (for clients that
//! say `HELLO 3`; redis-py 8 does by default).
//!
//! Every reply is computed once, as a RESP2 frame; its command's [`Shape`]
//! says what the frame means where the protocols need more than the frame:
//! RESP2's null *array* (`*-1`, LPOP/RPOP with a count on a missing key) and
//! RESP3's own types, as Redis 7 gives them: maps (HGETALL, CONFIG GET,
//! COMMAND DOCS, HELLO), sets (SMEMBERS, SPOP with a count), doubles (ZSCORE), scores
//! paired with their members (ZRANGE WITHSCORES, ZPOPMIN with a count:
//! `[[member, score], ...]`; without a count: `[member, score]`), and the one
//! null `_` for every RESP2 null. Everything else keeps its RESP2 meaning in
//! RESP3's names. Maps and sets keep the RESP2 order (redis-protocol's
//! `index-map` feature), so a reply's bytes stay a function of the replica's
//! state. `tests/tests/wire.rs` compares the bytes with redis-server's.

use super::command::Call;
use super::reply::response_frame;
use crate::event::Response;
use bytes::{BufMut, Bytes, BytesMut};
use gsmo_spec::kv::Reply;
use redis_protocol::resp2::types::BytesFrame as Resp2;
use redis_protocol::resp3::encode::complete::extend_encode;
use redis_protocol::resp3::types::BytesFrame as Resp3;

/// How a command's RESP2 reply maps onto RESP3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shape {
    /// The same structure under RESP3's names.
    #[default]
    Plain,
    /// A flat array of key, value, key, value: a map.
    Map,
    /// An array of distinct members: a set.
    Set,
    /// A bulk string holding a number: a double.
    Double,
    /// member, score, member, score: an array of `[member, double]` pairs.
    ScorePairs,
    /// member, score: one `[member, double]`.
    ScorePair,
    /// A null here is RESP2's null array `*-1`, not the null bulk `$-1`.
    NullArray,
}

/// The shape of the reply to a request (an unknown command's error: plain).
pub fn shape(call: Call) -> Shape {
    let Some(name) = call.name() else {
        return Shape::Plain;
    };
    let args = call.args();
    let arg_is = |i: usize, word: &[u8]| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(word));
    match name {
        "HGETALL" | "HELLO" => Shape::Map,
        "CONFIG" if arg_is(1, b"GET") => Shape::Map,
        "COMMAND" if arg_is(1, b"DOCS") => Shape::Map,
        "SMEMBERS" => Shape::Set,
        "SPOP" if args.len() > 2 => Shape::Set,
        "ZSCORE" => Shape::Double,
        "ZRANGE"
            if args
                .iter()
                .skip(4)
                .any(|a| a.eq_ignore_ascii_case(b"WITHSCORES")) =>
        {
            Shape::ScorePairs
        }
        "ZPOPMIN" if args.len() > 2 => Shape::ScorePairs,
        "ZPOPMIN" => Shape::ScorePair,
        "LPOP" | "RPOP" if args.len() > 2 => Shape::NullArray,
        _ => Shape::Plain,
    }
}

/// Appends `frame`, a reply of the given shape, to `dst` in RESP3 or RESP2.
pub fn encode(frame: Resp2, shape: Shape, resp3: bool, dst: &mut BytesMut) -> Result<(), String> {
    let written = match (resp3, frame) {
        (true, frame) => extend_encode(dst, &reshape(frame, shape), false),
        (false, Resp2::Null) if shape == Shape::NullArray => {
            dst.extend_from_slice(b"*-1\r\n");
            return Ok(());
        }
        (false, frame) => redis_protocol::resp2::encode::extend_encode(dst, &frame, false),
    };
    written.map(|_| ()).map_err(|e| e.to_string())
}

/// Encodes a replica's answer, as [`encode`] does its [`response_frame`].
///
/// The replies that dominate a workload (`+OK`, an integer, a bulk string or
/// a null of a plain-shaped command) go straight from the answer to the wire:
/// no frame in between, no copy of the value into a `Bytes`, no digit count by
/// logarithm. Everything else takes the frame path. `fast_path_matches_the_frame_path`
/// holds the two to the same bytes.
pub fn encode_response(
    r: Response,
    shape: Shape,
    resp3: bool,
    dst: &mut BytesMut,
) -> Result<(), String> {
    if shape != Shape::Plain {
        return encode(response_frame(r), shape, resp3, dst);
    }
    match r {
        Response::Kv(Reply::Ok) => dst.extend_from_slice(b"+OK\r\n"),
        Response::Kv(Reply::Int(i)) | Response::Int(i) => number_line(dst, b':', i),
        Response::Kv(Reply::Bulk(Some(v))) | Response::Bulk(v) => {
            dst.reserve(v.len() + 16);
            number_line(dst, b'$', v.len());
            dst.extend_from_slice(&v);
            dst.extend_from_slice(b"\r\n");
        }
        Response::Kv(Reply::Bulk(None)) if resp3 => dst.extend_from_slice(b"_\r\n"),
        Response::Kv(Reply::Bulk(None)) => dst.extend_from_slice(b"$-1\r\n"),
        r => return encode(response_frame(r), shape, resp3, dst),
    }
    Ok(())
}

/// `:42\r\n`, `$3\r\n`: a type byte, a number in decimal, CRLF.
fn number_line(dst: &mut BytesMut, kind: u8, n: impl itoa::Integer) {
    dst.put_u8(kind);
    dst.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// The RESP3 form of a RESP2 reply of the given shape. An error or a null is
/// one whatever the shape (a WRONGTYPE to HGETALL is no map).
pub fn reshape(frame: Resp2, shape: Shape) -> Resp3 {
    match (frame, shape) {
        (Resp2::Array(items), Shape::Map) => {
            let mut it = items.into_iter().map(plain);
            let mut data = redis_protocol::resp3::types::FrameMap::default();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                data.insert(k, v);
            }
            Resp3::Map {
                data,
                attributes: None,
            }
        }
        (Resp2::Array(items), Shape::Set) => Resp3::Set {
            data: items.into_iter().map(plain).collect(),
            attributes: None,
        },
        (Resp2::BulkString(b), Shape::Double) => double(b),
        (Resp2::Array(items), Shape::ScorePairs) => array(
            items
                .chunks(2)
                .map(|p| array(p.iter().cloned().zip([false, true]).map(scored).collect()))
                .collect(),
        ),
        (Resp2::Array(items), Shape::ScorePair) => {
            array(items.into_iter().zip([false, true]).map(scored).collect())
        }
        (other, _) => plain(other),
    }
}

fn scored((frame, is_score): (Resp2, bool)) -> Resp3 {
    match frame {
        Resp2::BulkString(b) if is_score => double(b),
        other => plain(other),
    }
}

fn array(data: Vec<Resp3>) -> Resp3 {
    Resp3::Array {
        data,
        attributes: None,
    }
}

/// A score as a double; one that does not parse stays the text it was.
fn double(b: Bytes) -> Resp3 {
    match std::str::from_utf8(&b)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        Some(data) => Resp3::Double {
            data,
            attributes: None,
        },
        None => Resp3::BlobString {
            data: b,
            attributes: None,
        },
    }
}

/// The same frame under RESP3's names.
fn plain(frame: Resp2) -> Resp3 {
    match frame {
        Resp2::SimpleString(data) => Resp3::SimpleString {
            data,
            attributes: None,
        },
        Resp2::Error(data) => Resp3::SimpleError {
            data,
            attributes: None,
        },
        Resp2::Integer(data) => Resp3::Number {
            data,
            attributes: None,
        },
        Resp2::BulkString(data) => Resp3::BlobString {
            data,
            attributes: None,
        },
        Resp2::Array(items) => array(items.into_iter().map(plain).collect()),
        Resp2::Null => Resp3::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str) -> Resp2 {
        Resp2::BulkString(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn req(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn shape_of(args: &[Bytes]) -> Shape {
        shape(Call::new(args))
    }

    fn wire(frame: Resp2, shape: Shape) -> String {
        wire_in(true, frame, shape)
    }

    fn wire_in(resp3: bool, frame: Resp2, shape: Shape) -> String {
        let mut out = BytesMut::new();
        encode(frame, shape, resp3, &mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn any_response() -> impl Strategy<Value = Response> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            Just(Response::Kv(Reply::Ok)),
            any::<i64>().prop_map(|i| Response::Kv(Reply::Int(i))),
            any::<i64>().prop_map(Response::Int),
            proptest::option::of(bytes()).prop_map(|v| Response::Kv(Reply::Bulk(v))),
            bytes().prop_map(Response::Bulk),
            bytes().prop_map(|v| Response::Kv(Reply::Status(String::from_utf8_lossy(&v).into()))),
            proptest::collection::vec(bytes(), 0..4).prop_map(Response::Array),
            Just(Response::Kv(Reply::NilArray)),
            Just(Response::Error("ERR no".into())),
        ]
    }

    fn any_shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Plain),
            Just(Shape::Map),
            Just(Shape::Set),
            Just(Shape::Double),
            Just(Shape::ScorePairs),
            Just(Shape::ScorePair),
            Just(Shape::NullArray),
        ]
    }

    proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(256))]

        /// Every answer leaves in the same bytes, through the fast path or the frame's.
        #[test]
        fn fast_path_matches_the_frame_path(r in any_response(), shape in any_shape(), resp3: bool) {
            let mut fast = BytesMut::from(&b"before"[..]);
            let mut framed = fast.clone();
            encode_response(r.clone(), shape, resp3, &mut fast).unwrap();
            encode(response_frame(r), shape, resp3, &mut framed).unwrap();
            prop_assert_eq!(fast, framed);
        }
    }

    #[test]
    fn shapes_follow_redis_7() {
        assert_eq!(shape_of(&req("hgetall h")), Shape::Map);
        assert_eq!(shape_of(&req("CONFIG GET save")), Shape::Map);
        assert_eq!(shape_of(&req("CONFIG SET save x")), Shape::Plain);
        assert_eq!(shape_of(&req("command docs get")), Shape::Map);
        assert_eq!(shape_of(&req("COMMAND")), Shape::Plain);
        assert_eq!(shape_of(&req("SMEMBERS s")), Shape::Set);
        assert_eq!(shape_of(&req("SPOP s")), Shape::Plain);
        assert_eq!(shape_of(&req("SPOP s 2")), Shape::Set);
        assert_eq!(shape_of(&req("ZSCORE z m")), Shape::Double);
        assert_eq!(shape_of(&req("ZRANGE z 0 -1")), Shape::Plain);
        assert_eq!(
            shape_of(&req("ZRANGE z 0 -1 withscores")),
            Shape::ScorePairs
        );
        assert_eq!(shape_of(&req("ZPOPMIN z")), Shape::ScorePair);
        assert_eq!(shape_of(&req("ZPOPMIN z 3")), Shape::ScorePairs);
        assert_eq!(shape_of(&req("LPOP l")), Shape::Plain);
        assert_eq!(shape_of(&req("RPOP l 2")), Shape::NullArray);
        assert_eq!(shape_of(&req("GET k")), Shape::Plain);
        assert_eq!(
            shape_of(&req("ZRANGE z")),
            Shape::Plain,
            "too short: no panic"
        );
        assert_eq!(shape(Call::new(&[])), Shape::Plain);
        assert_eq!(shape_of(&req("config Get save")), Shape::Map);
        assert_eq!(shape_of(&req("Command docs")), Shape::Map);
        assert_eq!(shape_of(&req("HGETALLX h")), Shape::Plain, "unknown: plain");
    }

    #[test]
    fn replies_take_resp3_types_in_order() {
        let pairs = Resp2::Array(vec![b("f2"), b("v2"), b("f1"), b("v1")]);
        assert_eq!(
            wire(pairs, Shape::Map),
            "%2\r\n$2\r\nf2\r\n$2\r\nv2\r\n$2\r\nf1\r\n$2\r\nv1\r\n"
        );
        let members = Resp2::Array(vec![b("y"), b("x")]);
        assert_eq!(wire(members, Shape::Set), "~2\r\n$1\r\ny\r\n$1\r\nx\r\n");
        assert_eq!(wire(b("1.5"), Shape::Double), ",1.5\r\n");
        let scored = Resp2::Array(vec![b("a"), b("1"), b("b"), b("2.5")]);
        assert_eq!(
            wire(scored.clone(), Shape::ScorePairs),
            "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
        );
        let one = Resp2::Array(vec![b("a"), b("1")]);
        assert_eq!(wire(one, Shape::ScorePair), "*2\r\n$1\r\na\r\n,1\r\n");
        assert_eq!(
            wire(Resp2::Array(vec![]), Shape::ScorePair),
            "*0\r\n",
            "ZPOPMIN of an empty key"
        );
    }

    #[test]
    fn nulls_and_errors_whatever_the_shape() {
        assert_eq!(wire_in(false, Resp2::Null, Shape::NullArray), "*-1\r\n");
        assert_eq!(wire_in(false, Resp2::Null, Shape::Plain), "$-1\r\n");
        assert_eq!(
            wire_in(false, Resp2::Array(vec![]), Shape::NullArray),
            "*0\r\n"
        );
        assert_eq!(wire(Resp2::Null, Shape::NullArray), "_\r\n");
        assert_eq!(wire(Resp2::Null, Shape::Double), "_\r\n");
        assert_eq!(wire(Resp2::Null, Shape::Plain), "_\r\n");
        let wrongtype = Resp2::Error("WRONGTYPE Operation against a key".into());
        assert_eq!(
            wire(wrongtype, Shape::Map),
            "-WRONGTYPE Operation against a key\r\n"
        );
        assert_eq!(wire(Resp2::Integer(-3), Shape::Plain), ":-3\r\n");
        assert_eq!(
            wire(Resp2::SimpleString("OK".into()), Shape::Plain),
            "+OK\r\n"
        );
    }
}
