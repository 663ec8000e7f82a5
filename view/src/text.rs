//! The one text language in which gsmo shows its messages and states to a
//! person: `check`'s counterexamples, the explorer's actions and states, and
//! the labels of every space-time diagram all call these functions.
//!
//! Keys and values are bytes; they are shown as text (lossy UTF-8, control
//! characters escaped, quoted when they would otherwise be ambiguous, long ones
//! shortened). A vector is `[1,0,2]`, a message id `n0#1`, a snapshot id `0-1`.

use gsmo_spec::batch::Batch;
use gsmo_spec::kv::zsets::format_score;
use gsmo_spec::kv::{Data, KvStore, Op, SetCond, Write};
use gsmo_spec::link::Frame;
use gsmo_spec::multicast::{isis, sequencer, MsgId, Wire};
use gsmo_spec::node::{LinkFrame, PeerMsg};
use gsmo_spec::snapshot::Envelope;
use std::fmt::Write as _;

/// Longest key or value shown whole; longer ones end in `…(N bytes)`.
pub const MAX_BYTES: usize = 24;
/// Most keys a store summary lists before `… (N keys)`.
pub const MAX_KEYS: usize = 6;

/// A key or value as text: `x`, `0.1`, `"hello world"`, `"a\nb"`, `""`.
pub fn bytes(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    let mut shown: String = text.chars().take(MAX_BYTES).collect();
    let cut = shown.len() < text.len();
    let plain = !shown.is_empty()
        && shown
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '=' | '\\'));
    if !plain {
        shown = format!("\"{}\"", shown.escape_debug());
    }
    if cut {
        let _ = write!(shown, "…({} bytes)", b.len());
    }
    shown
}

