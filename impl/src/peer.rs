//! Peer channels: one TCP connection per directed pair, so each channel is FIFO
//! as Chandy-Lamport and the model assume.
//!
//! Node `i` dials node `j` for the channel `i -> j` and only writes on it; it
//! accepts `j`'s dial for `j -> i` and only reads from it. Dialing retries with
//! backoff while the cluster starts. Once a channel has been up, losing it is
//! final: it is reported (log + `INFO`) and never silently re-opened, because
//! messages in flight on the dead connection would leave a gap the protocol
//! cannot see. A stranger's connection (garbage, a wrong cluster, an impostor
//! for a connected id) is refused and closed without touching any channel.

use crate::frame::{self, codec, PeerFrame, MAX_FRAME, MAX_HANDSHAKE_FRAME};
use crate::handshake::{self, HandshakeError, Hello, Refusal};
use crate::runtime::Input;
use futures::{SinkExt, StreamExt};
use gsmo_spec::NodeId;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Frames written before a flush when the queue keeps refilling.
const WRITE_BATCH: usize = 512;

/// Which way a channel carries messages, seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node to the peer.
    Out,
    /// The peer to this node.
    In,
}

/// A channel's condition, as `INFO` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Up,
    /// Was up, then broke; never re-opened.
    Lost(String),
    /// The peer refused our handshake (a configuration mismatch).
    Refused(String),
    /// The peer sent something a correct peer never sends.
    Failed(String),
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // INFO values must stay on one line and free of the `,` separator.
        let clean = |s: &str| s.replace([',', '\r', '\n'], ";");
        match self {
            LinkState::Connecting => f.write_str("connecting"),
            LinkState::Up => f.write_str("up"),
            LinkState::Lost(r) => write!(f, "LOST({})", clean(r)),
            LinkState::Refused(r) => write!(f, "REFUSED({})", clean(r)),
            LinkState::Failed(r) => write!(f, "FAILED({})", clean(r)),
        }
    }
}

/// A change in a channel's condition, for the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Up {
        peer: NodeId,
        dir: Direction,
    },
    Down {
        peer: NodeId,
        dir: Direction,
        reason: String,
    },
    Refused {
        peer: NodeId,
        reason: String,
    },
}

/// The outgoing channel to `hello.to` at `addr`: dial (with backoff), then
/// write every frame queued for it until the connection breaks.
pub async fn run_outgoing(
    hello: Hello,
    addr: String,
    mut queue: mpsc::UnboundedReceiver<PeerFrame>,
    inputs: mpsc::Sender<Input>,
) {
    let peer = hello.to as NodeId;
    let framed = match dial(&hello, &addr).await {
        Ok(f) => f,
        Err(reason) => {
            drop(queue); // from now on the runtime's sends fail and are counted as dropped
            let _ = inputs
                .send(Input::Link(LinkEvent::Refused { peer, reason }))
                .await;
            return;
        }
    };
    let _ = inputs
        .send(Input::Link(LinkEvent::Up {
            peer,
            dir: Direction::Out,
        }))
        .await;
    let reason = pump(framed, &mut queue).await;
    drop(queue);
    let _ = inputs
        .send(Input::Link(LinkEvent::Down {
            peer,
            dir: Direction::Out,
            reason,
        }))
        .await;
}

