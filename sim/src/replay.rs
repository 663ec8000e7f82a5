//! `sim --replay FILE`: the real node's event loop driven along a model path.
//!
//! One real [`Runtime`] per replica, built over the path's starting [`Node`]
//! (its deliberate bugs included: they are knobs of the spec). Connections
//! come up through the runtime's own link events ([`LinkEvent::OutUp`] with a
//! writer queue we read, [`LinkEvent::InHello`]); then each step's input goes
//! in through [`Runtime::handle`], the code a real connection feeds: a client
//! request, a frame the real sender put on its queue (the path only says
//! which one arrives next), a SNAPSHOT command, a connection breaking or
//! coming up (the runtime's `InDown`/`InHello`/`OutDown`/`OutUp`; frames on a
//! broken connection are lost, as the model loses them). Ticks are not
//! driven: the kv model runs without time. What the runtime does is
//! captured where it leaves the loop: frames in the writer queues, replies on
//! the clients' channels, sends and deliveries in `GSMO.HISTORY`; and
//! compared with the model's outputs. At the end the real nodes' histories and
//! stores are judged by the spec's predicates, and every snapshot whose parts
//! all reached the real disks (a temporary data dir per node) is judged as
//! the kv model judges its parts (consistent cut, restores).
//!
//! The runtime stores a part off the loop and hears back on its loopback
//! queue; the model feeds that `Stored` as a step of its own right after the
//! step that completed the part, so the replay waits for the disk there and
//! compares both steps together.

use gsmo_node::config::NodeConfig;
use gsmo_node::event::{ClientRequest, Input, LinkEvent, Response};
use gsmo_node::frame::PeerFrame;
use gsmo_node::history;
use gsmo_node::runtime::{Boot, Runtime};
use gsmo_node::snapshot::format::read_part;
use gsmo_node::snapshot::store::SnapshotStore;
use gsmo_spec::kv::Reply;
use gsmo_spec::node::{Input as SpecInput, LinkFrame, Output, RequestId};
use gsmo_spec::path::{SpecPath, MAGIC};
use gsmo_spec::properties::{
    all_delivered, causal_order, convergence, integrity, total_order, Event, Violation,
};
use gsmo_spec::snapshot::{Envelope, PartSummary};
use gsmo_spec::NodeId;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot};

/// Reads a path `check kv --save-path` wrote.
pub fn load(file: &std::path::Path) -> Result<SpecPath, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| format!("{} is not a saved gsmo path", file.display()))?;
    let (path, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(path)
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Model steps driven (those folded into the step before included).
    pub steps: usize,
    /// The first step where the real code did something else, if any.
    pub mismatch: Option<String>,
    /// The properties the real nodes' histories and stores violate.
    pub violations: Vec<Violation>,
}

impl Replayed {
    pub fn violates(&self, property: &str) -> bool {
        self.violations.iter().any(|v| v.property == property)
    }
}

/// One real replica and the ends of its connections and clients.
struct Real {
    rt: Runtime,
    /// Writer queue per peer (this node's own slot unused).
    queues: Vec<Option<mpsc::Receiver<PeerFrame>>>,
    /// The current inbound / outgoing connection's generation per peer.
    in_gen: Vec<u64>,
    out_gen: Vec<u64>,
    /// Dropping these would close the inbound connections.
    _stops: Vec<oneshot::Receiver<()>>,
    /// The model's request id of each unanswered client request.
    waiting: Vec<(RequestId, oneshot::Receiver<Response>)>,
    /// History events already compared.
    seen: usize,
    /// Where the runtime reports parts stored off the loop.
    loopback: mpsc::Receiver<Input>,
    store: SnapshotStore,
}

impl Real {
    fn ask(&mut self, req: ClientRequest) -> Response {
        let (tx, mut rx) = oneshot::channel();
        self.rt.handle(Input::Client { req, reply: tx });
        rx.try_recv().expect("the loop answers this at once")
    }

    fn history(&mut self) -> Vec<Event> {
        match self.ask(ClientRequest::History) {
            Response::Array(lines) => lines
                .iter()
                .map(|l| history::parse_event(&String::from_utf8_lossy(l)).expect("history parses"))
                .collect(),
            r => panic!("GSMO.HISTORY answered {r:?}"),
        }
    }

    fn dump(&mut self) -> Vec<Vec<u8>> {
        match self.ask(ClientRequest::Dump) {
            Response::Array(a) => a,
            r => panic!("DUMP answered {r:?}"),
        }
    }
}

