//! The Redis front door: request framing, the command table, reply encoding in
//! RESP2 and RESP3 ([`shape`]), and one module per command family ([`keys`] strings and whole keys, [`lists`], [`sets`],
//! [`hashes`], [`zsets`], [`connection`] (HELLO, CLIENT, COMMAND, TIME, ...),
//! [`server`] (INFO, CONFIG, admin)); [`inline`] splits inline commands.
//!
//! Replies are encoded by the `redis-protocol` crate. Requests (arrays of bulk
//! strings) are framed here: [`RespCodec`] walks the declared lengths in a
//! request's headers against hard limits, so a hostile `*999999999` or
//! `$999999999` is refused at once (like Redis: `-ERR Protocol error`, then the
//! connection closes) instead of buffering towards it, and the same walk cuts
//! the complete request into argument slices of one buffer (no copy and no
//! frame tree per request). Inline commands (`PING\r\n`, as typed into
//! telnet) are accepted too, quoted as redis-cli quotes.
//!
//! [`parse_command`] turns a request into either a reply the connection can give
//! by itself (PING, CONFIG GET, ...) or a [`ClientRequest`] for the replica:
//! writes become the spec's [`Op`]s (`Command::Write`), reads its [`ReadOp`]s
//! (`Command::Read`). Semantics live in `gsmo_spec::kv`; this only parses.

pub mod connection;
pub mod hashes;
pub mod inline;
pub mod keys;
pub mod lists;
pub mod server;
pub mod sets;
pub mod shape;
pub mod zsets;

pub use connection::Session;

use crate::event::{ClientRequest, Response};
use bytes::{Bytes, BytesMut};
use gsmo_spec::kv::{Op, ReadOp, Reply};
use gsmo_spec::node::Command;
use redis_protocol::resp2::types::BytesFrame;
use tokio_util::codec::Decoder;

/// Largest request (all arguments together); peer frames are sized above it.
pub const MAX_REQUEST: usize = 16 << 20;
/// Most arguments in one request.
pub const MAX_ARGS: usize = 1 << 20;
/// Longest inline command line.
pub const MAX_INLINE: usize = 64 << 10;
/// Longest `*N` / `$N` header line, CRLF included.
const MAX_HEADER: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The client broke the protocol; it gets this message, then the connection closes.
    #[error("Protocol error: {0}")]
    Protocol(String),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

fn protocol<T>(msg: impl Into<String>) -> Result<T, RespError> {
    Err(RespError::Protocol(msg.into()))
}

/// The server side's request decoder: RESP arrays of bulk strings and inline
/// commands, into argument lists (replies are encoded by [`shape::encode`]).
#[derive(Debug, Default)]
pub struct RespCodec;

impl Decoder for RespCodec {
    type Item = Vec<Bytes>;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RespError> {
        loop {
            let Some(&first) = src.first() else {
                return Ok(None);
            };
            if first != b'*' {
                match decode_inline(src)? {
                    Some(args) if args.is_empty() => continue, // blank line: ignored, like Redis
                    other => return Ok(other),
                }
            }
            let Some(count) = request_is_complete(src)? else {
                return Ok(None);
            };
            if let Some(header_len) = count {
                // `*0`, `*-1`, `*-7`: an empty request, skipped as Redis skips it.
                let _ = src.split_to(header_len);
                continue;
            }
            return take_args(src).map(Some);
        }
    }
}

/// Takes the complete request at the front of `src` (its every header and
/// length checked by [`request_is_complete`]) as its arguments: slices of one
/// buffer, so an argument is never copied and a request costs one allocation.
fn take_args(src: &mut BytesMut) -> Result<Vec<Bytes>, RespError> {
    let walk = |src: &[u8]| -> Result<(usize, usize), RespError> {
        let Some((count, pos)) = header(src, 0, b'*')? else {
            return protocol("invalid request");
        };
        let mut end = pos;
        for _ in 0..count {
            let Some((len, body)) = header(src, end, b'$')? else {
                return protocol("invalid request");
            };
            end = body + len as usize + 2;
        }
        Ok((count as usize, end))
    };
    let (count, end) = walk(src)?;
    let request = src.split_to(end).freeze();
    let (_, mut pos) = header(&request, 0, b'*')?.expect("walked above");
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, body) = header(&request, pos, b'$')?.expect("walked above");
        let end = body + len as usize;
        args.push(request.slice(body..end));
        pos = end + 2;
    }
    Ok(args)
}