/// Dials until a handshake succeeds; gives up only when the peer refuses us.
async fn dial(
    hello: &Hello,
    addr: &str,
) -> Result<Framed<TcpStream, LengthDelimitedCodec>, String> {
    let peer = hello.to;
    let mut delay = FIRST_BACKOFF;
    for attempt in 1u64.. {
        let result = async {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            stream.set_nodelay(true)?;
            let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
            handshake::offer(&mut framed, hello).await?;
            Ok::<_, HandshakeError>(framed)
        }
        .await;
        match result {
            Ok(framed) => return Ok(framed),
            Err(e) if e.is_permanent() => return Err(e.to_string()),
            Err(e) => {
                if attempt == 1 || attempt % 25 == 0 {
                    info!(
                        peer,
                        "waiting for node {peer} at {addr}: {e} (attempt {attempt}, retrying)"
                    );
                } else {
                    debug!(peer, "dial attempt {attempt} failed: {e}");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    }
    unreachable!("the attempt counter does not run out")
}

/// Writes queued frames, flushing whenever the queue runs dry; returns why it stopped.
async fn pump(
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    queue: &mut mpsc::UnboundedReceiver<PeerFrame>,
) -> String {
    let (mut read, write) = framed.into_inner().into_split();
    let mut sink = FramedWrite::new(write, codec(MAX_FRAME));
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            next = queue.recv() => {
                let Some(first) = next else {
                    return "this node is shutting down".into();
                };
                if let Err(e) = write_batch(&mut sink, first, queue).await {
                    return format!("write failed: {e}");
                }
            }
            // Nothing is ever sent back on an outgoing channel: a read ending is the peer hanging up.
            r = read.read(&mut probe) => {
                return match r {
                    Ok(0) => "connection closed by the peer".into(),
                    Ok(_) => "the peer sent data on our outgoing channel".into(),
                    Err(e) => format!("connection error: {e}"),
                };
            }
        }
    }
}

async fn write_batch(
    sink: &mut FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>,
    first: PeerFrame,
    queue: &mut mpsc::UnboundedReceiver<PeerFrame>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    sink.feed(frame::encode(&first)?).await?;
    for _ in 0..WRITE_BATCH {
        match queue.try_recv() {
            Ok(f) => sink.feed(frame::encode(&f)?).await?,
            Err(_) => break,
        }
    }
    SinkExt::<bytes::Bytes>::flush(sink).await?;
    Ok(())
}

/// Accepts peer connections forever. `ours` is this node's view (with `to` = this node).
pub async fn accept_loop(listener: TcpListener, ours: Hello, inputs: mpsc::Sender<Input>) {
    // Which peers already have (or had) their incoming channel: each may open it once.
    let claimed = Arc::new(Mutex::new(vec![false; ours.cluster_size as usize]));
    // Peer-port connections at once, channels included: strangers cannot use up the
    // descriptors `admission::reserved_fds` keeps for peers and snapshot files.
    let open = Arc::new(tokio::sync::Semaphore::new(
        2 * ours.cluster_size as usize + 8,
    ));
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    warn!(%addr, "refused a peer connection from {addr}: too many open");
                    continue;
                };
                let serve =
                    serve_incoming(stream, addr, ours.clone(), claimed.clone(), inputs.clone());
                tokio::spawn(async move {
                    serve.await;
                    drop(permit);
                });
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!("cannot accept a peer connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_incoming(
    stream: TcpStream,
    addr: SocketAddr,
    ours: Hello,
    claimed: Arc<Mutex<Vec<bool>>>,
    inputs: mpsc::Sender<Input>,
) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
    let admit = |from: NodeId| {
        let mut claimed = claimed.lock().expect("claim table poisoned");
        if std::mem::replace(&mut claimed[from], true) {
            Err(Refusal::Duplicate(from))
        } else {
            Ok(())
        }
    };
    let from = match handshake::accept(&mut framed, &ours, admit).await {
        Ok((from, ())) => from,
        Err(e) => {
            warn!(%addr, "refused a peer connection from {addr}: {e}");
            return;
        }
    };
    framed.codec_mut().set_max_frame_length(MAX_FRAME);
    let _ = inputs
        .send(Input::Link(LinkEvent::Up {
            peer: from,
            dir: Direction::In,
        }))
        .await;
    let reason = loop {
        match framed.next().await {
            None => break "connection closed by the peer".to_string(),
            Some(Err(e)) => break format!("bad frame: {e}"),
            Some(Ok(body)) => match frame::decode::<PeerFrame>(&body) {
                Ok(frame) => {
                    if inputs.send(Input::Peer { from, frame }).await.is_err() {
                        return; // shutting down
                    }
                }
                Err(e) => break e.to_string(),
            },
        }
    };
    let _ = inputs
        .send(Input::Link(LinkEvent::Down {
            peer: from,
            dir: Direction::In,
            reason,
        }))
        .await;
}
