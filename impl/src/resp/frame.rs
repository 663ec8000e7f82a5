//! Request framing: RESP arrays of bulk strings and inline commands, cut into
//! argument lists.
//!
//! [`RespCodec`] walks the declared lengths in a request's headers against
//! hard limits, so a hostile `*999999999` or `$999999999` is refused at once
//! (like Redis: `-ERR Protocol error`, then the connection closes) instead of
//! buffering towards it, and the same walk cuts the complete request into
//! argument slices of one buffer (no copy and no frame tree per request).
//! Inline commands (`PING\r\n`, as typed into telnet) are accepted too, quoted
//! as redis-cli quotes ([`super::inline`]).

use super::inline;
use bytes::{Bytes, BytesMut};
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
/// commands, into argument lists (replies are encoded by [`super::shape::encode`]).
#[derive(Debug, Default)]
pub struct RespCodec {
    /// Where each argument of the request being framed lies in the buffer,
    /// found by the one walk that also checks it; reused between requests.
    spans: Vec<(usize, usize)>,
    /// Where the walk of a request that has partly arrived stopped. The next
    /// read resumes there: walking from the start on every read cost a request
    /// of a million arguments, arriving in small reads, quadratic time.
    resume: Option<Resume>,
    /// Header lines read, to show the walk is linear.
    #[cfg(test)]
    headers_read: usize,
}

/// A walk stopped at the header of the next argument, `left` arguments and
/// `pos` bytes into the request, its arguments so far `total` bytes long.
#[derive(Clone, Copy, Debug)]
struct Resume {
    left: i64,
    pos: usize,
    total: usize,
}

/// Spans kept between requests; a request with more arguments gives its
/// (up to 16 MiB of) spans back instead of holding them for the connection's life.
const SPANS_KEPT: usize = 1024;

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
            match self.walk(src)? {
                Walked::Partial => return Ok(None),
                // `*0`, `*-1`, `*-7`: an empty request, skipped as Redis skips it.
                Walked::Empty(header_len) => {
                    let _ = src.split_to(header_len);
                }
                Walked::Whole(end) => {
                    // One buffer for the request; every argument is a slice of it.
                    let request = src.split_to(end).freeze();
                    let args = self
                        .spans
                        .iter()
                        .map(|&(a, b)| request.slice(a..b))
                        .collect();
                    if self.spans.capacity() > SPANS_KEPT {
                        self.spans = Vec::new();
                    }
                    return Ok(Some(args));
                }
            }
        }
    }
}

impl RespCodec {
    /// Walks the declared lengths of the request at the front of `src` once,
    /// refusing any beyond the limits (so a hostile `*999999999` or
    /// `$999999999` is refused before anything is buffered towards it), and
    /// notes where each argument lies in `spans`. A request that has not all
    /// arrived leaves a [`Resume`]: until it is whole, `src` only grows at its
    /// end, so the positions walked stay valid.
    fn walk(&mut self, src: &[u8]) -> Result<Walked, RespError> {
        let Resume {
            mut left,
            mut pos,
            mut total,
        } = match self.resume.take() {
            Some(resume) => resume,
            None => {
                self.spans.clear();
                let Some((count, pos)) = self.header(src, 0, b'*')? else {
                    return Ok(Walked::Partial);
                };
                if count > MAX_ARGS as i64 {
                    return protocol("invalid multibulk length");
                }
                if count <= 0 {
                    return Ok(Walked::Empty(pos));
                }
                Resume {
                    left: count,
                    pos,
                    total: 0,
                }
            }
        };
        while left > 0 {
            let stop = Resume { left, pos, total };
            let Some((len, body)) = self.header(src, pos, b'$')? else {
                self.resume = Some(stop);
                return Ok(Walked::Partial);
            };
            if len < 0 || len as u64 > MAX_REQUEST as u64 {
                return protocol("invalid bulk length");
            }
            if total + len as usize > MAX_REQUEST {
                return protocol(format!("request larger than {MAX_REQUEST} bytes"));
            }
            let end = body + len as usize + 2;
            if end > src.len() {
                // The header is read again with its body: at most 32 bytes.
                self.resume = Some(stop);
                return Ok(Walked::Partial);
            }
            if &src[end - 2..end] != b"\r\n" {
                return protocol("bulk string not terminated by CRLF");
            }
            self.spans.push((body, end - 2));
            total += len as usize;
            pos = end;
            left -= 1;
        }
        Ok(Walked::Whole(pos))
    }