/// Reads a header line (`*3\r\n`) at `pos`; `Ok(None)` if it has not all arrived.
fn header(src: &[u8], pos: usize, kind: u8) -> Result<Option<(i64, usize)>, RespError> {
    let rest = &src[pos..];
    let Some(&got) = rest.first() else {
        return Ok(None);
    };
    if got != kind {
        return protocol(format!(
            "expected '{}', got '{}'",
            kind as char,
            got.escape_ascii()
        ));
    }
    let window = &rest[..rest.len().min(MAX_HEADER)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if rest.len() >= MAX_HEADER {
            protocol("length line too long")
        } else {
            Ok(None)
        };
    };
    let n = std::str::from_utf8(&rest[1..end])
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    match n {
        Some(n) => Ok(Some((n, pos + end + 2))),
        None if kind == b'*' => protocol("invalid multibulk length"),
        None => protocol("invalid bulk length"),
    }
}

/// Walks the declared lengths of the request at the front of `src`, refusing
/// any beyond the limits. `None` until the whole request has arrived; then
/// `Some(None)`, or `Some(Some(header length))` for an empty request (`*0`, `*-N`).
fn request_is_complete(src: &[u8]) -> Result<Option<Option<usize>>, RespError> {
    let Some((count, mut pos)) = header(src, 0, b'*')? else {
        return Ok(None);
    };
    if count > MAX_ARGS as i64 {
        return protocol("invalid multibulk length");
    }
    if count <= 0 {
        return Ok(Some(Some(pos)));
    }
    let mut total: usize = 0;
    for _ in 0..count.max(0) {
        let Some((len, body)) = header(src, pos, b'$')? else {
            return Ok(None);
        };
        if len < 0 || len as u64 > MAX_REQUEST as u64 {
            return protocol("invalid bulk length");
        }
        total += len as usize;
        if total > MAX_REQUEST {
            return protocol(format!("request larger than {MAX_REQUEST} bytes"));
        }
        pos = body + len as usize + 2;
        if pos > src.len() {
            return Ok(None);
        }
        if &src[pos - 2..pos] != b"\r\n" {
            return protocol("bulk string not terminated by CRLF");
        }
    }
    Ok(Some(None))
}

