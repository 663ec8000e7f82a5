//! The event loop: one task owns the spec's [`Node`] and nothing else touches it.
//!
//! Inputs (client requests, peer frames, connection events, ticks, stored
//! parts) arrive on one mpsc queue; each is fed to the state machine and the
//! resulting [`Output`]s are carried out. The loop awaits nothing but its input
//! queue and a yield, so it cannot deadlock with the connections it feeds. It
//! drains whatever inputs are ready; if writes await a batch that the spec says
//! is due ([`Node::flush_due`]: Nagle's rule for rounds), it yields once so
//! every ready connection task runs (requests already in their sockets join
//! in), drains again and feeds the spec `Flush`: the writes that arrived
//! meanwhile go out as one batch (one multicast, one frame per peer), without a
//! timer. Peer writers flush only when their queue runs dry, so a pipelining
//! client's writes travel in few TCP segments.
//!
//! Every call into the protocol goes through `Runtime::feed`, which hands
//! the spec node one [`SpecInput`] and, with `--trace`, records the input and
//! the outputs: the trace `gsmo trace check` replays against the spec.
//!
//! There is no protocol logic here, faults included: ordering, the link
//! layer, write refusals and timeouts, the snapshot abort policy and K/V
//! semantics all live in `gsmo-spec`; time reaches it as `Tick { now }`.
//! The rest of the loop's work is split by concern:
//! [`crate::links`] (connections), [`crate::housekeeping`] (snapshot files),
//! [`crate::info`] (`INFO`).

use crate::config::{LogFormat, NodeConfig};
use crate::event::{ClientRequest, Input, Response};
use crate::history;
use crate::housekeeping::Snapshots;
use crate::latency::WriteLatency;
use crate::links::PeerConn;
use crate::shiviz::ShivizLog;
use crate::snapshot::SnapshotStore;
use crate::tracefile::TraceWriter;
use gsmo_spec::kv::PREFETCH_AHEAD;
use gsmo_spec::multicast::{MsgId, Wire};
use gsmo_spec::node::{Input as SpecInput, Node, Output, PeerError, PeerMsg, RequestId};
use gsmo_spec::properties::Event;
use gsmo_spec::refusal::Refusals;
use gsmo_spec::snapshot::{Envelope, SnapshotId};
// aHash: these keys are the runtime's own counters, which no client chooses,
// so SipHash's defence against chosen keys is only cost here.
use ahash::HashMap;
use std::collections::VecDeque;
use std::time::Duration;
// tokio's clock, so a simulated runtime's time is the spec's time.
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, warn};

/// Inputs the loop takes per wake-up before flushing logs and traces.
const BATCH: usize = 1024;

/// How often the ticker wakes the loop (the spec's time resolution).
pub const TICK: Duration = Duration::from_millis(100);

/// Numbers one connection's run of requests ([`Input::Client`]).
type RunId = u64;

/// A run's answers so far; sent back whole when none is missing.
struct Run {
    answers: Vec<Option<Response>>,
    missing: usize,
    reply: oneshot::Sender<Vec<Response>>,
    /// When a run of writes arrived (runs are all reads or all writes): what
    /// [`WriteLatency`] measures its replies from. `None` for other runs.
    writes_since: Option<Instant>,
}

/// Where a node's state came from, for INFO and the handshake.
#[derive(Clone, Debug)]
pub struct Boot {
    pub node: Node,
    /// Outputs the start produced (a restore re-injects recorded channel messages).
    pub outputs: Vec<Output>,
    /// `fresh` or `restored from I-S`.
    pub epoch: String,
    pub restored_from: Option<SnapshotId>,
    /// The trace's start record, when `--trace` asks for one.
    pub trace_start: Option<gsmo_spec::trace::Start>,
}

