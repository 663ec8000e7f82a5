//! A run judged by the spec: the same predicates the model checker evaluates
//! and the cluster tests apply to real processes. After a crash the live
//! nodes are judged as [`crate::crash`] says.

use crate::crash::{self, Probe, Report};
use crate::snapshots::{self, End};
use crate::workload::{ACCOUNTS, OPENING};
use crate::{Batching, Opts, Outcome, Shared};
use gsmo_node::history::parse_event;
use gsmo_node::tracefile::read_trace;
use gsmo_spec::consistency::{check_per_key_unknown, Call, ClientOp, Order};
use gsmo_spec::kv::Reply;
use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{self, Event};
use gsmo_spec::trace::Trace;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the chaos client read from every live node once the cluster settled.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// Every node reported the same digest and no snapshot in progress, twice
    /// in a row (after a crash: each node its own digest, for 1.2 s).
    pub quiet: bool,
    /// The last poll's `GSMO.DIGEST` and snapshots in progress, per node.
    pub last_seen: Vec<String>,
    /// The nodes read (all but a crashed one); the vectors below follow it.
    pub nodes: Vec<usize>,
    /// After a crash, each survivor's answers to a write and a read.
    pub probes: Vec<Probe>,
    /// With a small link buffer and no crash: each node's answer to a write
    /// once the cluster was quiet (node, reply).
    pub flow: Vec<(usize, Reply)>,
    pub histories: Vec<Vec<Vec<u8>>>,
    /// `GSMO.DUMP`: key, value, key, value, ...
    pub dumps: Vec<Vec<Vec<u8>>>,
    /// Outgoing peer connections re-established, summed over the nodes (INFO).
    pub reconnects: u64,
    /// How the nodes batched their writes.
    pub batching: Batching,
    /// How often the nodes met their queues' bounds.
    pub squeeze: crate::squeeze::Squeeze,
}

fn total(mode: Mode) -> bool {
    matches!(mode, Mode::TotalSequencer | Mode::TotalIsis)
}