/// An inline command: one line, split as redis-cli splits it ([`inline::split`]).
fn decode_inline(src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RespError> {
    let Some(end) = src.iter().position(|&b| b == b'\n') else {
        return if src.len() > MAX_INLINE {
            protocol("too big inline request")
        } else {
            Ok(None)
        };
    };
    let line = src.split_to(end + 1);
    let text = &line[..end];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    match inline::split(text) {
        Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
        None => protocol("unbalanced quotes in request"),
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Answered by the connection itself; the replica is not involved.
    Local(BytesFrame),
    /// Needs the replica.
    Node(ClientRequest),
    /// Reply `+OK`, then close.
    Quit,
}

pub fn ok() -> BytesFrame {
    BytesFrame::SimpleString(Bytes::from_static(b"OK"))
}

pub fn error(msg: impl Into<String>) -> BytesFrame {
    BytesFrame::Error(msg.into().into())
}

fn bulk(b: &Bytes) -> BytesFrame {
    BytesFrame::BulkString(b.clone())
}

fn local_error(msg: impl Into<String>) -> Request {
    Request::Local(error(msg))
}

fn wrong_arity(name: &str) -> Request {
    local_error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

fn syntax_error() -> Request {
    local_error(gsmo_spec::kv::SYNTAX)
}

fn int_arg(b: &Bytes) -> Result<i64, Request> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| local_error("ERR value is not an integer or out of range"))
}

/// A count argument (LPOP key count, SPOP key count, ...): not negative.
fn count_arg(b: &Bytes) -> Result<usize, Request> {
    match int_arg(b)? {
        n if n < 0 => Err(local_error("ERR value is out of range, must be positive")),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

fn write(op: Op) -> Request {
    Request::Node(ClientRequest::Kv(Command::Write(op)))
}

fn read(r: ReadOp) -> Request {
    Request::Node(ClientRequest::Kv(Command::Read(r)))
}

fn key(b: &Bytes) -> Vec<u8> {
    b.to_vec()
}

fn keys(a: &[Bytes]) -> Vec<Vec<u8>> {
    a.iter().map(key).collect()
}

fn pairs(a: &[Bytes]) -> Vec<(Vec<u8>, Vec<u8>)> {
    a.chunks(2).map(|p| (key(&p[0]), key(&p[1]))).collect()
}

/// Which module parses a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Keys,
    Lists,
    Sets,
    Hashes,
    ZSets,
    Connection,
    Server,
}

/// What a command does, for COMMAND's flags and the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A replicated write: multicast, replied to on local delivery.
    Write,
    /// Answered from this replica's store.
    Read,
    /// Answered by the connection or the node, not the store.
    Admin,
}

/// A command gsmo answers: name, fewest and most arguments (`None`: no
/// limit), family, kind, key positions `(first, last, step)` as COMMAND
/// reports them (`last` -1: to the end), usage.
pub struct CommandSpec {
    pub name: &'static str,
    pub min: usize,
    pub max: Option<usize>,
    pub family: Family,
    pub kind: Kind,
    pub keys: (i64, i64, i64),
    pub usage: &'static str,
}

impl CommandSpec {
    /// Redis's arity: the exact argument count with the name, or minus the least.
    pub fn arity(&self) -> i64 {
        let least = self.min as i64 + 1;
        if self.max == Some(self.min) {
            least
        } else {
            -least
        }
    }
}

const fn cmd(
    name: &'static str,
    min: usize,
    max: Option<usize>,
    family: Family,
    kind: Kind,
    keys: (i64, i64, i64),
    usage: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        min,
        max,
        family,
        kind,
        keys,
        usage,
    }
}

use Family::{Connection, Hashes, Keys, Lists, Server, Sets, ZSets};
use Kind::{Admin, Read, Write};
const NONE: (i64, i64, i64) = (0, 0, 0);
const ONE: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);
const PAIRS: (i64, i64, i64) = (1, -1, 2);
const TWO: (i64, i64, i64) = (1, 2, 1);

