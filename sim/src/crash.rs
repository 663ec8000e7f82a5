//! A node crash (turmoil's `Sim::crash`: the host's tasks are dropped; its
//! peers' connections to it break, as after `kill -9`; see [`drive`]), and
//! what the spec promises the survivors.
//!
//! A crashed node stays down (its peers would refuse it restarted with empty
//! state: recovery is a whole-cluster restore from a snapshot), so a crash
//! run is judged on the survivors:
//! * every request to a survivor is answered within the write timeout plus
//!   [`SLACK`] ([`reply_bound`]), never hangs; reads are answered with a value;
//! * writes as the mode's [`Policy`] says: fifo and causal deliver locally and
//!   keep answering values, and so do total-sequencer survivors when node 0
//!   lives (every write reaches them from node 0, numbered, so none waits for
//!   the crashed node); where the crashed node is needed (total-isis, or node
//!   0 under total-sequencer) writes are refused with `CLUSTERDOWN` once it is
//!   unreachable, and those in flight answer `TIMEOUT`; after the crash a
//!   [`Probe`] checks this on every survivor;
//! * safety: integrity, the mode's orders and convergence on all histories
//!   (the crashed node's from its trace), trace conformance, and the clients'
//!   histories with `TIMEOUT` writes and those in flight at the crash taken as
//!   of unknown outcome; every snapshot ends at every survivor, committed or
//!   aborted, never both ([`crate::snapshots`]).
//!
//! Agreement among the survivors (the spec's `Mode::survivors_agree`) is
//! judged under total-sequencer when node 0 lives. Not judged otherwise, nor all
//! delivered: a write the crashed node sent to one survivor but not another
//! (fifo, causal), or whose agreed priority it sent to one only (total-isis),
//! is never relayed.

use crate::client::{to_reply, Redis};
use crate::net::Registry;
use crate::workload::{bounded, in_progress, salt, ErrorReply};
use crate::{Opts, Shared, CLIENT_PORT};
use gsmo_spec::kv::Reply;
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Limits;
use gsmo_spec::snapshot::SnapshotId;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::sleep;

/// Beyond the write timeout: the spec's tick (100 ms) and network latency.
pub const SLACK: Duration = Duration::from_secs(1);

/// Whether a run crashes a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CrashMode {
    Never,
    /// One seed in three crashes a node at a seed-chosen time, half of them
    /// just after starting a snapshot.
    Seeded,
    /// Always, early in the workload: start a snapshot and crash another
    /// node as soon as it reports recording it.
    MidSnapshot,
}

impl CrashMode {
    /// The `--crash` spelling.
    pub fn name(self) -> String {
        crate::value_name(self)
    }
}

/// A run's crash, drawn from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub node: usize,
    /// After the simulation starts (and not before the accounts are open).
    pub after: Duration,
    /// Start a snapshot at this node first, then wait `lag` before the crash,
    pub snapshot_at: Option<usize>,
    pub lag: Duration,
    /// or until the node to crash reports the snapshot in progress.
    pub until_recorded: bool,
}

/// The crash `o` asks for, if any. Its own random stream, so the other
/// faults of a seed are the same with or without it.
pub fn plan(o: &Opts) -> Option<Plan> {
    if !o.faults || o.nodes < 2 {
        return None;
    }
    let mut rng = salt(o, 0xc4a5);
    let (crash, mid) = match o.crash {
        CrashMode::Never => (false, false),
        CrashMode::Seeded => (rng.u8(0..3) == 0, rng.bool()),
        CrashMode::MidSnapshot => (true, true),
    };
    if !crash {
        return None;
    }
    let node = rng.usize(0..o.nodes);
    Some(match o.crash {
        // Early, so the workers still have most of their requests to make.
        CrashMode::MidSnapshot => Plan {
            node,
            after: Duration::from_millis(rng.u64(50..300)),
            snapshot_at: Some((node + 1 + rng.usize(0..o.nodes - 1)) % o.nodes),
            lag: Duration::ZERO,
            until_recorded: true,
        },
        _ => Plan {
            node,
            after: Duration::from_millis(rng.u64(0..1200)),
            snapshot_at: mid.then(|| rng.usize(0..o.nodes)),
            lag: Duration::from_millis(rng.u64(0..20)),
            until_recorded: false,
        },
    })
}