/// Appends every violation to `out.violations` and counts events.
pub fn judge(o: &Opts, shared: Shared, trace_dir: &Path, out: &mut Outcome) {
    out.faults = shared.faults;
    out.reconnects = shared.end.as_ref().map_or(0, |e| e.reconnects);
    out.batching = shared
        .end
        .as_ref()
        .map_or_else(Batching::default, |e| e.batching);
    out.squeeze = shared
        .end
        .as_ref()
        .map_or_else(Default::default, |e| e.squeeze);
    let crashed = shared.crashed;
    out.crash = crashed.map(|(node, at)| Report {
        node,
        at_ms: at / 1000,
        ..Report::default()
    });
    // With a small --link-buffer a write refused for a full link is
    // backpressure, not a fault: counted, and judged by whether writes flow
    // again once the cluster is quiet (below).
    let (refused, errors): (Vec<_>, Vec<_>) = shared
        .errors
        .iter()
        .cloned()
        .partition(|e| o.link_buffer.is_some() && e.write && e.text.starts_with("TRYAGAIN "));
    out.tryagain = refused.len() as u64;
    let v = &mut out.violations;
    v.extend(shared.failures.iter().cloned());
    v.extend(crash::unexplained(o.mode, o.nodes, crashed, &errors));
    let traces = read_traces(o, trace_dir, v);
    let Some(end) = shared.end else {
        v.push("the run ended before the cluster was read".into());
        return;
    };
    if !end.quiet {
        v.push(format!(
            "no quiescence within 60 simulated seconds after the workload: {:?}",
            end.last_seen
        ));
    }
    for (i, reply) in end.flow.iter().filter(|(_, r)| *r != Reply::Ok) {
        v.push(format!(
            "writes flow when quiet: with nothing in flight, a write at n{i} answered {reply:?}"
        ));
    }
    let live: Vec<bool> = (0..o.nodes).map(|i| end.nodes.contains(&i)).collect();
    let mut logs: Vec<Vec<Event>> = vec![Vec::new(); o.nodes];
    for (&i, h) in end.nodes.iter().zip(&end.histories) {
        let parsed: Result<Vec<Event>, _> = h
            .iter()
            .map(|e| parse_event(&String::from_utf8_lossy(e)))
            .collect();
        match parsed {
            Ok(l) => logs[i] = l,
            Err(e) => v.push(format!("node {i}: unreadable history: {e}")),
        }
    }
    if let (Some((down, _)), Some(t)) = (crashed, &traces) {
        // Its history died with it; its trace kept every send and delivery.
        logs[down] = t[down].events();
    }
    let mut check = |r: Result<(), properties::Violation>| {
        if let Err(e) = r {
            v.push(e.to_string());
        }
    };
    check(properties::integrity(&logs));
    check(properties::promised_orders(o.mode, &logs));
    let settled = end.quiet && crashed.is_none();
    if settled {
        check(properties::all_delivered(&logs));
    }
    if let Some((down, _)) = crashed.filter(|&(d, _)| end.quiet && o.mode.survivors_agree(d)) {
        let survivors: Vec<&Vec<Event>> = (0..o.nodes)
            .filter(|&i| i != down)
            .map(|i| &logs[i])
            .collect();
        check(properties::agreement(&survivors));
    }
    let replicas: Vec<(BTreeSet<_>, &Vec<Vec<u8>>)> = end
        .nodes
        .iter()
        .zip(&end.dumps)
        .map(|(&i, d)| {
            let delivered = logs[i]
                .iter()
                .filter_map(|e| match e {
                    Event::Deliver(id) => Some(*id),
                    Event::Send(_) => None,
                })
                .collect();
            (delivered, d)
        })
        .collect();
    check(properties::convergence(&replicas));
    let Some(traces) = traces else { return };
    out.events = traces.iter().map(|t| t.steps.len() as u64).sum();
    if let Err(e) = gsmo_spec::trace::check_cluster(&traces, o.mode, settled) {
        out.violations.push(format!("trace conformance: {e}"));
    } else if !end.quiet && crashed.is_none() {
        // Name what a stuck cluster waits for (a channel that lost or
        // reordered a frame) rather than only that it did not settle.
        if let Err(e) = gsmo_spec::trace::check_cluster(&traces, o.mode, true) {
            out.violations.push(format!("not quiescent: {e}"));
        }
    }
    let ends: Vec<_> = traces.iter().map(snapshots::ends).collect();
    let down = crashed.map(|c| c.0);
    out.snapshots = snapshots::tally(&ends, &live);
    out.violations
        .extend(snapshots::judge(&ends, &live, down, end.quiet));
    if let (Some(report), Some(down)) = (&mut out.crash, down) {
        out.violations
            .extend(crash::judge_probes(o.mode, o.nodes, down, &end.probes));
        report_crash(o, &shared.ops, &ends, &live, report);
    }
    if total(o.mode) && end.quiet {
        // The survivor that delivered the most holds every write any survivor acknowledged.
        let longest = (0..replicas.len())
            .max_by_key(|&k| (replicas[k].0.len(), std::cmp::Reverse(k)))
            .unwrap_or(0);
        let client_view = ClientView {
            ops: &shared.ops,
            unknown: &shared.unknown,
            survivor: &|c| down.is_none_or(|d| c % o.nodes != d),
        };
        clients(
            &client_view,
            &end.dumps,
            longest,
            crashed.is_some(),
            &mut out.violations,
        );
    }
}

/// Every node's trace, or `None` (and a violation) if one cannot be read.
fn read_traces(o: &Opts, dir: &Path, v: &mut Vec<String>) -> Option<Vec<Trace>> {
    let mut traces = Vec::new();
    for i in 0..o.nodes {
        match read_trace(&dir.join(format!("n{i}.trace"))) {
            Ok((t, _)) => traces.push(t),
            Err(e) => {
                v.push(format!("node {i}: trace: {e}"));
                return None;
            }
        }
    }
    Some(traces)
}