/// A frame as the protocol sees it: a part's summary is what the disk
/// reported (sizes, checksums), which the model's disk does not invent.
fn normal(frame: &LinkFrame) -> LinkFrame {
    let mut f = frame.clone();
    if let LinkFrame::Data { body, .. } = &mut f {
        match body {
            Envelope::Stored { part, .. } => *part = summary(part),
            Envelope::Committed { parts, .. } => {
                for p in parts.iter_mut() {
                    *p = summary(p);
                }
            }
            _ => {}
        }
    }
    f
}

fn summary(p: &PartSummary) -> PartSummary {
    PartSummary {
        node: p.node,
        ..PartSummary::default()
    }
}

/// Sets up one real runtime per replica of `path`, connected both ways,
/// each with a data dir under `dir`.
fn start(path: &SpecPath, dir: &std::path::Path) -> Vec<Real> {
    let n = path.nodes.len();
    let peers: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", 7100 + i)).collect();
    (0..n)
        .map(|i| {
            let node = path.start(i);
            let cfg = NodeConfig::new(i, peers.clone(), node.mode()).expect("a valid cluster");
            let boot = Boot {
                node,
                outputs: Vec::new(),
                epoch: "replay".into(),
                restored_from: None,
                trace_start: None,
            };
            let (loop_tx, loop_rx) = mpsc::channel(16);
            let data = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&data).expect("a temporary data dir");
            let store = SnapshotStore::open(&data).expect("a snapshot store");
            let rt = Runtime::new(
                cfg,
                boot,
                None,
                "replay".into(),
                Some(store.clone()),
                None,
                loop_tx,
            );
            let mut real = Real {
                rt,
                queues: (0..n).map(|_| None).collect(),
                in_gen: vec![0; n],
                out_gen: vec![1; n],
                _stops: Vec::new(),
                waiting: Vec::new(),
                seen: 0,
                loopback: loop_rx,
                store,
            };
            for j in (0..n).filter(|&j| j != i) {
                let (tx, rx) = mpsc::channel(1 << 16);
                real.rt.handle(Input::Link(LinkEvent::OutUp {
                    peer: j,
                    gen: 1,
                    delivered: 0,
                    queue: tx,
                }));
                real.queues[j] = Some(rx);
                let (answer, mut admitted) = oneshot::channel();
                real.rt
                    .handle(Input::Link(LinkEvent::InHello { peer: j, answer }));
                let a = admitted.try_recv().expect("the loop admits a member");
                real.in_gen[j] = a.gen;
                real._stops.push(a.stop);
            }
            real
        })
        .collect()
}

