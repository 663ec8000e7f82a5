//! Each operation's semantics and error words, and convergence of mixed
//! workloads under every mode on the simulated cluster.

use super::*;
use crate::multicast::Mode;
use crate::node::Command;
use crate::sim::Cluster;

fn w(lamport: u64, node: NodeId, op: Op) -> Write {
    Write {
        stamp: Stamp { lamport, node },
        op,
    }
}
fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
fn set(k: &str, v: &str) -> Op {
    Op::Set {
        key: b(k),
        value: b(v),
    }
}
fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(b(s)))
}
fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| bulk(s)).collect())
}
fn wrongtype() -> Reply {
    Reply::Error(WRONGTYPE.into())
}

/// A store driven in delivery order, one write after another.
#[derive(Default)]
struct Seq {
    kv: KvStore,
    t: u64,
}

impl Seq {
    fn w(&mut self, op: Op) -> Reply {
        self.t += 1;
        self.kv.apply(&w(self.t, 0, op), Resolution::DeliveryOrder)
    }
    fn r(&self, r: ReadOp) -> Reply {
        self.kv.read(&r)
    }
}

#[test]
fn operations_in_delivery_order() {
    let mut s = Seq::default();
    assert_eq!(s.w(set("a", "10")), Reply::Ok);
    assert_eq!(
        s.w(Op::IncrBy {
            key: b("a"),
            delta: 5
        }),
        Reply::Int(15)
    );
    let t = |amount| Op::Transfer {
        from: b("a"),
        to: b("b"),
        amount,
    };
    assert_eq!(s.w(t(20)), Reply::Error(INSUFFICIENT_FUNDS.into()));
    assert_eq!(s.w(t(15)), Reply::Ok);
    assert_eq!(s.kv.sum(&[b("a"), b("b")]), Ok(15));
    assert_eq!(s.kv.get(b"b"), Some(&b"15"[..]));
    let del = Op::Del {
        keys: vec![b("a"), b("zz")],
    };
    assert_eq!(s.w(del), Reply::Int(1));
    assert_eq!(s.kv.get(b"a"), None);
    assert_eq!(s.w(set("s", "x")), Reply::Ok);
    let incr = Op::IncrBy {
        key: b("s"),
        delta: 1,
    };
    assert_eq!(s.w(incr), Reply::Error(NOT_AN_INTEGER.into()));
    let max = Op::IncrBy {
        key: b("b"),
        delta: i64::MAX,
    };
    assert_eq!(
        s.w(max),
        Reply::Error("ERR increment or decrement would overflow".into())
    );
    assert_eq!(s.kv.len(), 2);
}

#[test]
fn set_options_getset_getdel_setnx_append() {
    let mut s = Seq::default();
    let set_with = |k: &str, v: &str, cond, get| Op::SetWith {
        key: b(k),
        value: b(v),
        cond,
        get,
    };
    assert_eq!(
        s.w(set_with("k", "1", Some(SetCond::Xx), false)),
        Reply::Bulk(None)
    );
    assert_eq!(s.r(ReadOp::Exists { keys: vec![b("k")] }), Reply::Int(0));
    assert_eq!(s.w(set_with("k", "1", Some(SetCond::Nx), false)), Reply::Ok);
    assert_eq!(
        s.w(set_with("k", "2", Some(SetCond::Nx), false)),
        Reply::Bulk(None)
    );
    assert_eq!(s.w(set_with("k", "3", Some(SetCond::Xx), true)), bulk("1"));
    assert_eq!(s.w(set_with("k", "4", None, true)), bulk("3")); // GETSET
    assert_eq!(s.w(set_with("new", "x", None, true)), Reply::Bulk(None));
    assert_eq!(s.w(Op::GetDel { key: b("k") }), bulk("4"));
    assert_eq!(s.w(Op::GetDel { key: b("k") }), Reply::Bulk(None));
    let nx = |pairs: &[(&str, &str)]| Op::MSetNx {
        pairs: pairs.iter().map(|(k, v)| (b(k), b(v))).collect(),
    };
    assert_eq!(s.w(nx(&[("a", "1"), ("b", "2")])), Reply::Int(1));
    assert_eq!(s.w(nx(&[("c", "3"), ("b", "9")])), Reply::Int(0));
    assert_eq!(s.r(ReadOp::Get { key: b("c") }), Reply::Bulk(None));
    assert_eq!(
        s.w(Op::Append {
            key: b("a"),
            value: b("23")
        }),
        Reply::Int(3)
    );
    assert_eq!(
        s.w(Op::Append {
            key: b("z"),
            value: b("x")
        }),
        Reply::Int(1)
    );
    assert_eq!(s.r(ReadOp::StrLen { key: b("a") }), Reply::Int(3));
    assert_eq!(s.r(ReadOp::StrLen { key: b("none") }), Reply::Int(0));
    let mget = ReadOp::MGet {
        keys: vec![b("a"), b("nope"), b("b")],
    };
    assert_eq!(
        s.r(mget),
        Reply::Array(vec![bulk("123"), Reply::Bulk(None), bulk("2")])
    );
    // SET (without GET) replaces a value of any type.
    s.w(Op::SAdd {
        key: b("set"),
        members: vec![b("m")],
    });
    assert_eq!(s.w(set_with("set", "v", None, true)), wrongtype());
    assert_eq!(s.w(set("set", "v")), Reply::Ok);
    assert_eq!(
        s.r(ReadOp::Type { key: b("set") }),
        Reply::Status("string".into())
    );
}