/// The node's single owner of protocol state.
pub struct Runtime {
    pub(crate) cfg: NodeConfig,
    pub(crate) node: Node,
    /// Connection state per peer (this node's own slot unused).
    pub(crate) peers: Vec<PeerConn>,
    /// Which peers refused this node's handshake; the spec's rule says when
    /// that stops the node.
    pub(crate) refusals: Refusals,
    /// Spec requests awaiting the spec's reply: which run, which place in it.
    waiting: HashMap<RequestId, (RunId, usize)>,
    next_req: RequestId,
    /// Client runs with answers still missing.
    runs: HashMap<RunId, Run>,
    next_run: RunId,
    pub(crate) history: Vec<Event>,
    pub(crate) history_truncated: bool,
    pub(crate) shiviz: Option<ShivizLog>,
    pub(crate) ready_announced: bool,
    pub(crate) client_addr: String,
    pub(crate) snapshots: Snapshots,
    trace: Option<TraceWriter>,
    pub(crate) trace_error: Option<String>,
    pub(crate) restored_from: Option<SnapshotId>,
    pub(crate) epoch: String,
    /// The spec's clock origin: `Tick { now }` is milliseconds since here.
    started: Instant,
    /// Spec inputs produced while carrying out outputs, fed next (never recursively).
    pub(crate) deferred: VecDeque<SpecInput>,
    /// Why this node must stop (a refused handshake, a restarted node).
    pub(crate) fatal: Option<String>,
    /// Connections broken by `--fault-disconnect-every`.
    pub(crate) fault_disconnects: u64,
    /// For results of work done off the loop.
    pub(crate) loopback: mpsc::Sender<Input>,
    /// INFO `write_latency_usec`; `CONFIG RESETSTAT` empties it.
    pub(crate) write_latency: WriteLatency,
    /// Turns that ended with writes held for this node's open round
    /// ([`Node::flush_due`], `--nagle`): INFO `nagle_holds`.
    pub(crate) nagle_holds: u64,
    /// The loop's turns and the time they took, as Redis 7.2's INFO stats:
    /// how often the node wakes per request is what a protocol's message
    /// count costs it, beyond the messages themselves.
    pub(crate) turns: Turns,
}

/// INFO `eventloop_cycles` and `eventloop_duration_sum` (Redis 7.2's names):
/// turns of the loop since the start or `CONFIG RESETSTAT`, and the time the
/// loop held the thread in them, from its wake-up to the turn's end. Unlike
/// Redis's one loop, the connection tasks run beside it, so their reads and
/// replies (and the yield that lets them join a batch) are not counted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Turns {
    pub(crate) cycles: u64,
    pub(crate) busy: Duration,
    /// The most inputs queued at a turn's start, the one that woke it
    /// included: how close the input queue (`--input-queue`) came to full.
    /// A sender may refill the place the first input left, so it is capped
    /// at the bound.
    pub(crate) queue_peak: usize,
}

impl Runtime {
    /// A runtime over `boot.node`; `boot.outputs` are carried out once the loop runs.
    pub fn new(
        cfg: NodeConfig,
        boot: Boot,
        shiviz: Option<ShivizLog>,
        client_addr: String,
        store: Option<SnapshotStore>,
        trace: Option<TraceWriter>,
        loopback: mpsc::Sender<Input>,
    ) -> Self {
        let n = cfg.cluster_size();
        let Boot {
            node,
            outputs,
            epoch,
            restored_from,
            ..
        } = boot;
        let mut rt = Runtime {
            refusals: Refusals::new(cfg.id, n),
            cfg,
            node,
            peers: (0..n).map(|_| PeerConn::default()).collect(),
            waiting: HashMap::default(),
            next_req: 0,
            runs: HashMap::default(),
            next_run: 0,
            history: Vec::new(),
            history_truncated: false,
            shiviz,
            ready_announced: false,
            client_addr,
            snapshots: Snapshots::new(store),
            trace,
            trace_error: None,
            restored_from,
            epoch,
            started: Instant::now(),
            deferred: VecDeque::new(),
            fatal: None,
            fault_disconnects: 0,
            loopback,
            write_latency: WriteLatency::default(),
            nagle_holds: 0,
            turns: Turns::default(),
        };
        if let Some(t) = &mut rt.trace {
            if rt.restored_from.is_some() {
                if let Err(e) = t.record(None, &outputs) {
                    rt.trace_error = Some(e.to_string());
                }
            }
        }
        rt.carry_out(outputs);
        rt.sweep_interrupted_parts();
        // Snapshot ids already on disk are not reused.
        let through = rt.snapshots.last_seq_on_disk(rt.cfg.id);
        if through > 0 {
            rt.feed(SpecInput::SkipSnapshotIds { through })
                .expect("skipping ids is always accepted");
        }
        rt
    }

