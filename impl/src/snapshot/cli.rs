//! The operator commands `gsmo snapshot take|list|show|verify`. Each reads
//! the files the nodes wrote and judges them with the spec's own functions;
//! none touches a running node's state except `take`, which sends one
//! `SNAPSHOT` command like any Redis client.
//!
//! `show` and `verify` take one data dir or several (`--data-dir A --data-dir
//! B`, one per node on separate hosts, copied or mounted here): each part is
//! checked where it lies, and a snapshot whose manifest is in none of them is
//! assembled in memory from its parts' summaries.

use super::choose::Newest;
use super::error::StoreError;
use super::format::PartFile;
use super::manifest::{assemble, Manifest, PartSummary};
use super::store::{SnapshotStore, Status};
use super::verify::{self as checks, VerifyOptions};
use crate::config::RestoreFrom;
use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use gsmo_spec::snapshot::SnapshotId;
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// One snapshot directory tree per data dir given on the command line.
pub struct DataDirs {
    stores: Vec<(PathBuf, SnapshotStore)>,
}

impl DataDirs {
    pub fn open(dirs: &[PathBuf]) -> anyhow::Result<Self> {
        anyhow::ensure!(!dirs.is_empty(), "pass at least one --data-dir");
        let mut stores = Vec::new();
        for d in dirs {
            anyhow::ensure!(
                d.is_dir(),
                "{} is not a directory (pass the cluster's --data-dir)",
                d.display()
            );
            stores.push((d.clone(), SnapshotStore::open(d)?));
        }
        Ok(DataDirs { stores })
    }

    fn names(&self) -> String {
        let names: Vec<String> = self
            .stores
            .iter()
            .map(|(d, _)| d.display().to_string())
            .collect();
        names.join(", ")
    }

