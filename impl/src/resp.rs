//! The Redis front door: RESP2 framing and the command table.
//!
//! Frames are decoded and encoded by the `redis-protocol` crate. Before a
//! request is handed to it, [`RespCodec`] checks the declared lengths in its
//! headers against hard limits, so a hostile `*999999999` or `$999999999` is
//! refused at once (like Redis: `-ERR Protocol error`, then the connection
//! closes) instead of buffering towards it. Inline commands (`PING\r\n`, as
//! typed into telnet) are accepted too.
//!
//! [`parse_command`] turns a request into either a reply the connection can give
//! by itself (PING, CONFIG GET, ...) or a [`ClientRequest`] for the replica.

use crate::event::{ClientRequest, Response};
use bytes::{Bytes, BytesMut};
use gsmo_spec::kv::{Op, Reply};
use gsmo_spec::node::Command;
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use tokio_util::codec::{Decoder, Encoder};

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

/// RESP2 codec for the server side: decodes requests into argument lists,
/// encodes reply frames.
#[derive(Debug, Default)]
pub struct RespCodec {
    encoder: Resp2,
}

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
            if !request_is_complete(src)? {
                return Ok(None);
            }
            let frame = match decode_bytes_mut(src) {
                Ok(Some((frame, _, _))) => frame,
                Ok(None) => return protocol("request ended early"),
                Err(e) => return protocol(e.to_string()),
            };
            match frame {
                BytesFrame::Array(items) if items.is_empty() => continue,
                BytesFrame::Array(items) => {
                    return items
                        .into_iter()
                        .map(|f| match f {
                            BytesFrame::BulkString(b) => Ok(b),
                            _ => protocol("expected a bulk string"),
                        })
                        .collect::<Result<_, _>>()
                        .map(Some)
                }
                BytesFrame::Null => continue, // `*-1`: an empty request
                _ => return protocol("expected an array of bulk strings"),
            }
        }
    }
}

impl Encoder<BytesFrame> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, frame: BytesFrame, dst: &mut BytesMut) -> Result<(), RespError> {
        self.encoder
            .encode(frame, dst)
            .map_err(|e| RespError::Protocol(e.to_string()))
    }
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
/// any beyond the limits; true once the whole request has arrived.
fn request_is_complete(src: &[u8]) -> Result<bool, RespError> {
    let Some((count, mut pos)) = header(src, 0, b'*')? else {
        return Ok(false);
    };
    if count > MAX_ARGS as i64 {
        return protocol("invalid multibulk length");
    }
    let mut total: usize = 0;
    for _ in 0..count.max(0) {
        let Some((len, body)) = header(src, pos, b'$')? else {
            return Ok(false);
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
            return Ok(false);
        }
        if &src[pos - 2..pos] != b"\r\n" {
            return protocol("bulk string not terminated by CRLF");
        }
    }
    Ok(true)
}

/// An inline command: one line, arguments separated by spaces.
fn decode_inline(src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RespError> {
    let Some(end) = src.iter().position(|&b| b == b'\n') else {
        return if src.len() > MAX_INLINE {
            protocol("too big inline request")
        } else {
            Ok(None)
        };
    };
    let line = src.split_to(end + 1).freeze();
    let text = line.slice(..end);
    let text = text.strip_suffix(b"\r").unwrap_or(&text);
    Ok(Some(
        text.split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| line.slice_ref(w))
            .collect(),
    ))
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

fn wrong_arity(name: &str) -> Request {
    Request::Local(error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

fn int_arg(b: &Bytes) -> Result<i64, Request> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Request::Local(error("ERR value is not an integer or out of range")))
}

fn write(op: Op) -> Request {
    Request::Node(ClientRequest::Kv(Command::Write(op)))
}

/// A command gsmo answers: name, fewest and most arguments (`None`: no limit), usage.
pub struct CommandSpec {
    pub name: &'static str,
    pub min: usize,
    pub max: Option<usize>,
    pub usage: &'static str,
}

const fn cmd(
    name: &'static str,
    min: usize,
    max: Option<usize>,
    usage: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        min,
        max,
        usage,
    }
}