#[test]
fn keys_type_exists_rename_flush_ttl() {
    let mut s = Seq::default();
    s.w(set("key:1", "a"));
    s.w(set("key:2", "b"));
    s.w(Op::Push {
        key: b("list"),
        values: vec![b("x")],
        left: true,
    });
    assert_eq!(
        s.r(ReadOp::Keys {
            pattern: b("key:*")
        }),
        bulks(&["key:1", "key:2"])
    );
    assert_eq!(
        s.r(ReadOp::Keys { pattern: b("*") }).to_string(),
        "[\"key:1\", \"key:2\", \"list\"]"
    );
    let exists = ReadOp::Exists {
        keys: vec![b("key:1"), b("key:1"), b("nope")],
    };
    assert_eq!(s.r(exists), Reply::Int(2));
    for (k, t) in [("key:1", "string"), ("list", "list"), ("nope", "none")] {
        assert_eq!(s.r(ReadOp::Type { key: b(k) }), Reply::Status(t.into()));
    }
    assert_eq!(
        s.r(ReadOp::Ttl {
            key: b("list"),
            ms: false
        }),
        Reply::Int(-1)
    );
    assert_eq!(
        s.r(ReadOp::Ttl {
            key: b("nope"),
            ms: true
        }),
        Reply::Int(-2)
    );
    let rename = |f: &str, t: &str| Op::Rename {
        from: b(f),
        to: b(t),
    };
    assert_eq!(s.w(rename("nope", "x")), Reply::Error(NO_SUCH_KEY.into()));
    assert_eq!(s.w(rename("list", "key:1")), Reply::Ok);
    assert_eq!(
        s.r(ReadOp::Type { key: b("key:1") }),
        Reply::Status("list".into())
    );
    assert_eq!(s.w(rename("key:1", "key:1")), Reply::Ok);
    assert_eq!(s.r(ReadOp::DbSize), Reply::Int(2));
    assert!(!s.kv.is_empty());
    assert_eq!(s.w(Op::FlushAll), Reply::Ok);
    assert_eq!(s.r(ReadOp::DbSize), Reply::Int(0));
    assert!(s.kv.is_empty());
}

#[test]
fn scan_returns_every_key_once_whatever_the_count() {
    let mut s = Seq::default();
    let mut want = Vec::new();
    for i in 0..200 {
        // Many keys share their first 8 bytes: batches must not split them and stall.
        let k = format!("samepref{i:03}");
        s.w(set(&k, "v"));
        want.push(b(&k));
        let k = format!("k{i}");
        s.w(set(&k, "v"));
        want.push(b(&k));
    }
    s.w(set("", "empty key"));
    want.push(Vec::new());
    want.sort();
    for count in [1, 3, 10, 1000] {
        let mut cursor = 0;
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 1000, "scan does not terminate");
            let Reply::Array(r) = s.r(ReadOp::Scan {
                cursor,
                pattern: None,
                count,
            }) else {
                panic!()
            };
            let (Reply::Bulk(Some(c)), Reply::Array(keys)) = (&r[0], &r[1]) else {
                panic!()
            };
            for k in keys {
                let Reply::Bulk(Some(k)) = k else { panic!() };
                seen.push(k.clone());
            }
            cursor = std::str::from_utf8(c).unwrap().parse().unwrap();
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, want, "COUNT {count}");
    }
    let Reply::Array(r) = s.r(ReadOp::Scan {
        cursor: 0,
        pattern: Some(b("k1?")),
        count: 10_000,
    }) else {
        panic!()
    };
    assert_eq!(
        r[1],
        bulks(&["k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19"])
    );
}

