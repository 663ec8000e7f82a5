//! Redis client connections.
//!
//! Each connection is a reader and a writer joined by a bounded queue of
//! pending replies, in request order: the reader parses a request, hands it to
//! the runtime with a oneshot for the answer and queues the oneshot; the writer
//! awaits the queue's head, so replies leave in request order however the
//! replica interleaves them, and pipelining works. The writer flushes only when
//! nothing else is ready, so a pipeline's replies share TCP segments.
//!
//! Commands on one connection take effect in order, as in Redis, even when
//! pipelined: writes are multicast in arrival order (every mode keeps one
//! origin's writes in FIFO order), and a read or admin command that arrives
//! while this connection still has writes awaiting local delivery is held back
//! and dispatched by the writer once their replies are out; anything arriving
//! behind a held-back request is held back too. Without that, a pipelined
//! `SET k v; GET k` could read before its own write (or after a later one).

use crate::event::{ClientRequest, Input, Response};
use crate::resp::{self, Request, RespCodec, RespError};
use futures::{SinkExt, StreamExt};
use gsmo_spec::node::Command;
use redis_protocol::resp2::types::BytesFrame;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, warn};

/// Replies a connection may have outstanding before its reader waits.
const PIPELINE_DEPTH: usize = 1024;

enum Pending {
    Ready(BytesFrame),
    Wait(oneshot::Receiver<Response>),
    /// A write's answer; counts down the connection's writes in flight.
    Write(oneshot::Receiver<Response>),
    /// A request to dispatch only when every earlier reply is out.
    Deferred(ClientRequest),
    /// Write this, then close the connection.
    Close(BytesFrame),
}

/// Serves Redis clients forever.
pub async fn accept_loop(listener: TcpListener, inputs: mpsc::Sender<Input>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, inputs.clone()));
            }
            Err(e) => {
                warn!("cannot accept a client connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, inputs: mpsc::Sender<Input>) {
    let _ = stream.set_nodelay(true);
    let who = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
    let order = Arc::new(Order::default());
    let writer = tokio::spawn(write_replies(write, rx, inputs.clone(), order.clone()));
    let mut requests = FramedRead::new(read, RespCodec::default());
    while let Some(next) = requests.next().await {
        let pending = match next {
            Ok(args) => match resp::parse_command(&args) {
                Request::Local(frame) => Pending::Ready(frame),
                Request::Quit => Pending::Close(resp::ok()),
                Request::Node(req) => {
                    let is_write = matches!(req, ClientRequest::Kv(Command::Write(_)));
                    if order.must_defer(is_write) {
                        order.deferred.fetch_add(1, SeqCst);
                        Pending::Deferred(req)
                    } else {
                        if is_write {
                            order.writes.fetch_add(1, SeqCst);
                        }
                        let Some(answer) = dispatch(&inputs, req).await else {
                            break; // shutting down
                        };
                        if is_write {
                            Pending::Write(answer)
                        } else {
                            Pending::Wait(answer)
                        }
                    }
                }
            },
            Err(RespError::Protocol(e)) => {
                debug!(client = %who, "closing client connection: Protocol error: {e}");
                Pending::Close(resp::error(format!("ERR Protocol error: {e}")))
            }
            Err(RespError::Io(e)) => {
                debug!(client = %who, "client connection failed: {e}");
                break;
            }
        };
        let closing = matches!(pending, Pending::Close(_));
        if tx.send(pending).await.is_err() || closing {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// What keeps one connection's commands in order (see the module docs).
#[derive(Default)]
struct Order {
    /// Writes dispatched whose answer has not arrived yet.
    writes: AtomicUsize,
    /// Requests queued for the writer to dispatch.
    deferred: AtomicUsize,
}

impl Order {
    fn must_defer(&self, is_write: bool) -> bool {
        self.deferred.load(SeqCst) > 0 || (!is_write && self.writes.load(SeqCst) > 0)
    }
}

/// Hands a request to the runtime; `None` if the runtime is gone.
async fn dispatch(
    inputs: &mpsc::Sender<Input>,
    req: ClientRequest,
) -> Option<oneshot::Receiver<Response>> {
    let (reply, answer) = oneshot::channel();
    inputs.send(Input::Client { req, reply }).await.ok()?;
    Some(answer)
}

async fn answer_frame(answer: Option<oneshot::Receiver<Response>>) -> (BytesFrame, bool) {
    match answer {
        Some(rx) => match rx.await {
            Ok(r) => (resp::response_frame(r), false),
            Err(_) => (resp::error("ERR node is shutting down"), true),
        },
        None => (resp::error("ERR node is shutting down"), true),
    }
}

async fn write_replies(
    write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Pending>,
    inputs: mpsc::Sender<Input>,
    order: Arc<Order>,
) {
    let mut sink = FramedWrite::new(write, RespCodec::default());
    while let Some(pending) = queue.recv().await {
        let (frame, close) = match pending {
            Pending::Ready(f) => (f, false),
            Pending::Wait(answer) => answer_frame(Some(answer)).await,
            Pending::Write(answer) => {
                let r = answer_frame(Some(answer)).await;
                order.writes.fetch_sub(1, SeqCst);
                r
            }
            Pending::Deferred(req) => {
                // Every earlier request is answered: run this one now, and wait for it.
                // A write is counted before it stops being deferred, so the reader
                // never sees an instant with neither count covering it.
                let is_write = matches!(req, ClientRequest::Kv(Command::Write(_)));
                if is_write {
                    order.writes.fetch_add(1, SeqCst);
                }
                let answer = dispatch(&inputs, req).await;
                order.deferred.fetch_sub(1, SeqCst);
                let r = answer_frame(answer).await;
                if is_write {
                    order.writes.fetch_sub(1, SeqCst);
                }
                r
            }
            Pending::Close(f) => (f, true),
        };
        if sink.feed(frame).await.is_err() {
            return;
        }
        if (close || queue.is_empty()) && sink.flush().await.is_err() {
            return;
        }
        if close {
            let _ = sink.close().await;
            return;
        }
    }
    let _ = sink.flush().await;
}