/// Every command, for dispatch, arity errors, COMMAND and `--help`.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("GET", 1, Some(1), Keys, Read, ONE, "GET key"),
    cmd("SET", 2, Some(5), Keys, Write, ONE, "SET key value [NX|XX] [GET]   (EX/PX refused: no expiry)"),
    cmd("GETSET", 2, Some(2), Keys, Write, ONE, "GETSET key value"),
    cmd("GETDEL", 1, Some(1), Keys, Write, ONE, "GETDEL key"),
    cmd("SETNX", 2, Some(2), Keys, Write, ONE, "SETNX key value"),
    cmd("MSET", 2, None, Keys, Write, PAIRS, "MSET key value [key value ...]   one ordered write"),
    cmd("MSETNX", 2, None, Keys, Write, PAIRS, "MSETNX key value [key value ...]"),
    cmd("MGET", 1, None, Keys, Read, ALL, "MGET key [key ...]"),
    cmd("APPEND", 2, Some(2), Keys, Write, ONE, "APPEND key value"),
    cmd("STRLEN", 1, Some(1), Keys, Read, ONE, "STRLEN key"),
    cmd("INCR", 1, Some(1), Keys, Write, ONE, "INCR key"),
    cmd("DECR", 1, Some(1), Keys, Write, ONE, "DECR key"),
    cmd("INCRBY", 2, Some(2), Keys, Write, ONE, "INCRBY key delta"),
    cmd("DECRBY", 2, Some(2), Keys, Write, ONE, "DECRBY key delta"),
    cmd("DEL", 1, None, Keys, Write, ALL, "DEL key [key ...]"),
    cmd("UNLINK", 1, None, Keys, Write, ALL, "UNLINK key [key ...]"),
    cmd("EXISTS", 1, None, Keys, Read, ALL, "EXISTS key [key ...]"),
    cmd("TYPE", 1, Some(1), Keys, Read, ONE, "TYPE key"),
    cmd("RENAME", 2, Some(2), Keys, Write, TWO, "RENAME key newkey"),
    cmd("KEYS", 1, Some(1), Keys, Read, NONE, "KEYS pattern"),
    cmd("SCAN", 1, Some(5), Keys, Read, NONE, "SCAN cursor [MATCH pattern] [COUNT count]"),
    cmd("TTL", 1, Some(1), Keys, Read, ONE, "TTL key                       -1 (keys never expire) or -2"),
    cmd("PTTL", 1, Some(1), Keys, Read, ONE, "PTTL key"),
    cmd("EXPIRE", 2, Some(3), Keys, Write, ONE, "EXPIRE key seconds            refused: no expiry"),
    cmd("PEXPIRE", 2, Some(3), Keys, Write, ONE, "PEXPIRE key ms                refused: no expiry"),
    cmd("SETEX", 3, Some(3), Keys, Write, ONE, "SETEX key seconds value       refused: no expiry"),
    cmd("TRANSFER", 3, Some(3), Keys, Write, TWO, "TRANSFER from to amount       atomic, refuses to overdraw"),
    cmd("LPUSH", 2, None, Lists, Write, ONE, "LPUSH key element [element ...]"),
    cmd("RPUSH", 2, None, Lists, Write, ONE, "RPUSH key element [element ...]"),
    cmd("LPOP", 1, Some(2), Lists, Write, ONE, "LPOP key [count]"),
    cmd("RPOP", 1, Some(2), Lists, Write, ONE, "RPOP key [count]"),
    cmd("LRANGE", 3, Some(3), Lists, Read, ONE, "LRANGE key start stop"),
    cmd("LLEN", 1, Some(1), Lists, Read, ONE, "LLEN key"),
    cmd("SADD", 2, None, Sets, Write, ONE, "SADD key member [member ...]"),
    cmd("SPOP", 1, Some(2), Sets, Write, ONE, "SPOP key [count]              pops the smallest members"),
    cmd("SMEMBERS", 1, Some(1), Sets, Read, ONE, "SMEMBERS key"),
    cmd("SCARD", 1, Some(1), Sets, Read, ONE, "SCARD key"),
    cmd("SISMEMBER", 2, Some(2), Sets, Read, ONE, "SISMEMBER key member"),
    cmd("HSET", 3, None, Hashes, Write, ONE, "HSET key field value [field value ...]"),
    cmd("HGET", 2, Some(2), Hashes, Read, ONE, "HGET key field"),
    cmd("HGETALL", 1, Some(1), Hashes, Read, ONE, "HGETALL key"),
    cmd("HDEL", 2, None, Hashes, Write, ONE, "HDEL key field [field ...]"),
    cmd("HLEN", 1, Some(1), Hashes, Read, ONE, "HLEN key"),
    cmd("ZADD", 3, None, ZSets, Write, ONE, "ZADD key score member [score member ...]"),
    cmd("ZPOPMIN", 1, Some(2), ZSets, Write, ONE, "ZPOPMIN key [count]"),
    cmd("ZRANGE", 3, Some(4), ZSets, Read, ONE, "ZRANGE key start stop [WITHSCORES]"),
    cmd("ZCARD", 1, Some(1), ZSets, Read, ONE, "ZCARD key"),
    cmd("ZSCORE", 2, Some(2), ZSets, Read, ONE, "ZSCORE key member"),
    cmd("DBSIZE", 0, Some(0), Server, Read, NONE, "DBSIZE"),
    cmd("FLUSHALL", 0, Some(1), Server, Write, NONE, "FLUSHALL [SYNC|ASYNC]"),
    cmd("FLUSHDB", 0, Some(1), Server, Write, NONE, "FLUSHDB [SYNC|ASYNC]"),
    cmd("SNAPSHOT", 0, Some(0), Server, Admin, NONE, "SNAPSHOT                      start a Chandy-Lamport snapshot, reply its id"),
    cmd("INFO", 0, Some(1), Server, Admin, NONE, "INFO [section]                mode, peers, hold-back depth, counters, snapshots"),
    cmd("CONFIG", 2, None, Server, Admin, NONE, "CONFIG GET parameter ...      save / appendonly, for redis-benchmark"),
    cmd("GSMO.HISTORY", 0, Some(0), Server, Admin, NONE, "GSMO.HISTORY                  this node's `send nI#S` / `deliver nI#S` events, in order"),
    cmd("GSMO.DUMP", 0, Some(0), Server, Admin, NONE, "GSMO.DUMP                     every live key and value, in key order"),
    cmd("GSMO.DIGEST", 0, Some(0), Server, Admin, NONE, "GSMO.DIGEST                   `keys=K delivered=D digest=HEX` of the store"),
    cmd("PING", 0, Some(1), Connection, Admin, NONE, "PING [message]"),
    cmd("ECHO", 1, Some(1), Connection, Admin, NONE, "ECHO message"),
    cmd("HELLO", 0, None, Connection, Admin, NONE, "HELLO [2 [SETNAME name]]      RESP3 answers -NOPROTO"),
    cmd("CLIENT", 1, None, Connection, Admin, NONE, "CLIENT ID|SETNAME|GETNAME|SETINFO ..."),
    cmd("COMMAND", 0, None, Connection, Admin, NONE, "COMMAND [COUNT|INFO name ...|LIST|DOCS]"),
    cmd("SELECT", 1, Some(1), Connection, Admin, NONE, "SELECT 0"),
    cmd("TIME", 0, Some(0), Connection, Admin, NONE, "TIME"),
    cmd("QUIT", 0, Some(0), Connection, Admin, NONE, "QUIT"),
];

