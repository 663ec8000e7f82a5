//! Connection commands: PING, ECHO, HELLO, CLIENT, COMMAND, SELECT, TIME,
//! QUIT. Per-connection state (the client id, its name) lives in [`Session`];
//! everything else about a connection is in `crate::client`.

use super::command::{local_error, lookup, CommandSpec, Kind, Request, COMMANDS};
use super::reply::{bulk, error, ok};
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use std::sync::atomic::{AtomicU64, Ordering};

/// The Redis version whose command behaviour gsmo follows (HELLO reports it).
pub const REDIS_VERSION: &str = "7.0.0";

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// One client connection's state.
#[derive(Debug)]
pub struct Session {
    id: u64,
    name: Option<Bytes>,
    /// Whether the client switched to RESP3 with `HELLO 3`.
    resp3: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A new connection, with the next client id.
    pub fn new() -> Self {
        Session {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            name: None,
            resp3: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether replies go out in RESP3 (see [`super::shape`]).
    pub fn resp3(&self) -> bool {
        self.resp3
    }

    /// CLIENT ID | SETNAME name | GETNAME | SETINFO attr value.
    fn client(&mut self, a: &[Bytes]) -> Request {
        let sub = a[0].to_ascii_uppercase();
        Request::Local(match (sub.as_slice(), a.len() - 1) {
            (b"ID", 0) => BytesFrame::Integer(self.id as i64),
            (b"SETNAME", 1) => match set_name(&a[1]) {
                Ok(name) => {
                    self.name = name;
                    ok()
                }
                Err(e) => e,
            },
            (b"GETNAME", 0) => self.name.as_ref().map_or(BytesFrame::Null, bulk),
            (b"SETINFO", 2) => ok(),
            (b"ID" | b"SETNAME" | b"GETNAME" | b"SETINFO", _) => error(format!(
                "ERR wrong number of arguments for 'client|{}' command",
                String::from_utf8_lossy(&a[0]).to_ascii_lowercase()
            )),
            _ => error(format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&a[0])
            )),
        })
    }

    /// HELLO [protover [SETNAME name]]: switches the connection to RESP2 or
    /// RESP3 (any other version gets -NOPROTO) and answers, in the protocol
    /// now in force, with the server's properties.
    fn hello(&mut self, a: &[Bytes]) -> Request {
        let mut resp3 = self.resp3;
        if let Some(v) = a.first() {
            match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                None => {
                    return local_error("ERR Protocol version is not an integer or out of range")
                }
                Some(2) => resp3 = false,
                Some(3) => resp3 = true,
                Some(_) => return local_error("NOPROTO unsupported protocol version"),
            }
        }
        let mut opts = a.iter().skip(1);
        while let Some(opt) = opts.next() {
            match (opt.to_ascii_uppercase().as_slice(), opts.next()) {
                (b"SETNAME", Some(name)) => match set_name(name) {
                    Ok(name) => self.name = name,
                    Err(e) => return Request::Local(e),
                },
                (b"AUTH", _) => {
                    return local_error("ERR gsmo has no users: HELLO AUTH is not supported")
                }
                _ => {
                    return local_error(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(opt)
                    ))
                }
            }
        }
        // Only a HELLO that is answered switches (an error above leaves it).
        self.resp3 = resp3;
        let s = |t: &'static str| BytesFrame::BulkString(Bytes::from_static(t.as_bytes()));
        Request::Local(BytesFrame::Array(vec![
            s("server"),
            s("redis"),
            s("version"),
            s(REDIS_VERSION),
            s("proto"),
            BytesFrame::Integer(if resp3 { 3 } else { 2 }),
            s("id"),
            BytesFrame::Integer(self.id as i64),
            s("mode"),
            s("standalone"),
            s("role"),
            s("master"),
            s("modules"),
            BytesFrame::Array(Vec::new()),
        ]))
    }
}

/// A client name as Redis allows it (empty clears it).
fn set_name(name: &Bytes) -> Result<Option<Bytes>, BytesFrame> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok((!name.is_empty()).then(|| name.clone()))
}

