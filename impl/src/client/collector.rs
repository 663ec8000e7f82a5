//! The collector: awaits a connection's replies in request order, encodes
//! them, and hands them to the sender in as few buffers as latency allows.

use super::order::Order;
use super::{dispatch, Answers, Encoding, Flow, Pending};
use crate::admission::Admission;
use crate::event::{Input, Response};
use crate::resp;
use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Replies encoded but not yet handed to the sender.
///
/// The collector encodes every reply that is already answered into one
/// buffer and hands the buffer over only before it would wait (or when the
/// buffer is full), so a pipeline's replies cost one hand-over, one buffer and
/// one wake-up of the sender, not one each. Encoded replies count as unsent
/// until the sender has written them; past the client's output buffer limit
/// the connection is cut off.
pub(super) struct Outbox {
    buf: BytesMut,
    out: mpsc::UnboundedSender<(Bytes, bool)>,
    unsent: Arc<AtomicUsize>,
    admission: Arc<Admission>,
    who: String,
}

/// Bytes an [`Outbox`] gathers before it is handed over regardless.
const OUTBOX_BYTES: usize = 16 << 10;

impl Outbox {
    pub(super) fn new(
        out: mpsc::UnboundedSender<(Bytes, bool)>,
        unsent: Arc<AtomicUsize>,
        admission: Arc<Admission>,
        who: String,
    ) -> Self {
        Outbox {
            buf: BytesMut::new(),
            out,
            unsent,
            admission,
            who,
        }
    }

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
        self.encode_with(|buf| resp::shape::encode(frame, encoding.shape, encoding.resp3, buf))
    }

    /// Encodes one of the replica's answers and counts it as unsent.
    fn encode_response(&mut self, response: Response, encoding: Encoding) -> Result<(), Flow> {
        self.encode_with(|buf| {
            resp::shape::encode_response(response, encoding.shape, encoding.resp3, buf)
        })
    }

    fn encode_with(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> Result<(), String>,
    ) -> Result<(), Flow> {
        let before_encoding = self.buf.len();
        if write(&mut self.buf).is_err() {
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
            self.encode_response(response, encoding)?;
        }
        drop(slot);
        Ok(false)
    }
}

/// Awaits replies in request order, encodes them and hands them to the sender.
pub(super) async fn collect(
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
            let writes = usize::from(req.is_write());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::order::ReadSlot;
    use crate::client::PATIENCE;
    use crate::event::{ClientRequest, Response};

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
            let outbox = Outbox::new(out_tx, unsent.clone(), admission, "test".into());
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

    /// An outbox whose replies are never sent, under an output limit of `limit` bytes.
    fn outbox(limit: usize) -> (Outbox, Arc<Admission>) {
        let (out, _) = mpsc::unbounded_channel();
        let admission = Arc::new(Admission {
            output_buffer_limit: limit,
            ..Admission::default()
        });
        let outbox = Outbox::new(out, Arc::default(), admission.clone(), "test".into());
        (outbox, admission)
    }

    /// The output limit counts unsent replies: they may fill it exactly, and
    /// one reply alone may pass it (a value bigger than the limit stays
    /// readable), but a reply that takes unsent ones past it cuts the client
    /// off, counted in INFO.
    #[test]
    fn unsent_replies_may_fill_the_limit_and_one_alone_may_pass_it() {
        let plain = Encoding::default();
        let cut_off = "client_output_buffer_limit_disconnections:1\r\n";
        let (mut o, admission) = outbox(10);
        assert!(o.encode(resp::ok(), plain).is_ok());
        assert!(
            o.encode(resp::ok(), plain).is_ok(),
            "10 bytes fill a limit of 10"
        );
        assert!(!admission.info(2).contains(cut_off));
        assert!(matches!(o.encode(resp::ok(), plain), Err(Flow::Overflow)));
        assert!(admission.info(2).contains(cut_off));

        let (mut o, admission) = outbox(10);
        let big = BytesFrame::BulkString(Bytes::from(vec![b'x'; 100]));
        assert!(
            o.encode(big, plain).is_ok(),
            "a 100-byte value alone passes"
        );
        assert!(!admission.info(2).contains(cut_off));
        assert!(matches!(o.encode(resp::ok(), plain), Err(Flow::Overflow)));
    }
}