/// Every command, for dispatch, arity errors and `--help`.
pub const COMMANDS: &[CommandSpec] = &[
    cmd("PING", 0, Some(1), "PING [message]"),
    cmd("ECHO", 1, Some(1), "ECHO message"),
    cmd("GET", 1, Some(1), "GET key                      local read"),
    cmd(
        "SET",
        2,
        Some(2),
        "SET key value                ordered write",
    ),
    cmd("DEL", 1, None, "DEL key [key ...]            ordered write"),
    cmd(
        "INCR",
        1,
        Some(1),
        "INCR key                     ordered write",
    ),
    cmd(
        "DECR",
        1,
        Some(1),
        "DECR key                     ordered write",
    ),
    cmd(
        "INCRBY",
        2,
        Some(2),
        "INCRBY key delta             ordered write",
    ),
    cmd(
        "DECRBY",
        2,
        Some(2),
        "DECRBY key delta             ordered write",
    ),
    cmd(
        "MSET",
        2,
        None,
        "MSET key value [key value ...]  one ordered write",
    ),
    cmd(
        "TRANSFER",
        3,
        Some(3),
        "TRANSFER from to amount      atomic, refuses to overdraw",
    ),
    cmd(
        "SNAPSHOT",
        0,
        Some(0),
        "SNAPSHOT                     start a Chandy-Lamport snapshot, reply its id",
    ),
    cmd(
        "INFO",
        0,
        Some(1),
        "INFO [section]               mode, peers, hold-back depth, counters, snapshots",
    ),
    cmd("DBSIZE", 0, Some(0), "DBSIZE"),
    cmd(
        "CONFIG",
        2,
        None,
        "CONFIG GET parameter ...     save / appendonly, for redis-benchmark",
    ),
    cmd("CLIENT", 1, None, "CLIENT SETINFO|SETNAME ...   accepted"),
    cmd(
        "COMMAND",
        0,
        None,
        "COMMAND [DOCS|COUNT]         empty answers, for redis-cli",
    ),
    cmd("SELECT", 1, Some(1), "SELECT 0"),
    cmd("QUIT", 0, Some(0), "QUIT"),
    cmd(
        "GSMO.HISTORY",
        0,
        Some(0),
        "GSMO.HISTORY                 this node's `send nI#S` / `deliver nI#S` events, in order",
    ),
    cmd(
        "GSMO.DUMP",
        0,
        Some(0),
        "GSMO.DUMP                    every live key and value, in key order",
    ),
    cmd(
        "GSMO.DIGEST",
        0,
        Some(0),
        "GSMO.DIGEST                  `keys=K delivered=D digest=HEX` of the store",
    ),
];

/// Parses one request (its first argument is the command name, any case).
pub fn parse_command(args: &[Bytes]) -> Request {
    let Some(name) = args.first() else {
        return Request::Local(error("ERR empty command"));
    };
    let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
    let a = &args[1..];
    let Some(spec) = COMMANDS.iter().find(|c| c.name == upper) else {
        let shown: Vec<String> = a
            .iter()
            .take(3)
            .map(|x| format!("'{}'", String::from_utf8_lossy(x)))
            .collect();
        return Request::Local(error(format!(
            "ERR unknown command '{}', with args beginning with: {}",
            String::from_utf8_lossy(name),
            shown.join(" ")
        )));
    };
    if a.len() < spec.min || spec.max.is_some_and(|max| a.len() > max) {
        return wrong_arity(&upper);
    }
    let key = |i: usize| a[i].to_vec();
    let parsed = match upper.as_str() {
        "PING" => Request::Local(match a.first() {
            None => BytesFrame::SimpleString(Bytes::from_static(b"PONG")),
            Some(m) => bulk(m),
        }),
        "ECHO" => Request::Local(bulk(&a[0])),
        "GET" => Request::Node(ClientRequest::Kv(Command::Get { key: key(0) })),
        "SET" => write(Op::Set {
            key: key(0),
            value: key(1),
        }),
        "DEL" => write(Op::Del {
            keys: a.iter().map(|k| k.to_vec()).collect(),
        }),
        "INCR" | "DECR" => write(Op::IncrBy {
            key: key(0),
            delta: if upper == "INCR" { 1 } else { -1 },
        }),
        "INCRBY" | "DECRBY" => match int_arg(&a[1]) {
            Err(r) => r,
            Ok(d) if upper == "INCRBY" => write(Op::IncrBy {
                key: key(0),
                delta: d,
            }),
            Ok(d) => match d.checked_neg() {
                Some(delta) => write(Op::IncrBy { key: key(0), delta }),
                None => Request::Local(error("ERR decrement would overflow")),
            },
        },
        "MSET" if a.len() % 2 != 0 => wrong_arity("MSET"),
        "MSET" => write(Op::MSet {
            pairs: a
                .chunks(2)
                .map(|p| (p[0].to_vec(), p[1].to_vec()))
                .collect(),
        }),
        "TRANSFER" => match int_arg(&a[2]) {
            Err(r) => r,
            Ok(amount) => write(Op::Transfer {
                from: key(0),
                to: key(1),
                amount,
            }),
        },
        "SNAPSHOT" => Request::Node(ClientRequest::Snapshot),
        "INFO" => Request::Node(ClientRequest::Info),
        "DBSIZE" => Request::Node(ClientRequest::DbSize),
        "CONFIG" => config(a),
        "CLIENT" => client(a),
        "COMMAND" => Request::Local(match a.first().map(|s| s.to_ascii_uppercase()) {
            Some(s) if s == b"COUNT" => BytesFrame::Integer(COMMANDS.len() as i64),
            _ => BytesFrame::Array(Vec::new()),
        }),
        "SELECT" if &a[0][..] == b"0" => Request::Local(ok()),
        "SELECT" => Request::Local(error(
            "ERR DB index is out of range (gsmo has one database)",
        )),
        "QUIT" => Request::Quit,
        "GSMO.HISTORY" => Request::Node(ClientRequest::History),
        "GSMO.DUMP" => Request::Node(ClientRequest::Dump),
        "GSMO.DIGEST" => Request::Node(ClientRequest::Digest),
        _ => unreachable!("{upper} is in COMMANDS"),
    };
    parsed
}