pub(super) fn parse(name: &str, a: &[Bytes], session: &mut Session) -> Result<Request, Request> {
    Ok(match name {
        "PING" => Request::Local(match a.first() {
            None => BytesFrame::SimpleString(Bytes::from_static(b"PONG")),
            Some(m) => bulk(m),
        }),
        "ECHO" => Request::Local(bulk(&a[0])),
        "CLIENT" => session.client(a),
        "HELLO" => session.hello(a),
        "COMMAND" => Request::Local(command(a)),
        "SELECT" if &a[0][..] == b"0" => Request::Local(ok()),
        "SELECT" => local_error("ERR DB index is out of range (gsmo has one database)"),
        "TIME" => Request::Local(time()),
        "QUIT" => Request::Quit,
        _ => unreachable!("{name} is not a connection command"),
    })
}

/// COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND LIST, COMMAND DOCS
/// (no docs: an empty map, which redis-cli takes as "no hints").
fn command(a: &[Bytes]) -> BytesFrame {
    let sub = a.first().map(|s| s.to_ascii_uppercase());
    match sub.as_deref() {
        None => BytesFrame::Array(COMMANDS.iter().map(entry).collect()),
        Some(b"COUNT") => BytesFrame::Integer(COMMANDS.len() as i64),
        Some(b"LIST") => BytesFrame::Array(
            COMMANDS
                .iter()
                .map(|c| BytesFrame::BulkString(c.name.to_ascii_lowercase().into()))
                .collect(),
        ),
        Some(b"INFO") => BytesFrame::Array(
            a[1..]
                .iter()
                .map(|n| lookup(n).map_or(BytesFrame::Null, entry))
                .collect(),
        ),
        Some(b"DOCS") => BytesFrame::Array(Vec::new()),
        Some(_) => error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&a[0])
        )),
    }
}

/// One COMMAND entry, in Redis 7's ten-field form.
fn entry(c: &CommandSpec) -> BytesFrame {
    let status = |s: &'static str| BytesFrame::SimpleString(Bytes::from_static(s.as_bytes()));
    let flags = match c.kind {
        Kind::Write => vec![status("write")],
        Kind::Read => vec![status("readonly")],
        Kind::Admin => vec![status("fast")],
    };
    let (first, last, step) = c.keys;
    BytesFrame::Array(vec![
        BytesFrame::BulkString(c.name.to_ascii_lowercase().into()),
        BytesFrame::Integer(c.arity()),
        BytesFrame::Array(flags),
        BytesFrame::Integer(first),
        BytesFrame::Integer(last),
        BytesFrame::Integer(step),
        BytesFrame::Array(Vec::new()),
        BytesFrame::Array(Vec::new()),
        BytesFrame::Array(Vec::new()),
        BytesFrame::Array(Vec::new()),
    ])
}