/// Fills in what the crash left: snapshots open at the crashed node and how
/// the survivors ended them, and the survivors' answers after the crash.
fn report_crash(
    o: &Opts,
    ops: &[ClientOp],
    ends: &[BTreeMap<gsmo_spec::snapshot::SnapshotId, End>],
    live: &[bool],
    r: &mut Report,
) {
    r.mid_snapshot = ends[r.node]
        .iter()
        .filter(|(_, e)| **e == End::Open)
        .map(|(id, _)| *id)
        .collect();
    r.ends = r
        .mid_snapshot
        .iter()
        .map(|id| {
            let at = (0..o.nodes).filter(|&i| live[i]);
            (*id, at.map(|i| ends[i].get(id).copied()).collect())
        })
        .collect();
    let after = ops
        .iter()
        .filter(|op| live[op.client % o.nodes] && op.ret >= r.at_ms * 1000);
    for op in after {
        r.answered += 1;
        r.writes_served += u64::from(op.call != Call::Get && !matches!(op.reply, Reply::Error(_)));
    }
}

/// The clients' operations, and which clients talked to a survivor.
struct ClientView<'a> {
    ops: &'a [ClientOp],
    /// In flight at the crashed node.
    unknown: &'a [ClientOp],
    survivor: &'a dyn Fn(usize) -> bool,
}

/// The clients' view under a total order: sequential consistency per key
/// (writes answered `TIMEOUT` or in flight at a crash of unknown outcome,
/// refused ones left out), every INCR acknowledged by a live node counted in
/// the store of `dumps[longest]`, none counted that no client may have made,
/// and money conserved at every live node.
fn clients(
    c: &ClientView,
    dumps: &[Vec<Vec<u8>>],
    longest: usize,
    crashed: bool,
    v: &mut Vec<String>,
) {
    let mut known = Vec::new();
    let mut unknown = c.unknown.to_vec();
    for op in c.ops {
        match &op.reply {
            Reply::Error(e) if e.starts_with("TIMEOUT ") => unknown.push(op.clone()),
            Reply::Error(_) => {}
            _ => known.push(op.clone()),
        }
    }
    if let Err(e) = check_per_key_unknown(&known, &unknown, Order::Program) {
        v.push(format!("client histories: {e}"));
    }
    let value = |dump: &[Vec<u8>], key: &[u8]| -> Option<i64> {
        dump.chunks(2)
            .find(|kv| kv[0] == key)
            .and_then(|kv| String::from_utf8_lossy(&kv[1]).parse().ok())
    };
    // Per counter: INCRs acknowledged by survivors, by anyone, and maybe made.
    let mut counts: BTreeMap<&[u8], [i64; 3]> = BTreeMap::new();
    for op in known.iter().filter(|op| matches!(op.reply, Reply::Int(_))) {
        let e = counts.entry(&op.key).or_default();
        e[0] += i64::from((c.survivor)(op.client));
        e[1] += 1;
    }
    for op in unknown
        .iter()
        .filter(|op| matches!(op.call, Call::IncrBy(_)))
    {
        counts.entry(&op.key).or_default()[2] += 1;
    }
    for (key, [low, acked, maybe]) in counts {
        let got = value(&dumps[longest], key).unwrap_or(0);
        if got < low || got > acked + maybe {
            let key = String::from_utf8_lossy(key);
            v.push(match (low, maybe) {
                (l, 0) if l == acked => {
                    format!("counter {key}: {acked} INCRs acknowledged, the store holds {got}")
                }
                _ => format!(
                    "counter {key}: {low} INCRs acknowledged by live nodes, {acked} by all, \
                     {maybe} of unknown outcome, the store holds {got}"
                ),
            });
        }
    }
    let want = ACCOUNTS as i64 * OPENING;
    for dump in dumps {
        let accounts: Vec<Option<i64>> = (0..ACCOUNTS)
            .map(|a| value(dump, format!("acct:{a}").as_bytes()))
            .collect();
        // The opening MSET may have died with the node that acknowledged it.
        if crashed && accounts.iter().all(Option::is_none) {
            continue;
        }
        let money: i64 = accounts.iter().map(|a| a.unwrap_or(0)).sum();
        if money != want {
            v.push(format!(
                "conservation: the accounts hold {money}, not {want}"
            ));
        }
    }
}
