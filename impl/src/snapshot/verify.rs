//! `gsmo snapshot show` and `gsmo snapshot verify`: judge a stored snapshot
//! with the spec's own predicates, the same functions the model checker
//! evaluates, plus a dry-run restore in the spec's simulator. (Reading the
//! files, checksums and placement checks are the store's: [`super::store`].)

use super::format::PartFile;
use super::manifest::Manifest;
use gsmo_spec::properties;
use gsmo_spec::sim::Cluster;
use std::fmt::Write as _;

/// What `verify` should additionally check.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Keys starting with this prefix are bank accounts (e.g. `acct:`); their sum must be conserved.
    pub bank_prefix: Option<Vec<u8>>,
    /// The expected bank total; without it, all parts must merely agree.
    pub bank_total: Option<i64>,
}

/// One named check and its outcome (a short explanation either way).
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.is_ok())
    }

    fn add(&mut self, name: &'static str, outcome: Result<String, String>) {
        self.checks.push(Check { name, outcome });
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            match &c.outcome {
                Ok(note) => writeln!(f, "  PASS  {:<28} {note}", c.name)?,
                Err(why) => writeln!(f, "  FAIL  {:<28} {why}", c.name)?,
            }
        }
        write!(
            f,
            "{}",
            if self.passed() {
                "snapshot verified"
            } else {
                "snapshot FAILED verification"
            }
        )
    }
}

/// Human-readable summary of a complete snapshot, from its manifest alone.
pub fn show(manifest: &Manifest) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "snapshot {}  cluster {}  mode {}  nodes {}  cut {}",
        manifest.id,
        manifest.cluster_id,
        manifest.mode,
        manifest.nodes,
        super::manifest::utc(manifest.cut_unix_ms())
    );
    let _ = writeln!(
        s,
        "{:>4}  {:>9}  {:>12}  {:>11}  {:>12}  {:>9}  delivered vector",
        "node", "keys", "state bytes", "file bytes", "channel msgs", "duration"
    );
    for info in &manifest.parts {
        let _ = writeln!(
            s,
            "{:>4}  {:>9}  {:>12}  {:>11}  {:>12}  {:>7}ms  {:?}",
            info.node,
            info.keys,
            info.state_bytes,
            info.bytes,
            info.channel_messages,
            info.duration_ms,
            info.delivered
        );
    }
    s
}

/// Runs every check on a loaded snapshot.
pub fn verify(manifest: &Manifest, parts: &[PartFile], opts: &VerifyOptions) -> Report {
    let mut r = Report::default();
    let raw: Vec<_> = parts.iter().map(|p| p.part.clone()).collect();
    let structure = (raw.len() == manifest.nodes
        && raw
            .iter()
            .enumerate()
            .all(|(i, p)| p.node == i && p.id == manifest.id))
    .then(|| format!("{} parts of snapshot {}", raw.len(), manifest.id))
    .ok_or_else(|| "parts do not match the manifest".to_string());
    let structure_ok = structure.is_ok();
    r.add("parts match manifest", structure);
    if !structure_ok {
        return r;
    }

    let in_flight: usize = raw.iter().map(|p| p.channel_messages()).sum();
    r.add(
        "consistent cut (channels)",
        properties::consistent_cut(&raw)
            .map(|_| "every message received before a record was sent before the sender's".into())
            .map_err(|v| v.to_string()),
    );
    let sent: Vec<u64> = raw.iter().map(|p| p.state.multicast.sent()).collect();
    let delivered: Vec<Vec<u64>> = raw
        .iter()
        .map(|p| p.state.multicast.delivered().to_vec())
        .collect();
    r.add(
        "consistent cut (vectors)",
        properties::consistent_delivery_vectors(&sent, &delivered)
            .map(|_| format!("multicasts sent before the cut: {sent:?}"))
            .map_err(|v| v.to_string()),
    );
    r.add(
        "exact channel state",
        properties::exact_channel_state(&raw)
            .map(|_| format!("{in_flight} messages recorded in flight, no gaps"))
            .map_err(|v| v.to_string()),
    );

    if let Some(prefix) = &opts.bank_prefix {
        let sums: Result<Vec<i64>, String> = raw
            .iter()
            .map(|p| {
                p.state
                    .kv
                    .sum_prefix(prefix)
                    .map_err(|e| format!("node {}: {e}", p.node))
            })
            .collect();
        let outcome = sums.and_then(|sums| {
            let total = opts.bank_total.unwrap_or(sums[0]);
            for (node, sum) in sums.iter().enumerate() {
                properties::conservation(total as i128, [*sum as i128], [])
                    .map_err(|v| format!("node {node}: {v}"))?;
            }
            Ok(format!(
                "every part's '{}*' balances sum to {total}",
                String::from_utf8_lossy(prefix)
            ))
        });
        r.add("conservation", outcome);
    }

    r.add("restores to one state", dry_run_restore(&raw, &sent));
    r
}