#[test]
fn lists() {
    let mut s = Seq::default();
    let push = |vals: &[&str], left| Op::Push {
        key: b("l"),
        values: vals.iter().map(|v| b(v)).collect(),
        left,
    };
    let pop = |left, count| Op::Pop {
        key: b("l"),
        left,
        count,
    };
    assert_eq!(s.w(push(&["a", "b"], true)), Reply::Int(2)); // b a
    assert_eq!(s.w(push(&["c"], false)), Reply::Int(3)); // b a c
    let range = |start, stop| ReadOp::LRange {
        key: b("l"),
        start,
        stop,
    };
    assert_eq!(s.r(range(0, -1)), bulks(&["b", "a", "c"]));
    assert_eq!(s.r(range(-2, 99)), bulks(&["a", "c"]));
    assert_eq!(s.r(range(2, 1)), bulks(&[]));
    assert_eq!(s.r(range(5, 10)), bulks(&[]));
    assert_eq!(s.r(ReadOp::LLen { key: b("l") }), Reply::Int(3));
    assert_eq!(s.w(pop(true, None)), bulk("b"));
    assert_eq!(s.w(pop(false, Some(5))), bulks(&["c", "a"]));
    assert_eq!(
        s.r(ReadOp::Exists { keys: vec![b("l")] }),
        Reply::Int(0),
        "an empty list is deleted"
    );
    assert_eq!(s.w(pop(true, None)), Reply::Bulk(None));
    assert_eq!(s.w(pop(true, Some(1))), Reply::NilArray);
    s.w(set("str", "x"));
    let on_str = Op::Push {
        key: b("str"),
        values: vec![b("x")],
        left: true,
    };
    assert_eq!(s.w(on_str), wrongtype());
    assert_eq!(
        s.w(Op::Pop {
            key: b("str"),
            left: true,
            count: None
        }),
        wrongtype()
    );
    assert_eq!(
        s.r(ReadOp::LRange {
            key: b("str"),
            start: 0,
            stop: 1
        }),
        wrongtype()
    );
    assert_eq!(s.r(ReadOp::LLen { key: b("str") }), wrongtype());
    assert_eq!(s.r(ReadOp::Get { key: b("str") }), bulk("x"));
    s.w(push(&["x"], true));
    assert_eq!(s.r(ReadOp::Get { key: b("l") }), wrongtype());
    assert_eq!(s.r(ReadOp::StrLen { key: b("l") }), wrongtype());
    assert_eq!(
        s.w(Op::IncrBy {
            key: b("l"),
            delta: 1
        }),
        wrongtype()
    );
    assert_eq!(
        s.w(Op::Append {
            key: b("l"),
            value: b("x")
        }),
        wrongtype()
    );
    assert_eq!(s.w(Op::GetDel { key: b("l") }), wrongtype());
}

#[test]
fn sets_pop_the_smallest_member() {
    let mut s = Seq::default();
    let sadd = |m: &[&str]| Op::SAdd {
        key: b("s"),
        members: m.iter().map(|v| b(v)).collect(),
    };
    assert_eq!(s.w(sadd(&["m2", "m1", "m3", "m1"])), Reply::Int(3));
    assert_eq!(s.w(sadd(&["m1", "m4"])), Reply::Int(1));
    assert_eq!(
        s.r(ReadOp::SMembers { key: b("s") }),
        bulks(&["m1", "m2", "m3", "m4"])
    );
    assert_eq!(s.r(ReadOp::SCard { key: b("s") }), Reply::Int(4));
    let ism = |m: &str| ReadOp::SIsMember {
        key: b("s"),
        member: b(m),
    };
    assert_eq!(s.r(ism("m2")), Reply::Int(1));
    assert_eq!(s.r(ism("zz")), Reply::Int(0));
    assert_eq!(
        s.w(Op::SPop {
            key: b("s"),
            count: None
        }),
        bulk("m1")
    );
    assert_eq!(
        s.w(Op::SPop {
            key: b("s"),
            count: Some(2)
        }),
        bulks(&["m2", "m3"])
    );
    assert_eq!(
        s.w(Op::SPop {
            key: b("s"),
            count: Some(9)
        }),
        bulks(&["m4"])
    );
    assert_eq!(
        s.w(Op::SPop {
            key: b("s"),
            count: None
        }),
        Reply::Bulk(None)
    );
    // As Redis: a missing set pops nil, or an empty array when a count is given.
    assert_eq!(
        s.w(Op::SPop {
            key: b("s"),
            count: Some(2)
        }),
        Reply::Array(Vec::new())
    );
    assert_eq!(s.r(ReadOp::SCard { key: b("s") }), Reply::Int(0));
    s.w(set("str", "x"));
    assert_eq!(
        s.w(Op::SAdd {
            key: b("str"),
            members: vec![b("x")]
        }),
        wrongtype()
    );
    assert_eq!(s.r(ReadOp::SMembers { key: b("str") }), wrongtype());
}

