//! Peer connections: one TCP connection per directed pair at a time, re-dialed
//! forever, each carrying the spec's link frames (`gsmo_spec::link`).
//!
//! Node `i` dials node `j` for the channel `i -> j` and only writes on it; it
//! accepts `j`'s dial for `j -> i` and only reads from it. FIFO order and
//! exactly-once delivery across connections are the link layer's job, not
//! TCP's: a broken connection loses whatever was in its buffers, and the next
//! one resumes from what the receiver says it delivered.
//!
//! * **Dial** (`run_outgoing`): with backoff, forever. The handshake's welcome
//!   carries the resume point; the task reports [`LinkEvent::OutUp`] with it
//!   and a fresh bounded writer queue, then writes until the connection breaks
//!   ([`LinkEvent::OutDown`]) and dials again. A refusal (a configuration
//!   mismatch, or a peer that cannot prove the secret) is reported as
//!   [`LinkEvent::Refused`] and re-dialed too: whether it stops the node is
//!   the spec's rule (`gsmo_spec::refusal`), not this task's.
//! * **Accept** (`accept_loop`): the handshake asks the event loop for the
//!   resume point and a generation number ([`LinkEvent::InHello`]); a newer
//!   connection from the same peer replaces an older one, whose reader the loop
//!   stops. A stranger (garbage, a wrong cluster) is refused and closed
//!   without touching any channel.
//! * **Bound**: the writer queue holds at most `--peer-queue` frames. The loop
//!   never waits on it: when it is full the loop closes that connection; the
//!   link's retained buffer keeps the frames and the resume resends them.

use crate::admission::{peer_port_max, Admission};
use crate::config::RuntimeBug;
use crate::event::{loud, Admitted, Input, LinkEvent};
use crate::fault::Schedule;
use crate::frame::{self, codec, PeerFrame, MAX_FRAME, MAX_HANDSHAKE_FRAME};
use crate::handshake::{self, HandshakeError, Hello, Refusal};
use crate::net::{Listener, Net, Stream};
use futures::{SinkExt, StreamExt};
use gsmo_spec::NodeId;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Framed, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Frames written before a flush when the queue keeps refilling.
const WRITE_BATCH: usize = 512;