/// `CONFIG GET`: just enough for `redis-benchmark` to see persistence is off.
fn config(a: &[Bytes]) -> Request {
    if !a[0].eq_ignore_ascii_case(b"GET") {
        return Request::Local(error(
            "ERR gsmo supports only CONFIG GET (parameters: save, appendonly)",
        ));
    }
    const PARAMS: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];
    let mut out = Vec::new();
    for (name, value) in PARAMS {
        if a[1..].iter().any(|p| glob_match(p, name.as_bytes())) {
            out.push(BytesFrame::BulkString(Bytes::from_static(name.as_bytes())));
            out.push(BytesFrame::BulkString(Bytes::from_static(value.as_bytes())));
        }
    }
    Request::Local(BytesFrame::Array(out))
}

/// A parameter name or the `*` wildcard, as `CONFIG GET` takes them.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    pattern == b"*" || pattern.eq_ignore_ascii_case(name)
}

/// `CLIENT SETINFO` / `SETNAME` are what client libraries send on connect: accept them.
fn client(a: &[Bytes]) -> Request {
    let sub = a[0].to_ascii_uppercase();
    match (sub.as_slice(), a.len() - 1) {
        (b"SETINFO", 2) | (b"SETNAME", 1) => Request::Local(ok()),
        (b"GETNAME", 0) => Request::Local(BytesFrame::Null),
        _ => Request::Local(error(format!(
            "ERR unknown subcommand '{}' for CLIENT (gsmo accepts SETINFO, SETNAME, GETNAME)",
            String::from_utf8_lossy(&a[0])
        ))),
    }
}

/// The RESP form of a replica's answer.
pub fn response_frame(r: Response) -> BytesFrame {
    match r {
        Response::Kv(Reply::Ok) => ok(),
        Response::Kv(Reply::Int(i)) | Response::Int(i) => BytesFrame::Integer(i),
        Response::Kv(Reply::Bulk(None)) => BytesFrame::Null,
        Response::Kv(Reply::Bulk(Some(v))) | Response::Bulk(v) => BytesFrame::BulkString(v.into()),
        Response::Kv(Reply::Error(e)) | Response::Error(e) => error(e),
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
        let mut codec = RespCodec::default();
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
        assert!(local_error(parse("FLUSHALL now")).starts_with("ERR unknown command 'FLUSHALL'"));
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

    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_give_commands_or_a_protocol_error(input in vec(any::<u8>(), 0..600)) {
            let mut codec = RespCodec::default();
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