    /// Feeds the spec node one input, records the step, carries out the outputs.
    /// An input the spec rejects changes nothing and is not recorded.
    pub(crate) fn feed(&mut self, input: SpecInput) -> Result<(), PeerError> {
        let traced = self.trace.is_some().then(|| input.clone());
        // Only a start or a peer's frame records a local state, the step INFO
        // times; a client request never does, and two clock reads are 2% of a GET.
        let step = (!matches!(input, SpecInput::Client { .. })).then(Instant::now);
        let out = self.node.handle(input)?;
        if let Some(step) = step {
            self.snapshots.note_step(step.elapsed(), &out);
        }
        if let (Some(t), Some(input)) = (&mut self.trace, traced) {
            if let Err(e) = t.record(Some(&input), &out) {
                if self.trace_error.is_none() {
                    error!("trace recording stopped: {e}");
                    self.trace_error = Some(e.to_string());
                }
                self.trace = None;
            }
        }
        self.carry_out(out);
        Ok(())
    }

    /// A fresh node of `cfg`'s cluster in `cfg`'s mode, with no snapshot store
    /// and a loopback nobody reads: what the runtime's unit tests drive.
    #[cfg(test)]
    pub(crate) fn fresh_for_test(
        cfg: NodeConfig,
        shiviz: Option<ShivizLog>,
        trace: Option<TraceWriter>,
    ) -> Self {
        let node = Node::new(cfg.id, cfg.cluster_size(), cfg.mode);
        let boot = Boot {
            node,
            outputs: Vec::new(),
            epoch: "test".into(),
            restored_from: None,
            trace_start: None,
        };
        let loopback = mpsc::channel(8).0;
        Runtime::new(cfg, boot, shiviz, "test".into(), None, trace, loopback)
    }