/// Drives the real runtimes along `path`, comparing step by step.
pub fn replay(path: &SpecPath) -> Replayed {
    // The runtime writes parts with spawn_blocking: it needs a tokio runtime.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let _entered = tokio.enter();
    let dir = tempfile::tempdir().expect("a temporary dir");
    let mut reals = start(path, dir.path());
    let n = reals.len();
    // Frames the real senders put on each directed channel, not yet delivered.
    let mut wires: HashMap<(NodeId, NodeId), VecDeque<LinkFrame>> = HashMap::new();
    // Channels whose receiver dropped the connection and whose sender has
    // not noticed yet: what the sender writes there is lost, as with TCP.
    let mut broken: BTreeSet<(NodeId, NodeId)> = BTreeSet::new();
    let mut out = Replayed::default();
    let mut k = 0;
    while k < path.steps.len() {
        let step = &path.steps[k];
        let i = step.node;
        // The steps the runtime takes by itself within this one: a part stored.
        let mut end = k + 1;
        while end < path.steps.len()
            && path.steps[end].node == i
            && matches!(path.steps[end].input, SpecInput::Stored { .. })
        {
            end += 1;
        }
        let expected: Vec<&Output> = path.steps[k..end].iter().flat_map(|s| &s.outputs).collect();
        let at = format!("step {k} (n{i} takes {})", describe(&step.input));
        let real = &mut reals[i];
        match &step.input {
            SpecInput::Client { req, cmd } => {
                let (tx, rx) = oneshot::channel();
                real.waiting.push((*req, rx));
                real.rt.handle(Input::Client {
                    req: ClientRequest::Kv(cmd.clone()),
                    reply: tx,
                });
            }
            SpecInput::StartSnapshot => {
                real.ask(ClientRequest::Snapshot);
            }
            SpecInput::Peer { from, frame } => {
                let wire = wires.entry((*from, i)).or_default();
                let Some(pos) = wire.iter().position(|f| normal(f) == normal(frame)) else {
                    out.mismatch = Some(format!(
                        "{at}: the path delivers {} to n{i}, which the real n{from} never sent \
                         (in flight: {})",
                        show_frame(frame),
                        wire.iter().map(show_frame).collect::<Vec<_>>().join(", ")
                    ));
                    return out;
                };
                let frame = wire.remove(pos).expect("found");
                let gen = real.in_gen[*from];
                real.rt.handle(Input::Peer {
                    from: *from,
                    gen,
                    frame: PeerFrame { clock: None, frame },
                });
            }
            // The connection from `peer` breaks (a Disconnect fault) ...
            SpecInput::LinkDown {
                peer,
                outgoing: false,
            } => {
                let gen = real.in_gen[*peer];
                real.rt.handle(Input::Link(LinkEvent::InDown {
                    peer: *peer,
                    gen,
                    reason: "replayed disconnect".into(),
                }));
                wires.remove(&(*peer, i));
                broken.insert((*peer, i));
            }
            // ... and a new one from it is accepted.
            SpecInput::InboundUp { peer } => {
                let (answer, mut admitted) = oneshot::channel();
                real.rt.handle(Input::Link(LinkEvent::InHello {
                    peer: *peer,
                    answer,
                }));
                let a = admitted.try_recv().expect("the loop admits a member");
                real.in_gen[*peer] = a.gen;
                real._stops.push(a.stop);
            }
            // The sender hears of it (the resume handshake): its old
            // connection is gone, with whatever it still held.
            SpecInput::LinkDown {
                peer,
                outgoing: true,
            } => {
                let gen = real.out_gen[*peer];
                real.rt.handle(Input::Link(LinkEvent::OutDown {
                    peer: *peer,
                    gen,
                    reason: "replayed disconnect".into(),
                }));
                let q = real.queues[*peer].as_mut().expect("connected");
                while q.try_recv().is_ok() {}
                wires.remove(&(i, *peer));
                broken.remove(&(i, *peer));
            }
            SpecInput::LinkUp { peer, delivered } => {
                let (tx, rx) = mpsc::channel(1 << 16);
                real.out_gen[*peer] += 1;
                real.rt.handle(Input::Link(LinkEvent::OutUp {
                    peer: *peer,
                    gen: real.out_gen[*peer],
                    delivered: *delivered,
                    queue: tx,
                }));
                real.queues[*peer] = Some(rx);
            }
            other => {
                out.mismatch = Some(format!(
                    "{at}: the replay does not drive {} yet",
                    describe(other)
                ));
                return out;
            }
        }
        // The parts the model stored in this step: wait for the real disk.
        for stored in &path.steps[k + 1..end] {
            let SpecInput::Stored { id, .. } = &stored.input else {
                unreachable!("folded steps are stores")
            };
            loop {
                let input = tokio
                    .block_on(async {
                        tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            real.loopback.recv(),
                        )
                        .await
                    })
                    .ok()
                    .flatten();
                match input {
                    Some(Input::Stored { id: got, result }) => {
                        let done = got == *id;
                        real.rt.handle(Input::Stored { id: got, result });
                        if done {
                            break;
                        }
                    }
                    Some(other) => real.rt.handle(other),
                    None => {
                        out.mismatch =
                            Some(format!("{at}: the real n{i} never stored its part of {id}"));
                        return out;
                    }
                }
            }
        }
        out.steps = end;
        // What the real runtime did, in the model's output vocabulary.
        let mut sent: BTreeMap<NodeId, Vec<LinkFrame>> = BTreeMap::new();
        for j in (0..n).filter(|&j| j != i) {
            let q = real.queues[j].as_mut().expect("connected");
            while let Ok(f) = q.try_recv() {
                sent.entry(j).or_default().push(f.frame.clone());
                if !broken.contains(&(i, j)) {
                    wires.entry((i, j)).or_default().push_back(f.frame);
                }
            }
        }
        let mut replies: BTreeSet<(RequestId, String)> = BTreeSet::new();
        real.waiting.retain_mut(|(req, rx)| match rx.try_recv() {
            Ok(r) => {
                replies.insert((*req, format!("{r:?}")));
                false
            }
            Err(_) => true,
        });
        let events = real.history();
        let new_events: Vec<Event> = events[real.seen..].to_vec();
        real.seen = events.len();
        // What the model's spec did.
        let mut want_sent: BTreeMap<NodeId, Vec<LinkFrame>> = BTreeMap::new();
        let mut want_replies = BTreeSet::new();
        let mut want_events = Vec::new();
        for o in expected {
            match o {
                Output::Send { to, frame } => want_sent.entry(*to).or_default().push(frame.clone()),
                Output::Reply { req, reply } => {
                    want_replies.insert((*req, format!("{:?}", reply_of(reply))));
                }
                Output::Multicast { id } => want_events.push(Event::Send(*id)),
                Output::Delivered { id, .. } => want_events.push(Event::Deliver(*id)),
                _ => {}
            }
        }
        let norm = |m: &BTreeMap<NodeId, Vec<LinkFrame>>| -> BTreeMap<NodeId, Vec<LinkFrame>> {
            m.iter()
                .map(|(j, fs)| (*j, fs.iter().map(normal).collect()))
                .collect()
        };
        if norm(&sent) != norm(&want_sent) {
            out.mismatch = Some(format!(
                "{at}: the real n{i} sent {}, the model {}",
                show_sent(&sent),
                show_sent(&want_sent)
            ));
        } else if replies != want_replies {
            out.mismatch = Some(format!(
                "{at}: the real n{i} replied {replies:?}, the model {want_replies:?}"
            ));
        } else if new_events != want_events {
            out.mismatch = Some(format!(
                "{at}: the real n{i} recorded {new_events:?}, the model {want_events:?}"
            ));
        }
        if out.mismatch.is_some() {
            return out;
        }
        k = end;
    }
    out.violations = judge(&mut reals, path.nodes[0].mode());
    out.violations.extend(judge_snapshots(&reals));
    out
}

