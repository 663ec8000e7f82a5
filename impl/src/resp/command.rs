//! The command table and dispatch: which commands gsmo answers, how a request's
//! command name is resolved (once, by [`Call::new`]), and how a request becomes
//! either a reply the connection gives by itself (PING, CONFIG GET, ...) or a
//! [`ClientRequest`] for the replica: writes become the spec's [`Op`]s
//! (`Command::Write`), reads its [`ReadOp`]s (`Command::Read`). The family
//! modules ([`super::keys`], ...) parse the arguments; semantics live in
//! `gsmo_spec::kv`.
//!
//! The gate, the parser (with the connection's [`Session`]) and the reply's
//! shape all need the command: [`Call`] carries the one lookup to all of
//! them. [`lookup`] packs the name, upper-cased, into one `u128` and finds it
//! through a perfect hash built at compile time: no allocation, one
//! multiplication and one comparison, and no hand-kept second list of the names.

use super::connection::{self, Session};
use super::reply::error;
use super::{hashes, keys, lists, server, sets, zsets};
use crate::event::ClientRequest;
use bytes::Bytes;
use gsmo_spec::kv::{Op, ReadOp};
use gsmo_spec::node::Command;
use redis_protocol::resp2::types::BytesFrame;

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

/// One request (command name first) with its command looked up in
/// [`COMMANDS`]: resolved once, then handed to the gate, the parser and the
/// reply's shape.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    spec: Option<&'static CommandSpec>,
    args: &'a [Bytes],
}

impl<'a> Call<'a> {
    pub fn new(args: &'a [Bytes]) -> Self {
        Call {
            spec: args.first().and_then(|name| lookup(name)),
            args,
        }
    }

    /// The command's name in upper case, as [`COMMANDS`] spells it; `None`
    /// for an empty request or a name not in [`COMMANDS`].
    pub fn name(&self) -> Option<&'static str> {
        self.spec.map(|c| c.name)
    }

    /// The whole request, command name first, as the client sent it.
    pub fn args(&self) -> &'a [Bytes] {
        self.args
    }

    /// Parses the request in the context of its connection's `session`
    /// (CLIENT and HELLO read and change it): the one path every request takes.
    pub fn parse(self, session: &mut Session) -> Request {
        let Some(name) = self.args.first() else {
            return local_error("ERR empty command");
        };
        let a = &self.args[1..];
        let Some(spec) = self.spec else {
            return unknown_command(name, a);
        };
        if a.len() < spec.min || spec.max.is_some_and(|max| a.len() > max) {
            return wrong_arity(spec.name);
        }
        let parsed = match spec.family {
            Family::Keys => keys::parse(spec.name, a),
            Family::Lists => lists::parse(spec.name, a),
            Family::Sets => sets::parse(spec.name, a),
            Family::Hashes => hashes::parse(spec.name, a),
            Family::ZSets => zsets::parse(spec.name, a),
            Family::Connection => connection::parse(spec.name, a, session),
            Family::Server => server::parse(spec.name, a),
        };
        parsed.unwrap_or_else(|r| r)
    }
}

/// Parses one request (its first argument is the command name, any case) on
/// a connection of its own, as a fresh client's first request.
pub fn parse_command(args: &[Bytes]) -> Request {
    Call::new(args).parse(&mut Session::new())
}

/// As Redis words it: each argument quoted and followed by a space, until 128
/// characters are shown.
fn unknown_command(name: &[u8], a: &[Bytes]) -> Request {
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
    local_error(format!(
        "ERR unknown command '{}', with args beginning with: {shown}",
        String::from_utf8_lossy(name),
    ))
}

/// The command named `name`, in any case; `None` if gsmo has no such command.
/// Allocation-free and branch-light, as it runs once per request: the name is
/// packed into one integer (`pack`), whose hash picks the one slot of
/// `TABLE` it can be in (a perfect hash, found at compile time).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > LONGEST {
        return None;
    }
    let key = pack(name);
    match TABLE.slots[slot(key, TABLE.multiplier)] {
        0 => None,
        at => {
            let at = usize::from(at - 1);
            (TABLE.keys[at] == key).then_some(&COMMANDS[at])
        }
    }
}

/// A name of at most 15 bytes as one integer: its bytes upper-cased,
/// big-endian, zero-padded, then its length (so `GET\0` is not `GET`). Two
/// names pack alike exactly when they are equal ignoring ASCII case.
const fn pack(name: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < name.len() {
        bytes[i] = name[i].to_ascii_uppercase();
        i += 1;
    }
    bytes[15] = name.len() as u8;
    u128::from_be_bytes(bytes)
}