/// TIME: this node's clock, `[seconds, microseconds]`.
fn time() -> BytesFrame {
    let now = std::time::Duration::from_millis(crate::net::unix_ms());
    BytesFrame::Array(vec![
        BytesFrame::BulkString(now.as_secs().to_string().into()),
        BytesFrame::BulkString(now.subsec_micros().to_string().into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::command::testing::{args, error_text, parse};
    use super::super::command::Call;
    use super::*;

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
        assert_eq!(lookup(b"MSET").unwrap().arity(), -3);
        assert_eq!(
            parse("COMMAND DOCS"),
            Request::Local(BytesFrame::Array(vec![]))
        );
        assert_eq!(parse("CLIENT SETINFO LIB-NAME x"), Request::Local(ok()));
    }

    /// COMMAND INFO's arity, flag and key positions, which cluster-aware
    /// clients read to find a request's keys (Redis reports the same numbers).
    #[test]
    fn command_info_gives_each_command_s_keys() {
        let Request::Local(BytesFrame::Array(info)) =
            parse("COMMAND INFO get mget mset rename ping del")
        else {
            panic!()
        };
        let fields: Vec<(i64, &str, i64, i64, i64)> = info
            .iter()
            .map(|e| {
                let BytesFrame::Array(e) = e else { panic!() };
                let int = |i: usize| match e[i] {
                    BytesFrame::Integer(n) => n,
                    _ => panic!("field {i} of {e:?}"),
                };
                let BytesFrame::Array(flags) = &e[2] else {
                    panic!()
                };
                let BytesFrame::SimpleString(flag) = &flags[0] else {
                    panic!()
                };
                let flag = std::str::from_utf8(flag).unwrap();
                (int(1), flag, int(3), int(4), int(5))
            })
            .collect();
        assert_eq!(
            fields,
            [
                (2, "readonly", 1, 1, 1),
                (-2, "readonly", 1, -1, 1),
                (-3, "write", 1, -1, 2),
                (3, "write", 1, 2, 1),
                (-1, "fast", 0, 0, 0),
                (-2, "write", 1, -1, 1),
            ]
        );
    }

    /// gsmo has one database: Redis's other 15 are refused, not aliased to it
    /// (a client that SELECTs 1 to keep apart from another would share its keys).
    #[test]
    fn select_takes_database_0_only() {
        assert_eq!(parse("SELECT 0"), Request::Local(ok()));
        for line in ["SELECT 1", "SELECT 15", "SELECT 00", "SELECT x"] {
            assert_eq!(
                error_text(parse(line)),
                "ERR DB index is out of range (gsmo has one database)",
                "{line}"
            );
        }
    }

    /// HELLO's AUTH option names why it is refused, and switches nothing.
    #[test]
    fn hello_auth_is_refused_by_name() {
        let mut s = Session::new();
        for line in ["HELLO 3 AUTH default secret", "HELLO 3 auth default"] {
            assert_eq!(
                error_text(run(&mut s, line)),
                "ERR gsmo has no users: HELLO AUTH is not supported",
                "{line}"
            );
            assert!(!s.resp3(), "{line}: a refused HELLO stays in RESP2");
        }
        assert_eq!(
            error_text(run(&mut s, "HELLO 3 SETNAME")),
            "ERR Syntax error in HELLO option 'SETNAME'"
        );
        assert_eq!(
            error_text(run(&mut s, "HELLO 3 NOSUCH x")),
            "ERR Syntax error in HELLO option 'NOSUCH'"
        );
    }

    fn run(s: &mut Session, line: &str) -> Request {
        Call::new(&args(line)).parse(s)
    }

    #[test]
    fn connection_state_lives_in_the_session() {
        let mut a = Session::new();
        let b = Session::new();
        assert_ne!(a.id(), b.id());
        assert_eq!(
            run(&mut a, "CLIENT GETNAME"),
            Request::Local(BytesFrame::Null)
        );
        assert_eq!(run(&mut a, "client setname me"), Request::Local(ok()));
        assert_eq!(
            run(&mut a, "CLIENT GETNAME"),
            Request::Local(BytesFrame::BulkString("me".into()))
        );
        assert_eq!(
            run(&mut a, "CLIENT ID"),
            Request::Local(BytesFrame::Integer(a.id() as i64))
        );
        assert_eq!(
            error_text(run(&mut a, "HELLO 4")),
            "NOPROTO unsupported protocol version"
        );
        assert!(!a.resp3(), "a refused HELLO switches nothing");
        let Request::Local(BytesFrame::Array(hello)) = run(&mut a, "HELLO 3") else {
            panic!()
        };
        assert_eq!(hello[5], BytesFrame::Integer(3));
        assert!(a.resp3());
        let Request::Local(BytesFrame::Array(hello)) = run(&mut a, "hello") else {
            panic!()
        };
        assert_eq!(hello[5], BytesFrame::Integer(3), "HELLO alone keeps RESP3");
        let Request::Local(BytesFrame::Array(hello)) = run(&mut a, "HELLO 2 SETNAME other") else {
            panic!()
        };
        assert_eq!(hello[5], BytesFrame::Integer(2));
        assert!(!a.resp3());
        assert_eq!(
            run(&mut a, "CLIENT GETNAME"),
            Request::Local(BytesFrame::BulkString("other".into()))
        );
        assert!(
            error_text(run(&mut a, "CLIENT KILL x")).starts_with("ERR unknown subcommand 'KILL'")
        );
        assert!(
            error_text(run(&mut a, "CLIENT")).contains("wrong number of arguments for 'client'"),
            "CLIENT alone is the table's arity error"
        );
    }
}
