//! Wires one node together: listeners, peer channels, client door, event loop.

use crate::config::{ConfigError, LogFormat, NodeConfig};
use crate::event::Input;
use crate::fault::{self, Schedule};
use crate::handshake::{Hello, FRESH};
use crate::net::{Listener, Net};
use crate::runtime::{announce, Boot, Runtime, TICK};
use crate::shiviz::ShivizLog;
use crate::snapshot::manifest::utc;
use crate::snapshot::{datadir, SnapshotStore, StoreError};
use crate::supervise::Tasks;
use crate::tracefile::{TraceError, TraceWriter};
use crate::{client, peer};
use gsmo_spec::node::Node;
use gsmo_spec::trace::Start;
use tokio::sync::mpsc;
use tracing::warn;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot restore: {0}")]
    Restore(String),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("stopping: {0}")]
    Fatal(String),
}

/// The node's starting state: empty, or its part of a stored snapshot (the
/// manifest, this node's part, and every other part present in its data dir
/// checked first). Prints which snapshot it restores and when it was cut.
pub fn boot(cfg: &NodeConfig, store: Option<&SnapshotStore>) -> Result<Boot, ServeError> {
    let Some(from) = cfg.restore else {
        return Ok(Boot {
            node: Node::new(cfg.id, cfg.cluster_size(), cfg.mode).with_limits(cfg.limits),
            outputs: Vec::new(),
            epoch: FRESH.to_string(),
            restored_from: None,
            trace_start: cfg.trace.is_some().then(|| Start::Fresh {
                node: cfg.id,
                n: cfg.cluster_size(),
                mode: cfg.mode,
                limits: cfg.limits,
            }),
        });
    };
    let store = store.ok_or_else(|| {
        ServeError::Restore("--restore needs --data-dir (where the snapshots are)".into())
    })?;
    let chosen = store.restore_point(from)?;
    for (skipped, why) in &chosen.skipped {
        warn!("--restore {from}: skipping damaged snapshot {skipped}: {why}");
    }
    let manifest = chosen.manifest;
    let id = manifest.id;
    let mismatch = |what: &str, snap: &dyn std::fmt::Display, ours: &dyn std::fmt::Display| {
        ServeError::Restore(format!(
            "snapshot {id} was taken with {what} {snap}, this node has {ours}"
        ))
    };
    if manifest.cluster_id != cfg.cluster_id {
        return Err(mismatch(
            "cluster id",
            &manifest.cluster_id,
            &cfg.cluster_id,
        ));
    }
    if manifest.mode != cfg.mode {
        return Err(mismatch("mode", &manifest.mode, &cfg.mode));
    }
    if manifest.nodes != cfg.cluster_size() {
        return Err(mismatch(
            "cluster size",
            &manifest.nodes,
            &cfg.cluster_size(),
        ));
    }
    // Said before the part is read: a large store takes seconds to rebuild,
    // and the node opens its ports only after.
    let me = manifest.part(cfg.id)?;
    announce(
        cfg.log_format,
        &format!(
            "gsmo node {}: --restore {from}: restoring snapshot {id}, cut at {} (node {}'s clock), \
             {} keys and {} in-flight messages in this node's part ({:.1} MB)",
            cfg.id,
            utc(manifest.cut_unix_ms()),
            id.initiator,
            me.keys,
            me.channel_messages,
            me.bytes as f64 / 1e6
        ),
    );
    let started = std::time::Instant::now();
    let part = store.load_part(&manifest, cfg.id)?.part;
    let (node, outputs) =
        Node::restore(&part).map_err(|e| ServeError::Restore(format!("snapshot {id}: {e}")))?;
    announce(
        cfg.log_format,
        &format!(
            "gsmo node {}: restored snapshot {id} ({} keys) in {:.2} s",
            cfg.id,
            node.kv().len(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(Boot {
        node: node.with_limits(cfg.limits),
        outputs,
        epoch: format!("restored from {id}"),
        restored_from: Some(id),
        trace_start: cfg.trace.is_some().then(|| Start::Restored {
            part: Box::new(part),
            limits: cfg.limits,
        }),
    })
}

async fn bind(net: &Net, what: &'static str, addr: &str) -> Result<Box<dyn Listener>, ServeError> {
    net.bind(addr).await.map_err(|source| ServeError::Bind {
        what,
        addr: addr.to_string(),
        source,
    })
}

/// Runs a node on real sockets until the process is stopped.
pub async fn serve(cfg: NodeConfig) -> Result<(), ServeError> {
    serve_on(cfg, Net::tokio()).await
}

/// Runs a node on `net`'s sockets (the simulator passes simulated ones).
pub async fn serve_on(cfg: NodeConfig, net: Net) -> Result<(), ServeError> {
    let (me, n) = (cfg.id, cfg.cluster_size());
    cfg.check()?;
    // Held until the node stops: one process per node id and data dir.
    let claim = cfg
        .data_dir
        .as_deref()
        .map(|dir| datadir::claim(dir, &cfg.cluster_id, me))
        .transpose()?;
    let store = claim.as_ref().map(|c| c.store.clone());
    let boot = boot(&cfg, store.as_ref())?;
    let trace = match (&cfg.trace, &boot.trace_start) {
        (Some(path), Some(start)) => Some(TraceWriter::create(path, start)?),
        _ => None,
    };
    let peer_listener = bind(&net, "peers", &cfg.peer_listen).await?;
    let client_listener = bind(&net, "clients", &cfg.client_listen).await?;
    let local = |l: &dyn Listener, fallback: &str| {
        l.local_addr()
            .map_or_else(|_| fallback.to_string(), |a| a.to_string())
    };
    let peer_addr = local(peer_listener.as_ref(), &cfg.peer_listen);
    let client_addr = local(client_listener.as_ref(), &cfg.client_listen);

    let (inputs, rx) = mpsc::channel(cfg.input_queue.max(1));
    let mut tasks = Tasks::new();
    for (j, addr) in cfg.peers.iter().enumerate().filter(|(j, _)| *j != me) {
        let delay = cfg
            .faults
            .delay
            .map(|range| Schedule::new(range, fault::channel_seed(cfg.faults.seed, me, j)))
            .map(|s| s.with_bug(cfg.faults.bug));
        let hello = Hello::new(&cfg.cluster_id, cfg.mode, n, me, j)
            .with_epoch(&boot.epoch)
            .with_secret(cfg.cluster_secret.clone());
        let link = peer::run_outgoing(
            net.clone(),
            hello,
            addr.clone(),
            cfg.peer_queue,
            delay,
            cfg.faults.bug,
            inputs.clone(),
        );
        tasks.spawn(format!("outgoing link to n{j}"), link);
    }
    if let Some(every) = cfg.faults.disconnect_every {
        let seed = fault::channel_seed(cfg.faults.seed, me, me);
        tasks.spawn(
            "disconnect faults",
            fault::disconnect_faults(every, seed, inputs.clone()),
        );
    }
    let ours = Hello::new(&cfg.cluster_id, cfg.mode, n, me, me)
        .with_epoch(&boot.epoch)
        .with_secret(cfg.cluster_secret.clone());
    tasks.spawn(
        "peer accept loop",
        peer::accept_loop(peer_listener, ours, inputs.clone(), cfg.admission.clone()),
    );
    tasks.spawn(
        "client accept loop",
        client::accept_loop(client_listener, inputs.clone(), cfg.admission.clone()),
    );
    let ticks = inputs.clone();
    tasks.spawn("ticker", async move {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            if ticks.send(Input::Tick).await.is_err() {
                return;
            }
        }
    });

    let shiviz = (cfg.log_format == LogFormat::Shiviz).then(|| {
        let out = std::io::BufWriter::new(std::io::stdout());
        ShivizLog::new(me, n, Box::new(out))
    });
    announce(
        cfg.log_format,
        &format!(
            "gsmo node {me} listening: clients {client_addr}, peers {peer_addr}, mode {}, cluster `{}` of {n}, {}",
            cfg.mode, cfg.cluster_id, boot.epoch
        ),
    );
    if cfg.faults.delay.is_some() || cfg.faults.disconnect_every.is_some() {
        announce(
            cfg.log_format,
            &format!(
                "gsmo node {me} fault seed {} (rerun with --seed {0})",
                cfg.faults.seed
            ),
        );
    }
    let runtime = Runtime::new(cfg, boot, shiviz, client_addr, store, trace, inputs);
    let result = tasks
        .beside(runtime.run(rx))
        .await
        .map_err(ServeError::Fatal);
    drop(claim);
    result
}
