//! The event loop: one task owns the spec's [`Node`] and nothing else touches it.
//!
//! Inputs (client requests, peer frames, link events) arrive on one mpsc
//! queue; each is fed to the state machine and the resulting [`Output`]s are
//! carried out: sends go to the per-peer writer queues, replies to the waiting
//! client's oneshot, history and snapshot events to the log and the counters.
//! The loop never awaits anything but its input queue, so it cannot deadlock
//! with the connections it feeds. It drains whatever inputs are ready before
//! yielding, and peer writers flush only when their queue runs dry, so a
//! pipelining client's writes travel in few TCP segments.
//!
//! Every call into the protocol goes through [`Runtime::feed`], which hands
//! the spec node one [`SpecInput`] and, with `--trace`, records the input and
//! the outputs: the trace `gsmo trace check` replays against the spec.
//!
//! There is no protocol logic here: ordering, snapshot rules and K/V semantics
//! all live in `gsmo-spec`. What is here is operations: writing finished
//! snapshot parts to disk off the loop, timing out snapshots that cannot
//! finish, periodic snapshots, counters.

use crate::config::{LogFormat, NodeConfig};
use crate::frame::PeerFrame;
use crate::history;
use crate::peer::{Direction, LinkEvent, LinkState};
use crate::shiviz::ShivizLog;
use crate::snapshot::{Manifest, PartFile, SnapshotStore, StoreError};
use crate::tracefile::TraceWriter;
use gsmo_spec::kv::Reply;
use gsmo_spec::multicast::{MsgId, Wire};
use gsmo_spec::node::{Command, Input as SpecInput, Node, Output, Part, PeerMsg, RequestId};
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::{Envelope, SnapshotId};
use gsmo_spec::NodeId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// Inputs the loop takes per wake-up before checking on its own housekeeping.
const BATCH: usize = 1024;

/// What a client connection asks of the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    Kv(Command),
    Snapshot,
    /// INFO, optionally one section.
    Info(Option<String>),
    DbSize,
    History,
    Dump,
    Digest,
}

/// The replica's answer, in a form `resp` turns into a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Kv(Reply),
    Bulk(Vec<u8>),
    Int(i64),
    Array(Vec<Vec<u8>>),
    Error(String),
}

/// Everything the event loop reacts to.
#[derive(Debug)]
pub enum Input {
    Client {
        req: ClientRequest,
        reply: oneshot::Sender<Response>,
    },
    Peer {
        from: NodeId,
        frame: PeerFrame,
    },
    Link(LinkEvent),
    /// A clock tick: snapshot timeouts and periodic snapshots.
    Tick,
    /// A snapshot part finished writing (off the loop).
    Stored {
        id: SnapshotId,
        outcome: Result<StoreOutcome, String>,
    },
}

/// What persisting one part achieved.
#[derive(Debug)]
pub struct StoreOutcome {
    pub path: PathBuf,
    pub bytes: u64,
    /// Set when this part was the last one and the manifest is now written.
    pub manifest: Option<Manifest>,
    /// Old snapshots deleted by retention.
    pub removed: Vec<SnapshotId>,
}

/// How often the ticker wakes the loop.
pub const TICK: Duration = Duration::from_millis(100);

/// The two directed channels with one peer.
#[derive(Clone, Debug)]
struct Links {
    out: LinkState,
    inbound: LinkState,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    peer_dropped: u64,
    snapshots_started: u64,
    snapshots_recorded: u64,
    snapshots_completed: u64,
    snapshots_aborted: u64,
    snapshots_stored: u64,
    snapshots_assembled: u64,
    snapshot_store_errors: u64,
    last_snapshot: Option<SnapshotId>,
    last_duration_ms: u64,
    last_state_bytes: u64,
    last_channel_messages: u64,
    last_status: String,
    trace_error: Option<String>,
}

