//! The operator commands: `gsmo snapshot take|list|show|verify` and
//! `gsmo trace check|show`. Each reads files the nodes wrote and judges them with
//! the spec's own functions; none of them touches a running node's state
//! except `take`, which sends one `SNAPSHOT` command like any Redis client.

use crate::config::RestoreFrom;
use crate::inspect::{self, VerifyOptions};
use crate::store::{SnapshotStore, Status};
use crate::tracefile::read_trace;
use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::trace::{check_cluster, Trace};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

fn open(data_dir: &Path) -> anyhow::Result<SnapshotStore> {
    anyhow::ensure!(
        data_dir.is_dir(),
        "{} is not a directory (pass the cluster's --data-dir)",
        data_dir.display()
    );
    Ok(SnapshotStore::open(data_dir)?)
}

fn resolve(store: &SnapshotStore, id: RestoreFrom) -> anyhow::Result<SnapshotId> {
    Ok(match id {
        RestoreFrom::Latest => store.latest_complete()?,
        RestoreFrom::Id(id) => id,
    })
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
    let store = open(dir)?;
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

pub fn list(data_dir: &Path) -> anyhow::Result<()> {
    let store = open(data_dir)?;
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
    Ok(())
}

pub fn show(data_dir: &Path, id: RestoreFrom) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    let id = resolve(&store, id)?;
    let (manifest, parts) = store.load(id)?;
    print!("{}", inspect::show(&manifest, &parts));
    Ok(())
}

pub fn verify(
    data_dir: &Path,
    id: RestoreFrom,
    bank_prefix: Option<String>,
    bank_total: Option<i64>,
) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    let id = resolve(&store, id)?;
    let (manifest, parts) = store.load(id)?;
    println!(
        "snapshot {id}: manifest and {} part checksums OK",
        parts.len()
    );
    let opts = VerifyOptions {
        bank_prefix: bank_prefix.map(String::into_bytes),
        bank_total,
    };
    let report = inspect::verify(&manifest, &parts, &opts);
    println!("{report}");
    if !report.passed() {
        bail!("snapshot {id} failed verification");
    }
    Ok(())
}

/// Reads traces (one per node, in id order) and checks them with the spec.
pub fn load_traces(paths: &[PathBuf]) -> anyhow::Result<Vec<Trace>> {
    let mut traces = Vec::new();
    for p in paths {
        let (t, truncated) = read_trace(p)?;
        if truncated > 0 {
            eprintln!(
                "{}: ignoring a last record cut short ({truncated} bytes; the node was killed mid-write)",
                p.display()
            );
        }
        traces.push(t);
    }
    Ok(traces)
}

fn mode_of(t: &Trace) -> gsmo_spec::multicast::Mode {
    match &t.start {
        gsmo_spec::trace::Start::Fresh { mode, .. } => *mode,
        gsmo_spec::trace::Start::Restored(part) => part.state.multicast.mode(),
    }
}

pub fn check_traces(paths: &[PathBuf], quiescent: bool) -> anyhow::Result<()> {
    let traces = load_traces(paths)?;
    let mode = mode_of(&traces[0]);
    match check_cluster(&traces, mode, quiescent) {
        Ok(c) => {
            println!(
                "CONFORMS: {} traces, {} steps replayed through the spec, {} channel messages \
                 matched, {} deliveries checked for {mode} order",
                traces.len(),
                c.steps,
                c.messages,
                c.deliveries
            );
            Ok(())
        }
        Err(v) => bail!("DOES NOT CONFORM: {v}"),
    }
}

/// `gsmo trace show`: the traces as a space-time diagram, in SVG and/or HTML.
pub fn show_traces(
    paths: &[PathBuf],
    svg: Option<&Path>,
    html: Option<&Path>,
    steps: Option<usize>,
) -> anyhow::Result<()> {
    use gsmo_view::spacetime;
    let traces = load_traces(paths)?;
    anyhow::ensure!(!traces.is_empty(), "no traces given");
    let total: usize = traces.iter().map(|t| t.steps.len()).sum();
    let title = format!(
        "{} nodes, {}: {total} steps{}",
        traces.len(),
        mode_of(&traces[0]),
        steps.map_or(String::new(), |k| format!(" (first {k} per node)"))
    );
    let d = gsmo_view::trace::diagram(&traces, &title, steps);
    for (path, text) in [
        (svg, svg.map(|_| spacetime::svg(&d))),
        (html, html.map(|_| spacetime::html(&d))),
    ] {
        if let (Some(path), Some(text)) = (path, text) {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    let recorded = d.messages.iter().filter(|m| !m.recorded.is_empty()).count();
    println!(
        "{} nodes, {} events, {} messages, {} snapshot cuts, {recorded} messages recorded in flight",
        d.nodes.len(),
        d.events.iter().map(Vec::len).sum::<usize>(),
        d.messages.len(),
        d.cuts.len()
    );
    Ok(())
}
