//! Server commands: DBSIZE, FLUSHALL / FLUSHDB, SNAPSHOT, INFO \[section\],
//! CONFIG GET / RESETSTAT, and gsmo's own GSMO.HISTORY / GSMO.DUMP / GSMO.DIGEST.

use super::command::{local_error, read, syntax_error, write, Request};
use crate::event::ClientRequest;
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp};
use redis_protocol::resp2::types::BytesFrame;

pub(super) fn parse(name: &str, a: &[Bytes]) -> Result<Request, Request> {
    Ok(match name {
        "DBSIZE" => read(ReadOp::DbSize),
        "FLUSHALL" | "FLUSHDB" => match a.first().map(|m| m.to_ascii_uppercase()) {
            None => write(Op::FlushAll),
            Some(m) if m == b"SYNC" || m == b"ASYNC" => write(Op::FlushAll),
            Some(_) => return Err(syntax_error()),
        },
        "SNAPSHOT" => Request::Node(ClientRequest::Snapshot),
        "INFO" => Request::Node(ClientRequest::Info(
            a.first()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()),
        )),
        "CONFIG" => config(a),
        "GSMO.HISTORY" => Request::Node(ClientRequest::History),
        "GSMO.DUMP" => Request::Node(ClientRequest::Dump),
        "GSMO.DIGEST" => Request::Node(ClientRequest::Digest),
        _ => unreachable!("{name} is not a server command"),
    })
}

/// The sections of an INFO text (`# Name` headers) that `section` asks for:
/// all of them for none, `all`, `everything` or `default`; none for an unknown one.
pub fn info_sections(info: &str, section: Option<&str>) -> String {
    let want = match section {
        None | Some("all" | "everything" | "default") => return info.to_string(),
        Some(s) => s,
    };
    let mut out = String::new();
    for block in info.split("\r\n\r\n") {
        let title = block
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .unwrap_or("");
        if title.eq_ignore_ascii_case(want) {
            out.push_str(block.trim_end());
            out.push_str("\r\n");
        }
    }
    out
}

/// `CONFIG GET`: just enough for `redis-benchmark` to see persistence is off.
/// `CONFIG RESETSTAT`: empties the write latency and zeroes the event-loop
/// counts INFO reports (gsmo's only statistics that are not protocol
/// counters), so a benchmark reads one run's.
fn config(a: &[Bytes]) -> Request {
    if a[0].eq_ignore_ascii_case(b"RESETSTAT") && a.len() == 1 {
        return Request::Node(ClientRequest::ResetStat);
    }
    if !a[0].eq_ignore_ascii_case(b"GET") || a.len() < 2 {
        return local_error(
            "ERR gsmo supports CONFIG GET parameter ... (save, appendonly) and CONFIG RESETSTAT",
        );
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

#[cfg(test)]
mod tests {
    use super::super::command::testing::parse;
    use super::*;

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
    }

    #[test]
    fn config_resetstat_goes_to_the_node_and_anything_else_is_refused() {
        assert!(matches!(
            parse("config resetstat"),
            Request::Node(ClientRequest::ResetStat)
        ));
        for bad in ["CONFIG SET save x", "CONFIG GET", "CONFIG RESETSTAT now"] {
            let Request::Local(BytesFrame::Error(e)) = parse(bad) else {
                panic!("{bad} was not refused")
            };
            assert!(e.contains("CONFIG RESETSTAT"), "{bad}: {e}");
        }
    }

    #[test]
    fn flush_takes_sync_or_async_in_any_case_and_nothing_else() {
        for line in [
            "FLUSHALL",
            "FLUSHALL SYNC",
            "flushall async",
            "FLUSHDB Async",
        ] {
            assert_eq!(parse(line), write(Op::FlushAll), "{line}");
        }
        for line in ["FLUSHALL NOW", "FLUSHDB SYNCX", "FLUSHALL ASYN"] {
            let Request::Local(BytesFrame::Error(e)) = parse(line) else {
                panic!("{line} was not refused")
            };
            assert_eq!(e, "ERR syntax error", "{line}");
        }
    }

    #[test]
    fn gsmo_commands_go_to_the_node() {
        for (line, want) in [
            ("GSMO.HISTORY", ClientRequest::History),
            ("gsmo.dump", ClientRequest::Dump),
            ("Gsmo.Digest", ClientRequest::Digest),
            ("SNAPSHOT", ClientRequest::Snapshot),
            ("INFO", ClientRequest::Info(None)),
        ] {
            assert_eq!(parse(line), Request::Node(want), "{line}");
        }
    }

    #[test]
    fn info_sections_pick_by_header() {
        let info = "# Server\r\na:1\r\n\r\n# Cluster\r\nb:2\r\n";
        assert_eq!(info_sections(info, Some("cluster")), "# Cluster\r\nb:2\r\n");
        assert_eq!(info_sections(info, Some("all")), info);
        assert_eq!(info_sections(info, Some("nosuch")), "");
    }
}