/// A snapshot this node is taking part in.
#[derive(Clone, Copy, Debug)]
struct Active {
    /// When this node first heard of it: the timeout runs from here.
    since: Instant,
    /// When the local state was recorded (wall clock, for the part file).
    recorded_unix_ms: u64,
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
    cfg: NodeConfig,
    node: Node,
    /// Per-peer writer queues (`None` for this node itself).
    writers: Vec<Option<mpsc::UnboundedSender<PeerFrame>>>,
    links: Vec<Links>,
    waiting: HashMap<RequestId, oneshot::Sender<Response>>,
    next_req: RequestId,
    history: Vec<Event>,
    history_truncated: bool,
    stats: Stats,
    shiviz: Option<ShivizLog>,
    ready_announced: bool,
    client_addr: String,
    store: Option<SnapshotStore>,
    trace: Option<TraceWriter>,
    active: HashMap<SnapshotId, Active>,
    next_periodic: Option<Instant>,
    restored_from: Option<SnapshotId>,
    epoch: String,
    last_recorded: Option<SnapshotId>,
    /// For results of work done off the loop.
    loopback: mpsc::Sender<Input>,
}

impl Runtime {
    /// A runtime over `boot.node`; `boot.outputs` are carried out once the loop runs.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: NodeConfig,
        boot: Boot,
        writers: Vec<Option<mpsc::UnboundedSender<PeerFrame>>>,
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
        let links = (0..n)
            .map(|_| Links {
                out: LinkState::Connecting,
                inbound: LinkState::Connecting,
            })
            .collect();
        let mut rt = Runtime {
            cfg,
            node,
            writers,
            links,
            waiting: HashMap::new(),
            next_req: 0,
            history: Vec::new(),
            history_truncated: false,
            stats: Stats::default(),
            shiviz,
            ready_announced: false,
            client_addr,
            store,
            trace,
            active: HashMap::new(),
            next_periodic: None,
            restored_from,
            epoch,
            last_recorded: None,
            loopback,
        };
        if let Some(t) = &mut rt.trace {
            if rt.restored_from.is_some() {
                if let Err(e) = t.record(None, &outputs) {
                    rt.stats.trace_error = Some(e.to_string());
                }
            }
        }
        rt.carry_out(outputs);
        // Snapshot ids already on disk are not reused.
        if let Some(store) = &rt.store {
            let through = store.last_seq_of(rt.cfg.id);
            if through > 0 {
                rt.feed(SpecInput::SkipSnapshotIds { through })
                    .expect("skipping ids is always accepted");
            }
        }
        rt
    }

    /// Feeds the spec node one input, records the step, carries out the outputs.
    fn feed(&mut self, input: SpecInput) -> Result<(), gsmo_spec::node::PeerError> {
        let traced = self.trace.is_some().then(|| input.clone());
        let out = self.node.handle(input)?;
        if let (Some(t), Some(input)) = (&mut self.trace, traced) {
            if let Err(e) = t.record(Some(&input), &out) {
                if self.stats.trace_error.is_none() {
                    error!("trace recording stopped: {e}");
                    self.stats.trace_error = Some(e.to_string());
                }
                self.trace = None;
            }
        }
        self.carry_out(out);
        Ok(())
    }

    /// Runs until every input sender is gone.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        self.check_ready();
        while let Some(input) = inputs.recv().await {
            if let Some(pause) = self.cfg.faults.slow {
                tokio::time::sleep(pause).await;
            }
            self.handle(input);
            for _ in 0..BATCH {
                match inputs.try_recv() {
                    Ok(input) => self.handle(input),
                    Err(_) => break,
                }
            }
            if let Some(s) = &mut self.shiviz {
                s.flush();
            }
            self.flush_trace();
        }
    }

    fn flush_trace(&mut self) {
        if let Some(t) = &mut self.trace {
            if let Err(e) = t.flush() {
                error!("trace recording stopped: {e}");
                self.stats.trace_error = Some(e.to_string());
                self.trace = None;
            }
        }
    }

    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Client { req, reply } => self.on_client(req, reply),
            Input::Peer { from, frame } => self.on_peer(from, frame),
            Input::Link(event) => self.on_link(event),
            Input::Tick => self.on_tick(),
            Input::Stored { id, outcome } => self.on_stored(id, outcome),
        }
    }

    fn on_client(&mut self, req: ClientRequest, reply: oneshot::Sender<Response>) {
        if !matches!(req, ClientRequest::Kv(_) | ClientRequest::Snapshot) {
            // Whoever reads this node's state finds its trace caught up with the answer.
            self.flush_trace();
        }
        let answer = match req {
            ClientRequest::Kv(cmd) => {
                self.next_req += 1;
                let id = self.next_req;
                self.waiting.insert(id, reply);
                self.feed(SpecInput::Client { req: id, cmd })
                    .expect("client input is always accepted");
                return;
            }
            ClientRequest::Snapshot => {
                let id = self.start_snapshot();
                Response::Bulk(id.to_string().into_bytes())
            }
            ClientRequest::Info(section) => Response::Bulk(
                crate::resp::server::info_sections(&self.info(), section.as_deref()).into_bytes(),
            ),
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
                    .flat_map(|(k, v)| [k.clone(), v.render()])
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
        // The client may have gone; nothing to do then.
        let _ = reply.send(answer);
    }

    /// Starts a snapshot here. This is the single place SNAPSHOT enters the protocol.
    pub fn start_snapshot(&mut self) -> SnapshotId {
        self.last_recorded = None;
        self.feed(SpecInput::StartSnapshot)
            .expect("starting a snapshot is always accepted");
        // The initiator records its state at once, so the output names the id.
        let id = self
            .last_recorded
            .expect("the spec records the initiator's state on start");
        self.stats.snapshots_started += 1;
        info!(snapshot = %id, "starting snapshot");
        id
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(every) = self.cfg.snapshot_every {
            if self.ready_announced {
                let due = *self.next_periodic.get_or_insert(now + every);
                if now >= due {
                    self.next_periodic = Some(now + every);
                    self.start_snapshot();
                }
            }
        }
        let timeout = self.cfg.snapshot_timeout;
        for id in self.node.snapshots_in_progress() {
            self.active.entry(id).or_insert(Active {
                since: now,
                recorded_unix_ms: unix_ms(),
            });
            let waiting = self.node.snapshot_waiting_on(id);
            // A marker can never come over a dead channel: no need to wait.
            let dead: Vec<String> = waiting
                .iter()
                .copied()
                .filter(|&j| {
                    !matches!(self.links[j].inbound, LinkState::Up | LinkState::Connecting)
                })
                .map(|j| format!("n{j}"))
                .collect();
            if !dead.is_empty() {
                self.abort_snapshot(
                    id,
                    format!(
                        "waiting for markers from {}, whose channels are lost",
                        dead.join(",")
                    ),
                );
                continue;
            }
            let since = self.active[&id];
            if now.duration_since(since.since) >= timeout {
                let waiting: Vec<String> = waiting.iter().map(|j| format!("n{j}")).collect();
                self.abort_snapshot(
                    id,
                    format!(
                        "timed out after {}s waiting for markers from {}",
                        timeout.as_secs_f64(),
                        waiting.join(",")
                    ),
                );
            }
        }
    }

    /// Gives up on `id` here and marks it aborted on disk, removing any parts.
    fn abort_snapshot(&mut self, id: SnapshotId, reason: String) {
        let _ = self.feed(SpecInput::AbortSnapshot { id });
        self.active.remove(&id);
        self.stats.snapshots_aborted += 1;
        self.stats.last_status = format!("{id} aborted: {reason}");
        warn!(snapshot = %id, "snapshot {id} ABORTED: {reason}");
        if let Some(store) = self.store.clone() {
            let me = self.cfg.id;
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.mark_aborted(id, me, &reason) {
                    error!(snapshot = %id, "cannot mark snapshot {id} aborted: {e}");
                }
            });
        }
    }

    fn on_stored(&mut self, id: SnapshotId, outcome: Result<StoreOutcome, String>) {
        match outcome {
            Ok(o) => {
                self.stats.snapshots_stored += 1;
                self.stats.last_status = format!("{id} part stored");
                info!(snapshot = %id, "wrote {} ({} bytes)", o.path.display(), o.bytes);
                if let Some(m) = o.manifest {
                    self.stats.snapshots_assembled += 1;
                    self.stats.last_status = format!("{id} complete");
                    info!(
                        snapshot = %id,
                        "snapshot {id} COMPLETE: all {} parts written, manifest assembled",
                        m.nodes
                    );
                }
                for old in o.removed {
                    info!(snapshot = %old, "retention: deleted snapshot {old}");
                }
            }
            Err(e) => {
                self.stats.snapshot_store_errors += 1;
                self.stats.last_status = format!("{id} not stored: {e}");
                error!(snapshot = %id, "snapshot {id} part NOT stored: {e}");
            }
        }
    }

    fn on_peer(&mut self, from: NodeId, frame: PeerFrame) {
        if let LinkState::Failed(_) = self.links[from].inbound {
            return; // already reported; its positions can no longer be trusted
        }
        if let Some(s) = &mut self.shiviz {
            s.receive(
                frame.clock.as_deref(),
                format_args!("recv {} from n{from}", describe(&frame.msg)),
            );
        }
        match self.feed(SpecInput::Peer {
            from,
            msg: frame.msg,
        }) {
            Ok(()) => {}
            Err(e) => {
                error!(
                    peer = from,
                    "node {from} broke the protocol: {e}; ignoring its channel from now on"
                );
                self.links[from].inbound = LinkState::Failed(e.to_string());
                self.abort_snapshots(&format!(
                    "channel {} failed",
                    arrow(self.cfg.id, from, Direction::In)
                ));
            }
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Up { peer, dir } => {
                info!(peer, "channel {} up", arrow(self.cfg.id, peer, dir));
                *self.link_mut(peer, dir) = LinkState::Up;
                self.check_ready();
            }
            LinkEvent::Down { peer, dir, reason } => {
                error!(
                    peer,
                    "LOST channel {}: {reason}; it will not be re-opened (INFO shows it)",
                    arrow(self.cfg.id, peer, dir)
                );
                let lost = format!("channel {} lost", arrow(self.cfg.id, peer, dir));
                *self.link_mut(peer, dir) = LinkState::Lost(reason);
                self.abort_snapshots(&lost);
            }
            LinkEvent::Refused { peer, reason } => {
                error!(peer, "node {peer} refused our connection: {reason}");
                self.links[peer].out = LinkState::Refused(reason);
            }
        }
    }

    fn link_mut(&mut self, peer: NodeId, dir: Direction) -> &mut LinkState {
        match dir {
            Direction::Out => &mut self.links[peer].out,
            Direction::In => &mut self.links[peer].inbound,
        }
    }

    /// A snapshot can only finish if every channel delivers its marker.
    fn abort_snapshots(&mut self, why: &str) {
        for id in self.node.snapshots_in_progress() {
            self.abort_snapshot(id, why.to_string());
        }
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.cfg.cluster_size()).filter(move |&j| j != self.cfg.id)
    }

    fn peers_up(&self) -> usize {
        self.peers()
            .filter(|&j| {
                self.links[j].out == LinkState::Up && self.links[j].inbound == LinkState::Up
            })
            .count()
    }

    fn check_ready(&mut self) {
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
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let clock = self
                        .shiviz
                        .as_mut()
                        .map(|s| s.send(format_args!("send {} to n{to}", describe(&msg))));
                    self.send_peer(to, PeerFrame { clock, msg });
                }
                Output::Reply { req, reply } => {
                    if let Some(tx) = self.waiting.remove(&req) {
                        let _ = tx.send(Response::Kv(reply));
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
                Output::SnapshotRecorded { id } => {
                    self.stats.snapshots_recorded += 1;
                    self.last_recorded = Some(id);
                    let now = Instant::now();
                    let a = self.active.entry(id).or_insert(Active {
                        since: now,
                        recorded_unix_ms: 0,
                    });
                    a.recorded_unix_ms = unix_ms();
                    debug!(snapshot = %id, "recorded local state");
                    if let Some(s) = &mut self.shiviz {
                        s.local(format_args!("record snapshot {id}"));
                    }
                }
                Output::SnapshotComplete(part) => self.snapshot_complete(part),
            }
        }
    }

    /// The single place a finished snapshot part leaves the protocol.
    fn snapshot_complete(&mut self, part: Box<Part>) {
        let id = part.id;
        let active = self.active.remove(&id);
        let duration_ms = active.map_or(0, |a| a.since.elapsed().as_millis() as u64);
        self.stats.snapshots_completed += 1;
        self.stats.last_snapshot = Some(id);
        self.stats.last_duration_ms = duration_ms;
        self.stats.last_state_bytes = part.state.kv.payload_bytes() as u64;
        self.stats.last_channel_messages = part.channel_messages() as u64;
        if let Some(s) = &mut self.shiviz {
            s.local(format_args!("complete snapshot {id}"));
        }
        info!(
            snapshot = %id,
            keys = part.state.kv.len(),
            in_flight = part.channel_messages(),
            duration_ms,
            "snapshot part complete"
        );
        let Some(store) = self.store.clone() else {
            self.stats.last_status = format!("{id} recorded (no --data-dir: not stored)");
            return;
        };
        let file = PartFile {
            cluster_id: self.cfg.cluster_id.clone(),
            mode: self.cfg.mode,
            recorded_unix_ms: active.map_or_else(unix_ms, |a| a.recorded_unix_ms),
            duration_ms,
            part: *part,
        };
        let (n, keep, tx) = (
            self.cfg.cluster_size(),
            self.cfg.snapshot_keep,
            self.loopback.clone(),
        );
        // Encoding and fsync take long for a big store: keep them off the loop.
        tokio::task::spawn_blocking(move || {
            let outcome = (|| -> Result<StoreOutcome, StoreError> {
                let (path, bytes) = store.write_part(&file)?;
                let manifest = store.try_assemble(id, n)?;
                let removed = if manifest.is_some() {
                    store.retain(keep)?
                } else {
                    Vec::new()
                };
                Ok(StoreOutcome {
                    path,
                    bytes,
                    manifest,
                    removed,
                })
            })()
            .map_err(|e| e.to_string());
            let _ = tx.blocking_send(Input::Stored { id, outcome });
        });
    }

    fn send_peer(&mut self, to: NodeId, frame: PeerFrame) {
        let delivered = match &self.writers[to] {
            Some(tx) => tx.send(frame).is_ok(),
            None => false,
        };
        if !delivered {
            self.stats.peer_dropped += 1;
        }
    }

    fn record(&mut self, e: Event) {
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

    fn delivered_total(&self) -> u64 {
        self.node.state().multicast.delivered().iter().sum()
    }

    /// Redis-style `INFO` text.
    fn info(&self) -> String {
        let mut s = String::new();
        let (sent, received) = self.node.channel_counts();
        let multicast = &self.node.state().multicast;
        let line = |s: &mut String, k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(s, "{k}:{v}\r\n");
        };
        s.push_str("# Server\r\n");
        line(&mut s, "gsmo_version", &env!("CARGO_PKG_VERSION"));
        line(&mut s, "process_id", &std::process::id());
        line(&mut s, "client_addr", &self.client_addr);
        line(&mut s, "peer_addr", &self.cfg.peer_listen);
        s.push_str("\r\n# Cluster\r\n");
        line(&mut s, "cluster_id", &self.cfg.cluster_id);
        line(&mut s, "node_id", &self.cfg.id);
        line(&mut s, "cluster_size", &self.cfg.cluster_size());
        line(&mut s, "mode", &self.cfg.mode);
        line(
            &mut s,
            "consistency",
            &format!(
                "writes_replied_after_local_delivery_in_{}_order,reads_local",
                self.cfg.mode
            ),
        );
        line(&mut s, "peers_connected", &self.peers_up());
        for j in self.peers() {
            let l = &self.links[j];
            line(
                &mut s,
                &format!("peer_n{j}"),
                &format!("addr={},out={},in={}", self.cfg.peers[j], l.out, l.inbound),
            );
        }
        s.push_str("\r\n# Multicast\r\n");
        line(&mut s, "holdback_depth", &self.node.holdback_depth());
        line(&mut s, "pending_writes", &self.node.pending_writes());
        line(&mut s, "multicasts_sent", &multicast.sent());
        line(&mut s, "messages_delivered", &self.delivered_total());
        let per_origin: Vec<String> = multicast
            .delivered()
            .iter()
            .enumerate()
            .map(|(i, d)| format!("n{i}={d}"))
            .collect();
        line(&mut s, "delivered_by_origin", &per_origin.join(","));
        line(&mut s, "peer_messages_sent", &sent.iter().sum::<u64>());
        line(
            &mut s,
            "peer_messages_received",
            &received.iter().sum::<u64>(),
        );
        line(&mut s, "peer_messages_dropped", &self.stats.peer_dropped);
        line(&mut s, "history_events", &self.history.len());
        line(
            &mut s,
            "history_truncated",
            &u8::from(self.history_truncated),
        );
        s.push_str(&self.cfg.admission.info());
        s.push_str("\r\n# Snapshots\r\n");
        line(&mut s, "snapshots_started", &self.stats.snapshots_started);
        line(&mut s, "snapshots_recorded", &self.stats.snapshots_recorded);
        line(
            &mut s,
            "snapshots_completed",
            &self.stats.snapshots_completed,
        );
        line(&mut s, "snapshots_aborted", &self.stats.snapshots_aborted);
        line(&mut s, "snapshots_stored", &self.stats.snapshots_stored);
        line(
            &mut s,
            "snapshots_assembled",
            &self.stats.snapshots_assembled,
        );
        line(
            &mut s,
            "snapshot_store_errors",
            &self.stats.snapshot_store_errors,
        );
        line(
            &mut s,
            "snapshots_restored",
            &u8::from(self.restored_from.is_some()),
        );
        line(
            &mut s,
            "restored_from",
            &self
                .restored_from
                .map_or_else(String::new, |id| id.to_string()),
        );
        line(&mut s, "epoch", &self.epoch.replace(' ', "_"));
        let active: Vec<String> = self
            .node
            .snapshots_in_progress()
            .iter()
            .map(SnapshotId::to_string)
            .collect();
        line(&mut s, "snapshots_in_progress", &active.join(","));
        line(
            &mut s,
            "last_snapshot",
            &self
                .stats
                .last_snapshot
                .map_or_else(String::new, |id| id.to_string()),
        );
        line(
            &mut s,
            "last_snapshot_duration_ms",
            &self.stats.last_duration_ms,
        );
        line(
            &mut s,
            "last_snapshot_state_bytes",
            &self.stats.last_state_bytes,
        );
        line(
            &mut s,
            "last_snapshot_channel_messages",
            &self.stats.last_channel_messages,
        );
        line(&mut s, "last_snapshot_status", &self.stats.last_status);
        line(
            &mut s,
            "snapshot_every_s",
            &self.cfg.snapshot_every.map_or(0.0, |d| d.as_secs_f64()),
        );
        line(
            &mut s,
            "snapshot_timeout_s",
            &self.cfg.snapshot_timeout.as_secs_f64(),
        );
        line(&mut s, "snapshot_keep", &self.cfg.snapshot_keep);
        line(
            &mut s,
            "data_dir",
            &self
                .cfg
                .data_dir
                .as_ref()
                .map_or_else(String::new, |d| d.display().to_string()),
        );
        s.push_str("\r\n# Faults\r\n");
        line(
            &mut s,
            "fault_delay_ms",
            &self
                .cfg
                .faults
                .delay
                .map_or_else(String::new, |d| d.to_string()),
        );
        line(
            &mut s,
            "fault_slow_ms",
            &self.cfg.faults.slow.map_or(0, |d| d.as_millis()),
        );
        line(&mut s, "fault_seed", &self.cfg.faults.seed);
        line(
            &mut s,
            "trace_file",
            &self
                .cfg
                .trace
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
        );
        line(
            &mut s,
            "trace_error",
            &self.stats.trace_error.as_deref().unwrap_or(""),
        );
        s.push_str("\r\n# Keyspace\r\n");
        line(&mut s, "keys", &self.node.kv().len());
        line(
            &mut s,
            "digest",
            &format!("{:016x}", history::digest(self.node.kv())),
        );
        s
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `n0->n1` or `n1->n0` from this node's point of view.
fn arrow(me: NodeId, peer: NodeId, dir: Direction) -> String {
    match dir {
        Direction::Out => format!("n{me}->n{peer}"),
        Direction::In => format!("n{peer}->n{me}"),
    }
}

/// Prints a status line where the launcher and test harness look for it:
/// stdout, unless stdout carries the ShiViz log.
pub fn announce(format: LogFormat, line: &str) {
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
    }
}