#[test]
fn hashes() {
    let mut s = Seq::default();
    let hset = |p: &[(&str, &str)]| Op::HSet {
        key: b("h"),
        pairs: p.iter().map(|(f, v)| (b(f), b(v))).collect(),
    };
    assert_eq!(s.w(hset(&[("f2", "b"), ("f1", "a")])), Reply::Int(2));
    assert_eq!(s.w(hset(&[("f1", "A"), ("f3", "c")])), Reply::Int(1));
    assert_eq!(
        s.r(ReadOp::HGet {
            key: b("h"),
            field: b("f1")
        }),
        bulk("A")
    );
    assert_eq!(
        s.r(ReadOp::HGet {
            key: b("h"),
            field: b("no")
        }),
        Reply::Bulk(None)
    );
    assert_eq!(
        s.r(ReadOp::HGetAll { key: b("h") }),
        bulks(&["f1", "A", "f2", "b", "f3", "c"])
    );
    assert_eq!(s.r(ReadOp::HLen { key: b("h") }), Reply::Int(3));
    let hdel = |f: &[&str]| Op::HDel {
        key: b("h"),
        fields: f.iter().map(|v| b(v)).collect(),
    };
    let before = s.kv.clone();
    assert_eq!(s.w(hdel(&["no"])), Reply::Int(0));
    assert_eq!(s.kv, before, "an HDEL that removes nothing writes nothing");
    assert_eq!(s.w(hdel(&["f1", "no"])), Reply::Int(1));
    assert_eq!(s.w(hdel(&["f2", "f3"])), Reply::Int(2));
    assert_eq!(
        s.r(ReadOp::Type { key: b("h") }),
        Reply::Status("none".into())
    );
    assert_eq!(s.r(ReadOp::HGetAll { key: b("h") }), bulks(&[]));
    s.w(set("str", "x"));
    assert_eq!(
        s.r(ReadOp::HGet {
            key: b("str"),
            field: b("f")
        }),
        wrongtype()
    );
    assert_eq!(
        s.w(Op::HSet {
            key: b("str"),
            pairs: vec![(b("f"), b("v"))]
        }),
        wrongtype()
    );
}

#[test]
fn sorted_sets() {
    let mut s = Seq::default();
    let sc = |f: f64| Score::new(f).unwrap();
    let zadd = |p: &[(f64, &str)]| Op::ZAdd {
        key: b("z"),
        pairs: p.iter().map(|(s, m)| (sc(*s), b(m))).collect(),
    };
    assert_eq!(
        s.w(zadd(&[(2.0, "b"), (1.5, "a"), (2.0, "a2")])),
        Reply::Int(3)
    );
    assert_eq!(s.w(zadd(&[(0.0, "b"), (-1.0, "c")])), Reply::Int(1));
    let zr = |ws| ReadOp::ZRange {
        key: b("z"),
        start: 0,
        stop: -1,
        with_scores: ws,
    };
    assert_eq!(s.r(zr(false)), bulks(&["c", "b", "a", "a2"]));
    assert_eq!(
        s.r(zr(true)),
        bulks(&["c", "-1", "b", "0", "a", "1.5", "a2", "2"])
    );
    assert_eq!(
        s.r(ReadOp::ZScore {
            key: b("z"),
            member: b("a")
        }),
        bulk("1.5")
    );
    assert_eq!(
        s.r(ReadOp::ZScore {
            key: b("z"),
            member: b("q")
        }),
        Reply::Bulk(None)
    );
    assert_eq!(s.r(ReadOp::ZCard { key: b("z") }), Reply::Int(4));
    assert_eq!(
        s.w(Op::ZPopMin {
            key: b("z"),
            count: None
        }),
        bulks(&["c", "-1"])
    );
    assert_eq!(
        s.w(Op::ZPopMin {
            key: b("z"),
            count: Some(2)
        }),
        bulks(&["b", "0", "a", "1.5"])
    );
    assert_eq!(
        s.w(Op::ZPopMin {
            key: b("z"),
            count: Some(2)
        }),
        bulks(&["a2", "2"])
    );
    // As in Redis, popping the last member deletes the key.
    assert_eq!(s.r(ReadOp::DbSize), Reply::Int(0));
    assert_eq!(
        s.w(Op::ZPopMin {
            key: b("z"),
            count: None
        }),
        bulks(&[])
    );
    assert_eq!(Score::parse(b"nan"), Err(Reply::Error(NOT_A_FLOAT.into())));
    assert_eq!(Score::parse(b"x"), Err(Reply::Error(NOT_A_FLOAT.into())));
    assert_eq!(Score::parse(b"-inf").map(Score::get), Ok(f64::NEG_INFINITY));
    assert_eq!(
        Score::parse(b"-0").map(|s| format_score_of(&s)),
        Ok("0".to_string())
    );
    s.w(set("str", "x"));
    assert_eq!(
        s.r(ReadOp::ZScore {
            key: b("str"),
            member: b("m")
        }),
        wrongtype()
    );
    assert_eq!(
        s.w(Op::ZPopMin {
            key: b("str"),
            count: None
        }),
        wrongtype()
    );
}