    /// The snapshot `which` names; `latest`/`latest-valid` is the newest over all dirs.
    pub fn resolve(&self, which: RestoreFrom) -> anyhow::Result<SnapshotId> {
        let newest = match which {
            RestoreFrom::Id(id) => return Ok(id),
            RestoreFrom::Latest => Newest::Complete,
            RestoreFrom::LatestValid => Newest::Valid,
        };
        let mut best: Option<Manifest> = None;
        for (_, store) in &self.stores {
            match store.newest(newest) {
                Ok(chosen) => {
                    for (id, why) in &chosen.skipped {
                        eprintln!("warning: skipping damaged snapshot {id}: {why}");
                    }
                    if best
                        .as_ref()
                        .is_none_or(|b| chosen.manifest.recency() > b.recency())
                    {
                        best = Some(chosen.manifest);
                    }
                }
                Err(StoreError::NoneComplete(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        best.map(|m| m.id)
            .with_context(|| format!("no complete snapshot in {}", self.names()))
    }

    /// The manifest of `id`: from the first dir that has it, otherwise
    /// assembled from the parts' summaries wherever they lie (then the second
    /// value says so).
    pub fn manifest(&self, id: SnapshotId) -> anyhow::Result<(Manifest, bool)> {
        let mut summaries: Vec<PartSummary> = Vec::new();
        let mut statuses = Vec::new();
        for (dir, store) in &self.stores {
            match store.status(id)? {
                Status::Complete(m) => return Ok((m, false)),
                Status::Aborted(why) => bail!("snapshot {id} was aborted: {why}"),
                Status::Missing => statuses.push(format!("{}: missing", dir.display())),
                Status::Incomplete { parts } => {
                    statuses.push(format!("{}: parts from nodes {parts:?}", dir.display()));
                    for n in parts {
                        if summaries.iter().all(|s| s.node != n) {
                            summaries.push(store.summary(id, n)?);
                        }
                    }
                }
            }
        }
        let Some(nodes) = summaries.first().map(|s| s.delivered.len()) else {
            bail!("no snapshot {id} in {}", self.names());
        };
        let m = assemble(id, nodes, summaries).map_err(|e| {
            anyhow::anyhow!(
                "snapshot {id} has no manifest and its parts do not make a whole one: {e} ({})",
                statuses.join("; ")
            )
        })?;
        Ok((m, true))
    }

    /// The store holding `summary`'s part file.
    fn holder(&self, summary: &PartSummary) -> anyhow::Result<&SnapshotStore> {
        match self
            .stores
            .iter()
            .find(|(_, s)| s.dir(summary.id).join(&summary.file).exists())
        {
            Some((_, store)) => Ok(store),
            None => bail!(
                "{} of snapshot {} is in none of the data dirs {}",
                summary.file,
                summary.id,
                self.names()
            ),
        }
    }

    /// Checks every part's size and checksum against the manifest, where it lies.
    pub fn check_parts(&self, manifest: &Manifest) -> anyhow::Result<()> {
        for summary in &manifest.parts {
            self.holder(summary)?.check_part(summary)?;
        }
        Ok(())
    }

    /// Decodes every part of `manifest`, each from the dir that holds it.
    pub fn load(&self, manifest: &Manifest) -> anyhow::Result<Vec<PartFile>> {
        let mut parts = Vec::with_capacity(manifest.nodes);
        for summary in &manifest.parts {
            parts.push(self.holder(summary)?.load_part(manifest, summary.node)?);
        }
        Ok(parts)
    }
}

/// Sends `SNAPSHOT` to a node and, given the data dir, waits for the outcome.
pub async fn take(
    host: &str,
    port: u16,
    data_dir: Option<&Path>,
    wait: Duration,
) -> anyhow::Result<()> {
    let addr = format!("{host}:{port}");
    let stream = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to the node at {addr}"))?;
    let mut conn = Framed::new(stream, Resp2::default());
    let cmd = BytesFrame::Array(vec![BytesFrame::BulkString("SNAPSHOT".into())]);
    conn.send(cmd).await.context("sending SNAPSHOT")?;
    let id: SnapshotId = match conn.next().await {
        Some(Ok(BytesFrame::BulkString(b))) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("unexpected reply {b:?}"))?,
        Some(Ok(BytesFrame::Error(e))) => bail!("the node refused: {e}"),
        other => bail!("unexpected reply from {addr}: {other:?}"),
    };
    println!("snapshot {id} started at {addr}");
    let Some(dir) = data_dir else {
        println!("(pass --data-dir to wait for it to complete)");
        return Ok(());
    };
    let store = DataDirs::open(&[dir.to_path_buf()])?.stores.remove(0).1;
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match store.status(id)? {
            Status::Complete(m) => {
                println!(
                    "snapshot {id} COMPLETE in {:.2}s: {} parts",
                    start.elapsed().as_secs_f64(),
                    m.nodes
                );
                println!("  gsmo snapshot verify {id} --data-dir {}", dir.display());
                return Ok(());
            }
            Status::Aborted(why) => bail!("snapshot {id} ABORTED: {why}"),
            Status::Missing => {} // the first part is not written yet
            Status::Incomplete { parts } => {
                let now = format!("{} part(s) written: {parts:?}", parts.len());
                if now != last {
                    eprintln!(
                        "  {:.1}s  snapshot {id}: {now}",
                        start.elapsed().as_secs_f64()
                    );
                    last = now;
                }
            }
        }
        if start.elapsed() > wait {
            bail!("snapshot {id} not complete after {wait:?} (see the nodes' INFO `snapshots_in_progress`)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn list(data_dirs: &[PathBuf]) -> anyhow::Result<()> {
    let dirs = DataDirs::open(data_dirs)?;
    for (dir, store) in &dirs.stores {
        if dirs.stores.len() > 1 {
            println!("{}:", dir.display());
        }
        let ids = store.list()?;
        if ids.is_empty() {
            println!("no snapshots in {}", store.root().display());
        }
        for id in ids {
            let status = match store.status(id) {
                Ok(s) => s.to_string(),
                Err(e) => format!("UNREADABLE: {e}"),
            };
            println!("{id:>8}  {status}");
        }
    }
    Ok(())
}

pub fn show(data_dirs: &[PathBuf], id: RestoreFrom) -> anyhow::Result<()> {
    let dirs = DataDirs::open(data_dirs)?;
    let id = dirs.resolve(id)?;
    let (manifest, assembled) = dirs.manifest(id)?;
    if assembled {
        println!("(no manifest written yet: assembled from the parts' summaries)");
    }
    dirs.check_parts(&manifest)?;
    print!("{}", checks::show(&manifest));
    Ok(())
}

pub fn verify(
    data_dirs: &[PathBuf],
    id: RestoreFrom,
    bank_prefix: Option<String>,
    bank_total: Option<i64>,
) -> anyhow::Result<()> {
    let dirs = DataDirs::open(data_dirs)?;
    let id = dirs.resolve(id)?;
    let (manifest, assembled) = dirs.manifest(id)?;
    let parts = dirs.load(&manifest)?;
    println!(
        "snapshot {id}: {} and {} part checksums OK, every file in its place",
        if assembled {
            "part summaries (no manifest written yet)"
        } else {
            "manifest"
        },
        parts.len()
    );
    let opts = VerifyOptions {
        bank_prefix: bank_prefix.map(String::into_bytes),
        bank_total,
    };
    let report = checks::verify(&manifest, &parts, &opts);
    println!("{report}");
    if !report.passed() {
        bail!("snapshot {id} failed verification");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsmo_spec::kv::Op;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::Command;
    use gsmo_spec::sim::Cluster;

    /// One data dir per node, as on separate hosts: no dir holds every part
    /// and none holds a manifest, yet the parts where they lie verify.
    #[test]
    fn verify_takes_the_parts_where_they_are() {
        let mut c = Cluster::new(3, Mode::TotalIsis);
        for i in 0..3 {
            c.client(
                i,
                Command::Write(Op::Set {
                    key: format!("k{i}").into_bytes(),
                    value: b"v".to_vec(),
                }),
            );
        }
        let id = c.snapshot(1);
        c.quiesce().unwrap();
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        for part in c.completed(id).unwrap() {
            let store = SnapshotStore::open(dirs[part.node].path()).unwrap();
            store
                .write_part(&PartFile {
                    cluster_id: "c".into(),
                    mode: Mode::TotalIsis,
                    recorded_unix_ms: 0,
                    duration_ms: 0,
                    part,
                })
                .unwrap();
        }
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
        let all = DataDirs::open(&paths).unwrap();
        let (manifest, assembled) = all.manifest(id).unwrap();
        assert!(assembled);
        assert_eq!(manifest.nodes, 3);
        let parts = all.load(&manifest).unwrap();
        let report = checks::verify(&manifest, &parts, &VerifyOptions::default());
        assert!(report.passed(), "{report}");

        // Two of three dirs: the missing part is named, not guessed.
        let two = DataDirs::open(&paths[..2]).unwrap();
        let err = two.manifest(id).unwrap_err().to_string();
        assert!(err.contains("have parts from [0, 1]"), "{err}");

        // With a manifest written into every dir (what the initiator will do),
        // each dir shows it complete and retention can run there.
        for p in &paths {
            SnapshotStore::open(p)
                .unwrap()
                .write_manifest(&manifest)
                .unwrap();
        }
        let (again, assembled) = DataDirs::open(&paths[2..]).unwrap().manifest(id).unwrap();
        assert!(!assembled);
        assert_eq!(again, manifest);
        all.check_parts(&manifest).unwrap();
    }
}