/// The lookup table's size in bits: 1,024 slots for under 100 names, so a
/// multiplier that spreads them without collision turns up within a few tries.
const SLOT_BITS: u32 = 10;

/// Where a packed name goes in [`TABLE`] under multiplier `m`: the top bits of
/// a multiplicative hash of its two halves.
const fn slot(key: u128, m: u64) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64);
    (folded.wrapping_mul(m) >> (64 - SLOT_BITS)) as usize
}

/// The perfect hash over [`COMMANDS`]' names.
struct Table {
    /// `COMMANDS` index + 1 of the name hashed to each slot; 0: none.
    slots: [u8; 1 << SLOT_BITS],
    /// Each command's packed name, in `COMMANDS` order.
    keys: [u128; COMMANDS.len()],
    multiplier: u64,
}

static TABLE: Table = table();

/// The longest command name; a longer name is no command.
const LONGEST: usize = longest();

const _: () = assert!(COMMANDS.len() < 256, "TABLE indexes COMMANDS + 1 with a u8");
const _: () = if let Some(why) = names_fault(COMMANDS) {
    panic!("{}", why)
};

/// What is wrong with `commands`' names for [`lookup`], if anything: each
/// must be upper case (as [`Call::name`] reports it), at most 15 bytes (to
/// [`pack`]), and unlike every other. [`COMMANDS`] is checked at compile time,
/// so a table that breaks any of these fails to build.
const fn names_fault(commands: &[CommandSpec]) -> Option<&'static str> {
    let mut i = 0;
    while i < commands.len() {
        let name = commands[i].name.as_bytes();
        if name.len() > 15 {
            return Some("command names are at most 15 bytes");
        }
        let mut k = 0;
        while k < name.len() {
            if name[k].is_ascii_lowercase() {
                return Some("command names are upper case");
            }
            k += 1;
        }
        let mut j = 0;
        while j < i {
            if pack(commands[j].name.as_bytes()) == pack(name) {
                return Some("command names are distinct");
            }
            j += 1;
        }
        i += 1;
    }
    None
}

/// Builds [`TABLE`] over [`COMMANDS`] (whose names [`names_fault`] has
/// passed): tries multipliers (odd, from a 64-bit LCG) until one gives every
/// name a slot of its own.
const fn table() -> Table {
    let mut keys = [0u128; COMMANDS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = pack(COMMANDS[i].name.as_bytes());
        i += 1;
    }
    let mut multiplier: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        let mut slots = [0u8; 1 << SLOT_BITS];
        let mut i = 0;
        while i < keys.len() && slots[slot(keys[i], multiplier)] == 0 {
            slots[slot(keys[i], multiplier)] = i as u8 + 1;
            i += 1;
        }
        if i == keys.len() {
            return Table {
                slots,
                keys,
                multiplier,
            };
        }
        multiplier = multiplier
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            | 1;
    }
}

const fn longest() -> usize {
    let (mut i, mut most) = (0, 0);
    while i < COMMANDS.len() {
        if COMMANDS[i].name.len() > most {
            most = COMMANDS[i].name.len();
        }
        i += 1;
    }
    most
}

pub(super) fn local_error(msg: impl Into<String>) -> Request {
    Request::Local(error(msg))
}

pub(super) fn wrong_arity(name: &str) -> Request {
    local_error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

pub(super) fn syntax_error() -> Request {
    local_error(gsmo_spec::kv::SYNTAX)
}

pub(super) fn int_arg(b: &Bytes) -> Result<i64, Request> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| local_error("ERR value is not an integer or out of range"))
}

