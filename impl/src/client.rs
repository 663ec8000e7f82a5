//! Redis client connections.
//!
//! Each connection is a reader, a collector and a sender. The reader parses a
//! request, passes it through the connection's [`Gate`] (AUTH, debug
//! commands), hands it to the runtime with a oneshot for the answer and queues
//! the oneshot; the collector awaits the queue's head, so replies leave in
//! request order however the replica interleaves them, and pipelining works;
//! the collector encodes every reply already answered into one buffer and
//! hands it to the sender, which writes it, flushing only when nothing else is
//! ready, so a pipeline's replies share TCP segments.
//!
//! Commands on one connection take effect in order, as in Redis, even when
//! pipelined: writes are multicast in arrival order (every mode keeps one
//! origin's writes in FIFO order), and a read or admin command that arrives
//! while this connection still has writes awaiting local delivery is held back
//! and dispatched by the collector once their replies are out; anything arriving
//! behind a held-back request is held back too. Without that, a pipelined
//! `SET k v; GET k` could read before its own write (or after a later one).
//!
//! A connection speaks RESP2 until `HELLO 3` switches it to RESP3: the reader
//! tags each queued reply with the protocol in force and its command's
//! [`resp::shape::Shape`], and the collector encodes it so.
//!
//! Memory per connection is bounded like Redis's `client-output-buffer-limit`:
//! replies encoded but not yet taken by the client's socket are counted, and a
//! client whose unread replies pass the limit is disconnected (one reply larger
//! than the limit is still sent). Reads are answered by the runtime at once, so
//! at most [`READS_IN_FLIGHT`] of them may wait uncollected; otherwise a
//! pipeline of `GET big` could make the runtime materialise every answer
//! before the collector counts the first.

