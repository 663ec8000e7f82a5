//! Redis client connections.
//!
//! Each connection is a reader, a collector and a sender. The reader parses a
//! request and passes it through the connection's [`Gate`] (AUTH, debug
//! commands); requests for the replica that arrive back to back (a pipeline)
//! go to the runtime as one run, with one oneshot for all their answers, and
//! the reader queues the oneshot. The collector awaits the queue's head, so
//! replies leave in request order however the replica interleaves them; it
//! encodes every reply already answered into one buffer and hands it to the
//! sender, which writes it, flushing only when nothing else is ready, so a
//! pipeline's replies share TCP segments. A run costs one hand-over, one
//! answer and one wake-up whatever its length: per request, that was 12% of a
//! node's CPU under `redis-benchmark -P 16`.
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
//! at most `--client-reads-in-flight` of them ([`Admission::reads_in_flight`])
//! may wait uncollected; otherwise a pipeline of `GET big` could make the
//! runtime materialise every answer before the collector counts the first.

use crate::admission::{Admission, Gate, Slot, MAX_CLIENTS_ERROR};
use crate::event::{ClientRequest, Input, Response};
use crate::net::{Listener, Stream};
use crate::resp::{self, Request, RespCodec, RespError};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
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

/// Entries of a connection's reply queue (a reply, or a run of at most
/// [`RUN_MAX`] requests) before its reader waits.
const PIPELINE_DEPTH: usize = 1024;
/// Requests in one run handed to the runtime (reads: also the connection's
/// read slots). Keeps one connection from holding the event loop for long.
const RUN_MAX: usize = 16;
/// The sender's write buffer.
const SEND_BUFFER: usize = 64 << 10;

/// One entry of a connection's reply queue, in request order.
enum Pending {
    Ready(BytesFrame, Encoding),
    /// A run handed to the runtime: its answers, in order.
    Run(Answers),
    /// A request to dispatch only when every earlier reply is out.
    Deferred(ClientRequest, Encoding),
    /// Write this, then close the connection.
    Close(BytesFrame, Encoding),
}