/// A command name in upper case. Every request's name is looked at by the
/// gate, the session, the command table and the shape: a short one (every
/// command's is) is upper-cased on the stack, not in a new allocation.
pub enum Upper {
    Short([u8; 24], u8),
    Long(Vec<u8>),
}

/// `name` in ASCII upper case.
pub fn upper(name: &[u8]) -> Upper {
    let mut buf = [0; 24];
    match buf.get_mut(..name.len()) {
        Some(short) => {
            short.copy_from_slice(name);
            short.make_ascii_uppercase();
            Upper::Short(buf, name.len() as u8)
        }
        None => Upper::Long(name.to_ascii_uppercase()),
    }
}

impl std::ops::Deref for Upper {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Upper::Short(buf, len) => &buf[..usize::from(*len)],
            Upper::Long(v) => v,
        }
    }
}

/// Parses one request (its first argument is the command name, any case).
pub fn parse_command(args: &[Bytes]) -> Request {
    let Some(name) = args.first() else {
        return local_error("ERR empty command");
    };
    let upper_name = upper(name);
    let upper = String::from_utf8_lossy(&upper_name);
    let a = &args[1..];
    let Some(spec) = COMMANDS.iter().find(|c| c.name == upper) else {
        // As Redis words it: each argument quoted and followed by a space,
        // until 128 characters are shown.
        let mut shown = String::new();
        for x in a {
            if shown.len() >= 128 {
                break;
            }
            let arg: String = String::from_utf8_lossy(x)
                .chars()
                .take(128 - shown.len())
                .collect();
            shown.push_str(&format!("'{arg}' "));
        }
        return local_error(format!(
            "ERR unknown command '{}', with args beginning with: {shown}",
            String::from_utf8_lossy(name),
        ));
    };
    if a.len() < spec.min || spec.max.is_some_and(|max| a.len() > max) {
        return wrong_arity(&upper);
    }
    let parsed = match spec.family {
        Family::Keys => keys::parse(&upper, a),
        Family::Lists => lists::parse(&upper, a),
        Family::Sets => sets::parse(&upper, a),
        Family::Hashes => hashes::parse(&upper, a),
        Family::ZSets => zsets::parse(&upper, a),
        Family::Connection => connection::parse(&upper, a),
        Family::Server => server::parse(&upper, a),
    };
    parsed.unwrap_or_else(|r| r)
}