    /// Runs until every input sender is gone, or until the node must stop
    /// (then returns why).
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>) -> Result<(), String> {
        self.check_ready();
        while let Some(input) = inputs.recv().await {
            let queued = (inputs.len() + 1).min(self.cfg.input_queue);
            self.turns.queue_peak = self.turns.queue_peak.max(queued);
            if let Some(pause) = self.cfg.faults.slow {
                tokio::time::sleep(pause).await;
            }
            let mut began = Instant::now();
            self.handle(input);
            self.handle_ready(&mut inputs);
            // Nothing more waiting (or a wake-up's worth handled): the writes that
            // arrived meanwhile go out as one batch, so no timer adds latency;
            // unless the spec holds them for this node's open round (`--nagle`),
            // which the turn that closes it finds due.
            if self.node.flush_due() {
                // First let every connection task that is ready run once: the writes
                // already in their sockets join this batch instead of starting the
                // next one (fewer frames and peer wake-ups per write).
                self.turns.busy += began.elapsed();
                tokio::task::yield_now().await;
                began = Instant::now();
                self.handle_ready(&mut inputs);
                self.feed(SpecInput::Flush)
                    .expect("a flush is always accepted");
                self.drain_deferred();
            } else if self.node.unflushed_writes() > 0 {
                self.nagle_holds += 1;
            }
            self.end_turn();
            if let Some(s) = &mut self.shiviz {
                s.flush();
            }
            self.flush_trace();
            self.turns.cycles += 1;
            self.turns.busy += began.elapsed();
            if let Some(why) = self.fatal.take() {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Handles the inputs already queued, at most a wake-up's worth.
    fn handle_ready(&mut self, inputs: &mut mpsc::Receiver<Input>) {
        for _ in 0..BATCH {
            match inputs.try_recv() {
                Ok(input) => self.handle(input),
                Err(_) => break,
            }
        }
    }

    fn flush_trace(&mut self) {
        if let Some(t) = &mut self.trace {
            if let Err(e) = t.flush() {
                error!("trace recording stopped: {e}");
                self.trace_error = Some(e.to_string());
                self.trace = None;
            }
        }
    }

    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Client { reqs, reply } => self.on_clients(reqs, reply),
            Input::Peer { from, gen, frame } => self.on_peer(from, gen, frame),
            Input::Link(event) => self.on_link(event),
            Input::Tick => self.on_tick(),
            Input::Stored { id, result } => self.on_stored(id, result),
            Input::FaultDisconnect { pick } => self.fault_disconnect(pick),
        }
        self.drain_deferred();
    }

    fn drain_deferred(&mut self) {
        while let Some(input) = self.deferred.pop_front() {
            if let Err(e) = self.feed(input) {
                error!("the spec refused a deferred input: {e}");
            }
        }
    }

    /// Milliseconds since this process started: the spec's monotonic clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn on_tick(&mut self) {
        self.tick_at(self.now_ms());
    }

    /// The ticker's work at spec time `now` (ms). The loop passes its own
    /// clock; `sim --replay` passes a model's, where every replica's clock is
    /// its own and moves one unit per tick.
    pub fn tick_at(&mut self, now: u64) {
        self.feed(SpecInput::Tick { now })
            .expect("a tick is always accepted");
        self.periodic_snapshot();
    }

    fn on_clients(&mut self, reqs: Vec<ClientRequest>, reply: oneshot::Sender<Vec<Response>>) {
        if let Some(answers) = self.read_run(&reqs) {
            // The client may have gone; nothing to do then.
            let _ = reply.send(answers);
            return;
        }
        let run = self.next_run;
        self.next_run += 1;
        let n = reqs.len();
        let writes = reqs.iter().any(ClientRequest::is_write);
        self.runs.insert(
            run,
            Run {
                answers: (0..n).map(|_| None).collect(),
                missing: n,
                reply,
                writes_since: writes.then(Instant::now),
            },
        );
        let mut reqs = VecDeque::from(reqs);
        let mut i = 0;
        while let Some(req) = reqs.pop_front() {
            self.prefetch(i, n, std::iter::once(&req).chain(&reqs));
            match self.read_now(&req) {
                Some(response) => self.answer((run, i), response),
                None => self.on_client(req, (run, i)),
            }
            i += 1;
        }
    }

    /// A run of K/V reads answered whole, with no entry in `runs` (a map
    /// insertion, a lookup per answer and a removal less per run); `None` for
    /// any other run, which takes the general path. A run that holds anything
    /// but K/V reads (`INFO` may join reads) is refused before any read is
    /// answered, so none is answered twice; on a traced node `read_now`
    /// refuses the run at its first read.
    fn read_run(&self, reqs: &[ClientRequest]) -> Option<Vec<Response>> {
        let kv_read = |r: &ClientRequest| matches!(r, ClientRequest::Kv(_)) && !r.is_write();
        if !reqs.iter().all(kv_read) {
            return None;
        }
        let mut answers = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            self.prefetch(i, reqs.len(), &reqs[i..]);
            answers.push(self.read_now(req)?);
        }
        Some(answers)
    }

    /// At request `i` of a pipelined run of `n` requests, once every
    /// [`PREFETCH_AHEAD`]: looks the keys of the next [`PREFETCH_AHEAD`]
    /// requests of `ahead` (request `i` on) up together first (see
    /// `KvStore::prefetch`). Both ways through a run ask here, so the window
    /// is decided in one place.
    fn prefetch<'a>(&self, i: usize, n: usize, ahead: impl IntoIterator<Item = &'a ClientRequest>) {
        if i % PREFETCH_AHEAD != 0 || n < 2 {
            return;
        }
        let keys = ahead
            .into_iter()
            .take(PREFETCH_AHEAD)
            .filter_map(|r| match r {
                ClientRequest::Kv(cmd) => cmd.read_key(),
                _ => None,
            });
        self.node.kv().prefetch(keys);
    }

    /// The answer to a K/V read, straight from the spec's [`Node::read`]: a read
    /// changes nothing and sends nothing, so it needs no request number, no
    /// input and no outputs to carry out (about 5% of node 0's CPU per pipelined GET).
    /// `None` for a write, or while a trace is recorded, where every request
    /// is an input of the trace.
    fn read_now(&self, req: &ClientRequest) -> Option<Response> {
        match req {
            ClientRequest::Kv(cmd) if self.trace.is_none() => self.node.read(cmd).map(Response::Kv),
            _ => None,
        }
    }

    /// Files answer `i` of run `run`; sends the run's answers once all are in.
    fn answer(&mut self, (run, i): (RunId, usize), response: Response) {
        let Some(r) = self.runs.get_mut(&run) else {
            return;
        };
        r.answers[i] = Some(response);
        r.missing -= 1;
        if r.missing == 0 {
            let r = self.runs.remove(&run).expect("the run is here");
            let answers = r.answers.into_iter().map(|a| a.expect("answered"));
            // The client may have gone; nothing to do then.
            let _ = r.reply.send(answers.collect());
        }
    }

    fn on_client(&mut self, req: ClientRequest, to: (RunId, usize)) {
        if !matches!(req, ClientRequest::Kv(_) | ClientRequest::Snapshot) {
            // Whoever reads this node's state finds its trace caught up with the answer.
            self.flush_trace();
        }
        let answer = match req {
            ClientRequest::Kv(cmd) => {
                self.next_req += 1;
                let id = self.next_req;
                self.waiting.insert(id, to);
                self.feed(SpecInput::Client { req: id, cmd })
                    .expect("client input is always accepted");
                return;
            }
            ClientRequest::Snapshot => match self.start_snapshot() {
                Ok(id) => Response::Bulk(id.to_string().into_bytes()),
                Err(why) => Response::Error(why),
            },
            ClientRequest::Info(section) => Response::Bulk(
                crate::resp::server::info_sections(&self.info(), section.as_deref()).into_bytes(),
            ),
            ClientRequest::ResetStat => {
                self.write_latency.reset();
                self.turns = Turns::default();
                Response::Kv(gsmo_spec::kv::Reply::Ok)
            }
            ClientRequest::DbSize => Response::Int(self.node.kv().len() as i64),
            ClientRequest::History if self.history_truncated => Response::Error(format!(
                "ERR history truncated after {} events (raise --history-limit)",
                self.history.len()
            )),
            ClientRequest::History => Response::Array(
                self.history
                    .iter()
                    .map(|e| history::format_event(e).into_bytes())
                    .collect(),
            ),
            ClientRequest::Dump => Response::Array(
                self.node
                    .kv()
                    .iter()
                    .flat_map(|(k, v)| [k.to_vec(), v.render()])
                    .collect(),
            ),
            ClientRequest::Digest => Response::Bulk(
                format!(
                    "keys={} delivered={} digest={:016x}",
                    self.node.kv().len(),
                    self.delivered_total(),
                    history::digest(self.node.kv())
                )
                .into_bytes(),
            ),
        };
        self.answer(to, answer);
    }

    pub(crate) fn check_ready(&mut self) {
        let others = self.cfg.cluster_size() - 1;
        if !self.ready_announced && self.peers_up() == others {
            self.ready_announced = true;
            announce(
                self.cfg.log_format,
                &format!(
                    "gsmo node {} ready: {others} peers connected both ways, mode {}, clients at {}",
                    self.cfg.id, self.cfg.mode, self.client_addr
                ),
            );
        }
    }

    fn carry_out(&mut self, out: Vec<Output>) {
        // Read once for all the replies of one step, and only if a write has one.
        let mut now = None;
        for o in out {
            match o {
                Output::Send { to, frame } => self.send_peer(to, frame),
                Output::Reply { req, reply } => {
                    if let Some(to) = self.waiting.remove(&req) {
                        let since = self.runs.get(&to.0).and_then(|r| r.writes_since);
                        if let Some(since) = since {
                            let now = *now.get_or_insert_with(Instant::now);
                            self.write_latency.record(since, now);
                        }
                        self.answer(to, Response::Kv(reply));
                    }
                }
                Output::Multicast { id } => {
                    self.record(Event::Send(id));
                    if let Some(s) = &mut self.shiviz {
                        s.local(format_args!("multicast {id}"));
                    }
                }
                Output::Delivered { id, .. } => {
                    self.record(Event::Deliver(id));
                    if let Some(s) = &mut self.shiviz {
                        s.local(format_args!("deliver {id}"));
                    }
                }
                Output::SnapshotRecorded { id } => self.on_recorded(id),
                Output::SnapshotComplete(part) => self.on_part_complete(part),
                Output::SnapshotCommitted { id, parts } => self.on_committed(id, parts),
                Output::SnapshotAborted { id, by, reason } => self.on_aborted(id, by, reason),
                Output::DropPart { id } => self.on_drop_part(id),
            }
        }
    }

    /// Keeps `e` for `GSMO.HISTORY`, only if that command can be served: without
    /// `--debug-commands` nobody can read the history, and keeping it cost every
    /// write a push, and the node up to `--history-limit` events of memory.
    fn record(&mut self, e: Event) {
        if !self.cfg.admission.debug_commands {
            return;
        }
        if self.history.len() < self.cfg.history_limit {
            self.history.push(e);
        } else if !self.history_truncated {
            self.history_truncated = true;
            warn!(
                "history limit of {} events reached; GSMO.HISTORY now refuses",
                self.cfg.history_limit
            );
        }
    }

    pub(crate) fn delivered_total(&self) -> u64 {
        self.node.state().multicast.delivered().iter().sum()
    }
}