/// A vector of counts: `[1,0,2]`.
pub fn vector(v: &[u64]) -> String {
    let parts: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// A client write in Redis's words: `SET x=0.1`, `DEL a b`, `LPUSH x 0.1`,
/// `TRANSFER a b 30`.
pub fn op(op: &Op) -> String {
    let list = |vs: &[Vec<u8>]| vs.iter().map(|v| bytes(v)).collect::<Vec<_>>().join(" ");
    let pairs = |ps: &[(Vec<u8>, Vec<u8>)]| {
        ps.iter()
            .map(|(k, v)| format!("{}={}", bytes(k), bytes(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let count = |c: &Option<usize>| c.map(|c| format!(" {c}")).unwrap_or_default();
    match op {
        Op::Set { key, value } => format!("SET {}={}", bytes(key), bytes(value)),
        Op::MSet { pairs: ps } => format!("MSET {}", pairs(ps)),
        Op::Del { keys } => format!("DEL {}", list(keys)),
        Op::IncrBy { key, delta: 1 } => format!("INCR {}", bytes(key)),
        Op::IncrBy { key, delta } => format!("INCRBY {} {delta}", bytes(key)),
        Op::Transfer { from, to, amount } => {
            format!("TRANSFER {} {} {amount}", bytes(from), bytes(to))
        }
        Op::SetWith {
            key,
            value,
            cond,
            get,
        } => {
            let cond = match cond {
                Some(SetCond::Nx) => " NX",
                Some(SetCond::Xx) => " XX",
                None => "",
            };
            let get = if *get { " GET" } else { "" };
            format!("SET {}={}{cond}{get}", bytes(key), bytes(value))
        }
        Op::GetDel { key } => format!("GETDEL {}", bytes(key)),
        Op::MSetNx { pairs: ps } => format!("MSETNX {}", pairs(ps)),
        Op::Append { key, value } => format!("APPEND {} {}", bytes(key), bytes(value)),
        Op::Rename { from, to } => format!("RENAME {} {}", bytes(from), bytes(to)),
        Op::FlushAll => "FLUSHALL".into(),
        Op::Push { key, values, left } => {
            let cmd = if *left { "LPUSH" } else { "RPUSH" };
            format!("{cmd} {} {}", bytes(key), list(values))
        }
        Op::Pop {
            key,
            left,
            count: c,
        } => {
            let cmd = if *left { "LPOP" } else { "RPOP" };
            format!("{cmd} {}{}", bytes(key), count(c))
        }
        Op::SAdd { key, members } => format!("SADD {} {}", bytes(key), list(members)),
        Op::SPop { key, count: c } => format!("SPOP {}{}", bytes(key), count(c)),
        Op::HSet { key, pairs: ps } => format!("HSET {} {}", bytes(key), pairs(ps)),
        Op::HDel { key, fields } => format!("HDEL {} {}", bytes(key), list(fields)),
        Op::ZAdd { key, pairs: ps } => {
            let ps: Vec<String> = ps
                .iter()
                .map(|(s, m)| format!("{} {}", format_score(s), bytes(m)))
                .collect();
            format!("ZADD {} {}", bytes(key), ps.join(" "))
        }
        Op::ZPopMin { key, count: c } => format!("ZPOPMIN {}{}", bytes(key), count(c)),
        Op::Assign { pairs: ps, .. } => {
            let ps: Vec<String> = ps
                .iter()
                .map(|(k, d)| match d {
                    Some(d) => format!("{}={}", bytes(k), data(d)),
                    None => format!("{} deleted", bytes(k)),
                })
                .collect();
            format!("assign {}", ps.join(" "))
        }
    }
}

/// A value of any type: `0.1` (a string), `[b,a]` (a list), `{a,b}` (a set),
/// `{f:v}` (a hash), `{m:1.5}` (a sorted set).
pub fn data(d: &Data) -> String {
    let join = |items: Vec<String>| items.join(",");
    match d {
        Data::Str(v) => bytes(v),
        Data::List(l) => format!("[{}]", join(l.iter().map(|v| bytes(v)).collect())),
        Data::Set(s) => format!("{{{}}}", join(s.iter().map(|v| bytes(v)).collect())),
        Data::Hash(h) => format!(
            "{{{}}}",
            join(
                h.iter()
                    .map(|(f, v)| format!("{}:{}", bytes(f), bytes(v)))
                    .collect()
            )
        ),
        Data::ZSet(z) => format!(
            "{{{}}}",
            join(
                z.iter()
                    .map(|(m, s)| format!("{}:{}", bytes(m), format_score(s)))
                    .collect()
            )
        ),
    }
}

/// A replicated write (its stamp orders last-writer-wins; the op is what a person reads).
pub fn write(w: &Write) -> String {
    op(&w.op)
}

/// A batch of writes: one write as [`write()`], more as `{SET a | SET b}`.
pub fn batch(b: &Batch) -> String {
    match b.writes.as_slice() {
        [w] => write(w),
        ws => format!(
            "{{{}}}",
            ws.iter().map(write).collect::<Vec<_>>().join(" | ")
        ),
    }
}

/// A multicast message, its payload shown by `payload` (empty: left out):
/// `data n0#1 SET x=0.1  [1,0]`, `data n0#1 SET x=0.1 = 2` (numbered by the
/// sequencer), `propose n0#1 at 1.2`.
pub fn wire<P>(w: &Wire<P>, payload: impl Fn(&P) -> String) -> String {
    let data = |id, p: &P| {
        let p = payload(p);
        if p.is_empty() {
            format!("data {id}")
        } else {
            format!("data {id} {p}")
        }
    };
    match w {
        Wire::Fifo(m) => data(m.id, &m.payload),
        Wire::Causal(m) => format!("{}  {}", data(m.id, &m.payload), vector(m.ts.entries())),
        Wire::Sequencer(sequencer::Msg::Data { id, payload }) => data(*id, payload),
        Wire::Sequencer(sequencer::Msg::Order { id, global }) => format!("order {id} = {global}"),
        Wire::Sequencer(sequencer::Msg::Submit { id, payload }) => {
            format!("submit {}", data(*id, payload))
        }
        Wire::Sequencer(sequencer::Msg::Ordered {
            id,
            global,
            payload,
        }) => format!("{} = {global}", data(*id, payload)),
        Wire::Isis(isis::Msg::Data { id, payload }) => data(*id, payload),
        Wire::Isis(isis::Msg::Propose { id, priority }) => {
            format!("propose {id} at {}.{}", priority.seq, priority.node)
        }
        Wire::Isis(isis::Msg::Agreed { id, priority }) => {
            format!("agreed {id} at {}.{}", priority.seq, priority.node)
        }
    }
}

/// The few characters an arrow carries: `n0#1`, `sub n0#1`, `n0#1=2`, `agr n0#1`.
pub fn wire_short<P>(w: &Wire<P>) -> String {
    match w {
        Wire::Fifo(m) => m.id.to_string(),
        Wire::Causal(m) => m.id.to_string(),
        Wire::Sequencer(sequencer::Msg::Data { id, .. }) => id.to_string(),
        Wire::Sequencer(sequencer::Msg::Order { id, global }) => format!("ord {id}={global}"),
        Wire::Sequencer(sequencer::Msg::Submit { id, .. }) => format!("sub {id}"),
        Wire::Sequencer(sequencer::Msg::Ordered { id, global, .. }) => format!("{id}={global}"),
        Wire::Isis(isis::Msg::Data { id, .. }) => id.to_string(),
        Wire::Isis(isis::Msg::Propose { id, priority }) => {
            format!("prop {id} {}.{}", priority.seq, priority.node)
        }
        Wire::Isis(isis::Msg::Agreed { id, priority }) => {
            format!("agr {id} {}.{}", priority.seq, priority.node)
        }
    }
}

/// The multicast message a data message carries (`None`: bookkeeping).
pub fn data_id<P>(w: &Wire<P>) -> Option<MsgId> {
    match w {
        Wire::Fifo(m) => Some(m.id),
        Wire::Causal(m) => Some(m.id),
        Wire::Sequencer(
            sequencer::Msg::Data { id, .. }
            | sequencer::Msg::Submit { id, .. }
            | sequencer::Msg::Ordered { id, .. },
        )
        | Wire::Isis(isis::Msg::Data { id, .. }) => Some(*id),
        _ => None,
    }
}

/// Whether a multicast message carries the application's data (rather than
/// the ordering protocol's bookkeeping: orders, proposals, agreements).
pub fn is_data<P>(w: &Wire<P>) -> bool {
    data_id(w).is_some()
}

/// What a panic said, from its payload (`panic!` gives a `&str` or a `String`):
/// for `check`'s verdict on a model step that panicked and the node's error
/// when one of its tasks did.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A framed channel message: the body as `body` says, or the snapshot's
/// control words: `marker 0-1`, `abort 0-1 by n1 (timed out ...)`,
/// `part 0-1 of n2 stored`, `commit 0-1`.
pub fn envelope<M>(e: &Envelope<M>, body: impl Fn(&M) -> String) -> String {
    match e {
        Envelope::Msg { body: b, .. } => body(b),
        Envelope::Marker { id } => format!("marker {id}"),
        Envelope::Abort { id, by, reason } => format!("abort {id} by n{by} ({reason})"),
        Envelope::Stored { id, part } => format!("part {id} of n{} stored", part.node),
        Envelope::Committed { id, .. } => format!("commit {id}"),
    }
}

/// A link frame: its body as `body` says, behind the link's sequence number
/// and acknowledgement (`[3 ack 1] data n0#2 ...`), or `[ack 4]`.
pub fn frame<M>(f: &Frame<M>, body: impl Fn(&M) -> String) -> String {
    match f {
        Frame::Data {
            seq,
            ack,
            body: b,
            ack_now,
        } => {
            let now = if *ack_now { ", ack now" } else { "" };
            format!("[{seq} ack {ack}{now}] {}", body(b))
        }
        Frame::Ack { ack } => format!("[ack {ack}]"),
    }
}

/// A replica's link frame: `[1 ack 0] data n0#1 SET x=0.1  [1,0]`, `[ack 2]`.
pub fn link_frame(f: &LinkFrame) -> String {
    frame(f, peer_msg)
}

/// What replicas send each other: `data n0#1 SET x=0.1  [1,0]`, `marker 0-1`.
pub fn peer_msg(m: &PeerMsg) -> String {
    envelope(m, |w| wire(w, batch))
}

/// A store as `x=0.1 y=2`, `(empty)`, or its first keys and `… (N keys)`.
pub fn store(kv: &KvStore) -> String {
    if kv.is_empty() {
        return "(empty)".into();
    }
    let mut shown: Vec<String> = kv
        .iter()
        .take(MAX_KEYS)
        .map(|(k, v)| format!("{}={}", bytes(k), data(v)))
        .collect();
    if kv.len() > MAX_KEYS {
        shown.push(format!("… ({} keys)", kv.len()));
    }
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsmo_spec::clock::VectorClock;
    use gsmo_spec::kv::Stamp;
    use gsmo_spec::multicast::{causal, MsgId};
    use gsmo_spec::snapshot::SnapshotId;

    #[test]
    fn keys_and_values_read_as_text() {
        assert_eq!(bytes(b"x"), "x");
        assert_eq!(bytes(b"0.1"), "0.1");
        assert_eq!(bytes(b""), "\"\"");
        assert_eq!(bytes(b"hello world"), "\"hello world\"");
        assert_eq!(bytes(b"a\nb"), "\"a\\nb\"");
        assert_eq!(bytes(b"a=b"), "\"a=b\"");
        assert_eq!(bytes(&[0xff, b'a']), "\u{fffd}a");
        let long = vec![b'v'; 100];
        assert_eq!(
            bytes(&long),
            format!("{}…(100 bytes)", "v".repeat(MAX_BYTES))
        );
    }

    #[test]
    fn messages_read_like_the_lecture() {
        let set = Write {
            stamp: Stamp {
                lamport: 1,
                node: 0,
            },
            op: Op::Set {
                key: b"x".to_vec(),
                value: b"0.1".to_vec(),
            },
        };
        let id = MsgId { origin: 0, seq: 1 };
        let m: PeerMsg = Envelope::Msg {
            seq: 1,
            body: Wire::Causal(causal::Msg {
                id,
                ts: VectorClock::from_entries(vec![1, 0]),
                payload: Batch {
                    first: 1,
                    writes: std::sync::Arc::new(vec![set.clone()]),
                },
            }),
        };
        assert_eq!(peer_msg(&m), "data n0#1 SET x=0.1  [1,0]");
        let two = Batch {
            first: 1,
            writes: std::sync::Arc::new(vec![set.clone(), set]),
        };
        assert_eq!(batch(&two), "{SET x=0.1 | SET x=0.1}");
        let marker: PeerMsg = Envelope::Marker {
            id: SnapshotId {
                initiator: 0,
                seq: 1,
            },
        };
        assert_eq!(peer_msg(&marker), "marker 0-1");
        let order: Wire<()> = Wire::Sequencer(sequencer::Msg::Order { id, global: 2 });
        assert_eq!(wire(&order, |_| String::new()), "order n0#1 = 2");
        assert_eq!(wire_short(&order), "ord n0#1=2");
        assert!(!is_data(&order));
        let submit: Wire<()> = Wire::Sequencer(sequencer::Msg::Submit { id, payload: () });
        assert_eq!(wire(&submit, |_| String::new()), "submit data n0#1");
        assert_eq!(wire_short(&submit), "sub n0#1");
        let ordered: Wire<()> = Wire::Sequencer(sequencer::Msg::Ordered {
            id,
            global: 2,
            payload: (),
        });
        assert_eq!(
            wire(&ordered, |_| "SET x=0.1".into()),
            "data n0#1 SET x=0.1 = 2"
        );
        assert_eq!(wire_short(&ordered), "n0#1=2");
        assert!(is_data(&submit) && is_data(&ordered));
    }

    #[test]
    fn ops_read_like_redis() {
        let op = Op::MSet {
            pairs: vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
            ],
        };
        assert_eq!(super::op(&op), "MSET a=1 b=2");
        let t = Op::Transfer {
            from: b"acct:alice".to_vec(),
            to: b"acct:bob".to_vec(),
            amount: 30,
        };
        assert_eq!(super::op(&t), "TRANSFER acct:alice acct:bob 30");
    }

    #[test]
    fn a_panic_says_its_message_whichever_type_it_has() {
        let said = |f: fn()| super::panic_message(&*std::panic::catch_unwind(f).unwrap_err());
        assert_eq!(said(|| panic!("plain")), "plain");
        assert_eq!(said(|| panic!("formatted {}", 7)), "formatted 7");
        assert_eq!(
            said(|| std::panic::panic_any(7u8)),
            "a panic without a message"
        );
    }
}
