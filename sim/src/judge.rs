//! A run judged by the spec: the same predicates the model checker evaluates
//! and the cluster tests apply to real processes.

use crate::workload::{ACCOUNTS, OPENING};
use crate::{Opts, Outcome, Shared};
use gsmo_node::history::parse_event;
use gsmo_node::tracefile::read_trace;
use gsmo_spec::consistency::{check_per_key, Order};
use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{self, Event};
use std::collections::BTreeSet;
use std::path::Path;

/// What the chaos client read from every node once the cluster settled.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// Every node reported the same digest and no snapshot in progress, twice in a row.
    pub quiet: bool,
    /// The last poll's `GSMO.DIGEST` and snapshots in progress, per node.
    pub last_seen: Vec<String>,
    pub histories: Vec<Vec<Vec<u8>>>,
    /// `GSMO.DUMP`: key, value, key, value, ...
    pub dumps: Vec<Vec<Vec<u8>>>,
    /// Outgoing peer connections re-established, summed over the nodes (INFO).
    pub reconnects: u64,
}

fn total(mode: Mode) -> bool {
    matches!(mode, Mode::TotalSequencer | Mode::TotalIsis)
}

/// Appends every violation to `out.violations` and counts events.
pub fn judge(o: &Opts, shared: Shared, trace_dir: &Path, out: &mut Outcome) {
    out.faults = shared.faults;
    out.reconnects = shared.end.as_ref().map_or(0, |e| e.reconnects);
    let v = &mut out.violations;
    v.extend(
        shared
            .errors
            .iter()
            .map(|e| format!("unexpected reply: {e}")),
    );
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
    let mut logs: Vec<Vec<Event>> = Vec::new();
    for (i, h) in end.histories.iter().enumerate() {
        let parsed: Result<Vec<Event>, _> = h
            .iter()
            .map(|e| parse_event(&String::from_utf8_lossy(e)))
            .collect();
        match parsed {
            Ok(l) => logs.push(l),
            Err(e) => v.push(format!("node {i}: unreadable history: {e}")),
        }
    }
    let mut check = |r: Result<(), properties::Violation>| {
        if let Err(e) = r {
            v.push(e.to_string());
        }
    };
    check(properties::integrity(&logs));
    check(properties::promised_orders(o.mode, &logs));
    if end.quiet {
        check(properties::all_delivered(&logs));
    }
    let replicas: Vec<(BTreeSet<_>, &Vec<Vec<u8>>)> = logs
        .iter()
        .zip(&end.dumps)
        .map(|(l, d)| {
            let delivered = l
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
    conformance(o, trace_dir, end.quiet, out);
    if total(o.mode) && end.quiet {
        clients(
            &shared.ops,
            &shared.incrs,
            &end.dumps[0],
            &mut out.violations,
        );
    }
}

/// Trace conformance, as `gsmo trace check --quiescent`.
fn conformance(o: &Opts, dir: &Path, quiet: bool, out: &mut Outcome) {
    let mut traces = Vec::new();
    for i in 0..o.nodes {
        match read_trace(&dir.join(format!("n{i}.trace"))) {
            Ok((t, _)) => traces.push(t),
            Err(e) => {
                out.violations.push(format!("node {i}: trace: {e}"));
                return;
            }
        }
    }
    out.events = traces.iter().map(|t| t.steps.len() as u64).sum();
    if let Err(e) = gsmo_spec::trace::check_cluster(&traces, o.mode, quiet) {
        out.violations.push(format!("trace conformance: {e}"));
    }
}

/// The clients' view under a total order: sequential consistency per key,
/// every acknowledged INCR counted once, money conserved.
fn clients(
    ops: &[gsmo_spec::consistency::ClientOp],
    incrs: &std::collections::BTreeMap<Vec<u8>, i64>,
    dump: &[Vec<u8>],
    v: &mut Vec<String>,
) {
    if let Err(e) = check_per_key(ops, Order::Program) {
        v.push(format!("client histories: {e}"));
    }
    let value = |key: &[u8]| -> i64 {
        dump.chunks(2)
            .find(|kv| kv[0] == key)
            .and_then(|kv| String::from_utf8_lossy(&kv[1]).parse().ok())
            .unwrap_or(0)
    };
    for (key, acked) in incrs {
        let got = value(key);
        if got != *acked {
            v.push(format!(
                "counter {}: {acked} INCRs acknowledged, the store holds {got}",
                String::from_utf8_lossy(key)
            ));
        }
    }
    let money: i64 = (0..ACCOUNTS)
        .map(|a| value(format!("acct:{a}").as_bytes()))
        .sum();
    let want = ACCOUNTS as i64 * OPENING;
    if money != want {
        v.push(format!(
            "conservation: the accounts hold {money}, not {want}"
        ));
    }
}