use crate::admission::{Admission, Gate, Slot, MAX_CLIENTS_ERROR};
use crate::event::{ClientRequest, Input, Response};
use crate::net::{Listener, Stream};
use crate::resp::{self, Request, RespCodec, RespError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use gsmo_spec::node::Command;
use redis_protocol::resp2::types::BytesFrame;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::codec::FramedRead;
use tracing::{debug, warn};

/// Replies a connection may have outstanding before its reader waits.
const PIPELINE_DEPTH: usize = 1024;
/// Reads dispatched to the runtime whose answers the collector has not yet counted.
pub const READS_IN_FLIGHT: usize = 8;
/// The sender's write buffer.
const SEND_BUFFER: usize = 64 << 10;

enum Pending {
    Ready(BytesFrame),
    /// A read's answer, holding one of the connection's [`READS_IN_FLIGHT`] slots.
    Wait(oneshot::Receiver<Response>, ReadSlot),
    /// A write's answer; counts down the connection's writes in flight.
    Write(oneshot::Receiver<Response>),
    /// A request to dispatch only when every earlier reply is out.
    Deferred(ClientRequest),
    /// Write this, then close the connection.
    Close(BytesFrame),
}

/// How the collector encodes one reply: the protocol in force when its
/// request was read (a `HELLO 3` answers in RESP3) and its command's shape.
#[derive(Clone, Copy, Debug, Default)]
struct Encoding {
    resp3: bool,
    shape: resp::shape::Shape,
}

/// Serves Redis clients forever, at most `admission.max_clients` at once.
pub async fn accept_loop(
    listener: Box<dyn Listener>,
    inputs: mpsc::Sender<Input>,
    admission: Arc<Admission>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => match admission.try_admit() {
                Some(slot) => {
                    tokio::spawn(serve(stream, inputs.clone(), admission.clone(), slot));
                }
                None => {
                    // Like Redis: one non-blocking write of the error, then close.
                    let _ = stream.try_write(MAX_CLIENTS_ERROR);
                    debug!(client = %addr, "refused a client: max number of clients reached");
                }
            },
            Err(e) => {
                warn!("cannot accept a client connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a connection's collector stopped.
enum Flow {
    /// Every reply is handed to the sender (the reader ended, or a reply said close).
    Done,
    /// The client's unread replies passed the output buffer limit: cut it off.
    Overflow,
}

async fn serve(
    stream: Stream,
    inputs: mpsc::Sender<Input>,
    admission: Arc<Admission>,
    _slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let who = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let (read, write) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<(Pending, Encoding)>(PIPELINE_DEPTH);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let order = Arc::new(Order::default());
    let unsent = Arc::new(AtomicUsize::new(0));
    let mut collector = tokio::spawn(collect(
        rx,
        out_tx,
        inputs.clone(),
        order.clone(),
        unsent.clone(),
        admission.clone(),
        who.clone(),
    ));
    let sender = tokio::spawn(send(write, out_rx, unsent));
    let reading = read_requests(read, tx, inputs, order, Gate::new(admission), who);
    // Biased: the simulator needs polling order to be a function of the seed.
    let flow = tokio::select! {
        biased;
        () = reading => (&mut collector).await,
        flow = &mut collector => flow,
    };
    match flow {
        Ok(Flow::Done) => {
            let _ = sender.await;
        }
        Ok(Flow::Overflow) | Err(_) => sender.abort(),
    }
}

async fn read_requests(
    read: ReadHalf<Stream>,
    tx: mpsc::Sender<(Pending, Encoding)>,
    inputs: mpsc::Sender<Input>,
    order: Arc<Order>,
    mut gate: Gate,
    who: String,
) {
    let mut requests = FramedRead::new(read, RespCodec::default());
    let mut session = resp::Session::new();
    while let Some(next) = requests.next().await {
        let mut encoding = Encoding::default();
        let pending = match next {
            Ok(args) => {
                // The command is looked up once, here, for the gate, the session and the shape.
                let call = resp::Call::new(&args);
                let request = gate
                    .check(call)
                    .map_or_else(|| session.parse(call), Request::Local);
                encoding = Encoding {
                    resp3: session.resp3(),
                    shape: resp::shape::shape(call),
                };
                match request {
                    Request::Local(frame) => Pending::Ready(frame),
                    Request::Quit => Pending::Close(resp::ok()),
                    Request::Node(req) => {
                        let is_write = matches!(req, ClientRequest::Kv(Command::Write(_)));
                        if order.must_defer(is_write) {
                            order.deferred.fetch_add(1, SeqCst);
                            Pending::Deferred(req)
                        } else if is_write {
                            order.writes.fetch_add(1, SeqCst);
                            let Some(answer) = dispatch(&inputs, req).await else {
                                break; // shutting down
                            };
                            Pending::Write(answer)
                        } else {
                            let slot = ReadSlot::take(&order).await;
                            let Some(answer) = dispatch(&inputs, req).await else {
                                break; // shutting down
                            };
                            Pending::Wait(answer, slot)
                        }
                    }
                }
            }
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
        if tx.send((pending, encoding)).await.is_err() || closing {
            break;
        }
    }
}

/// What keeps one connection's commands in order (see the module docs).
#[derive(Default)]
struct Order {
    /// Writes dispatched whose answer has not arrived yet.
    writes: AtomicUsize,
    /// Requests queued for the writer to dispatch.
    deferred: AtomicUsize,
    /// Reads dispatched whose answer the collector has not encoded yet.
    reads: AtomicUsize,
    /// Signalled when `reads` drops below [`READS_IN_FLIGHT`].
    read_freed: Notify,
}

impl Order {
    fn must_defer(&self, is_write: bool) -> bool {
        self.deferred.load(SeqCst) > 0 || (!is_write && self.writes.load(SeqCst) > 0)
    }
}

/// One of a connection's [`READS_IN_FLIGHT`] read slots, freed on drop.
///
/// A counter rather than a `tokio::sync::Semaphore`: only the reader takes
/// slots, so it needs no compare-and-swap loop, and freeing one takes no lock
/// (the semaphore's release locks its waiter list: 4% of a pipelined `GET`).
struct ReadSlot(Arc<Order>);

impl ReadSlot {
    /// Waits for a free slot. Only the reader calls this, so no one can take
    /// the slot between the check and the increment.
    async fn take(order: &Arc<Order>) -> ReadSlot {
        while order.reads.load(SeqCst) >= READS_IN_FLIGHT {
            // `notify_one` keeps its permit if it runs between the check and
            // here, so a slot freed meanwhile is not missed.
            order.read_freed.notified().await;
        }
        order.reads.fetch_add(1, SeqCst);
        ReadSlot(order.clone())
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        if self.0.reads.fetch_sub(1, SeqCst) == READS_IN_FLIGHT {
            self.0.read_freed.notify_one();
        }
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

/// Replies encoded but not yet handed to the sender.
///
/// The collector encodes every reply that is already answered into one
/// buffer and hands the buffer over only before it would wait (or when the
/// buffer is full), so a pipeline's replies cost one hand-over, one buffer and
/// one wake-up of the sender, not one each.
struct Outbox {
    buf: BytesMut,
    out: mpsc::UnboundedSender<(Bytes, bool)>,
}

/// Bytes an [`Outbox`] gathers before it is handed over regardless.
const OUTBOX_BYTES: usize = 16 << 10;

impl Outbox {
    /// Hands the gathered replies to the sender; `false` if it is gone.
    fn hand_over(&mut self, close: bool) -> bool {
        if self.buf.is_empty() && !close {
            return true;
        }
        let bytes = std::mem::take(&mut self.buf).freeze();
        self.out.send((bytes, close)).is_ok()
    }

    /// An answer, handing over what is gathered first if it is not in yet.
    async fn answer(&mut self, mut rx: oneshot::Receiver<Response>) -> Option<(BytesFrame, bool)> {
        let response = match rx.try_recv() {
            Ok(r) => Ok(r),
            Err(oneshot::error::TryRecvError::Closed) => Err(()),
            Err(oneshot::error::TryRecvError::Empty) => {
                if !self.hand_over(false) {
                    return None;
                }
                rx.await.map_err(|_| ())
            }
        };
        Some(match response {
            Ok(r) => (resp::response_frame(r), false),
            Err(()) => shutting_down(),
        })
    }
}

/// The last reply when the runtime is gone.
fn shutting_down() -> (BytesFrame, bool) {
    (resp::error("ERR node is shutting down"), true)
}

/// Awaits replies in request order, encodes them and hands them to the sender,
/// counting them as unsent until the sender has written them.
async fn collect(
    mut queue: mpsc::Receiver<(Pending, Encoding)>,
    out: mpsc::UnboundedSender<(Bytes, bool)>,
    inputs: mpsc::Sender<Input>,
    order: Arc<Order>,
    unsent: Arc<AtomicUsize>,
    admission: Arc<Admission>,
    who: String,
) -> Flow {
    let mut outbox = Outbox {
        buf: BytesMut::new(),
        out,
    };
    loop {
        let (pending, encoding) = match queue.try_recv() {
            Ok(next) => next,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing more to encode now: let the sender have what is gathered.
                if !outbox.hand_over(false) {
                    return Flow::Done;
                }
                match queue.recv().await {
                    Some(next) => next,
                    None => break,
                }
            }
        };
        let mut slot = None;
        let answered = match pending {
            Pending::Ready(f) => Some((f, false)),
            Pending::Wait(answer, s) => {
                slot = Some(s);
                outbox.answer(answer).await
            }
            Pending::Write(answer) => {
                let r = outbox.answer(answer).await;
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
                // Hand over first: the runtime answers only once this task yields,
                // and its queue may be full.
                if !outbox.hand_over(false) {
                    return Flow::Done;
                }
                let answer = dispatch(&inputs, req).await;
                order.deferred.fetch_sub(1, SeqCst);
                let r = match answer {
                    Some(rx) => outbox.answer(rx).await,
                    None => Some(shutting_down()),
                };
                if is_write {
                    order.writes.fetch_sub(1, SeqCst);
                }
                r
            }
            Pending::Close(f) => Some((f, true)),
        };
        let Some((frame, close)) = answered else {
            return Flow::Done; // the sender is gone
        };
        let before_encoding = outbox.buf.len();
        if resp::shape::encode(frame, encoding.shape, encoding.resp3, &mut outbox.buf).is_err() {
            return Flow::Overflow;
        }
        let len = outbox.buf.len() - before_encoding;
        let before = unsent.fetch_add(len, SeqCst);
        drop(slot);
        let limit = admission.output_buffer_limit;
        if before > 0 && before + len > limit {
            admission.output_limit_hit();
            warn!(
                client = %who,
                "disconnecting a client: {} bytes of unread replies pass the output buffer limit \
                 of {limit} (--client-output-buffer-limit)",
                before + len
            );
            return Flow::Overflow;
        }
        if close {
            outbox.hand_over(true);
            return Flow::Done;
        }
        if outbox.buf.len() >= OUTBOX_BYTES && !outbox.hand_over(false) {
            return Flow::Done;
        }
    }
    outbox.hand_over(false);
    Flow::Done
}

/// Writes encoded replies to the socket, flushing when no more are ready.
///
/// "Ready" includes replies the rest of the node is about to produce: before
/// flushing, the sender yields once, so the reader, the event loop and the
/// collector finish what they can first (as Redis writes replies only before it
/// sleeps). A pipeline answered in two rounds of [`READS_IN_FLIGHT`] then
/// leaves in one `send`, not two: on loopback a `send` costs as much as the
/// rest of a `GET`.
async fn send(
    write: WriteHalf<Stream>,
    mut out: mpsc::UnboundedReceiver<(Bytes, bool)>,
    unsent: Arc<AtomicUsize>,
) {
    let mut sink = BufWriter::with_capacity(SEND_BUFFER, write);
    while let Some((bytes, close)) = out.recv().await {
        if sink.write_all(&bytes).await.is_err() {
            return;
        }
        unsent.fetch_sub(bytes.len(), SeqCst);
        if !close && out.is_empty() {
            tokio::task::yield_now().await;
        }
        if (close || out.is_empty()) && sink.flush().await.is_err() {
            return;
        }
        if close {
            let _ = sink.shutdown().await;
            return;
        }
    }
    let _ = sink.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A collector over `queue` that feeds `inputs`, with room for every reply.
    struct Collector {
        task: tokio::task::JoinHandle<Flow>,
        out: mpsc::UnboundedReceiver<(Bytes, bool)>,
        unsent: Arc<AtomicUsize>,
    }

    impl Collector {
        fn spawn(
            queue: mpsc::Receiver<(Pending, Encoding)>,
            inputs: mpsc::Sender<Input>,
            order: &Arc<Order>,
        ) -> Self {
            let (out_tx, out) = mpsc::unbounded_channel();
            let unsent = Arc::new(AtomicUsize::new(0));
            let admission = Arc::new(Admission {
                output_buffer_limit: 1 << 20,
                ..Admission::default()
            });
            let task = tokio::spawn(collect(
                queue,
                out_tx,
                inputs,
                order.clone(),
                unsent.clone(),
                admission,
                "test".into(),
            ));
            Collector { task, out, unsent }
        }

        /// The next buffer handed to the sender.
        async fn next(&mut self, what: &str) -> Bytes {
            let (bytes, close) = tokio::time::timeout(PATIENCE, self.out.recv())
                .await
                .unwrap_or_else(|_| panic!("{what}"))
                .expect("the collector hands over before it ends");
            assert!(!close);
            bytes
        }
    }

    /// A pipeline's replies leave in as few buffers as latency allows: what is
    /// answered goes to the sender before the collector waits for a later
    /// answer, and everything answered after that goes as one buffer.
    #[tokio::test]
    async fn replies_go_to_the_sender_before_a_wait_and_together_after_it() {
        let (queue, rx) = mpsc::channel(16);
        let (inputs, _runtime) = mpsc::channel(1);
        let order = Arc::new(Order::default());
        let (answer, later) = oneshot::channel();
        let plain = Encoding::default();
        let slot = ReadSlot::take(&order).await;
        for pending in [
            Pending::Ready(resp::ok()),
            Pending::Wait(later, slot),
            Pending::Ready(resp::ok()),
            Pending::Ready(resp::ok()),
        ] {
            queue.send((pending, plain)).await.unwrap();
        }
        let mut c = Collector::spawn(rx, inputs, &order);
        let first = c
            .next("the first reply is handed over before the collector waits")
            .await;
        assert_eq!(&first[..], b"+OK\r\n");
        assert!(c.out.try_recv().is_err(), "nothing else is answered yet");
        answer.send(Response::Int(7)).unwrap();
        drop(queue);
        let rest = c.next("the rest is handed over").await;
        assert_eq!(&rest[..], b":7\r\n+OK\r\n+OK\r\n");
        assert!(matches!(c.task.await.unwrap(), Flow::Done));
        assert!(c.out.recv().await.is_none(), "four replies, two buffers");
        assert_eq!(c.unsent.load(SeqCst), first.len() + rest.len());
        assert_eq!(order.reads.load(SeqCst), 0, "the read's slot is freed");
    }

    /// A held-back request is dispatched only after the replies before it
    /// are handed over: if the runtime's queue is full, they do not wait too.
    #[tokio::test]
    async fn replies_before_a_held_back_request_leave_before_it_is_dispatched() {
        let (queue, rx) = mpsc::channel(16);
        let (inputs, mut runtime) = mpsc::channel(1);
        inputs.send(Input::Tick).await.unwrap(); // the runtime's queue is full
        let order = Arc::new(Order::default());
        order.deferred.store(1, SeqCst);
        let plain = Encoding::default();
        queue
            .send((Pending::Ready(resp::ok()), plain))
            .await
            .unwrap();
        queue
            .send((Pending::Deferred(ClientRequest::DbSize), plain))
            .await
            .unwrap();
        let mut c = Collector::spawn(rx, inputs, &order);
        let first = c
            .next("the reply before the held-back request is handed over")
            .await;
        assert_eq!(&first[..], b"+OK\r\n");
        assert!(matches!(runtime.recv().await, Some(Input::Tick)));
        let Some(Input::Client { req, reply }) = runtime.recv().await else {
            panic!("the held-back request reaches the runtime");
        };
        assert!(matches!(req, ClientRequest::DbSize));
        reply.send(Response::Int(3)).unwrap();
        assert_eq!(&c.next("its answer follows").await[..], b":3\r\n");
        assert_eq!(order.deferred.load(SeqCst), 0);
    }

    /// At most [`READS_IN_FLIGHT`] reads wait uncollected; a freed slot wakes
    /// the reader waiting for one.
    #[tokio::test]
    async fn a_reader_waits_for_a_read_slot_and_a_freed_one_wakes_it() {
        use futures::FutureExt;
        let order = Arc::new(Order::default());
        let mut slots: Vec<ReadSlot> = (0..READS_IN_FLIGHT)
            .map(|_| {
                ReadSlot::take(&order)
                    .now_or_never()
                    .expect("a free slot is taken at once")
            })
            .collect();
        let mut next = Box::pin(ReadSlot::take(&order));
        assert!(
            futures::poll!(&mut next).is_pending(),
            "every slot is taken"
        );
        assert_eq!(order.reads.load(SeqCst), READS_IN_FLIGHT);
        slots.pop();
        let _slot = tokio::time::timeout(PATIENCE, next)
            .await
            .expect("the freed slot wakes the waiting reader");
        assert_eq!(order.reads.load(SeqCst), READS_IN_FLIGHT);
        slots.clear();
        assert_eq!(order.reads.load(SeqCst), 1);
    }
}