/// Restores the parts into the spec's simulated cluster, lets it settle and
/// checks that every replica ends identical, holding exactly the writes sent
/// before the cut.
fn dry_run_restore(parts: &[gsmo_spec::node::Part], sent: &[u64]) -> Result<String, String> {
    let mut c = Cluster::restore(parts).map_err(|e| e.to_string())?;
    c.quiesce().map_err(|e| e.to_string())?;
    let first = c.nodes[0].kv();
    if let Some(bad) = c.nodes.iter().position(|n| n.kv() != first) {
        return Err(format!("after restore, node {bad} differs from node 0"));
    }
    if let Some(bad) = c
        .nodes
        .iter()
        .position(|n| n.state().multicast.delivered() != sent)
    {
        return Err(format!(
            "after restore, node {bad} delivered {:?}, expected {sent:?}",
            c.nodes[bad].state().multicast.delivered()
        ));
    }
    Ok(format!("all replicas settle on {} keys", first.len()))
}

#[cfg(test)]
mod tests {
    use super::super::store::SnapshotStore;
    use super::*;
    use gsmo_spec::kv::Op;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::Command;

    fn bank_snapshot(mode: Mode) -> (Manifest, Vec<PartFile>) {
        let mut c = Cluster::new(3, mode);
        let pairs = (0..4)
            .map(|i| (format!("acct:{i}").into_bytes(), b"50".to_vec()))
            .collect();
        c.client(0, Command::Write(Op::MSet { pairs }));
        c.quiesce().unwrap();
        for i in 0..3 {
            let op = Op::Transfer {
                from: format!("acct:{i}").into_bytes(),
                to: b"acct:3".to_vec(),
                amount: 5,
            };
            c.client(i, Command::Write(op));
        }
        let id = c.snapshot(2);
        c.step(0, 1).unwrap();
        c.quiesce().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        for part in c.completed(id).unwrap() {
            store
                .write_part(&PartFile {
                    cluster_id: "c".into(),
                    mode,
                    recorded_unix_ms: 0,
                    duration_ms: 0,
                    part,
                })
                .unwrap();
        }
        store.try_assemble(id, 3).unwrap().unwrap();
        store.load(id).unwrap()
    }

    #[test]
    fn a_real_snapshot_passes_every_check() {
        let (m, parts) = bank_snapshot(Mode::TotalSequencer);
        let opts = VerifyOptions {
            bank_prefix: Some(b"acct:".to_vec()),
            bank_total: Some(200),
        };
        let report = verify(&m, &parts, &opts);
        assert!(report.passed(), "{report}");
        assert_eq!(report.checks.len(), 6);
        assert!(show(&m).contains("snapshot 2-1"));
    }

    /// The names of the checks a report failed.
    fn failed(report: &Report) -> Vec<&'static str> {
        report
            .checks
            .iter()
            .filter(|c| c.outcome.is_err())
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn tampered_snapshots_fail_the_right_check() {
        let (m, parts) = bank_snapshot(Mode::TotalIsis);
        let opts = VerifyOptions {
            bank_prefix: Some(b"acct:".to_vec()),
            bank_total: Some(999),
        };
        let report = verify(&m, &parts, &opts);
        assert_eq!(failed(&report), ["conservation"]);
        assert!(!report.passed());

        // A part missing, or two parts under each other's node: the
        // structure check fails and nothing else is judged.
        let mut swapped = parts.clone();
        swapped.swap(0, 1);
        for odd in [&parts[..2], &swapped[..]] {
            let report = verify(&m, odd, &VerifyOptions::default());
            assert_eq!(report.checks.len(), 1, "{report}");
            assert_eq!(report.checks[0].name, "parts match manifest");
            assert!(!report.passed());
        }

        // A part whose store lost its keys: the cut's counts still agree,
        // but the restored replicas do not.
        let mut emptied = parts.clone();
        emptied[2].part.state.kv = Default::default();
        let report = verify(&m, &emptied, &VerifyOptions::default());
        assert_eq!(failed(&report), ["restores to one state"], "{report}");

        let mut lost = parts.clone();
        lost[1].part.sent[0] += 1; // claims a message in flight that nobody recorded
        let report = verify(&m, &lost, &VerifyOptions::default());
        assert!(failed(&report).contains(&"exact channel state"), "{report}");

        let mut ahead = parts;
        ahead[0].part.received[1] = ahead[1].part.sent[0] + 1;
        let report = verify(&m, &ahead, &VerifyOptions::default());
        assert!(
            failed(&report).contains(&"consistent cut (channels)"),
            "{report}"
        );
    }
}
