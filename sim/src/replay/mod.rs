//! `sim --replay FILE`: the real node's event loop driven along a model path
//! (`check kv|snapshot|abort --save-path`).
//!
//! One real [`Runtime`](gsmo_node::runtime::Runtime) per replica, built over
//! the path's starting [`Node`](gsmo_spec::node::Node) (its deliberate bugs
//! included: they are knobs of the spec). Connections come up through the
//! runtime's own link events; then each step's input goes in through
//! `Runtime::handle`, the code a real connection feeds: a client request, a
//! frame the real sender put on its queue (the path only says which one
//! arrives next), a SNAPSHOT command, a connection breaking or coming up (the
//! runtime's `InDown`/`InHello`/`OutDown`/`OutUp`; frames on a broken
//! connection are lost, as the model loses them), a tick at the model
//! replica's own time (`Runtime::tick_at`: each model replica has a clock of
//! its own, so the runtime's clock stays out), a part's store outcome (the
//! real disk's, made to fail where the path's disk does), and a crash (the
//! process takes no more steps; its peers' connection events are steps of
//! their own). What the runtime does is captured where it leaves the loop
//! and compared with the model's outputs (`compare.rs`). At the end the real
//! nodes are judged by the model's properties, on their histories, stores,
//! data dirs and INFO (`judge.rs`).

mod compare;
mod judge;
mod real;

use compare::{describe, normal, show_frame, Net};
use gsmo_node::event::{ClientRequest, Input, LinkEvent};
use gsmo_node::frame::PeerFrame;
use gsmo_spec::node::Input as SpecInput;
use gsmo_spec::path::{SpecPath, Step, MAGIC};
use gsmo_spec::properties::Violation;
use real::Real;
use tokio::sync::oneshot;

/// Reads a path `check ... --save-path` wrote.
pub fn load(file: &std::path::Path) -> Result<SpecPath, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        format!(
            "{} is not a saved gsmo path (or one of an older version)",
            file.display()
        )
    })?;
    let (path, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(path)
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Model steps driven.
    pub steps: usize,
    /// The first step where the real code did something else, if any.
    pub mismatch: Option<String>,
    /// The model's properties the real nodes violate.
    pub violations: Vec<Violation>,
}

impl Replayed {
    pub fn violates(&self, property: &str) -> bool {
        self.violations.iter().any(|v| v.property == property)
    }
}

/// Drives the real runtimes along `path`, comparing step by step.
pub fn replay(path: &SpecPath) -> Replayed {
    let tokio = real::tokio();
    let _entered = tokio.enter();
    let dir = tempfile::tempdir().expect("a temporary dir");
    let mut reals = real::start(path, dir.path());
    let mut net = Net::new(reals.len());
    let mut out = Replayed::default();
    for (k, step) in path.steps.iter().enumerate() {
        crash(path, k, &mut reals, &mut net);
        let i = step.node;
        let at = format!("step {k} (n{i} takes {})", describe(&step.input));
        let blocked = match real::refuse_failing_stores(path, k, &reals[i]) {
            Ok(b) => b,
            Err(e) => {
                out.mismatch = Some(format!("{at}: {e}"));
                return out;
            }
        };
        if let Err(e) = drive(step, &mut reals[i], &mut net) {
            out.mismatch = Some(format!("{at}: {e}"));
            return out;
        }
        real::settle(&tokio, &mut reals);
        real::unblock(&reals[i], &blocked);
        out.mismatch = compare::step(&at, i, &mut reals[i], &mut net, &step.outputs);
        if out.mismatch.is_some() {
            return out;
        }
        out.steps = k + 1;
    }
    crash(path, path.steps.len(), &mut reals, &mut net);
    out.violations = judge::judge(path, &mut reals, &net.ledger);
    out
}

/// The crashes right before step `k`.
fn crash(path: &SpecPath, k: usize, reals: &mut [Real], net: &mut Net) {
    for c in path.crashes.iter().filter(|c| c.before == k) {
        reals[c.node].crashed = true;
        net.crash(c.node);
    }
}

/// Feeds one step's input to the real node `real`.
fn drive(step: &Step, real: &mut Real, net: &mut Net) -> Result<(), String> {
    let i = step.node;
    if real.crashed {
        return Err(format!("the path drives n{i}, which crashed"));
    }
    match &step.input {
        SpecInput::Client { req, cmd } => {
            let (tx, rx) = oneshot::channel();
            real.waiting.push((*req, rx));
            real.rt.handle(Input::Client {
                reqs: vec![ClientRequest::Kv(cmd.clone())],
                reply: tx,
            });
        }
        SpecInput::StartSnapshot => real.snapshot(),
        SpecInput::Peer { from, frame } => {
            let wire = net.wires.entry((*from, i)).or_default();
            let Some(pos) = wire.iter().position(|f| normal(f) == normal(frame)) else {
                return Err(format!(
                    "the path delivers {} to n{i}, which the real n{from} never sent \
                     (in flight: {})",
                    show_frame(frame),
                    wire.iter().map(show_frame).collect::<Vec<_>>().join(", ")
                ));
            };
            let frame = wire.remove(pos).expect("found");
            let gen = real.in_gen[*from];
            real.rt.handle(Input::Peer {
                from: *from,
                gen,
                frame: PeerFrame { clock: None, frame },
            });
        }
        // The connection from `peer` breaks (a disconnect, or the peer died) ...
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
            net.wires.remove(&(*peer, i));
            net.broken.insert((*peer, i));
        }
        // ... and a new one from it is accepted.
        SpecInput::InboundUp { peer } => real.admit(*peer),
        // The sender hears of it (the resume handshake, or its peer died):
        // its old connection is gone, with whatever it still held.
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
            net.wires.remove(&(i, *peer));
            net.broken.remove(&(i, *peer));
        }
        SpecInput::LinkUp { peer, delivered } => real.connect(*peer, *delivered),
        SpecInput::Tick { now } => real.rt.tick_at(*now),
        // The disk finished the part (written or refused by the time the
        // step that completed it settled): the runtime hears of it now.
        SpecInput::Stored { id, result } => {
            let Some(got) = real.disk.remove(id) else {
                return Err(format!("the real n{i} wrote no part of {id}"));
            };
            if got.is_ok() != result.is_ok() {
                return Err(format!(
                    "the real disk answered {got:?} for {id}, the model's {result:?}"
                ));
            }
            real.rt.handle(Input::Stored {
                id: *id,
                result: got,
            });
        }
        other => return Err(format!("the replay does not drive {} yet", describe(other))),
    }
    Ok(())
}