fn format_score_of(s: &Score) -> String {
    zsets::format_score(s)
}

#[test]
fn scores_print_as_redis_prints_them() {
    for (input, printed) in [
        ("inf", "inf"),
        ("+inf", "inf"),
        ("-inf", "-inf"),
        ("3", "3"),
        ("-2.0", "-2"),
        ("1.5", "1.5"),
        ("-0", "0"),
        // Plain decimal, the fewest digits that read back to the same double
        // (redis-server 7.0 prints 17 significant digits, and 1e+17).
        ("0.1", "0.1"),
        ("1e17", "100000000000000000"),
        ("123456789012345678", "123456789012345680"),
        ("2.5e-7", "0.00000025"),
    ] {
        let score = Score::parse(input.as_bytes()).unwrap();
        assert_eq!(format_score_of(&score), printed, "{input}");
    }
}

/// What a snapshot's manifest reports as its state's size: every live key
/// and every element of every type (a zset member counts 8 for its score).
#[test]
fn payload_bytes_counts_every_key_and_element() {
    let mut s = Seq::default();
    s.w(set("str", "abcd"));
    s.w(Op::HSet {
        key: b("h"),
        pairs: vec![(b("ab"), b("cde")), (b("fg"), b("hij"))],
    });
    s.w(Op::Push {
        key: b("l"),
        values: vec![b("x"), b("yz")],
        left: true,
    });
    s.w(Op::SAdd {
        key: b("s"),
        members: vec![b("m1"), b("m22")],
    });
    s.w(Op::ZAdd {
        key: b("z"),
        pairs: vec![(Score::new(1.0).unwrap(), b("zm"))],
    });
    let keys = 3 + 1 + 1 + 1 + 1;
    let elements = 4 + (2 + 3 + 2 + 3) + (1 + 2) + (2 + 3) + (2 + 8);
    assert_eq!(s.kv.payload_bytes(), keys + elements);
}

#[test]
fn last_writer_wins_converges_in_either_order() {
    let lww = Resolution::LastWriterWins;
    let a = w(3, 1, set("k", "from-1"));
    let b_ = w(3, 2, Op::Del { keys: vec![b("k")] });
    let c = w(2, 0, set("k", "old"));
    let mut x = KvStore::new();
    let mut y = KvStore::new();
    for op in [&a, &b_, &c] {
        x.apply(op, lww);
    }
    for op in [&c, &b_, &a] {
        y.apply(op, lww);
    }
    assert_eq!(x, y);
    assert_eq!(
        x.get(b"k"),
        None,
        "the delete at (3, n2) is the last writer"
    );
    assert_eq!(x.len(), 0);
    // One write's own stamps tie: within an MSET the later pair wins, as in Redis.
    let pairs = vec![(b("k"), b("first")), (b("k"), b("second"))];
    x.apply(&w(4, 0, Op::MSet { pairs }), lww);
    assert_eq!(x.get(b"k"), Some(&b"second"[..]));
}

#[test]
fn flushall_under_last_writer_wins_voids_older_writes_in_any_order() {
    let lww = Resolution::LastWriterWins;
    let older = w(5, 1, set("k", "v"));
    let flush = w(6, 0, Op::FlushAll);
    let newer = w(7, 2, set("n", "v"));
    let mut x = KvStore::new();
    let mut y = KvStore::new();
    for op in [&older, &flush, &newer] {
        x.apply(op, lww);
    }
    for op in [&newer, &flush, &older] {
        y.apply(op, lww);
    }
    assert_eq!(x, y);
    assert_eq!(x.len(), 1);
    assert_eq!(x.get(b"n"), Some(&b"v"[..]));
}

