//! The real nodes after a replay, judged by the properties of the model the
//! path came from: with the spec's predicates on their histories and stores,
//! and with the model's own checks on the snapshot parts, manifests and
//! `ABORTED` records in their data dirs. Safety properties are judged on
//! every path; "eventually" ones (and the abort model's "once quiet" ones)
//! only where the path ended with nothing left to do.

use super::real::Real;
use gsmo_model::abort::{ANSWERED, ENDS, NO_PART, XOR};
use gsmo_model::kv::{bank_total, cut, restores, ACCOUNT};
use gsmo_node::snapshot::format::read_part;
use gsmo_node::snapshot::store::Status;
use gsmo_spec::batch::Batch;
use gsmo_spec::multicast::{MsgId, Wire};
use gsmo_spec::node::Part;
use gsmo_spec::path::{Model, SpecPath};
use gsmo_spec::properties::{
    all_delivered, causal_order, channel_contents_match, convergence, integrity, total_order,
    Event, Violation,
};
use gsmo_spec::snapshot::SnapshotId;
use std::collections::BTreeSet;

pub(super) fn judge(
    path: &SpecPath,
    reals: &mut [Real],
    ledger: &[Vec<Vec<Wire<Batch>>>],
) -> Vec<Violation> {
    let mode = path.nodes[0].mode();
    let logs: Vec<Vec<Event>> = reals.iter_mut().map(Real::history).collect();
    let dumps: Vec<Vec<Vec<u8>>> = reals.iter_mut().map(Real::dump).collect();
    let stores: Vec<(BTreeSet<MsgId>, &[Vec<u8>])> = logs
        .iter()
        .zip(&dumps)
        .map(|(log, dump)| (delivered(log), dump.as_slice()))
        .collect();
    let snapshots = on_disk(reals);
    let total = bank_total(path.nodes[0].kv());
    let mut v = Vec::new();
    v.extend(integrity(&logs).err());
    v.extend(convergence(&stores).err());
    match path.model {
        Model::Kv => {
            if path.ended {
                v.extend(all_delivered(&logs).err());
            }
            if mode.is_total() {
                v.extend(total_order(&logs).err());
                v.extend(conservation(total, &dumps, &snapshots).err());
            }
            if mode.is_causal() {
                v.extend(causal_order(&logs).err());
            }
            for parts in &snapshots {
                v.extend(cut(parts).err());
                v.extend(restores(parts).err());
            }
        }
        Model::Bank => {
            v.extend(conservation(total, &dumps, &snapshots).err());
            for parts in &snapshots {
                v.extend(cut(parts).err());
                v.extend(
                    channel_contents_match(parts, ledger)
                        .map_err(|e| Violation {
                            property: "exact channel state",
                            detail: format!("snapshot {}: {}", parts[0].id, e.detail),
                        })
                        .err(),
                );
                v.extend(restores(parts).err());
            }
            if path.ended {
                v.extend(terminated(reals).err());
            }
        }
        Model::Abort => v.extend(abort(path, reals)),
    }
    v
}

fn delivered(log: &[Event]) -> BTreeSet<MsgId> {
    log.iter()
        .filter_map(|e| match e {
            Event::Deliver(m) => Some(*m),
            Event::Send(_) => None,
        })
        .collect()
}

/// Every snapshot whose parts are on every real disk, parts in node order.
fn on_disk(reals: &[Real]) -> Vec<Vec<Part>> {
    let n = reals.len();
    let ids: BTreeSet<SnapshotId> = reals
        .iter()
        .flat_map(|r| r.store.list().unwrap_or_default())
        .collect();
    ids.into_iter()
        .filter_map(|id| {
            let parts: Vec<Part> = (0..n)
                .filter_map(|i| read_part(&reals[i].store.part_path(id, i)).ok())
                .map(|f| f.part)
                .collect();
            (parts.len() == n).then_some(parts)
        })
        .collect()
}

fn violation(property: &'static str, detail: String) -> Violation {
    Violation { property, detail }
}

