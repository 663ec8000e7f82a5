//! One real replica under replay: its [`Runtime`], the ends of its
//! connections and clients, and its data dir; and the disk, which the
//! runtime uses off the loop (`spawn_blocking`).
//!
//! The replay's tokio runtime has one blocking thread, so disk tasks run one
//! at a time in the order the event loops spawned them, as the model's
//! runtime does them in order; [`settle`] waits for all of them after each
//! step, so what is on a disk never depends on thread timing.

use gsmo_node::config::NodeConfig;
use gsmo_node::event::{ClientRequest, Input, LinkEvent, Response};
use gsmo_node::frame::PeerFrame;
use gsmo_node::history;
use gsmo_node::runtime::{Boot, Runtime};
use gsmo_node::snapshot::store::SnapshotStore;
use gsmo_spec::node::{Input as SpecInput, Output, RequestId};
use gsmo_spec::path::SpecPath;
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::{PartSummary, SnapshotId};
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

/// One real replica and the ends of its connections and clients.
pub(super) struct Real {
    pub rt: Runtime,
    /// Writer queue per peer (this node's own slot unused).
    pub queues: Vec<Option<mpsc::Receiver<PeerFrame>>>,
    /// The current inbound / outgoing connection's generation per peer.
    pub in_gen: Vec<u64>,
    pub out_gen: Vec<u64>,
    /// Dropping these would close the inbound connections.
    pub stops: Vec<oneshot::Receiver<()>>,
    /// The model's request id of each unanswered client request.
    pub waiting: Vec<(RequestId, oneshot::Receiver<Vec<Response>>)>,
    /// History events already compared.
    pub seen: usize,
    /// Where the runtime reports parts stored off the loop.
    loopback: mpsc::Receiver<Input>,
    pub store: SnapshotStore,
    /// Store outcomes the disk reported that the path has not fed yet: the
    /// model stores a part as a step of its own, possibly much later.
    pub disk: BTreeMap<SnapshotId, Result<PartSummary, String>>,
    /// The process died: it takes no more steps and is not judged.
    pub crashed: bool,
    /// The snapshots this node started.
    pub started: Vec<SnapshotId>,
}

impl Real {
    fn ask(&mut self, req: ClientRequest) -> Response {
        let (tx, mut rx) = oneshot::channel();
        self.rt.handle(Input::Client {
            reqs: vec![req],
            reply: tx,
        });
        let mut answers = rx.try_recv().expect("the loop answers this at once");
        answers.pop().expect("one answer")
    }

    pub fn snapshot(&mut self) {
        match self.ask(ClientRequest::Snapshot) {
            Response::Bulk(id) => {
                let id = String::from_utf8_lossy(&id).parse().expect("a snapshot id");
                self.started.push(id);
            }
            // The spec's bound, as the path's own replica refused it.
            Response::Error(e) if e.starts_with(gsmo_spec::node::SNAPSHOT_REFUSED) => {}
            r => panic!("SNAPSHOT answered {r:?}"),
        }
    }

    pub fn history(&mut self) -> Vec<Event> {
        match self.ask(ClientRequest::History) {
            Response::Array(lines) => lines
                .iter()
                .map(|l| history::parse_event(&String::from_utf8_lossy(l)).expect("history parses"))
                .collect(),
            r => panic!("GSMO.HISTORY answered {r:?}"),
        }
    }

    pub fn dump(&mut self) -> Vec<Vec<u8>> {
        match self.ask(ClientRequest::Dump) {
            Response::Array(a) => a,
            r => panic!("DUMP answered {r:?}"),
        }
    }

    /// The value of INFO field `name`.
    pub fn info(&mut self, name: &str) -> String {
        let Response::Bulk(text) = self.ask(ClientRequest::Info(None)) else {
            panic!("INFO answers text");
        };
        crate::client::info_field(&String::from_utf8_lossy(&text), name)
            .unwrap_or_else(|| panic!("INFO has no {name}"))
            .to_string()
    }