/// How long a survivor may take to answer any request.
pub fn reply_bound() -> Duration {
    Duration::from_millis(Limits::default().write_timeout_ms) + SLACK
}

/// Runs the simulation to its end, crashing the node the crasher asks for.
///
/// Dropping a host's runtime drops its tasks in an order that depends on
/// tokio's process-wide task ids, so the closes its sockets send would reach
/// the peers in an order that depends on earlier runs in the process. So the
/// crashed host is first cut off from every other host (`hosts`: all their
/// names), its closes are lost, and the peers' connections to it break in the
/// order they were opened ([`Registry::break_host`]): the same run for the
/// same seed, in any process. Its clients see nothing and give up after
/// [`reply_bound`], as after a power cut.
pub fn drive(
    sim: &mut turmoil::Sim<'_>,
    shared: &Rc<RefCell<Shared>>,
    registry: &Registry,
    hosts: &[String],
) -> turmoil::Result {
    loop {
        if sim.step()? {
            return Ok(());
        }
        let request = shared.borrow_mut().crash_request.take();
        if let Some(node) = request {
            let name = format!("n{node}");
            for other in hosts.iter().filter(|h| **h != name) {
                sim.partition(name.as_str(), other.as_str());
            }
            sim.crash(name.as_str());
            registry.break_host(sim.lookup(name.as_str()));
            let at = sim.elapsed().as_micros() as u64;
            shared.borrow_mut().crashed = Some((node, at));
        }
    }
}

/// The client that carries out the crash [`plan`] draws, if any, while the
/// workers run; it is done once the node is down.
pub async fn crasher(o: Opts, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    if let Some(p) = plan(&o) {
        sleep(p.after).await;
        inject(p, &shared).await?;
    }
    Ok(())
}

