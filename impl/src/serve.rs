//! Wires one node together: listeners, peer channels, client door, event loop.

use crate::config::{LogFormat, NodeConfig};
use crate::handshake::Hello;
use crate::runtime::{announce, Runtime};
use crate::shiviz::ShivizLog;
use crate::{client, peer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Inputs queued for the event loop before connections wait (backpressure).
const INPUT_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Runs a node until the process is stopped.
pub async fn serve(cfg: NodeConfig) -> Result<(), ServeError> {
    let (me, n) = (cfg.id, cfg.cluster_size());
    let peer_listener = bind("peers", &cfg.peer_listen).await?;
    let client_listener = bind("clients", &cfg.client_listen).await?;
    let local = |l: &TcpListener, fallback: &str| {
        l.local_addr()
            .map_or_else(|_| fallback.to_string(), |a| a.to_string())
    };
    let peer_addr = local(&peer_listener, &cfg.peer_listen);
    let client_addr = local(&client_listener, &cfg.client_listen);

    let (inputs, rx) = mpsc::channel(INPUT_QUEUE);
    let mut writers = vec![None; n];
    for (j, addr) in cfg.peers.iter().enumerate().filter(|(j, _)| *j != me) {
        let (tx, queue) = mpsc::unbounded_channel();
        writers[j] = Some(tx);
        let hello = Hello::new(&cfg.cluster_id, cfg.mode, n, me, j);
        tokio::spawn(peer::run_outgoing(
            hello,
            addr.clone(),
            queue,
            inputs.clone(),
        ));
    }
    let ours = Hello::new(&cfg.cluster_id, cfg.mode, n, me, me);
    tokio::spawn(peer::accept_loop(peer_listener, ours, inputs.clone()));
    tokio::spawn(client::accept_loop(client_listener, inputs));

    let shiviz = (cfg.log_format == LogFormat::Shiviz).then(|| {
        let out = std::io::BufWriter::new(std::io::stdout());
        ShivizLog::new(me, n, Box::new(out))
    });
    announce(
        cfg.log_format,
        &format!(
            "gsmo node {me} listening: clients {client_addr}, peers {peer_addr}, mode {}, cluster `{}` of {n}",
            cfg.mode, cfg.cluster_id
        ),
    );
    Runtime::new(cfg, writers, shiviz, client_addr)
        .run(rx)
        .await;
    Ok(())
}
