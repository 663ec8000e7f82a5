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
//!
//! One file per part: `reader.rs` gathers requests into runs, `order.rs`
//! keeps a connection's commands in order and bounds its reads,
//! `collector.rs` encodes replies in request order, and `sender.rs` writes
//! them.

mod collector;
mod order;
mod reader;
mod sender;

use crate::admission::{Admission, Gate, Slot, MAX_CLIENTS_ERROR};
use crate::event::{ClientRequest, Input, Response};
use crate::net::{Listener, Stream};
use crate::resp;
use collector::{collect, Outbox};
use order::{Order, ReadSlot};
use redis_protocol::resp2::types::BytesFrame;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Requests in one run handed to the runtime (reads: also the connection's
/// read slots). Keeps one connection from holding the event loop for long.
const RUN_MAX: usize = 16;

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
    // Entries (a reply, or a run of at most RUN_MAX requests) before the reader waits.
    let (tx, rx) = mpsc::channel::<Pending>(admission.reply_queue.max(1));
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let order = Arc::new(Order::new(admission.clone()));
    let unsent = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox::new(out_tx, unsent.clone(), admission.clone(), who.clone());
    let mut collector = tokio::spawn(collect(rx, outbox, inputs.clone(), order.clone()));
    let sender = tokio::spawn(sender::send(write, out_rx, unsent));
    let reading = reader::read_requests(read, tx, inputs, order, Gate::new(admission), who);
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

/// Hands a run of requests to the runtime; `None` if the runtime is gone.
async fn dispatch(
    inputs: &mpsc::Sender<Input>,
    reqs: Vec<ClientRequest>,
) -> Option<oneshot::Receiver<Vec<Response>>> {
    let (reply, answer) = oneshot::channel();
    inputs.send(Input::Client { reqs, reply }).await.ok()?;
    Some(answer)
}

/// How long a test waits for what must happen.
#[cfg(test)]
const PATIENCE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

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
            let is_write = req.is_write();
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
            let info = admission.info(2);
            assert!(
                info.contains(&format!("client_reads_in_flight:{slots}\r\n"))
                    && info.contains(&format!("client_read_slot_waits:{waited}\r\n")),
                "{slots} slots: {info}"
            );
        }
    }

    /// A reply that closes the connection (QUIT, a protocol error) is the
    /// last: requests the client pipelined behind it are never run.
    #[tokio::test]
    async fn nothing_pipelined_behind_quit_is_run() {
        use tokio::io::AsyncReadExt;
        for (pipeline, reply) in [
            (&b"QUIT\r\nSET b 2\r\n"[..], "+OK\r\n"),
            (b"*1\r\n$x\r\nSET b 2\r\n", "-ERR Protocol error"),
        ] {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            client.write_all(pipeline).await.unwrap();
            let admission = Arc::new(Admission::default());
            let slot = admission.try_admit().unwrap();
            let (inputs, mut runtime) = mpsc::channel(16);
            tokio::spawn(serve(Box::new(server), inputs, admission, slot));
            let mut replies = Vec::new();
            tokio::time::timeout(PATIENCE, client.read_to_end(&mut replies))
                .await
                .expect("the node closes the connection")
                .unwrap();
            let replies = String::from_utf8_lossy(&replies);
            assert!(replies.starts_with(reply), "{replies}");
            assert_eq!(replies.matches("\r\n").count(), 1, "one reply: {replies}");
            let ran = tokio::time::timeout(PATIENCE, runtime.recv()).await;
            assert!(
                matches!(ran, Ok(None)),
                "the SET behind it reached the runtime"
            );
        }
    }

    /// A client's reply queue is bounded (`--client-reply-queue`): behind an
    /// unanswered read, a pipeline of local replies fills it, the reader
    /// stops reading (counted in INFO), and everything still arrives in order
    /// once the read is answered.
    #[tokio::test]
    async fn a_full_reply_queue_stops_the_reader_until_replies_move() {
        use gsmo_spec::kv::Reply;
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut pipeline = b"GET a\r\n".to_vec();
        pipeline.extend(b"PING\r\n".repeat(6));
        client.write_all(&pipeline).await.unwrap();
        client.shutdown().await.unwrap();
        let admission = Arc::new(Admission {
            reply_queue: 2,
            ..Admission::default()
        });
        let slot = admission.try_admit().unwrap();
        let (inputs, mut runtime) = mpsc::channel(16);
        tokio::spawn(serve(Box::new(server), inputs, admission.clone(), slot));
        let read = next_run(&mut runtime, 1, false).await;
        let waits = |a: &Admission| {
            let info = a.info(2);
            let line = info
                .lines()
                .find_map(|l| l.strip_prefix("client_reply_queue_waits:"));
            line.unwrap().parse::<u64>().unwrap()
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while waits(&admission) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reader never waited"
            );
            tokio::task::yield_now().await;
        }
        assert!(admission.info(2).contains("client_reply_queue:2\r\n"));
        read.send(vec![Response::Kv(Reply::Bulk(None))]).unwrap();
        let mut replies = Vec::new();
        tokio::time::timeout(PATIENCE, client.read_to_end(&mut replies))
            .await
            .expect("every reply arrives and the connection ends")
            .unwrap();
        let want = format!("$-1\r\n{}", "+PONG\r\n".repeat(6));
        assert_eq!(String::from_utf8_lossy(&replies), want);
    }
}