/// Every snapshot whose parts are on every real disk, judged as the kv model
/// judges the parts its replicas complete.
fn judge_snapshots(reals: &[Real]) -> Vec<Violation> {
    let n = reals.len();
    let ids: BTreeSet<_> = reals
        .iter()
        .flat_map(|r| {
            std::fs::read_dir(r.store.root())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect::<Vec<gsmo_spec::snapshot::SnapshotId>>()
        })
        .collect();
    let mut v = Vec::new();
    for id in ids {
        let parts: Vec<_> = (0..n)
            .filter_map(|i| read_part(&reals[i].store.part_path(id, i)).ok())
            .map(|f| f.part)
            .collect();
        if parts.len() < n {
            continue;
        }
        v.extend(gsmo_model::kv::cut(&parts).err());
        v.extend(gsmo_model::kv::restores(&parts).err());
    }
    v
}

/// The reply a real client receives for the model's reply.
fn reply_of(r: &Reply) -> Response {
    Response::Kv(r.clone())
}

/// The spec's predicates over the real nodes' histories and stores.
fn judge(reals: &mut [Real], mode: gsmo_spec::multicast::Mode) -> Vec<Violation> {
    let logs: Vec<Vec<Event>> = reals.iter_mut().map(Real::history).collect();
    let mut v = Vec::new();
    v.extend(integrity(&logs).err());
    // A saved path ends where nothing more can happen: everything sent is in.
    v.extend(all_delivered(&logs).err());
    if mode.is_total() {
        v.extend(total_order(&logs).err());
    }
    if mode.is_causal() {
        v.extend(causal_order(&logs).err());
    }
    let stores: Vec<(BTreeSet<_>, Vec<Vec<u8>>)> = reals
        .iter_mut()
        .zip(&logs)
        .map(|(r, log)| {
            let delivered = log
                .iter()
                .filter_map(|e| match e {
                    Event::Deliver(m) => Some(*m),
                    Event::Send(_) => None,
                })
                .collect();
            (delivered, r.dump())
        })
        .collect();
    v.extend(convergence(&stores).err());
    if mode.is_total() {
        // The bank's money: every replica opened with 1 per account.
        for (i, (_, dump)) in stores.iter().enumerate() {
            let (mut total, mut accounts) = (0i64, 0i64);
            for kv in dump.chunks(2) {
                if kv[0].starts_with(b"acct:") {
                    accounts += 1;
                    total += String::from_utf8_lossy(&kv[1]).parse::<i64>().unwrap_or(0);
                }
            }
            if total != accounts {
                v.push(Violation {
                    property: "conservation",
                    detail: format!("n{i}'s {accounts} accounts hold {total}, not {accounts}"),
                });
                break;
            }
        }
    }
    v
}

fn describe(input: &SpecInput) -> String {
    match input {
        SpecInput::Client { req, cmd } => format!("client request {req}: {cmd:?}"),
        SpecInput::Peer { from, frame } => format!("{} from n{from}", show_frame(frame)),
        other => format!("{other:?}"),
    }
}

fn show_frame(f: &LinkFrame) -> String {
    match f {
        LinkFrame::Data { seq, body, .. } => {
            format!("frame {seq} ({})", gsmo_node::runtime::describe(body))
        }
        LinkFrame::Ack { ack } => format!("ack {ack}"),
    }
}

fn show_sent(m: &BTreeMap<NodeId, Vec<LinkFrame>>) -> String {
    if m.is_empty() {
        return "nothing".into();
    }
    m.iter()
        .map(|(j, fs)| {
            let fs: Vec<String> = fs.iter().map(show_frame).collect();
            format!("to n{j} [{}]", fs.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