/// A run of requests handed to the runtime as one [`Input::Client`]: the
/// answer to await, how to encode each reply, and what the run holds of the
/// connection's [`Order`] until its replies are counted.
struct Answers {
    answer: oneshot::Receiver<Vec<Response>>,
    encodings: Vec<Encoding>,
    /// The slots of the run's reads (none for a run of writes).
    slot: Option<ReadSlot>,
    /// The run's writes, counted in [`Order::writes`] (zero for a run of reads).
    writes: usize,
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
    let (tx, rx) = mpsc::channel::<Pending>(PIPELINE_DEPTH);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let order = Arc::new(Order::new(admission.clone()));
    let unsent = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox {
        buf: BytesMut::new(),
        out: out_tx,
        unsent: unsent.clone(),
        admission: admission.clone(),
        who: who.clone(),
    };
    let mut collector = tokio::spawn(collect(rx, outbox, inputs.clone(), order.clone()));
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
                if !run.hand_over(&inputs, &tx).await {
                    return;
                }
                requests.next().await
            }
        };
        let Some(next) = next else { break };
        let pending = match next {
            Ok(args) => {
                // The command is looked up once, here, for the gate, the session and the shape.
                let call = resp::Call::new(&args);
                let request = gate
                    .check(call)
                    .map_or_else(|| session.parse(call), Request::Local);
                let encoding = Encoding {
                    resp3: session.resp3(),
                    shape: resp::shape::shape(call),
                };
                match request {
                    Request::Local(frame) => Pending::Ready(frame, encoding),
                    Request::Quit => Pending::Close(resp::ok(), encoding),
                    Request::Node(req) => {
                        let is_write = matches!(req, ClientRequest::Kv(Command::Write(_)));
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
        if !run.hand_over(&inputs, &tx).await {
            return;
        }
        let closing = matches!(pending, Pending::Close(..));
        if tx.send(pending).await.is_err() || closing {
            return;
        }
    }
    // The client sent its last request (or its socket failed): what came is answered.
    run.hand_over(&inputs, &tx).await;
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
            if !self.hand_over(inputs, tx).await {
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
        tx.send(Pending::Run(answers)).await.is_ok()
    }
}

/// What keeps one connection's commands in order (see the module docs).
struct Order {
    /// Writes dispatched whose answer has not arrived yet.
    writes: AtomicUsize,
    /// Requests queued for the writer to dispatch.
    deferred: AtomicUsize,
    /// Reads dispatched whose answer the collector has not encoded yet.
    reads: AtomicUsize,
    /// Signalled when `reads` drops below [`Order::read_slots`].
    read_freed: Notify,
    /// The read window (`--client-reads-in-flight`), and where a reader's
    /// wait for a slot is counted, for INFO.
    admission: Arc<Admission>,
}

impl Order {
    fn new(admission: Arc<Admission>) -> Self {
        Order {
            writes: AtomicUsize::new(0),
            deferred: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            read_freed: Notify::new(),
            admission,
        }
    }

    /// The most `reads` may be; never 0, or a reader would wait forever.
    fn read_slots(&self) -> usize {
        self.admission.reads_in_flight.max(1)
    }

    fn must_defer(&self, is_write: bool) -> bool {
        self.deferred.load(SeqCst) > 0 || (!is_write && self.writes.load(SeqCst) > 0)
    }
}

/// Some of a connection's read slots ([`Order::read_slots`]), freed on drop.
///
/// A counter rather than a `tokio::sync::Semaphore`: only the reader takes
/// slots, so it needs no compare-and-swap loop, and freeing one takes no lock
/// (the semaphore's release locks its waiter list: 4% of a pipelined `GET`).
struct ReadSlot {
    order: Arc<Order>,
    held: usize,
}

impl ReadSlot {
    /// Waits for a free slot. Only the reader takes slots, so no one can take
    /// one between the check and the increment.
    async fn take(order: &Arc<Order>) -> ReadSlot {
        let mut counted = false;
        loop {
            if let Some(slot) = ReadSlot::try_take(order) {
                return slot;
            }
            if !counted {
                order.admission.read_slot_wait();
                counted = true;
            }
            // `notify_one` keeps its permit if it runs between the check and
            // here, so a slot freed meanwhile is not missed.
            order.read_freed.notified().await;
        }
    }

    /// A free slot, if there is one now.
    fn try_take(order: &Arc<Order>) -> Option<ReadSlot> {
        let mut slot = ReadSlot {
            order: order.clone(),
            held: 0,
        };
        slot.try_add().then_some(slot)
    }

    /// One more slot, if one is free now.
    fn try_add(&mut self) -> bool {
        if self.order.reads.load(SeqCst) >= self.order.read_slots() {
            return false;
        }
        self.order.reads.fetch_add(1, SeqCst);
        self.held += 1;
        true
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        // At most `read_slots()` are ever taken: all were, so the reader may wait.
        if self.held > 0 && self.order.reads.fetch_sub(self.held, SeqCst) == self.order.read_slots()
        {
            self.order.read_freed.notify_one();
        }
    }
}

/// Hands a run of requests to the runtime; `None` if the runtime is gone.
async fn dispatch(
    inputs: &mpsc::Sender<Input>,
    reqs: Vec<ClientRequest>,
) -> Option<oneshot::Receiver<Vec<Response>>> {
    let (reply, answer) = oneshot::channel();
    inputs.send(Input::Client { reqs, reply }).await.ok()?;
    Some(answer)
}

/// Replies encoded but not yet handed to the sender.
///
/// The collector encodes every reply that is already answered into one
/// buffer and hands the buffer over only before it would wait (or when the
/// buffer is full), so a pipeline's replies cost one hand-over, one buffer and
/// one wake-up of the sender, not one each. Encoded replies count as unsent
/// until the sender has written them; past the client's output buffer limit
/// the connection is cut off.
struct Outbox {
    buf: BytesMut,
    out: mpsc::UnboundedSender<(Bytes, bool)>,
    unsent: Arc<AtomicUsize>,
    admission: Arc<Admission>,
    who: String,
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

    /// Encodes one reply and counts it as unsent.
    fn encode(&mut self, frame: BytesFrame, encoding: Encoding) -> Result<(), Flow> {
        let before_encoding = self.buf.len();
        if resp::shape::encode(frame, encoding.shape, encoding.resp3, &mut self.buf).is_err() {
            return Err(Flow::Overflow);
        }
        let len = self.buf.len() - before_encoding;
        let before = self.unsent.fetch_add(len, SeqCst);
        let limit = self.admission.output_buffer_limit;
        if before > 0 && before + len > limit {
            self.admission.output_limit_hit();
            warn!(
                client = %self.who,
                "disconnecting a client: {} bytes of unread replies pass the output buffer limit \
                 of {limit} (--client-output-buffer-limit)",
                before + len
            );
            return Err(Flow::Overflow);
        }
        if self.buf.len() >= OUTBOX_BYTES && !self.hand_over(false) {
            return Err(Flow::Done);
        }
        Ok(())
    }

    /// Awaits a run's answers, handing over what is gathered first if they
    /// are not in yet, and encodes them; `Ok(true)` if the connection must
    /// close (the runtime is gone).
    async fn answer(&mut self, run: Answers, order: &Order) -> Result<bool, Flow> {
        let Answers {
            mut answer,
            encodings,
            slot,
            writes,
        } = run;
        let answers = match answer.try_recv() {
            Ok(r) => Ok(r),
            Err(oneshot::error::TryRecvError::Closed) => Err(()),
            Err(oneshot::error::TryRecvError::Empty) => {
                if !self.hand_over(false) {
                    return Err(Flow::Done);
                }
                answer.await.map_err(|_| ())
            }
        };
        order.writes.fetch_sub(writes, SeqCst);
        let Ok(answers) = answers else {
            self.encode(
                resp::error("ERR node is shutting down"),
                Encoding::default(),
            )?;
            return Ok(true);
        };
        for (response, encoding) in answers.into_iter().zip(encodings) {
            self.encode(resp::response_frame(response), encoding)?;
        }
        drop(slot);
        Ok(false)
    }
}

/// Awaits replies in request order, encodes them and hands them to the sender.
async fn collect(
    mut queue: mpsc::Receiver<Pending>,
    mut outbox: Outbox,
    inputs: mpsc::Sender<Input>,
    order: Arc<Order>,
) -> Flow {
    loop {
        let pending = match queue.try_recv() {
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
        match collect_one(pending, &mut outbox, &inputs, &order).await {
            Ok(false) => {}
            Ok(true) => {
                outbox.hand_over(true);
                return Flow::Done;
            }
            Err(flow) => return flow,
        }
    }
    outbox.hand_over(false);
    Flow::Done
}

/// Encodes one entry's replies; `Ok(true)` if the connection closes after them.
async fn collect_one(
    pending: Pending,
    outbox: &mut Outbox,
    inputs: &mpsc::Sender<Input>,
    order: &Order,
) -> Result<bool, Flow> {
    match pending {
        Pending::Ready(frame, encoding) => outbox.encode(frame, encoding).map(|()| false),
        Pending::Close(frame, encoding) => outbox.encode(frame, encoding).map(|()| true),
        Pending::Run(run) => outbox.answer(run, order).await,
        Pending::Deferred(req, encoding) => {
            // Every earlier request is answered: run this one now, and wait for it.
            // A write is counted before it stops being deferred, so the reader
            // never sees an instant with neither count covering it.
            let writes = usize::from(matches!(req, ClientRequest::Kv(Command::Write(_))));
            order.writes.fetch_add(writes, SeqCst);
            // Hand over first: the runtime answers only once this task yields,
            // and its queue may be full.
            if !outbox.hand_over(false) {
                return Err(Flow::Done);
            }
            let answer = dispatch(inputs, vec![req]).await;
            order.deferred.fetch_sub(1, SeqCst);
            match answer {
                Some(answer) => {
                    let run = Answers {
                        answer,
                        encodings: vec![encoding],
                        slot: None,
                        writes,
                    };
                    outbox.answer(run, order).await
                }
                None => {
                    order.writes.fetch_sub(writes, SeqCst);
                    outbox.encode(resp::error("ERR node is shutting down"), encoding)?;
                    Ok(true)
                }
            }
        }
    }
}

/// Writes encoded replies to the socket, flushing when no more are ready.
///
/// "Ready" includes replies the rest of the node is about to produce: before
/// flushing, the sender yields once, so the reader, the event loop and the
/// collector finish what they can first (as Redis writes replies only before it
/// sleeps). A pipeline answered in two runs (deeper than the connection's read
/// slots) then mostly leaves in one `send`, not two: on loopback a `send` costs
/// as much as the rest of a `GET`.
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
    use crate::admission::DEFAULT_READS_IN_FLIGHT;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// An in-memory client socket: what the test writes is all there before
    /// the connection's tasks first run, so how they split it is deterministic.
    impl crate::net::Conn for tokio::io::DuplexStream {
        fn set_nodelay(&self, _: bool) -> std::io::Result<()> {
            Ok(())
        }
        fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            Ok(([127, 0, 0, 1], 1).into())
        }
        fn try_write(&self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
    }

    /// The next input the runtime gets, which must be a run of `n` requests,
    /// all writes or all reads as `writes` says.
    async fn next_run(
        runtime: &mut mpsc::Receiver<Input>,
        n: usize,
        writes: bool,
    ) -> oneshot::Sender<Vec<Response>> {
        let input = tokio::time::timeout(PATIENCE, runtime.recv()).await;
        let Ok(Some(Input::Client { reqs, reply })) = input else {
            panic!("expected a run of {n}");
        };
        assert_eq!(reqs.len(), n, "{reqs:?}");
        for req in &reqs {
            let is_write = matches!(req, ClientRequest::Kv(Command::Write(_)));
            assert_eq!(is_write, writes, "{reqs:?}");
        }
        reply
    }

    /// A pipeline reaches the runtime in runs: reads back to back as one
    /// input, writes as another, and a read behind writes only once they are
    /// answered (never in their run); what the client sent before closing its
    /// side is still answered, in order.
    #[tokio::test]
    async fn a_pipeline_reaches_the_runtime_as_runs_of_one_kind() {
        use gsmo_spec::kv::Reply;
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client
            .write_all(b"GET a\r\nGET b\r\nSET c 1\r\nSET d 2\r\nGET c\r\nPING\r\n")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let admission = Arc::new(Admission::default());
        let slot = admission.try_admit().unwrap();
        let (inputs, mut runtime) = mpsc::channel(16);
        tokio::spawn(serve(Box::new(server), inputs, admission, slot));

        let reads = next_run(&mut runtime, 2, false).await;
        let writes = next_run(&mut runtime, 2, true).await;
        assert!(
            runtime.try_recv().is_err(),
            "the read behind the writes waits for their answers"
        );
        reads
            .send(vec![Response::Kv(Reply::Bulk(None)); 2])
            .unwrap();
        writes.send(vec![Response::Kv(Reply::Ok); 2]).unwrap();
        next_run(&mut runtime, 1, false)
            .await
            .send(vec![Response::Kv(Reply::Bulk(Some(b"1".to_vec())))])
            .unwrap();
        let mut replies = Vec::new();
        tokio::time::timeout(PATIENCE, client.read_to_end(&mut replies))
            .await
            .expect("every reply arrives and the connection ends")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&replies),
            "$-1\r\n$-1\r\n+OK\r\n+OK\r\n$1\r\n1\r\n+PONG\r\n"
        );
    }

    /// Runs are bounded: a long pipeline of reads goes in runs of at most the
    /// connection's read slots (`--client-reads-in-flight`) and [`RUN_MAX`],
    /// and of writes in runs of at most [`RUN_MAX`]; the run gathered when the
    /// client closes its side still goes. A reader that finds every slot taken
    /// waits, and INFO counts it.
    #[tokio::test]
    async fn runs_are_at_most_the_read_slots_or_run_max_long() {
        use gsmo_spec::kv::Reply;
        for slots in [5, RUN_MAX + 4] {
            let first = slots.min(RUN_MAX);
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let reads = first + 3;
            let writes = RUN_MAX + 5;
            let mut pipeline = b"GET a\r\n".repeat(reads);
            pipeline.extend(b"SET a 1\r\n".repeat(writes));
            client.write_all(&pipeline).await.unwrap();
            // The last run is still in the making when the reader meets the end.
            client.shutdown().await.unwrap();
            let admission = Arc::new(Admission {
                reads_in_flight: slots,
                ..Admission::default()
            });
            let slot = admission.try_admit().unwrap();
            let (inputs, mut runtime) = mpsc::channel(16);
            tokio::spawn(serve(Box::new(server), inputs, admission.clone(), slot));
            for (n, write) in [
                (first, false),
                (reads - first, false),
                (RUN_MAX, true),
                (writes - RUN_MAX, true),
            ] {
                let answer = if write { Reply::Ok } else { Reply::Bulk(None) };
                next_run(&mut runtime, n, write)
                    .await
                    .send(vec![Response::Kv(answer); n])
                    .unwrap();
            }
            let waited = usize::from(slots == first);
            let info = admission.info();
            assert!(
                info.contains(&format!("client_reads_in_flight:{slots}\r\n"))
                    && info.contains(&format!("client_read_slot_waits:{waited}\r\n")),
                "{slots} slots: {info}"
            );
        }
    }

    /// A collector over `queue` that feeds `inputs`, with room for every reply.
    struct Collector {
        task: tokio::task::JoinHandle<Flow>,
        out: mpsc::UnboundedReceiver<(Bytes, bool)>,
        unsent: Arc<AtomicUsize>,
    }

    impl Collector {
        fn spawn(
            queue: mpsc::Receiver<Pending>,
            inputs: mpsc::Sender<Input>,
            order: &Arc<Order>,
        ) -> Self {
            let (out_tx, out) = mpsc::unbounded_channel();
            let unsent = Arc::new(AtomicUsize::new(0));
            let admission = Arc::new(Admission {
                output_buffer_limit: 1 << 20,
                ..Admission::default()
            });
            let outbox = Outbox {
                buf: BytesMut::new(),
                out: out_tx,
                unsent: unsent.clone(),
                admission,
                who: "test".into(),
            };
            let task = tokio::spawn(collect(queue, outbox, inputs, order.clone()));
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
        let order = Arc::new(Order::new(Arc::default()));
        let (answer, later) = oneshot::channel();
        let plain = Encoding::default();
        let slot = ReadSlot::take(&order).await;
        let run = Answers {
            answer: later,
            encodings: vec![plain],
            slot: Some(slot),
            writes: 0,
        };
        for pending in [
            Pending::Ready(resp::ok(), plain),
            Pending::Run(run),
            Pending::Ready(resp::ok(), plain),
            Pending::Ready(resp::ok(), plain),
        ] {
            queue.send(pending).await.unwrap();
        }
        let mut c = Collector::spawn(rx, inputs, &order);
        let first = c
            .next("the first reply is handed over before the collector waits")
            .await;
        assert_eq!(&first[..], b"+OK\r\n");
        assert!(c.out.try_recv().is_err(), "nothing else is answered yet");
        answer.send(vec![Response::Int(7)]).unwrap();
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
        let order = Arc::new(Order::new(Arc::default()));
        order.deferred.store(1, SeqCst);
        let plain = Encoding::default();
        queue.send(Pending::Ready(resp::ok(), plain)).await.unwrap();
        queue
            .send(Pending::Deferred(ClientRequest::DbSize, plain))
            .await
            .unwrap();
        let mut c = Collector::spawn(rx, inputs, &order);
        let first = c
            .next("the reply before the held-back request is handed over")
            .await;
        assert_eq!(&first[..], b"+OK\r\n");
        assert!(matches!(runtime.recv().await, Some(Input::Tick)));
        let Some(Input::Client { reqs, reply }) = runtime.recv().await else {
            panic!("the held-back request reaches the runtime");
        };
        assert_eq!(reqs, [ClientRequest::DbSize]);
        reply.send(vec![Response::Int(3)]).unwrap();
        assert_eq!(&c.next("its answer follows").await[..], b":3\r\n");
        assert_eq!(order.deferred.load(SeqCst), 0);
    }

    /// At most the connection's read slots' worth of reads wait uncollected; a
    /// freed slot wakes the reader waiting for one, and INFO counts the wait once.
    #[tokio::test]
    async fn a_reader_waits_for_a_read_slot_and_a_freed_one_wakes_it() {
        let admission = Arc::new(Admission::default());
        let order = Arc::new(Order::new(admission.clone()));
        let mut slots: Vec<ReadSlot> = (0..DEFAULT_READS_IN_FLIGHT)
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
        assert_eq!(order.reads.load(SeqCst), DEFAULT_READS_IN_FLIGHT);
        assert!(futures::poll!(&mut next).is_pending());
        assert!(admission.info().contains("client_read_slot_waits:1\r\n"));
        slots.pop();
        let _slot = tokio::time::timeout(PATIENCE, next)
            .await
            .expect("the freed slot wakes the waiting reader");
        assert_eq!(order.reads.load(SeqCst), DEFAULT_READS_IN_FLIGHT);
        slots.clear();
        assert_eq!(order.reads.load(SeqCst), 1);
    }
}