/// A count argument (LPOP key count, SPOP key count, ...): not negative.
pub(super) fn count_arg(b: &Bytes) -> Result<usize, Request> {
    match int_arg(b)? {
        n if n < 0 => Err(local_error("ERR value is out of range, must be positive")),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

pub(super) fn write(op: Op) -> Request {
    Request::Node(ClientRequest::Kv(Command::Write(op)))
}

pub(super) fn read(r: ReadOp) -> Request {
    Request::Node(ClientRequest::Kv(Command::Read(r)))
}

pub(super) fn key(b: &Bytes) -> Vec<u8> {
    b.to_vec()
}

pub(super) fn keys(a: &[Bytes]) -> Vec<Vec<u8>> {
    a.iter().map(key).collect()
}

pub(super) fn pairs(a: &[Bytes]) -> Vec<(Vec<u8>, Vec<u8>)> {
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
#[derive(Debug)]
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
    cmd("CONFIG", 1, None, Server, Admin, NONE, "CONFIG GET name ...|RESETSTAT save / appendonly; RESETSTAT empties latencystats and the event-loop counts"),
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

/// Helpers for the command modules' tests.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    /// A request as redis-cli would send the words of `line`.
    pub fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    pub fn parse(line: &str) -> Request {
        parse_command(&args(line))
    }

    /// The text of a request's error reply.
    pub fn error_text(r: Request) -> String {
        match r {
            Request::Local(BytesFrame::Error(e)) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{error_text, parse};
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Counts this thread's allocations, so a test can see a lookup make none.
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards every call to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static ALLOC: Counting = Counting;

    /// `f()`, and how many allocations this thread made during it.
    fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = ALLOCATIONS.with(Cell::get);
        let out = f();
        (out, ALLOCATIONS.with(Cell::get) - before)
    }

    fn mixed_case(name: &str) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect()
    }

    #[test]
    fn lookup_finds_every_command_in_any_case_without_allocating() {
        let (_, allocated) = allocations(|| Vec::<u8>::with_capacity(8));
        assert_eq!(allocated, 1, "the counter sees this thread's allocations");
        for c in COMMANDS {
            let lower = c.name.to_ascii_lowercase();
            let mixed = mixed_case(c.name);
            assert_ne!(
                mixed, c.name,
                "mixed case differs from upper for {}",
                c.name
            );
            assert_ne!(mixed, lower, "mixed case differs from lower for {}", c.name);
            for name in [c.name, &lower, &mixed] {
                let (found, allocated) = allocations(|| lookup(name.as_bytes()));
                assert!(
                    found.is_some_and(|f| f.name == c.name),
                    "{name} finds {}",
                    c.name
                );
                assert_eq!(allocated, 0, "looking up {name} allocated");
            }
        }
    }

    #[test]
    fn lookup_wants_the_whole_name() {
        for name in [
            "GE", "GETT", "SETX", "S", "", "SETNXX", "MSE", "GSMO.", "GSMO", "ZSCOREZ", "AUTH",
            "get ", " get", "GET\0", "G\u{c9}T",
        ] {
            assert!(lookup(name.as_bytes()).is_none(), "{name:?} is no command");
        }
        let longest = COMMANDS.iter().map(|c| c.name.len()).max().unwrap();
        assert_eq!(longest, LONGEST);
        let long = vec![b'G'; 1 << 20];
        let (found, allocated) = allocations(|| lookup(&long));
        assert!(found.is_none());
        assert_eq!(allocated, 0);
        let (found, allocated) = allocations(|| lookup(&[0xff; 12]));
        assert!(found.is_none());
        assert_eq!(allocated, 0);
        let filled = TABLE.slots.iter().filter(|&&s| s != 0).count();
        assert_eq!(
            filled,
            COMMANDS.len(),
            "every command has a slot of its own"
        );
        assert_eq!(pack(b"get"), pack(b"GET"));
        assert_ne!(pack(b"GET\0"), pack(b"GET"));
    }

    /// What the compile-time check of the table refuses.
    #[test]
    fn names_lookup_cannot_tell_apart_are_refused() {
        assert_eq!(names_fault(COMMANDS), None);
        let named = |name| CommandSpec {
            name,
            ..COMMANDS[0]
        };
        assert_eq!(names_fault(&[named("GET"), named("SET")]), None);
        assert_eq!(
            names_fault(&[named("GET"), named("SeT")]),
            Some("command names are upper case")
        );
        assert_eq!(
            names_fault(&[named("GET"), named("SET"), named("SET")]),
            Some("command names are distinct")
        );
        assert_eq!(names_fault(&[named("ABCDEFGHIJKLMNO")]), None);
        assert_eq!(
            names_fault(&[named("ABCDEFGHIJKLMNOP")]),
            Some("command names are at most 15 bytes")
        );
    }

    #[test]
    fn a_call_carries_its_command() {
        let args = testing::args("sEt k v");
        let call = Call::new(&args);
        assert_eq!(call.name(), Some("SET"));
        assert_eq!(call.args().len(), 3);
        assert!(Call::new(&testing::args("AUTH x")).name().is_none());
        assert!(Call::new(&[]).name().is_none());
        assert_eq!(
            error_text(Call::new(&[]).parse(&mut Session::new())),
            "ERR empty command"
        );
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
        assert_eq!(
            parse("set k v Xx"),
            write(Op::SetWith {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                cond: Some(gsmo_spec::kv::SetCond::Xx),
                get: false
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
            parse("SCAN 0 COUNT 1"),
            read(ReadOp::Scan {
                cursor: 0,
                pattern: None,
                count: 1
            }),
            "the least COUNT"
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
            error_text(parse("GET")),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            error_text(parse("MSET a 1 b")),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            error_text(parse("NOSUCH now")),
            "ERR unknown command 'NOSUCH', with args beginning with: 'now' "
        );
        // At most 128 characters of arguments, as Redis cuts them: one long
        // argument is cut inside its quotes, and no argument starts past 128.
        let long = "x".repeat(200);
        assert_eq!(
            error_text(parse(&format!("NOSUCH {long}"))),
            format!(
                "ERR unknown command 'NOSUCH', with args beginning with: '{}' ",
                &long[..128]
            )
        );
        let (a, b) = ("a".repeat(120), "b".repeat(20));
        assert_eq!(
            error_text(parse(&format!("NOSUCH {a} {b} c"))),
            format!(
                "ERR unknown command 'NOSUCH', with args beginning with: '{a}' '{}' ",
                &b[..5]
            )
        );
        assert_eq!(
            error_text(parse("gett k")),
            "ERR unknown command 'gett', with args beginning with: 'k' "
        );
        for (line, name) in [
            ("LPUSH l", "lpush"),
            ("HSET h f", "hset"),
            ("HSET h f 1 g", "hset"),
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
                error_text(parse(line)),
                format!("ERR wrong number of arguments for '{name}' command"),
                "{line}"
            );
        }
        assert_eq!(error_text(parse("SET k v NX XX")), "ERR syntax error");
        assert_eq!(error_text(parse("SET k v GET get")), "ERR syntax error");
        assert_eq!(error_text(parse("SET k v NXX")), "ERR syntax error");
        assert_eq!(
            error_text(parse("ZADD z x m")),
            "ERR value is not a valid float"
        );
        assert_eq!(
            error_text(parse("LRANGE l a 1")),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(error_text(parse("SCAN x")), "ERR invalid cursor");
        assert_eq!(error_text(parse("SCAN 0 COUNT 0")), "ERR syntax error");
        assert_eq!(
            error_text(parse("LPOP l -1")),
            "ERR value is out of range, must be positive"
        );
        for refused in [
            "SET k v EX 10",
            "SET k v px 5",
            "SET k v keepttl",
            "EXPIRE k 10",
            "SETEX k 1 v",
        ] {
            assert!(
                error_text(parse(refused)).contains("does not expire keys"),
                "{refused}"
            );
        }
        assert_eq!(
            error_text(parse("INCRBY k x")),
            "ERR value is not an integer or out of range"
        );
    }

    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A command's name with some letters in lower case, and maybe one byte
    /// dropped, added or changed.
    fn near_names() -> impl Strategy<Value = Vec<u8>> {
        let edits = (
            0..COMMANDS.len(),
            vec(any::<bool>(), LONGEST),
            0u8..4,
            any::<u8>(),
        );
        edits.prop_map(|(i, lower, edit, b)| {
            let mut name: Vec<u8> = COMMANDS[i]
                .name
                .bytes()
                .zip(lower)
                .map(|(c, l)| if l { c.to_ascii_lowercase() } else { c })
                .collect();
            match edit {
                0 => {}
                1 => drop(name.pop()),
                2 => name.push(b),
                _ => {
                    let at = usize::from(b) % name.len();
                    name[at] = b;
                }
            }
            name
        })
    }

    proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(256))]

        #[test]
        fn any_arguments_parse_to_a_request_or_an_error(args in vec(vec(any::<u8>(), 0..12), 0..6)) {
            let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            let _ = parse_command(&args);
        }

        #[test]
        fn lookup_agrees_with_upper_casing_a_copy(
            name in prop_oneof![vec(any::<u8>(), 0..14), near_names()],
        ) {
            let upper = String::from_utf8_lossy(&name).to_ascii_uppercase();
            let want = COMMANDS.iter().find(|c| c.name == upper);
            prop_assert_eq!(lookup(&name).map(|c| c.name), want.map(|c| c.name));
        }
    }
}