    fn header(
        &mut self,
        src: &[u8],
        pos: usize,
        kind: u8,
    ) -> Result<Option<(i64, usize)>, RespError> {
        #[cfg(test)]
        {
            self.headers_read += 1;
        }
        header(src, pos, kind)
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

/// How far the request at the front of the buffer has arrived.
#[derive(Debug, PartialEq, Eq)]
enum Walked {
    /// Not all of it yet.
    Partial,
    /// `*0` or `*-N`: nothing to run; the header's length.
    Empty(usize),
    /// All of it, this many bytes; `spans` holds its arguments.
    Whole(usize),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::parse_command;

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
            (b"*1\r\n$x\r\n", "invalid bulk length"),
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
        let at_the_limit = vec![b'a'; MAX_INLINE];
        assert_eq!(
            decode_all(&at_the_limit),
            (vec![], None),
            "waits for its end"
        );
        let long_inline = vec![b'a'; MAX_INLINE + 1];
        assert!(decode_all(&long_inline)
            .1
            .unwrap()
            .contains("too big inline"));
    }

    /// The limits are exact: at a limit a request is waited for, one past it
    /// is refused, for the argument count, one argument's length and all of
    /// them together.
    #[test]
    fn the_limits_take_a_request_at_them_and_refuse_one_past() {
        let at = |header: String| {
            let (cmds, err) = decode_all(header.as_bytes());
            assert!(cmds.is_empty());
            err
        };
        assert_eq!(at(format!("*{MAX_ARGS}\r\n")), None);
        let err = at(format!("*{}\r\n", MAX_ARGS + 1)).unwrap_or_default();
        assert!(err.contains("invalid multibulk length"), "{err}");
        assert_eq!(at(format!("*1\r\n${MAX_REQUEST}\r\n")), None);
        let err = at(format!("*1\r\n${}\r\n", MAX_REQUEST + 1)).unwrap_or_default();
        assert!(err.contains("invalid bulk length"), "{err}");
        // Two halves fill the request exactly; one byte more is refused at the
        // second header, before its body arrives.
        let half = MAX_REQUEST / 2;
        let two = |second: usize| {
            let mut req = format!("*2\r\n${half}\r\n").into_bytes();
            req.extend(std::iter::repeat_n(b'x', half));
            req.extend(format!("\r\n${second}\r\n").as_bytes());
            decode_all(&req)
        };
        assert_eq!(two(half), (vec![], None));
        let (cmds, err) = two(half + 1);
        assert!(cmds.is_empty());
        assert!(err.unwrap_or_default().contains("request larger than"));
    }

    #[test]
    fn half_a_request_waits() {
        let (cmds, err) = decode_all(b"*2\r\n$3\r\nSET\r\n$3\r\nke");
        assert!(cmds.is_empty() && err.is_none());
    }

    /// A pipeline arriving a byte at a time frames as it does whole: the walk
    /// resumes where each partial read left it and leaves no stale spans behind.
    #[test]
    fn a_pipeline_arriving_byte_by_byte_frames_as_whole() {
        let pipeline: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*0\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let whole = decode_all(pipeline);
        assert_eq!(
            whole,
            (
                vec![
                    vec!["SET".into(), "k".into(), String::new()],
                    vec!["PING".into()],
                    vec!["GET".into(), "k".into()]
                ],
                None
            )
        );
        let mut codec = RespCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in pipeline {
            buf.extend_from_slice(&[b]);
            while let Some(args) = codec.decode(&mut buf).unwrap() {
                got.push(
                    args.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>(),
                );
            }
        }
        assert_eq!(got, whole.0);
        assert!(buf.is_empty());
    }

    /// A request of many arguments does not leave its spans with the connection.
    #[test]
    fn a_wide_request_gives_its_spans_back() {
        let n = SPANS_KEPT * 4;
        let mut req = format!("*{}\r\n$3\r\nDEL\r\n", n + 1).into_bytes();
        for _ in 0..n {
            req.extend_from_slice(b"$1\r\nk\r\n");
        }
        let mut codec = RespCodec::default();
        let mut buf = BytesMut::from(&req[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), n + 1);
        assert!(
            codec.spans.capacity() <= SPANS_KEPT,
            "{}",
            codec.spans.capacity()
        );
    }

    /// A request of many arguments arriving in small reads is walked once:
    /// each read parses the headers that arrived plus at most one it must
    /// read again, where walking from the start parsed ~args²/2 in all.
    #[test]
    fn a_request_arriving_in_small_reads_is_walked_in_linear_time() {
        let n = 20_000;
        let mut req = format!("*{}\r\n$4\r\nMSET\r\n", 2 * n + 1).into_bytes();
        for i in 0..n {
            req.extend_from_slice(format!("$6\r\nk{i:05}\r\n$10\r\nvalue{i:05}\r\n").as_bytes());
        }
        req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let mut codec = RespCodec::default();
        let mut buf = BytesMut::new();
        let (mut reads, mut got) = (0, Vec::new());
        for chunk in req.chunks(7) {
            buf.extend_from_slice(chunk);
            reads += 1;
            while let Some(args) = codec.decode(&mut buf).unwrap() {
                got.push(args);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), 2 * n + 1);
        assert_eq!(&got[0][2 * n - 1][..], b"k19999");
        assert_eq!(&got[0][2 * n][..], b"value19999");
        assert_eq!(&got[1][0][..], b"PING");
        let headers = 2 * n + 1 + 1 + 2;
        assert!(
            (headers..=headers + reads).contains(&codec.headers_read),
            "{} header reads for {headers} headers in {reads} reads",
            codec.headers_read
        );
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

    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(256))]

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
    }
}