/// The RESP2 form of a state-machine reply.
pub fn reply_frame(r: Reply) -> BytesFrame {
    match r {
        Reply::Ok => ok(),
        Reply::Int(i) => BytesFrame::Integer(i),
        Reply::Bulk(None) => BytesFrame::Null,
        Reply::Bulk(Some(v)) => BytesFrame::BulkString(v.into()),
        Reply::Error(e) => error(e),
        Reply::Status(s) => BytesFrame::SimpleString(s.into()),
        Reply::Array(items) => BytesFrame::Array(items.into_iter().map(reply_frame).collect()),
        Reply::NilArray => BytesFrame::Null,
    }
}

/// The RESP form of a replica's answer.
pub fn response_frame(r: Response) -> BytesFrame {
    match r {
        Response::Kv(reply) => reply_frame(reply),
        Response::Int(i) => BytesFrame::Integer(i),
        Response::Bulk(v) => BytesFrame::BulkString(v.into()),
        Response::Error(e) => error(e),
        Response::Array(items) => BytesFrame::Array(
            items
                .into_iter()
                .map(|v| BytesFrame::BulkString(v.into()))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> (Vec<Vec<String>>, Option<String>) {
        let mut codec = RespCodec;
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(args)) => out.push(
                    args.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                ),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn array_inline_and_pipelined_requests() {
        let (cmds, err) =
            decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a  b\n*1\r\n$4\r\nPI");
        assert_eq!(err, None);
        assert_eq!(
            cmds,
            vec![vec!["GET", "k"], vec!["PING"], vec!["set", "a", "b"]]
        );
    }

    #[test]
    fn hostile_headers_are_refused_without_waiting_for_the_body() {
        for (input, want) in [
            (&b"*99999999999\r\n"[..], "invalid multibulk length"),
            (b"*1\r\n$99999999999\r\n", "invalid bulk length"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\r\n:5\r\n", "expected '$', got ':'"),
            (b"*1\r\n$1\r\nab\r\n", "not terminated by CRLF"),
            (
                b"*1111111111111111111111111111111111111",
                "length line too long",
            ),
        ] {
            let (cmds, err) = decode_all(input);
            assert!(cmds.is_empty());
            let err = err.unwrap_or_default();
            assert!(err.contains(want), "{input:?}: {err}");
        }
        let long_inline = vec![b'a'; MAX_INLINE + 1];
        assert!(decode_all(&long_inline)
            .1
            .unwrap()
            .contains("too big inline"));
    }

    #[test]
    fn half_a_request_waits() {
        let (cmds, err) = decode_all(b"*2\r\n$3\r\nSET\r\n$3\r\nke");
        assert!(cmds.is_empty() && err.is_none());
    }

    fn parse(line: &str) -> Request {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        parse_command(&args)
    }

    fn local_error(r: Request) -> String {
        match r {
            Request::Local(BytesFrame::Error(e)) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn commands_map_to_spec_operations() {
        assert_eq!(
            parse("set k v"),
            write(Op::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec()
            })
        );
        assert_eq!(
            parse("MSET a 1 b 2"),
            write(Op::MSet {
                pairs: vec![
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"b".to_vec(), b"2".to_vec())
                ]
            })
        );
        assert_eq!(
            parse("decrby k 5"),
            write(Op::IncrBy {
                key: b"k".to_vec(),
                delta: -5
            })
        );
        assert_eq!(
            parse("TRANSFER a b 10"),
            write(Op::Transfer {
                from: b"a".to_vec(),
                to: b"b".to_vec(),
                amount: 10
            })
        );
        assert_eq!(parse("snapshot"), Request::Node(ClientRequest::Snapshot));
        assert_eq!(
            parse("set k v nx get"),
            write(Op::SetWith {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                cond: Some(gsmo_spec::kv::SetCond::Nx),
                get: true
            })
        );
        assert_eq!(parse("UNLINK a"), parse("DEL a"));
        assert_eq!(parse("FLUSHDB"), write(Op::FlushAll));
        assert_eq!(
            parse("LRANGE l 0 -1"),
            read(ReadOp::LRange {
                key: b"l".to_vec(),
                start: 0,
                stop: -1
            })
        );
        assert_eq!(
            parse("SCAN 17 match k* COUNT 5"),
            read(ReadOp::Scan {
                cursor: 17,
                pattern: Some(b"k*".to_vec()),
                count: 5
            })
        );
        assert_eq!(
            parse("INFO Server"),
            Request::Node(ClientRequest::Info(Some("server".into())))
        );
        assert_eq!(parse("QUIT"), Request::Quit);
    }

    #[test]
    fn errors_keep_redis_wording() {
        assert_eq!(
            local_error(parse("GET")),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            local_error(parse("MSET a 1 b")),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert!(local_error(parse("NOSUCH now")).starts_with("ERR unknown command 'NOSUCH'"));
        for (line, name) in [
            ("LPUSH l", "lpush"),
            ("HSET h f", "hset"),
            ("ZADD z 1", "zadd"),
            ("SADD s", "sadd"),
            ("LRANGE l 0", "lrange"),
            ("HGET h", "hget"),
            ("SPOP s 1 2", "spop"),
            ("MSETNX a", "msetnx"),
            ("RENAME a", "rename"),
            ("ECHO", "echo"),
        ] {
            assert_eq!(
                local_error(parse(line)),
                format!("ERR wrong number of arguments for '{name}' command"),
                "{line}"
            );
        }
        assert_eq!(local_error(parse("SET k v NX XX")), "ERR syntax error");
        assert_eq!(
            local_error(parse("ZADD z x m")),
            "ERR value is not a valid float"
        );
        assert_eq!(
            local_error(parse("LRANGE l a 1")),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(local_error(parse("SCAN x")), "ERR invalid cursor");
        assert_eq!(local_error(parse("SCAN 0 COUNT 0")), "ERR syntax error");
        assert_eq!(
            local_error(parse("LPOP l -1")),
            "ERR value is out of range, must be positive"
        );
        for refused in [
            "SET k v EX 10",
            "SET k v px 5",
            "EXPIRE k 10",
            "SETEX k 1 v",
        ] {
            assert!(
                local_error(parse(refused)).contains("does not expire keys"),
                "{refused}"
            );
        }
        assert_eq!(
            local_error(parse("INCRBY k x")),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn config_get_answers_what_redis_benchmark_asks() {
        let Request::Local(BytesFrame::Array(items)) = parse("CONFIG GET save") else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        let Request::Local(BytesFrame::Array(items)) = parse("config get *") else {
            panic!()
        };
        assert_eq!(items.len(), 4);
        assert_eq!(parse("CLIENT SETINFO LIB-NAME x"), Request::Local(ok()));
        assert_eq!(
            parse("COMMAND DOCS"),
            Request::Local(BytesFrame::Array(vec![]))
        );
    }

    #[test]
    fn command_lists_every_command_and_count_agrees() {
        let Request::Local(BytesFrame::Array(all)) = parse("COMMAND") else {
            panic!()
        };
        let Request::Local(BytesFrame::Integer(count)) = parse("COMMAND COUNT") else {
            panic!()
        };
        assert_eq!(all.len() as i64, count);
        let Request::Local(BytesFrame::Array(info)) = parse("COMMAND INFO get nosuch") else {
            panic!()
        };
        let BytesFrame::Array(get) = &info[0] else {
            panic!()
        };
        assert_eq!(get[0], BytesFrame::BulkString("get".into()));
        assert_eq!(get[1], BytesFrame::Integer(2));
        assert_eq!(info[1], BytesFrame::Null);
        assert_eq!(
            COMMANDS.iter().find(|c| c.name == "MSET").unwrap().arity(),
            -3
        );
    }

    #[test]
    fn connection_state_lives_in_the_session() {
        let args = |line: &str| -> Vec<Bytes> {
            line.split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        let mut a = Session::new();
        let b = Session::new();
        assert_ne!(a.id(), b.id());
        assert_eq!(
            a.parse(&args("CLIENT GETNAME")),
            Request::Local(BytesFrame::Null)
        );
        assert_eq!(a.parse(&args("client setname me")), Request::Local(ok()));
        assert_eq!(
            a.parse(&args("CLIENT GETNAME")),
            Request::Local(BytesFrame::BulkString("me".into()))
        );
        assert_eq!(
            a.parse(&args("CLIENT ID")),
            Request::Local(BytesFrame::Integer(a.id() as i64))
        );
        assert_eq!(
            local_error(a.parse(&args("HELLO 4"))),
            "NOPROTO unsupported protocol version"
        );
        assert!(!a.resp3(), "a refused HELLO switches nothing");
        let Request::Local(BytesFrame::Array(hello)) = a.parse(&args("HELLO 3")) else {
            panic!()
        };
        assert_eq!(hello[5], BytesFrame::Integer(3));
        assert!(a.resp3());
        let Request::Local(BytesFrame::Array(hello)) = a.parse(&args("HELLO")) else {
            panic!()
        };
        assert_eq!(hello[5], BytesFrame::Integer(3), "HELLO alone keeps RESP3");
        let Request::Local(BytesFrame::Array(hello)) = a.parse(&args("HELLO 2 SETNAME other"))
        else {
            panic!()
        };
        assert_eq!(hello[5], BytesFrame::Integer(2));
        assert!(!a.resp3());
        assert_eq!(
            a.parse(&args("CLIENT GETNAME")),
            Request::Local(BytesFrame::BulkString("other".into()))
        );
        assert!(local_error(a.parse(&args("CLIENT KILL x")))
            .starts_with("ERR unknown subcommand 'KILL'"));
    }

    #[test]
    fn empty_and_negative_counts_and_quotes_read_like_redis() {
        let (cmds, err) = decode_all(b"*-7\r\n*0\r\n*-1\r\nPING\r\nSET \"a b\" 'c d'\r\n");
        assert_eq!(err, None);
        assert_eq!(cmds, vec![vec!["PING"], vec!["SET", "a b", "c d"]]);
        let (cmds, err) = decode_all(b"SET a \"b\r\n");
        assert!(cmds.is_empty());
        assert_eq!(err.unwrap(), "Protocol error: unbalanced quotes in request");
    }

    #[test]
    fn info_sections_pick_by_header() {
        let info = "# Server\r\na:1\r\n\r\n# Cluster\r\nb:2\r\n";
        assert_eq!(
            server::info_sections(info, Some("cluster")),
            "# Cluster\r\nb:2\r\n"
        );
        assert_eq!(server::info_sections(info, Some("all")), info);
        assert_eq!(server::info_sections(info, Some("nosuch")), "");
    }

    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(256))]

        #[test]
        fn random_bytes_give_commands_or_a_protocol_error(input in vec(any::<u8>(), 0..600)) {
            let mut codec = RespCodec;
            let mut buf = BytesMut::from(&input[..]);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(args)) => { let _ = parse_command(&args); }
                    Ok(None) => break,
                    Err(RespError::Protocol(msg)) => { prop_assert!(!msg.is_empty()); break }
                    Err(e) => prop_assert!(false, "not a protocol error: {e}"),
                }
            }
        }

        #[test]
        fn mutated_pipelines_never_panic(
            flips in vec((any::<usize>(), 1u8..), 1..6),
            cut in any::<usize>(),
        ) {
            let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\nINCRBY k 5\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec();
            for (i, x) in flips {
                let n = input.len();
                input[i % n] ^= x;
            }
            input.truncate(cut % (input.len() + 1));
            let (cmds, _err) = decode_all(&input);
            for c in cmds {
                let args: Vec<Bytes> = c.into_iter().map(Bytes::from).collect();
                let _ = parse_command(&args);
            }
        }

        #[test]
        fn any_arguments_parse_to_a_request_or_an_error(args in vec(vec(any::<u8>(), 0..12), 0..6)) {
            let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            let _ = parse_command(&args);
        }
    }
}