    /// Brings up both connections with `peer` (the first, or again after a break).
    pub fn admit(&mut self, peer: usize) {
        let (answer, mut admitted) = oneshot::channel();
        self.rt
            .handle(Input::Link(LinkEvent::InHello { peer, answer }));
        let a = admitted.try_recv().expect("the loop admits a member");
        self.in_gen[peer] = a.gen;
        self.stops.push(a.stop);
    }

    pub fn connect(&mut self, peer: usize, delivered: u64) {
        let (tx, rx) = mpsc::channel(1 << 16);
        self.out_gen[peer] += 1;
        self.rt.handle(Input::Link(LinkEvent::OutUp {
            peer,
            gen: self.out_gen[peer],
            delivered,
            queue: tx,
        }));
        self.queues[peer] = Some(rx);
    }
}

/// Sets up one real runtime per replica of `path`, connected both ways,
/// each with a data dir under `dir`.
pub(super) fn start(path: &SpecPath, dir: &std::path::Path) -> Vec<Real> {
    let n = path.nodes.len();
    let peers: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", 7100 + i)).collect();
    (0..n)
        .map(|i| {
            let node = path.start(i);
            let mut cfg = NodeConfig::new(i, peers.clone(), node.mode()).expect("a valid cluster");
            // The replay reads the history, which only a node serving debug commands keeps.
            cfg.admission = std::sync::Arc::new(gsmo_node::admission::Admission {
                debug_commands: true,
                ..Default::default()
            });
            let boot = Boot {
                node,
                outputs: Vec::new(),
                epoch: "replay".into(),
                restored_from: None,
                trace_start: None,
            };
            let (loop_tx, loop_rx) = mpsc::channel(64);
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
                out_gen: vec![0; n],
                stops: Vec::new(),
                waiting: Vec::new(),
                seen: 0,
                loopback: loop_rx,
                store,
                disk: BTreeMap::new(),
                crashed: false,
                started: Vec::new(),
            };
            for j in (0..n).filter(|&j| j != i) {
                real.connect(j, 0);
                real.admit(j);
            }
            real
        })
        .collect()
}

/// The replay's tokio runtime: the event loops write parts with
/// `spawn_blocking`, on one thread so disk tasks keep their order.
pub(super) fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Waits for every disk task spawned so far (the one blocking thread runs
/// them in order, so a no-op queued behind them ends last), then collects
/// the outcomes the runtimes posted to their loopback queues.
pub(super) fn settle(tokio: &tokio::runtime::Runtime, reals: &mut [Real]) {
    tokio
        .block_on(tokio::task::spawn_blocking(|| ()))
        .expect("the disk thread runs");
    for real in reals {
        while let Ok(input) = real.loopback.try_recv() {
            match input {
                Input::Stored { id, result } => {
                    real.disk.insert(id, result);
                }
                other => real.rt.handle(other),
            }
        }
    }
}

/// The parts `real` completes in step `k` of `path` that the path's disk
/// then refuses: a file where the part's snapshot directory goes makes the
/// real write fail in the OS, so the runtime hears a real I/O error. The
/// caller removes the files once the write has failed ([`unblock`]).
pub(super) fn refuse_failing_stores(
    path: &SpecPath,
    k: usize,
    real: &Real,
) -> Result<Vec<SnapshotId>, String> {
    let i = path.steps[k].node;
    let mut blocked = Vec::new();
    for o in &path.steps[k].outputs {
        let Output::SnapshotComplete(part) = o else {
            continue;
        };
        let fails = path.steps[k + 1..].iter().any(|s| {
            s.node == i
                && matches!(&s.input, SpecInput::Stored { id, result: Err(_) } if *id == part.id)
        });
        if fails {
            let dir = real.store.dir(part.id);
            std::fs::write(&dir, b"the replay's failing disk\n")
                .map_err(|e| format!("cannot make {} refuse: {e}", dir.display()))?;
            blocked.push(part.id);
        }
    }
    Ok(blocked)
}

/// The disk works again after the refused writes of `blocked`.
pub(super) fn unblock(real: &Real, blocked: &[SnapshotId]) {
    for id in blocked {
        std::fs::remove_file(real.store.dir(*id)).expect("the blocking file is ours");
    }
}