#[test]
fn resolve_turns_read_modify_writes_into_assignments() {
    let mut kv = KvStore::new();
    kv.apply(&w(1, 0, set("a", "7")), Resolution::DeliveryOrder);
    assert_eq!(
        kv.resolve(set("x", "1")),
        Ok(set("x", "1")),
        "blind writes travel as they are"
    );
    assert_eq!(
        kv.resolve(Op::IncrBy {
            key: b("a"),
            delta: 3
        }),
        Ok(Op::Assign {
            pairs: vec![(b("a"), Some(Data::Str(b("10").into())))],
            reply: Reply::Int(10)
        })
    );
    assert_eq!(
        kv.resolve(Op::Transfer {
            from: b("a"),
            to: b("b"),
            amount: 2
        }),
        Ok(Op::Assign {
            pairs: vec![
                (b("a"), Some(Data::Str(b("5").into()))),
                (b("b"), Some(Data::Str(b("2").into())))
            ],
            reply: Reply::Ok
        })
    );
    assert!(kv
        .resolve(Op::Transfer {
            from: b("a"),
            to: b("b"),
            amount: 0
        })
        .is_err());
    assert_eq!(
        kv.resolve(Op::Push {
            key: b("a"),
            values: vec![b("x")],
            left: true
        }),
        Err(wrongtype()),
        "errors are decided at the origin"
    );
    assert_eq!(
        kv.resolve(Op::GetDel { key: b("a") }),
        Ok(Op::Assign {
            pairs: vec![(b("a"), None)],
            reply: bulk("7")
        })
    );
    assert_eq!(
        kv.get(b"a"),
        Some(&b"7"[..]),
        "resolving changes nothing here"
    );
}

#[test]
fn format_one_store_reads_back() {
    let kv = KvStore::from_strings([
        (
            b("a"),
            Some(b("1")),
            Stamp {
                lamport: 1,
                node: 0,
            },
        ),
        (
            b("gone"),
            None,
            Stamp {
                lamport: 2,
                node: 1,
            },
        ),
    ]);
    assert_eq!(kv.len(), 1);
    assert_eq!(kv.get(b"a"), Some(&b"1"[..]));
    assert_eq!(
        kv.read(&ReadOp::Exists {
            keys: vec![b("gone")]
        }),
        Reply::Int(0)
    );
}

#[test]
fn render_is_the_canonical_form_dumps_and_digests_compare() {
    // Replicas' DUMP and DIGEST compare these bytes: elements are
    // length-prefixed, so ["a","bc"] and ["ab","c"] never look alike.
    let mut s = Seq::default();
    s.w(set("k", "ab"));
    for (key, values) in [("l", ["a", "bc"]), ("m", ["ab", "c"])] {
        s.w(Op::Push {
            key: b(key),
            values: values.map(b).to_vec(),
            left: false,
        });
    }
    s.w(Op::SAdd {
        key: b("s"),
        members: vec![b("x"), b("yy")],
    });
    s.w(Op::HSet {
        key: b("h"),
        pairs: vec![(b("f"), b("vv"))],
    });
    s.w(Op::ZAdd {
        key: b("z"),
        pairs: vec![(Score::parse(b"1.5").unwrap(), b("m"))],
    });
    let render = |k: &str| String::from_utf8(s.kv.data(k.as_bytes()).unwrap().render()).unwrap();
    assert_eq!(render("k"), "ab");
    assert_eq!(render("l"), "list 1:a 2:bc");
    assert_eq!(render("m"), "list 2:ab 1:c");
    assert_eq!(render("s"), "set 1:x 2:yy");
    assert_eq!(render("h"), "hash 1:f 2:vv");
    assert_eq!(render("z"), "zset 1:m 3:1.5");
}