/// The outgoing channel to `hello.to` at `addr`: dial, write, re-dial, forever.
/// `delay` holds frames back (the `--delay` fault) without reordering them.
pub async fn run_outgoing(
    net: Net,
    hello: Hello,
    addr: String,
    queue_bound: usize,
    mut delay: Option<Schedule>,
    bug: Option<RuntimeBug>,
    inputs: mpsc::Sender<Input>,
) {
    let peer = hello.to as NodeId;
    let mut backoff = FIRST_BACKOFF;
    for gen in 1u64.. {
        match dial(&net, &hello, &addr).await {
            Ok((framed, delivered)) => {
                backoff = FIRST_BACKOFF;
                // The event loop bounds the queue (`--peer-queue` frames behind
                // the resume's resend, `Runtime::enqueue`); the resend itself is
                // bounded by the link's `--link-buffer`.
                let (queue, rx) = mpsc::channel(tokio::sync::Semaphore::MAX_PERMITS);
                let up = LinkEvent::OutUp {
                    peer,
                    gen,
                    delivered,
                    queue,
                };
                if inputs.send(Input::Link(up)).await.is_err() {
                    return; // shutting down
                }
                // Test-only: lose the first frame after a reconnect.
                let lose_first = gen > 1 && bug == Some(RuntimeBug::DropAfterReconnect);
                let reason = pump(framed, rx, queue_bound, delay.as_mut(), lose_first).await;
                let down = LinkEvent::OutDown { peer, gen, reason };
                if inputs.send(Input::Link(down)).await.is_err() {
                    return;
                }
            }
            Err(e) if e.is_permanent() => {
                let reason = e.to_string();
                let refused = LinkEvent::Refused { peer, reason };
                if inputs.send(Input::Link(refused)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let reason = format!("{e} (at {addr})");
                let failed = LinkEvent::DialFailed { peer, reason };
                if inputs.send(Input::Link(failed)).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
    }
}

/// The wait before the next dial after one more failure: doubled, up to
/// [`MAX_BACKOFF`], so a peer that stays down costs a dial a second.
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// One dial and handshake; returns the connection and the resume point.
async fn dial(
    net: &Net,
    hello: &Hello,
    addr: &str,
) -> Result<(Framed<Stream, LengthDelimitedCodec>, u64), HandshakeError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, net.connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
    let delivered = handshake::offer(&mut framed, hello).await?;
    Ok((framed, delivered))
}

/// Writes queued frames (each held until its release time under `--delay`),
/// flushing whenever nothing is due; returns why it stopped.
async fn pump(
    framed: Framed<Stream, LengthDelimitedCodec>,
    mut queue: mpsc::Receiver<PeerFrame>,
    bound: usize,
    mut delay: Option<&mut Schedule>,
    mut lose_first: bool,
) -> String {
    let (mut read, write) = tokio::io::split(framed.into_inner());
    let mut sink = FramedWrite::new(write, codec(MAX_FRAME));
    let mut probe = [0u8; 64];
    // Frames taken from the queue but not yet due (only under `--delay`).
    let mut held: VecDeque<(Instant, PeerFrame)> = VecDeque::new();
    loop {
        let head = held.front().map(|(at, _)| *at);
        // Biased: the simulator needs polling order to be a function of the seed.
        tokio::select! {
            biased;
            // Frames due first, so a busy queue cannot hold back the delay line.
            _ = sleep_until(head), if head.is_some() => {
                let now = Instant::now();
                let mut due = Vec::new();
                while held.front().is_some_and(|(at, _)| *at <= now) {
                    due.push(held.pop_front().expect("front checked").1);
                }
                if let Err(e) = write_all(&mut sink, due).await {
                    return format!("write failed: {e}");
                }
            }
            next = queue.recv(), if held.len() < bound => {
                let Some(first) = next else {
                    return "closed by this node".into();
                };
                let mut batch = vec![first];
                while batch.len() < WRITE_BATCH {
                    match queue.try_recv() {
                        Ok(f) => batch.push(f),
                        Err(_) => break,
                    }
                }
                if std::mem::take(&mut lose_first) {
                    batch.remove(0);
                }
                match delay.as_deref_mut() {
                    Some(schedule) => {
                        let now = Instant::now();
                        for f in batch {
                            // In release order; a correct schedule's times never decrease.
                            let at = schedule.release(now);
                            let pos = held.partition_point(|(t, _)| *t <= at);
                            held.insert(pos, (at, f));
                        }
                    }
                    None => {
                        if let Err(e) = write_all(&mut sink, batch).await {
                            return format!("write failed: {e}");
                        }
                    }
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

async fn write_all(
    sink: &mut FramedWrite<WriteHalf<Stream>, LengthDelimitedCodec>,
    frames: Vec<PeerFrame>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for f in &frames {
        sink.feed(frame::encode(f)?).await?;
    }
    SinkExt::<bytes::Bytes>::flush(sink).await?;
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Accepts peer connections forever. `ours` is this node's view (with `to` =
/// this node); `admission` bounds how many are open at once
/// ([`Admission::try_admit_peer`]).
pub async fn accept_loop(
    listener: Box<dyn Listener>,
    ours: Hello,
    inputs: mpsc::Sender<Input>,
    admission: Arc<Admission>,
) {
    let n = ours.cluster_size as usize;
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let permit = match admission.try_admit_peer(n) {
                    Ok(permit) => permit,
                    Err(turned_away) => {
                        let max = peer_port_max(n);
                        if loud(turned_away) {
                            warn!(%addr, "refused a peer connection from {addr}: too many open (peer_port_maxconnections {max}; refusal {turned_away} here, INFO rejected_peer_connections)");
                        } else {
                            debug!(%addr, "refused a peer connection from {addr}: too many open");
                        }
                        continue;
                    }
                };
                let serve = serve_incoming(
                    stream,
                    addr,
                    ours.clone(),
                    inputs.clone(),
                    admission.clone(),
                );
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

/// Asks the event loop to admit `peer`: a generation and the resume point.
async fn admit(inputs: &mpsc::Sender<Input>, peer: NodeId) -> Result<Admitted, Refusal> {
    let (answer, rx) = oneshot::channel();
    inputs
        .send(Input::Link(LinkEvent::InHello { peer, answer }))
        .await
        .map_err(|_| Refusal::ShuttingDown)?;
    rx.await.map_err(|_| Refusal::ShuttingDown)
}

async fn serve_incoming(
    stream: Stream,
    addr: SocketAddr,
    ours: Hello,
    inputs: mpsc::Sender<Input>,
    admission: Arc<Admission>,
) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
    // The generation the loop gave this connection, once it did: a failed
    // welcome must still be reported as this connection going down.
    let mut admitted_gen = None;
    let slot = &mut admitted_gen;
    let result = handshake::accept(&mut framed, &ours, |from| {
        let inputs = inputs.clone();
        async move {
            let a = admit(&inputs, from).await?;
            *slot = Some((from, a.gen));
            Ok((a.delivered, (a.gen, a.stop)))
        }
    })
    .await;
    let (from, gen, mut stop) = match result {
        Ok((from, (gen, stop))) => (from, gen, stop),
        Err(HandshakeError::Refused(Refusal::ShuttingDown)) => return,
        Err(e) => {
            let n = admission.peer_handshake_failed();
            if loud(n) {
                warn!(%addr, "refused a peer connection from {addr}: {e} (handshake failure {n} here; INFO peer_handshake_failures)");
            } else {
                debug!(%addr, "refused a peer connection from {addr}: {e}");
            }
            if let Some((peer, gen)) = admitted_gen {
                let reason = format!("the welcome did not go out: {e}");
                let down = LinkEvent::InDown { peer, gen, reason };
                let _ = inputs.send(Input::Link(down)).await;
            }
            return;
        }
    };
    debug!(peer = from, gen, "inbound connection from n{from} ({addr})");
    framed.codec_mut().set_max_frame_length(MAX_FRAME);
    let reason = loop {
        tokio::select! {
            biased;
            _ = &mut stop => break "closed by this node".to_string(),
            next = framed.next() => match next {
                None => break "connection closed by the peer".to_string(),
                Some(Err(e)) => break format!("bad frame: {e}"),
                Some(Ok(body)) => match frame::decode::<PeerFrame>(&body) {
                    Ok(frame) => {
                        if inputs.send(Input::Peer { from, gen, frame }).await.is_err() {
                            return; // shutting down
                        }
                    }
                    Err(e) => break e.to_string(),
                },
            },
        }
    };
    info!(
        peer = from,
        "connection n{from}->n{} (#{gen}) ended: {reason}", ours.to
    );
    let _ = inputs
        .send(Input::Link(LinkEvent::InDown {
            peer: from,
            gen,
            reason,
        }))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dial_backoff_doubles_up_to_a_second() {
        let waits: Vec<u128> =
            std::iter::successors(Some(FIRST_BACKOFF), |&b| Some(next_backoff(b)))
                .take(8)
                .map(|b| b.as_millis())
                .collect();
        assert_eq!(waits, [20, 40, 80, 160, 320, 640, 1000, 1000]);
    }
}
