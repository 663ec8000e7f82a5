//! The reader: parses a connection's requests, passes them through its
//! [`Gate`], and hands requests for the replica to the runtime in runs.

use super::order::{Order, ReadSlot};
use super::{dispatch, Answers, Encoding, Pending, RUN_MAX};
use crate::admission::Gate;
use crate::event::{ClientRequest, Input};
use crate::net::Stream;
use crate::resp::{self, Request, RespCodec, RespError};
use futures::{FutureExt, StreamExt};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use tokio::io::ReadHalf;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tracing::debug;

pub(super) async fn read_requests(
    read: ReadHalf<Stream>,
    tx: mpsc::Sender<Pending>,
    inputs: mpsc::Sender<Input>,
    order: Arc<Order>,
    mut gate: Gate,
    who: String,
) {
    let mut requests = FramedRead::new(read, RespCodec::default());
    let mut session = resp::Session::new();
    let mut run = Gather::default();
    loop {
        // Requests already read join the run; before waiting for more, it goes.
        let next = match requests.next().now_or_never() {
            Some(next) => next,
            None => {
                if !run.hand_over(&inputs, &tx, &order).await {
                    return;
                }
                requests.next().await
            }
        };
        let Some(next) = next else { break };
        let pending = match next {
            Ok(args) => {
                // The command is looked up once, here, for the gate, the parser and the shape.
                let call = resp::Call::new(&args);
                let request = gate
                    .check(call)
                    .map_or_else(|| call.parse(&mut session), Request::Local);
                let encoding = Encoding {
                    resp3: session.resp3(),
                    shape: resp::shape::shape(call),
                };
                match request {
                    Request::Local(frame) => Pending::Ready(frame, encoding),
                    Request::Quit => Pending::Close(resp::ok(), encoding),
                    Request::Node(req) => {
                        let is_write = req.is_write();
                        if order.must_defer(is_write) {
                            order.deferred.fetch_add(1, SeqCst);
                            Pending::Deferred(req, encoding)
                        } else {
                            if !run
                                .join(req, encoding, is_write, &order, &inputs, &tx)
                                .await
                            {
                                return; // shutting down
                            }
                            continue;
                        }
                    }
                }
            }
            Err(RespError::Protocol(e)) => {
                debug!(client = %who, "closing client connection: Protocol error: {e}");
                let error = resp::error(format!("ERR Protocol error: {e}"));
                Pending::Close(error, Encoding::default())
            }
            Err(RespError::Io(e)) => {
                debug!(client = %who, "client connection failed: {e}");
                break;
            }
        };
        // Anything else queues behind the run.
        if !run.hand_over(&inputs, &tx, &order).await {
            return;
        }
        let closing = matches!(pending, Pending::Close(..));
        if !queue(&tx, pending, &order).await || closing {
            return;
        }
    }
    // The client sent its last request (or its socket failed): what came is answered.
    run.hand_over(&inputs, &tx, &order).await;
}

/// Queues `pending` for the collector; `false` if it is gone. While the
/// connection's reply queue is full (`--client-reply-queue`) the reader waits,
/// and so reads nothing more from the client: the queue's bound is the
/// client's backpressure, counted in INFO `client_reply_queue_waits`.
async fn queue(tx: &mpsc::Sender<Pending>, pending: Pending, order: &Order) -> bool {
    if tx.capacity() == 0 {
        order.admission.reply_queue_wait();
    }
    tx.send(pending).await.is_ok()
}

/// The run the reader is gathering: requests read back to back that the
/// runtime answers as one [`Input::Client`]. All are reads or all writes, so a
/// read never travels with a write it must wait for (see [`Order`]); the run
/// goes to the runtime when the socket holds no further request, before
/// anything else is queued, when the next request is of the other kind, and
/// when it is full.
#[derive(Default)]
struct Gather {
    reqs: Vec<ClientRequest>,
    encodings: Vec<Encoding>,
    slot: Option<ReadSlot>,
    writes: usize,
}

impl Gather {
    /// Adds `req`, handing the run over first if `req` cannot join it (and,
    /// for a read, waiting for a slot); `false` if the runtime or the collector is gone.
    async fn join(
        &mut self,
        req: ClientRequest,
        encoding: Encoding,
        is_write: bool,
        order: &Arc<Order>,
        inputs: &mpsc::Sender<Input>,
        tx: &mpsc::Sender<Pending>,
    ) -> bool {
        let fits =
            self.reqs.len() < RUN_MAX && (self.reqs.is_empty() || is_write == (self.writes > 0));
        if !fits || (!is_write && !self.take_slot(order)) {
            if !self.hand_over(inputs, tx, order).await {
                return false;
            }
            if !is_write {
                self.slot = Some(ReadSlot::take(order).await);
            }
        }
        if is_write {
            order.writes.fetch_add(1, SeqCst);
            self.writes += 1;
        }
        self.reqs.push(req);
        self.encodings.push(encoding);
        true
    }

    /// One more read slot for the run, if one is free now.
    fn take_slot(&mut self, order: &Arc<Order>) -> bool {
        match &mut self.slot {
            Some(slot) => slot.try_add(),
            None => {
                self.slot = ReadSlot::try_take(order);
                self.slot.is_some()
            }
        }
    }

    /// Hands the run to the runtime and its answer to the collector; `false`
    /// if either is gone.
    async fn hand_over(
        &mut self,
        inputs: &mpsc::Sender<Input>,
        tx: &mpsc::Sender<Pending>,
        order: &Order,
    ) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let reqs = std::mem::take(&mut self.reqs);
        let Some(answer) = dispatch(inputs, reqs).await else {
            return false;
        };
        let answers = Answers {
            answer,
            encodings: std::mem::take(&mut self.encodings),
            slot: self.slot.take(),
            writes: std::mem::take(&mut self.writes),
        };
        queue(tx, Pending::Run(answers), order).await
    }
}