/// Every kind of write, several per replica, issued concurrently.
fn workload(node: usize) -> Vec<Op> {
    let n = node.to_string();
    vec![
        Op::Push {
            key: b("list"),
            values: vec![b(&n)],
            left: node % 2 == 0,
        },
        Op::IncrBy {
            key: b("counter"),
            delta: 1,
        },
        Op::SAdd {
            key: b("set"),
            members: vec![b(&n), b("shared")],
        },
        Op::SPop {
            key: b("set"),
            count: None,
        },
        Op::HSet {
            key: b("hash"),
            pairs: vec![(b(&n), b(&n))],
        },
        Op::ZAdd {
            key: b("zset"),
            pairs: vec![(Score::new(node as f64).unwrap(), b(&n))],
        },
        Op::ZPopMin {
            key: b("zset"),
            count: None,
        },
        Op::Pop {
            key: b("list"),
            left: true,
            count: None,
        },
        Op::Append {
            key: b("str"),
            value: b(&n),
        },
        Op::SetWith {
            key: b("nx"),
            value: b(&n),
            cond: Some(SetCond::Nx),
            get: false,
        },
        Op::Rename {
            from: b("str"),
            to: b(&format!("renamed{n}")),
        },
        Op::MSetNx {
            pairs: vec![(b("m1"), b(&n)), (b("m2"), b(&n))],
        },
        Op::GetDel { key: b("nx") },
        Op::Push {
            key: b("list"),
            values: vec![b(&n), b(&n)],
            left: false,
        },
        Op::HDel {
            key: b("hash"),
            fields: vec![b("0")],
        },
        Op::IncrBy {
            key: b("counter"),
            delta: 1,
        },
    ]
}

/// Runs every replica's workload concurrently, delivering one message at a
/// time from the channel `pick` chooses; returns the cluster at quiescence.
fn run_concurrently(
    mode: Mode,
    nodes: usize,
    flush_at: Option<usize>,
    mut pick: impl FnMut(usize) -> usize,
) -> Cluster {
    let mut c = Cluster::new(nodes, mode);
    let work: Vec<Vec<Op>> = (0..nodes).map(workload).collect();
    for step in 0..work[0].len() {
        for (i, ops) in work.iter().enumerate() {
            c.client(i, Command::Write(ops[step].clone()));
            if flush_at == Some(step) && i == 1 {
                c.client(i, Command::Write(Op::FlushAll));
            }
        }
        for _ in 0..pick(usize::MAX) % 4 {
            let busy = c.network.busy();
            if busy.is_empty() {
                break;
            }
            let (from, to) = busy[pick(busy.len())];
            c.step(from, to).unwrap();
        }
    }
    c.quiesce().unwrap();
    c
}

#[test]
fn every_kind_of_write_converges_under_every_mode() {
    let seed = std::env::var("GSMO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::collections::hash_map::RandomState::new().build_hasher_seed());
    eprintln!("GSMO_SEED={seed}");
    let mut x: u64 = seed | 1;
    let mut rand = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    for mode in Mode::ALL {
        for round in 0..20 {
            let flush = (round % 3 == 0).then_some(round % 16);
            let c = run_concurrently(mode, 3, flush, &mut rand);
            let first = c.nodes[0].kv();
            for (i, n) in c.nodes.iter().enumerate() {
                assert_eq!(
                    n.kv(),
                    first,
                    "{mode}: replica {i} differs from replica 0 (rerun with GSMO_SEED={seed})"
                );
            }
            if mode.is_total() && flush.is_none() {
                // Delivery order: no update is lost, every INCR counts.
                assert_eq!(
                    first.get(b"counter"),
                    Some(&b"6"[..]),
                    "{mode} GSMO_SEED={seed}"
                );
            }
        }
    }
}

trait SeedFromHasher {
    fn build_hasher_seed(&self) -> u64;
}

impl SeedFromHasher for std::collections::hash_map::RandomState {
    fn build_hasher_seed(&self) -> u64 {
        use std::hash::BuildHasher;
        self.hash_one(0u8)
    }
}

/// Redis's LRANGE/ZRANGE indexes: inclusive, negative from the end, clamped.
#[test]
fn index_ranges_are_redis_s() {
    for (start, stop, n, want) in [
        (0, -1, 3, 0..3),
        (0, 0, 3, 0..1), // a stop of 0 is the first element, not "from the end"
        (-1, -1, 3, 2..3),
        (-2, 5, 3, 1..3),
        (-100, 0, 3, 0..1),
        (1, 100, 3, 1..3),
        (3, 5, 3, 0..0),
        (2, 1, 3, 0..0),
        (0, -1, 0, 0..0),
    ] {
        assert_eq!(index_range(start, stop, n), want, "{start} {stop} of {n}");
    }
}

/// `serde_bytes` on `Op`'s lone keys and values, and `Data::Str`'s
/// `SmallBytes`, change speed and memory only: under bincode each encodes to
/// the bytes a plain `Vec<u8>` gave, so wire frames, traces and snapshot files
/// do not change.
mod byte_fields_encode_as_plain_vectors {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;

    /// `Op`'s first variants with plain `Vec<u8>` fields (the index of a
    /// variant is its place, so the others are placeholders).
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum PlainOp {
        Set {
            key: Vec<u8>,
            value: Vec<u8>,
        },
        MSet,
        Del,
        IncrBy,
        Transfer {
            from: Vec<u8>,
            to: Vec<u8>,
            amount: i64,
        },
        SetWith {
            key: Vec<u8>,
            value: Vec<u8>,
            cond: Option<SetCond>,
            get: bool,
        },
        GetDel {
            key: Vec<u8>,
        },
        MSetNx,
        Append {
            key: Vec<u8>,
            value: Vec<u8>,
        },
        Rename {
            from: Vec<u8>,
            to: Vec<u8>,
        },
    }

    #[derive(Serialize)]
    enum PlainData {
        Str(Vec<u8>),
    }

    fn bytes<T: Serialize>(t: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(t, bincode::config::standard()).unwrap()
    }

    /// Encodes like `plain` and decodes back to itself.
    fn same(op: Op, plain: PlainOp) -> Result<(), TestCaseError> {
        let encoded = bytes(&op);
        prop_assert_eq!(&encoded, &bytes(&plain));
        let (back, _): (Op, _) =
            bincode::serde::decode_from_slice(&encoded, bincode::config::standard()).unwrap();
        prop_assert_eq!(back, op);
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config(64))]

        #[test]
        fn for_every_variant_with_a_lone_key_or_value(
            k in proptest::collection::vec(any::<u8>(), 0..300),
            v in proptest::collection::vec(any::<u8>(), 0..300),
            amount in any::<i64>(),
        ) {
            let (key, value) = (k.clone(), v.clone());
            same(Op::Set { key, value }, PlainOp::Set { key: k.clone(), value: v.clone() })?;
            let (from, to) = (k.clone(), v.clone());
            same(
                Op::Transfer { from, to, amount },
                PlainOp::Transfer { from: k.clone(), to: v.clone(), amount },
            )?;
            let (key, value) = (k.clone(), v.clone());
            same(
                Op::SetWith { key, value, cond: Some(SetCond::Xx), get: true },
                PlainOp::SetWith { key: k.clone(), value: v.clone(), cond: Some(SetCond::Xx), get: true },
            )?;
            same(Op::GetDel { key: k.clone() }, PlainOp::GetDel { key: k.clone() })?;
            let (key, value) = (k.clone(), v.clone());
            same(Op::Append { key, value }, PlainOp::Append { key: k.clone(), value: v.clone() })?;
            let (from, to) = (k.clone(), v.clone());
            same(Op::Rename { from, to }, PlainOp::Rename { from: k.clone(), to: v.clone() })?;
            let data = Data::Str(v[..].into());
            prop_assert_eq!(bytes(&data), bytes(&PlainData::Str(v)));
        }
    }
}