/// Prints a status line where the launcher and test harness look for it:
/// stdout, unless stdout carries the ShiViz log.
pub fn announce(format: LogFormat, line: &str) {
    if crate::net::simulated() {
        return;
    }
    match format {
        LogFormat::Text => println!("{line}"),
        LogFormat::Shiviz => eprintln!("{line}"),
    }
}

/// A short name for a peer message, for the ShiViz diagram.
pub fn describe(msg: &PeerMsg) -> String {
    use gsmo_spec::multicast::{isis, sequencer};
    let body = |w: &Wire<_>| -> (&'static str, MsgId) {
        match w {
            Wire::Fifo(m) => ("data", m.id),
            Wire::Causal(m) => ("data", m.id),
            Wire::Sequencer(sequencer::Msg::Data { id, .. }) => ("data", *id),
            Wire::Sequencer(sequencer::Msg::Order { id, .. }) => ("order", *id),
            Wire::Sequencer(sequencer::Msg::Submit { id, .. }) => ("submit", *id),
            Wire::Sequencer(sequencer::Msg::Ordered { id, .. }) => ("ordered", *id),
            Wire::Isis(isis::Msg::Data { id, .. }) => ("data", *id),
            Wire::Isis(isis::Msg::Propose { id, .. }) => ("propose", *id),
            Wire::Isis(isis::Msg::Agreed { id, .. }) => ("agreed", *id),
        }
    };
    match msg {
        Envelope::Marker { id } => format!("marker {id}"),
        Envelope::Msg { body: w, .. } => {
            let (kind, id) = body(w);
            format!("{kind} {id}")
        }
        Envelope::Abort { id, .. } => format!("abort {id}"),
        Envelope::Stored { id, part } => format!("stored {id} n{}", part.node),
        Envelope::Committed { id, .. } => format!("committed {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Admission;
    use crate::tracefile::read_trace;
    use gsmo_spec::kv::{Op, Reply};
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::Command;
    use gsmo_spec::trace::Start;
    use std::sync::Arc;

    /// A one-node fifo runtime, recording its trace to `trace` if given.
    fn solo(trace: Option<&std::path::Path>) -> Runtime {
        let start = Start::Fresh {
            node: 0,
            n: 1,
            mode: Mode::Fifo,
            limits: Node::new(0, 1, Mode::Fifo).limits(),
        };
        let trace = trace.map(|path| TraceWriter::create(path, &start).unwrap());
        let cfg = NodeConfig::new(0, vec!["127.0.0.1:7100".into()], Mode::Fifo).unwrap();
        Runtime::fresh_for_test(cfg, None, trace)
    }

    /// `GSMO.HISTORY` serves the whole history or refuses: past
    /// `--history-limit` events a partial one would pass for a complete one
    /// in a checker's hands, so the command says it was cut off.
    #[tokio::test]
    async fn a_history_past_its_limit_is_refused_not_served_in_part() {
        for limit in [1_000, 2] {
            let mut cfg = NodeConfig::new(0, vec!["127.0.0.1:7100".into()], Mode::Fifo).unwrap();
            cfg.history_limit = limit;
            cfg.admission = Arc::new(Admission {
                debug_commands: true,
                ..Admission::default()
            });
            let mut rt = Runtime::fresh_for_test(cfg, None, None);
            sets(&mut rt, 3);
            match ask(&mut rt, ClientRequest::History) {
                Response::Array(events) if limit == 1_000 => {
                    assert!(events.len() >= 3, "{} events", events.len());
                }
                Response::Error(e) if limit == 2 => {
                    assert!(e.starts_with("ERR history truncated after 2 events"), "{e}");
                }
                other => panic!("limit {limit}: {other:?}"),
            }
            let info = rt.info();
            let truncated = format!("history_truncated:{}\r\n", u8::from(limit == 2));
            assert!(info.contains(&truncated), "{info}");
        }
    }

    /// Sends `req` to `rt` as a run of its own and returns the answer.
    fn ask(rt: &mut Runtime, req: ClientRequest) -> Response {
        let (reply, mut answer) = oneshot::channel();
        rt.handle(Input::Client {
            reqs: vec![req],
            reply,
        });
        rt.feed(SpecInput::Flush).unwrap();
        answer.try_recv().expect("answered at once").remove(0)
    }

    /// `SET k<i> <i>` for `i` in `0..n`.
    fn sets(rt: &mut Runtime, n: u8) {
        for i in 0..n {
            let set = Command::Write(Op::Set {
                key: vec![i],
                value: vec![i],
            });
            assert_eq!(ask(rt, ClientRequest::Kv(set)), Response::Kv(Reply::Ok));
        }
    }

    /// GSMO.DIGEST names the keys and the deliveries behind the digest, so
    /// two replicas with equal stores and different histories differ.
    #[tokio::test]
    async fn the_digest_counts_keys_and_deliveries() {
        let mut rt = solo(None);
        sets(&mut rt, 3);
        sets(&mut rt, 2);
        let Response::Bulk(digest) = ask(&mut rt, ClientRequest::Digest) else {
            panic!("a digest is a bulk string");
        };
        let digest = String::from_utf8(digest).unwrap();
        assert!(digest.starts_with("keys=3 delivered=5 digest="), "{digest}");
    }

    /// Whoever asks a traced node for its state (INFO here; a test's
    /// quiesce, or GSMO.DIGEST) finds the trace file caught up with the
    /// answer, though the loop flushes it only at the end of a turn.
    #[tokio::test]
    async fn a_question_about_state_finds_the_trace_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n0.trace");
        let mut rt = solo(Some(&path));
        sets(&mut rt, 1);
        ask(&mut rt, ClientRequest::Info(None));
        let (trace, _) = read_trace(&path).expect("a whole trace on disk");
        let writes = trace.steps.iter().filter(|s| {
            matches!(
                s.input,
                Some(SpecInput::Client {
                    cmd: Command::Write(_),
                    ..
                })
            )
        });
        assert_eq!(writes.count(), 1, "the SET before the INFO is on disk");
    }

    /// A read skips the spec's input and outputs only where no trace needs
    /// them: answered at once either way, and an input of the trace when one
    /// is kept, so a trace check and its histories still see every read.
    #[tokio::test]
    async fn reads_are_answered_at_once_and_traced_when_a_trace_is_kept() {
        for traced in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("n0.trace");
            let mut rt = solo(traced.then_some(path.as_path()));
            let set = Command::Write(Op::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            });
            let get = |key: &[u8]| ClientRequest::Kv(Command::Get { key: key.to_vec() });
            let (reply, mut answer) = oneshot::channel();
            rt.handle(Input::Client {
                reqs: vec![ClientRequest::Kv(set)],
                reply,
            });
            rt.feed(SpecInput::Flush).unwrap();
            assert!(
                answer.try_recv().is_ok(),
                "a lone fifo node delivers at once"
            );
            let (reply, mut answer) = oneshot::channel();
            let runs_before = rt.next_run;
            rt.handle(Input::Client {
                reqs: vec![get(b"k"), get(b"x")],
                reply,
            });
            let want = [Reply::Bulk(Some(b"v".to_vec())), Reply::Bulk(None)].map(Response::Kv);
            assert_eq!(answer.try_recv().unwrap(), want, "traced: {traced}");
            assert_eq!(
                rt.next_run - runs_before,
                u64::from(traced),
                "an untraced run of reads is answered whole, without a run of its own"
            );
            rt.flush_trace();
            drop(rt);
            if traced {
                let (trace, _) = read_trace(&path).unwrap();
                let reads = trace.steps.iter().filter(|s| {
                    matches!(
                        s.input,
                        Some(SpecInput::Client {
                            cmd: Command::Get { .. },
                            ..
                        })
                    )
                });
                assert_eq!(reads.count(), 2, "each read is an input of the trace");
            } else {
                assert!(!path.exists(), "no trace was asked for");
            }
        }
    }
}