/// Every real store's accounts, and every part's, hold the opening total.
fn conservation(total: i64, dumps: &[Vec<Vec<u8>>], parts: &[Vec<Part>]) -> Result<(), Violation> {
    for (i, dump) in dumps.iter().enumerate() {
        let held: i64 = dump
            .chunks(2)
            .filter(|kv| kv[0].starts_with(ACCOUNT.as_bytes()))
            .map(|kv| String::from_utf8_lossy(&kv[1]).parse::<i64>().unwrap_or(0))
            .sum();
        if held != total {
            let detail = format!("n{i}'s accounts hold {held}, not {total}");
            return Err(violation("conservation", detail));
        }
    }
    for p in parts.iter().flatten() {
        let held = bank_total(&p.state.kv);
        if held != total {
            let detail = format!(
                "n{}'s part of snapshot {} records {held}, not {total}",
                p.node, p.id
            );
            return Err(violation("conservation", detail));
        }
    }
    Ok(())
}

/// The bank's termination: every request answered, every snapshot started
/// has a part on every disk.
fn terminated(reals: &mut [Real]) -> Result<(), Violation> {
    let mut waiting = Vec::new();
    for i in 0..reals.len() {
        if let Some((req, _)) = reals[i].waiting.first() {
            waiting.push(format!("n{i} never answered request {req}"));
        }
        for id in reals[i].started.clone() {
            for (j, r) in reals.iter().enumerate() {
                if !r.store.part_path(id, j).exists() {
                    waiting.push(format!("n{j} never completed snapshot {id}"));
                }
            }
        }
    }
    match waiting.is_empty() {
        true => Ok(()),
        false => Err(violation("termination", waiting.join("; "))),
    }
}

/// The abort model's properties, on the real data dirs (a committed
/// snapshot has a manifest in every node's dir, an aborted one an `ABORTED`
/// record) and the real clients' replies.
fn abort(path: &SpecPath, reals: &mut [Real]) -> Vec<Violation> {
    let status = |r: &Real, id| r.store.status(id).unwrap_or(Status::Missing);
    let ids: BTreeSet<SnapshotId> = reals
        .iter()
        .flat_map(|r| r.store.list().unwrap_or_default())
        .collect();
    let mut v = Vec::new();
    'xor: for &id in &ids {
        if reals[id.initiator].crashed {
            continue;
        }
        for (i, a) in reals.iter().enumerate() {
            if !matches!(status(a, id), Status::Complete(_)) {
                continue;
            }
            for (j, b) in reals.iter().enumerate() {
                if let Status::Aborted(why) = status(b, id) {
                    let detail = format!(
                        "snapshot {id} committed at n{i} but aborted at n{j} ({why}), and its initiator is alive"
                    );
                    v.push(violation(XOR, detail));
                    break 'xor;
                }
            }
        }
    }
    let live: Vec<usize> = (0..reals.len()).filter(|&i| !reals[i].crashed).collect();
    for &i in &live {
        for &id in &ids {
            let kept = reals[i].store.part_path(id, i).exists();
            let detail = match status(&reals[i], id) {
                Status::Aborted(_) if kept => format!("n{i} aborted {id} but keeps its part"),
                Status::Complete(_) => continue,
                _ if kept && path.ended => {
                    format!("all is quiet, and n{i} keeps a part of {id}, which it never committed")
                }
                Status::Missing | Status::Incomplete { .. } if path.ended => {
                    format!("all is quiet, and snapshot {id} never ended at n{i}")
                }
                _ => continue,
            };
            let property = if detail.contains("never ended") {
                ENDS
            } else {
                NO_PART
            };
            v.push(violation(property, detail));
        }
    }
    if path.ended {
        for &i in &live {
            let active = reals[i].info("snapshots_in_progress");
            if !active.trim().is_empty() {
                let detail = format!("all is quiet, and n{i} still records {active}");
                v.push(violation(ENDS, detail));
            }
            if let Some((req, _)) = reals[i].waiting.first() {
                let detail =
                    format!("all is quiet, and n{i}'s client request {req} was never answered");
                v.push(violation(ANSWERED, detail));
            }
        }
    }
    v
}