/// Every key's entry is an allocation of its own: keep the common one (a
/// string) small. A string (24 bytes, as a `Vec`) and a tag, and with the
/// stamp 48 bytes, so 64 with the `Arc`'s counts; an inline `imbl::Vector`
/// made them 64 and 96.
#[test]
fn a_value_is_as_small_as_a_vec() {
    use std::mem::size_of;
    assert_eq!(size_of::<Data>(), size_of::<Vec<u8>>() + 8);
    assert_eq!(size_of::<Option<Data>>(), size_of::<Data>());
    assert_eq!(size_of::<Entry>(), 48);
}

/// A short string, however it was written (SET, MSET, INCR, APPEND, a
/// resolved write), lives in its entry, not in an allocation of its own.
#[test]
fn short_strings_are_held_inline() {
    use super::small_bytes::{SmallBytes, INLINE};
    let inline = |s: &Seq, k: &str| {
        matches!(
            s.kv.data(k.as_bytes()),
            Some(Data::Str(SmallBytes::Inline { .. }))
        )
    };
    let (short, long) = (vec![b'v'; INLINE], vec![b'v'; INLINE + 1]);
    let mut s = Seq::default();
    s.w(Op::Set {
        key: b("s"),
        value: short.clone(),
    });
    s.w(Op::Set {
        key: b("l"),
        value: long.clone(),
    });
    s.w(Op::MSet {
        pairs: vec![(b("m"), short.clone())],
    });
    s.w(Op::IncrBy {
        key: b("n"),
        delta: 7,
    });
    s.w(Op::Append {
        key: b("a"),
        value: short,
    });
    for k in ["s", "m", "n", "a"] {
        assert!(inline(&s, k), "{k}");
    }
    assert!(!inline(&s, "l"), "a longer value goes to the heap");
    assert_eq!(s.kv.get(b"l"), Some(&long[..]));
    assert_eq!(s.kv.get(b"n"), Some(&b"7"[..]));
}