async fn inject(p: Plan, shared: &RefCell<Shared>) -> io::Result<()> {
    while !shared.borrow().opened {
        sleep(Duration::from_millis(5)).await;
    }
    if let Some(at) = p.snapshot_at {
        let mut r = Redis::connect(&format!("n{at}"), CLIENT_PORT).await?;
        r.text(&[b"SNAPSHOT"]).await?;
        sleep(p.lag).await;
    }
    if p.until_recorded {
        // Give up after 300 polls: the run then shows no snapshot cut short.
        let mut r = Redis::connect(&format!("n{}", p.node), CLIENT_PORT).await?;
        for _ in 0..300 {
            if !in_progress(&r.text(&[b"INFO", b"snapshots"]).await?).is_empty() {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
    }
    shared.borrow_mut().crash_request = Some(p.node);
    while shared.borrow().crashed.is_none() {
        sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// What a survivor promises a write once the crashed node is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Answered with a value (fifo, causal; total-sequencer, node 0 alive).
    Served,
    /// Refused with `CLUSTERDOWN` (in flight: `TIMEOUT`): the mode needs the crashed node.
    Refused,
}

pub fn policy(mode: Mode, nodes: usize, crashed: usize, at: usize) -> Policy {
    if mode.needs(at, nodes).contains(&crashed) {
        Policy::Refused
    } else {
        Policy::Served
    }
}

fn is_timeout(text: &str) -> bool {
    text.starts_with("TIMEOUT ")
}

fn is_clusterdown(text: &str) -> bool {
    text.starts_with("CLUSTERDOWN ")
}

/// Whether `policy` allows error `text` for a write.
fn allowed(policy: Policy, text: &str) -> bool {
    match policy {
        Policy::Served => false,
        Policy::Refused => is_timeout(text) || is_clusterdown(text),
    }
}

/// Error replies no crash explains: before the crash, on reads, or not what
/// the survivor's [`Policy`] allows. `crashed`: node and time.
pub fn unexplained(
    mode: Mode,
    nodes: usize,
    crashed: Option<(usize, u64)>,
    errors: &[ErrorReply],
) -> Vec<String> {
    errors
        .iter()
        .filter(|e| {
            let explained = crashed.is_some_and(|(down, at)| {
                e.write
                    && e.at_us >= at
                    && allowed(policy(mode, nodes, down, e.client % nodes), &e.text)
            });
            !explained
        })
        .map(|e| {
            format!(
                "unexpected reply: client {}: {}: {}",
                e.client, e.what, e.text
            )
        })
        .collect()
}

/// A survivor's answers to one write and one read, once the crashed node is
/// unreachable to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub node: usize,
    pub write: Reply,
    pub read: Reply,
}

/// The simulated time after which every survivor has found the crashed node
/// unreachable (the spec's tick included).
pub fn unreachable_by(crashed_at_us: u64) -> u64 {
    crashed_at_us + (Limits::default().unreachable_after_ms + 500) * 1000
}

/// `SET` then `GET` of a key only this probe writes.
pub async fn probe(r: &mut Redis, node: usize, shared: &RefCell<Shared>) -> io::Result<Probe> {
    let key = format!("probe:n{node}");
    let none = || io::Error::other(format!("n{node} crashed, yet it was not the one"));
    let set: [&[u8]; 3] = [b"SET", key.as_bytes(), b"1"];
    let write = to_reply(&bounded(r, &set, node, shared).await?.ok_or_else(none)?);
    let get: [&[u8]; 2] = [b"GET", key.as_bytes()];
    let read = to_reply(&bounded(r, &get, node, shared).await?.ok_or_else(none)?);
    Ok(Probe { node, write, read })
}

/// Judges the probes against the mode's [`Policy`].
pub fn judge_probes(mode: Mode, nodes: usize, crashed: usize, probes: &[Probe]) -> Vec<String> {
    let mut v = Vec::new();
    for p in probes {
        let policy = policy(mode, nodes, crashed, p.node);
        let write_ok = match (&p.write, policy) {
            (Reply::Ok, Policy::Served) => true,
            (Reply::Error(e), Policy::Refused) => is_clusterdown(e),
            _ => false,
        };
        if !write_ok {
            v.push(format!(
                "n{crashed} crashed: a write at n{} under {mode} should be {policy:?}, got {:?}",
                p.node, p.write
            ));
        }
        let read_ok = match &p.write {
            Reply::Ok => p.read == Reply::Bulk(Some(b"1".to_vec())),
            _ => matches!(p.read, Reply::Bulk(_)),
        };
        if !read_ok {
            v.push(format!(
                "n{crashed} crashed: a read at n{} after {:?} answered {:?}",
                p.node, p.write, p.read
            ));
        }
    }
    v
}

/// What a crash run showed, for the sweep's tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub node: usize,
    pub at_ms: u64,
    /// Snapshots the crashed node had recorded and not ended when it crashed.
    pub mid_snapshot: Vec<SnapshotId>,
    /// Per snapshot the crashed node was in: how each survivor ended it
    /// (`None`: it never heard of it).
    pub ends: Vec<(SnapshotId, Vec<Option<crate::snapshots::End>>)>,
    /// Requests survivors answered after the crash, and writes among them
    /// answered with a value.
    pub answered: u64,
    pub writes_served: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(client: usize, text: &str, at_us: u64, write: bool) -> ErrorReply {
        ErrorReply {
            client,
            what: "SET k0".into(),
            text: text.into(),
            at_us,
            write,
        }
    }

    #[test]
    fn each_mode_needs_whom_the_spec_says() {
        assert_eq!(policy(Mode::Fifo, 3, 1, 0), Policy::Served);
        assert_eq!(policy(Mode::Causal, 3, 0, 2), Policy::Served);
        assert_eq!(policy(Mode::TotalIsis, 3, 2, 0), Policy::Refused);
        assert_eq!(policy(Mode::TotalSequencer, 3, 0, 1), Policy::Refused);
        assert_eq!(policy(Mode::TotalSequencer, 3, 2, 1), Policy::Served);
        assert_eq!(policy(Mode::TotalSequencer, 3, 2, 0), Policy::Served);
        assert!(Mode::TotalSequencer.survivors_agree(2));
        assert!(!Mode::TotalSequencer.survivors_agree(0));
        assert!(!Mode::TotalIsis.survivors_agree(2));
        assert!(!Mode::Fifo.survivors_agree(1));
    }

    #[test]
    fn only_a_crash_the_mode_cannot_do_without_explains_refusals() {
        let down = "CLUSTERDOWN write refused: n2 unreachable";
        let late = "TIMEOUT write n1#3 not delivered in 5 s";
        // Clients 1 and 4 talk to n1.
        let errors = [err(1, down, 10, true), err(4, late, 10, true)];
        // No crash, or a crash after the replies: nothing explains them.
        assert_eq!(unexplained(Mode::TotalIsis, 3, None, &errors).len(), 2);
        assert_eq!(
            unexplained(Mode::TotalIsis, 3, Some((2, 11)), &errors).len(),
            2
        );
        // ISIS needs n2: both are what the survivors promise.
        assert!(unexplained(Mode::TotalIsis, 3, Some((2, 5)), &errors).is_empty());
        // fifo needs nobody: a survivor that refuses writes is caught.
        assert_eq!(unexplained(Mode::Fifo, 3, Some((2, 5)), &errors).len(), 2);
        // Sequencer with n2 down: n1 waits for nothing n2 holds, so it
        // neither refuses nor times out; nor does n0, which numbers.
        assert_eq!(
            unexplained(Mode::TotalSequencer, 3, Some((2, 5)), &errors).len(),
            2
        );
        let at_n0 = [err(0, late, 10, true)];
        assert_eq!(
            unexplained(Mode::TotalSequencer, 3, Some((2, 5)), &at_n0).len(),
            1
        );
        // Reads are never refused.
        let read = [err(0, down, 10, false)];
        assert_eq!(
            unexplained(Mode::TotalIsis, 3, Some((2, 5)), &read).len(),
            1
        );
    }

    #[test]
    fn a_survivor_that_ignores_the_crash_fails_its_probe() {
        let ok = |node| Probe {
            node,
            write: Reply::Ok,
            read: Reply::Bulk(Some(b"1".to_vec())),
        };
        let refused = |node| Probe {
            node,
            write: Reply::Error("CLUSTERDOWN write refused: n2 unreachable".into()),
            read: Reply::Bulk(None),
        };
        assert!(judge_probes(Mode::Causal, 3, 2, &[ok(0), ok(1)]).is_empty());
        assert!(judge_probes(Mode::TotalIsis, 3, 2, &[refused(0), refused(1)]).is_empty());
        // ISIS taking a write without n2, fifo refusing one: both caught.
        assert_eq!(judge_probes(Mode::TotalIsis, 3, 2, &[ok(0)]).len(), 1);
        assert_eq!(judge_probes(Mode::Fifo, 3, 2, &[refused(0)]).len(), 1);
        // A read that does not see the write it follows, or is refused.
        let mut stale = ok(1);
        stale.read = Reply::Bulk(None);
        assert_eq!(judge_probes(Mode::Fifo, 3, 2, &[stale]).len(), 1);
        let mut no_read = refused(1);
        no_read.read = Reply::Error("CLUSTERDOWN".into());
        assert_eq!(judge_probes(Mode::TotalIsis, 3, 2, &[no_read]).len(), 1);
    }
}
