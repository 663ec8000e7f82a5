//! The Chandy-Lamport snapshot (Chandy & Lamport 1985, "Distributed Snapshots:
//! Determining Global States of Distributed Systems") on the bank of the
//! Dr. TLA+ lecture, run on the product itself: every account is a replica of
//! the spec's whole [`Node`](gsmo_spec::node::Node) (the one the tokio node
//! runs), the accounts are keys `acct:i` of its replicated K/V store, and money
//! moves by the store's own `TRANSFER acct:i acct:i+1 amount*(i+1)`, multicast
//! in a total order. `nodes` accounts start with `balance` each and make
//! `transfers` transfers; any replica may start a snapshot at any moment (at most
//! `snapshots` in all, so with two they overlap). A transfer short of funds is
//! refused, so the defaults reach both sides of the funds check.
//!
//! The wire is the ground truth: a ghost [`Ledger`], written by stateright's
//! `record_msg_out` hook, keeps every message put on every channel. For every
//! snapshot complete at all replicas, always:
//! * **consistent cut**: nobody recorded a receipt whose send is after the cut
//!   (channel counts and multicast delivery vectors);
//! * **exact channel state**: each channel holds exactly the messages in flight
//!   at the cut, checked against the ledger;
//! * **conservation**, on the real `TRANSFER`: every replica's accounts hold the
//!   total at every moment, and so does every recorded part;
//! * **snapshot restores**: restored and run to quiescence, the snapshot gives
//!   every replica one store holding exactly the writes sent before the cut.
//!
//! And eventually **termination**: every transfer answered, every snapshot
//! started complete everywhere.
//!
//! Broken variants: `no-channel-recording` loses the transfers in flight;
//! `shared-channel-closing` lets one snapshot's marker close a channel for all
//! snapshots in progress; `reordering` channels let a marker overtake a message
//! and the cut break; `lossy` channels lose markers, so snapshots never finish;
//! `debit-only` is a `TRANSFER` that, short of funds, debits and credits nobody.
//!
//! No symmetry reduction, not even by rotating the ring of accounts: the total
//! orders break ties by node id ([`crate::symmetry`] says why that rules it
//! out). What makes a step cheaper is [`crate::digest`]'s; what saves states
//! is letting a part go once its snapshot commits (judged by then: see
//! [`crate::replica::ReplicaState::parts`]) and partial-order reduction
//! ([`SnapshotCfg::into_reduced_model`], `--por`).

use crate::adapter::Channels;
use crate::digest::Sealed;
use crate::faults::{Faults, Wire as KvWire};
use crate::kv::{
    balances, complete_snapshots, conserved, conserved_now, cut, opening, overdraft_tried,
    parts_conserved, restores, sealed_snapshots, snapshot_holds, terminated, terminated_now,
    transfer_to_next, Bugs, Replica, ReplicasState,
};
use crate::por::Persistent;
use crate::verdict::Explained;
use ahash::AHashMap;
use gsmo_spec::batch::Batch;
use gsmo_spec::kv::Op;
use gsmo_spec::link::{Frame, LinkBug};
use gsmo_spec::multicast::{Mode, Wire};
use gsmo_spec::node::Part;
use gsmo_spec::properties::{
    channel_contents_match, exact_channel_state, snapshots_bounded, Overbooked, Violation,
};
use gsmo_spec::snapshot::Envelope;
use stateright::actor::{ActorModel, Envelope as Sent};
use stateright::{Expectation, Model};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The snapshot model's configuration.
#[derive(Clone, Debug)]
pub struct SnapshotCfg {
    /// The total order the replicas run: money needs one.
    pub mode: Mode,
    pub nodes: usize,
    /// Transfers each account makes.
    pub transfers: u64,
    /// Each account's opening balance.
    pub balance: u64,
    /// Account `i` moves `amount * (i + 1)` a transfer, so that with equal
    /// balances some transfers are covered and some overdraw.
    pub amount: u64,
    /// Snapshots started in all, by any replicas.
    pub snapshots: usize,
    /// Each replica's bound on snapshots in progress
    /// ([`gsmo_spec::node::Limits::max_snapshots`]); when set, **snapshots
    /// bounded** is judged, and a start beyond it is refused. `None`: the
    /// spec's default, which the model's few snapshots never reach.
    pub max_snapshots: Option<u64>,
    pub channels: Channels,
    pub broken: Option<SnapshotBug>,
}

/// The snapshot model's deliberately broken variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapshotBug {
    /// The recorder records local states but no channel contents: transfers in
    /// flight at the cut vanish. Caught by "exact channel state".
    NoChannelRecording,
    /// Concurrent snapshots share channel state: a marker of one id closes its
    /// channel for every snapshot in progress, which stops recording too early.
    /// Caught by "exact channel state" (needs two snapshots).
    SharedChannelClosing,
    /// A `TRANSFER` short of funds debits its source and credits nobody.
    /// Caught by "conservation".
    DebitOnly,
    /// Channels that reorder: a marker overtakes a message. Caught by
    /// "consistent cut".
    Reordering,
    /// Channels that lose messages, markers included. Caught by "termination".
    Lossy,
    /// Replicas that start snapshots however many are in progress there.
    /// Caught by "snapshots bounded" (needs --max-snapshots below --snapshots).
    UnboundedSnapshots,
}

impl SnapshotBug {
    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        match self {
            SnapshotBug::NoChannelRecording | SnapshotBug::SharedChannelClosing => {
                "exact channel state"
            }
            SnapshotBug::DebitOnly => "conservation",
            SnapshotBug::Reordering => "consistent cut",
            SnapshotBug::Lossy => "termination",
            SnapshotBug::UnboundedSnapshots => "snapshots bounded",
        }
    }
}

impl Default for SnapshotCfg {
    /// The smallest bank that shows every variant: two accounts of 1; account 0
    /// transfers 1 (covered), account 1 transfers 2 (overdraws unless account
    /// 0's arrived first); two snapshots, so that they can overlap.
    fn default() -> Self {
        SnapshotCfg {
            mode: Mode::TotalSequencer,
            nodes: 2,
            transfers: 1,
            balance: 1,
            amount: 1,
            snapshots: 2,
            max_snapshots: None,
            channels: Channels::Ordered,
            broken: None,
        }
    }
}

impl SnapshotCfg {
    /// The channels actually used: a network variant overrides `channels`.
    pub fn effective_channels(&self) -> Channels {
        match self.broken {
            Some(SnapshotBug::Reordering) => Channels::Unordered,
            Some(SnapshotBug::Lossy) => Channels::Lossy,
            _ => self.channels,
        }
    }

    /// Refuses configurations the model cannot run.
    pub fn validate(&self) -> Result<(), String> {
        if !self.mode.is_total() {
            return Err(format!(
                "the bank needs a total order: under {} concurrent transfers are \
                 last-writer-wins and money is not conserved (use total-sequencer or total-isis)",
                self.mode
            ));
        }
        if self.nodes < 2 {
            return Err("a bank needs at least two accounts".into());
        }
        if self.amount == 0 {
            return Err("a transfer moves a positive amount".into());
        }
        if self.effective_channels() == Channels::Duplicating {
            return Err("the bank runs on ordered, unordered or lossy channels".into());
        }
        if self.broken == Some(SnapshotBug::SharedChannelClosing) && self.snapshots < 2 {
            return Err("shared-channel-closing needs --snapshots 2 or more".into());
        }
        if self.max_snapshots == Some(0) {
            return Err("--max-snapshots must be at least 1".into());
        }
        let reached = self
            .max_snapshots
            .is_some_and(|m| m < self.snapshots as u64);
        if self.broken == Some(SnapshotBug::UnboundedSnapshots) && !reached {
            return Err("unbounded-snapshots needs --max-snapshots below --snapshots".into());
        }
        self.faults()
            .check_ack_budget(self.nodes * self.transfers as usize, self.snapshots)
    }

    /// The money in the bank, wherever it is.
    pub fn total(&self) -> i64 {
        (self.nodes as u64 * self.balance) as i64
    }

    /// No faults but the channels' own; the reordering variant runs without
    /// the link layer, which would otherwise put the frames back in order.
    fn faults(&self) -> Faults {
        Faults {
            link: match self.broken {
                Some(SnapshotBug::Reordering) => LinkBug::Bypass,
                _ => LinkBug::None,
            },
            ..Faults::default()
        }
    }

    fn script(&self) -> Vec<Vec<Op>> {
        (0..self.nodes)
            .map(|i| {
                (0..self.transfers)
                    .map(|_| transfer_to_next(i, self.nodes, self.amount * (i as u64 + 1)))
                    .collect()
            })
            .collect()
    }

    /// Refuses what partial-order reduction does not cover ([`crate::por`]):
    /// channels that reorder or lose frames.
    pub fn validate_reduced(&self) -> Result<(), String> {
        self.validate()?;
        if self.effective_channels() != Channels::Ordered {
            return Err(format!(
                "--por needs ordered channels: on {} channels a frame sent later may \
                 overtake one in flight, or be lost, so no replica's steps are persistent",
                self.effective_channels()
            ));
        }
        Ok(())
    }

    /// The bank under partial-order reduction: the same verdicts from fewer
    /// states ([`crate::por`]).
    pub fn into_reduced_model(self) -> ReducedSnapshotModel {
        if let Err(e) = self.validate_reduced() {
            panic!("{e}");
        }
        let snapshots = self.snapshots;
        Persistent::new(self.into_model(), snapshots).after_each_step(let_judged_go)
    }

    pub fn into_model(self) -> SnapshotModel {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let channels = self.effective_channels();
        let replica = Replica {
            mode: self.mode,
            script: Arc::new(self.script()),
            opening: opening(self.nodes, self.balance),
            bugs: Bugs {
                no_channel_recording: self.broken == Some(SnapshotBug::NoChannelRecording),
                shared_channel_closing: self.broken == Some(SnapshotBug::SharedChannelClosing),
                debit_only: self.broken == Some(SnapshotBug::DebitOnly),
                unbounded_snapshots: self.broken == Some(SnapshotBug::UnboundedSnapshots),
                ..Bugs::default()
            },
            snapshots: self.snapshots > 0,
            batch: 1,
            max_snapshots: self.max_snapshots,
            strict_fifo: channels == Channels::Ordered,
            faults: self.faults(),
            log_judged: false,
        };
        let mut model = ActorModel::new(self.clone(), Ledger::new(self.nodes))
            .actors(vec![replica; self.nodes])
            .init_network(channels.network())
            .lossy_network(channels.lossy())
            .property(Expectation::Always, "consistent cut", |m, s| {
                every_snapshot("consistent cut", &m.cfg, s)
            })
            .property(Expectation::Always, "exact channel state", |m, s| {
                every_snapshot("exact channel state", &m.cfg, s)
            })
            // Every replica's accounts now, and every snapshot's parts.
            .property(Expectation::Always, "conservation", |m, s| {
                s.history.judged.holds("conservation") && conserved_now(m.cfg.total(), s)
            })
            .property(Expectation::Always, "snapshot restores", |m, s| {
                every_snapshot("snapshot restores", &m.cfg, s)
            })
            // Sound: the model is finite and acyclic. Every step issues a transfer
            // (at most `transfers` per replica), starts a snapshot (at most
            // `snapshots`, by the boundary), or consumes one of the finitely many
            // messages sent, so no path revisits a state. Paths end only when
            // nothing is left to do, and the condition is stable there, so
            // judging it where paths end is exact.
            .property(Expectation::Eventually, "termination", |_, s| {
                terminated_now(s)
            })
            // Non-vacuity: the funds check is reached on its refusing side.
            .property(Expectation::Sometimes, "overdraft refused", |_, s| {
                overdraft_tried(s)
            });
        if self.snapshots > 0 {
            // Non-vacuity: some recording holds a transfer in flight. Read
            // while it records, not in a complete snapshot: under `--por` no
            // kept state holds a whole one (`let_judged_go`), and a ghost flag
            // for it would keep runs apart (a quarter more states on two
            // accounts). (With `--snapshots 0` the bank is checked without
            // any, as kv does.)
            model = model.property(
                Expectation::Sometimes,
                "transfer in flight recorded",
                |_, s| {
                    s.actor_states
                        .iter()
                        .any(|a| a.node.recorded_in_flight().any(is_transfer))
                },
            );
        }
        if let Some(max) = self.max_snapshots {
            model = model.property(Expectation::Always, "snapshots bounded", |m, s| {
                overbooked(&m.cfg, s).is_empty()
            });
            if max < self.snapshots as u64 {
                // Non-vacuity: the bound is reached and a start refused.
                model = model.property(Expectation::Sometimes, "snapshot refused", |_, s| {
                    s.actor_states.iter().any(|a| a.snapshots_refused > 0)
                });
            }
        }
        if self.snapshots >= 2 {
            // Non-vacuity: two snapshots really are in progress at one replica at once.
            model = model.property(Expectation::Sometimes, "snapshots overlap", |_, s| {
                s.actor_states
                    .iter()
                    .any(|a| a.node.snapshots_in_progress().len() >= 2)
            });
        }
        model
            .record_msg_out(Ledger::record_out)
            .within_boundary(|cfg, s| {
                crate::kv::snapshots_started(&s.actor_states) <= cfg.snapshots
            })
    }
}

/// The replicas over `cfg`'s bound on snapshots in progress.
fn overbooked<H>(cfg: &SnapshotCfg, s: &ReplicasState<H>) -> Vec<Overbooked> {
    let Some(limit) = cfg.max_snapshots else {
        return Vec::new();
    };
    s.actor_states
        .iter()
        .enumerate()
        .map(|(node, a)| Overbooked {
            node,
            own: a.node.own_snapshots_in_progress(),
            limit,
        })
        .filter(|o| o.own as u64 > limit)
        .collect()
}

/// Every message put on one channel, in order.
pub type Channel = Sealed<Vec<Wire<Batch>>>;

/// Every channel, `[i][j]` for channel `i -> j`.
pub type AllSent = Sealed<Vec<Vec<Channel>>>;

/// Ghost history: every message put on every channel, in order. Every step
/// copies the history, and a send extends one channel: so each channel is
/// shared between states until a send copies it, and hashed once, by that send.
/// The channels are sealed together too, so that copying a state copies one
/// reference, not one per channel; a step that puts no transfer on a channel
/// leaves it alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ledger {
    /// `sent[i][j]`: every message `i` put on channel `i -> j`, in order.
    pub sent: AllSent,
    /// What the snapshots judged and let go found ([`let_judged_go`]).
    pub judged: Judged,
}

/// The verdicts on the snapshots judged at the step that completed them and
/// let go: empty, and the same in every state, while every one holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Judged {
    /// Each property a judged snapshot failed, with the first such failure.
    pub failed: BTreeMap<&'static str, Violation>,
}

impl Judged {
    /// Whether every judged snapshot passed `property`.
    pub fn holds(&self, property: &str) -> bool {
        !self.failed.contains_key(property)
    }
}

impl Ledger {
    fn new(n: usize) -> Self {
        Ledger {
            sent: Sealed::new(vec![vec![Sealed::new(Vec::new()); n]; n]),
            judged: Judged::default(),
        }
    }

    /// The channels' contents, copied: the shape the spec's predicate takes.
    pub fn channels(&self) -> Vec<Vec<Vec<Wire<Batch>>>> {
        self.sent
            .iter()
            .map(|row| row.iter().map(|c| c.to_vec()).collect())
            .collect()
    }

    fn record_out(_: &SnapshotCfg, h: &Ledger, env: Sent<&KvWire>) -> Option<Ledger> {
        let KvWire::Frame { frame, .. } = env.msg else {
            return None;
        };
        let Frame::Data {
            body: Envelope::Msg { body, .. },
            ..
        } = &**frame
        else {
            return None;
        };
        let (i, j) = (usize::from(env.src), usize::from(env.dst));
        let key = (h.sent.digest(), i, j, frame.digest());
        let sent = SENDS.with_borrow_mut(|known| {
            let send = || {
                let mut after = h.clone();
                after.edit(i, j, |msgs| msgs.push(body.clone()));
                after.sent
            };
            crate::digest::kept(known, SENDS_KEPT, key, send).0
        });
        Some(Ledger {
            sent,
            judged: h.judged.clone(),
        })
    }

    /// Changes channel `i -> j`'s messages, resealing it and the ledger.
    fn edit(&mut self, i: usize, j: usize, change: impl FnOnce(&mut Vec<Wire<Batch>>)) {
        let mut sent = self.sent.clone().into_inner();
        let mut msgs = sent[i][j].clone().into_inner();
        change(&mut msgs);
        sent[i][j] = Sealed::new(msgs);
        self.sent = Sealed::new(sent);
    }
}

/// Sends [`SENDS`] keeps per thread at most.
const SENDS_KEPT: usize = 1 << 14;

thread_local! {
    /// The ledger's channels after a send, by the digests of the channels
    /// before and of the frame sent, and the channel: the same replica sends
    /// the same frame onto the same ledger in many states of the whole, and
    /// each send copied and hashed the channel again (4% of the 3-account
    /// bank's search). Digests of whole values, so exact for every caller;
    /// emptied at [`SENDS_KEPT`].
    static SENDS: RefCell<AHashMap<(u64, usize, usize, u64), AllSent>> = RefCell::default();
}

pub type SnapshotModel = ActorModel<Replica, SnapshotCfg, Ledger>;
pub type ReducedSnapshotModel = Persistent<SnapshotCfg, Ledger>;
type State = ReplicasState<Ledger>;

/// Positions against the recorder's own counts, then contents against the ledger.
fn exact_channels(s: &State, parts: &[Part]) -> Result<(), Violation> {
    exact_channel_state(parts)
        .and_then(|()| channel_contents_match(parts, &s.history.channels()))
        .map_err(|v| Violation {
            detail: format!("snapshot {}: {}", parts[0].id, v.detail),
            ..v
        })
}

/// [`exact_channels`] judged once per snapshot and ledger slices it reads: the
/// messages between each channel's receiver's and sender's record points.
fn exact_channels_now(s: &State, parts: &[Sealed<Part>]) -> bool {
    let mut read = Vec::new();
    for (i, pi) in parts.iter().enumerate() {
        for (j, pj) in parts.iter().enumerate().filter(|(j, _)| *j != i) {
            let (lo, hi) = (pj.received[i] as usize, pi.sent[j] as usize);
            read.push(s.history.sent[i][j].get(lo..hi));
        }
    }
    snapshot_holds("exact channels", parts, read, |p| {
        exact_channels(s, p).is_ok()
    })
}

/// The properties of a complete snapshot, as [`verdict`] judges them.
const SNAPSHOT_PROPERTIES: [&str; 4] = [
    "consistent cut",
    "exact channel state",
    "conservation",
    "snapshot restores",
];

/// The bank's verdict on `property` for one complete snapshot: what the
/// conditions above judge, what [`let_judged_go`] keeps, and what `why` reports.
fn verdict(property: &str, total: i64, s: &State, parts: &[Part]) -> Result<(), Violation> {
    match property {
        "consistent cut" => cut(parts),
        "exact channel state" => exact_channels(s, parts),
        "conservation" => parts_conserved(total, parts),
        "snapshot restores" => restores(parts),
        _ => Ok(()),
    }
}

/// Whether snapshot `parts` passes `property`: [`verdict`], judged once per
/// distinct parts and what else it reads (the ledger slices, for the channels).
fn holds_now(property: &'static str, total: i64, s: &State, parts: &[Sealed<Part>]) -> bool {
    match property {
        "exact channel state" => exact_channels_now(s, parts),
        _ => snapshot_holds(property, parts, total, |p| {
            verdict(property, total, s, p).is_ok()
        }),
    }
}

/// A property of every snapshot: of those complete now, and of those judged
/// and let go ([`let_judged_go`]; none under the full model).
fn every_snapshot(property: &'static str, cfg: &SnapshotCfg, s: &State) -> bool {
    s.history.judged.holds(property)
        && sealed_snapshots(s)
            .iter()
            .all(|p| holds_now(property, cfg.total(), s, p))
}

/// Judges every snapshot whose parts are all complete now, keeps the verdicts
/// in the ledger, and lets the parts go: each replica keeps only the id until
/// the commit reaches it. A part is dead weight once its snapshot is judged,
/// and two runs that recorded differently stay apart while it is held; the
/// full model holds it until the commit ([`crate::replica::Replica`]'s
/// `record`). The bank under `--por` calls this after every step
/// ([`SnapshotCfg::into_reduced_model`]), so no state it keeps holds a
/// complete snapshot, and the property conditions read the ledger's verdicts.
pub fn let_judged_go(cfg: &SnapshotCfg, s: &mut State) {
    let total = cfg.total();
    for parts in sealed_snapshots(s) {
        let id = parts[0].id;
        for property in SNAPSHOT_PROPERTIES {
            if !holds_now(property, total, s, &parts) {
                let whole: Vec<Part> = parts.iter().map(|p| Part::clone(p)).collect();
                let v = verdict(property, total, s, &whole).expect_err("judged failed");
                s.history.judged.failed.entry(property).or_insert(v);
            }
        }
        for a in &mut s.actor_states {
            *a = crate::transitions::let_go(a, id);
        }
    }
}

/// Whether `w` carries a transfer.
fn is_transfer(w: &Wire<Batch>) -> bool {
    w.payload()
        .is_some_and(|b| b.writes.iter().any(|w| matches!(w.op, Op::Transfer { .. })))
}

impl Explained for SnapshotModel {
    fn why(&self, property: &'static str, s: &State) -> Option<String> {
        let total = self.cfg.total();
        let r = match (s.history.judged.failed.get(property), property) {
            (Some(v), _) => Err(v.clone()),
            (None, "conservation") => conserved(total, s),
            (None, "snapshots bounded") => snapshots_bounded(&overbooked(&self.cfg, s)),
            (None, "termination") => terminated(s),
            (None, _) => complete_snapshots(s)
                .iter()
                .try_for_each(|p| verdict(property, total, s, p)),
        };
        r.err().map(|v| {
            let stores: Vec<String> = s
                .actor_states
                .iter()
                .enumerate()
                .map(|(i, a)| format!("n{i}: {}", balances(a.node.kv())))
                .collect();
            format!("{v}\n        (accounts now: {})", stores.join("; "))
        })
    }

    fn describe(&self, action: &<Self as Model>::Action) -> String {
        crate::display::action(action, crate::display::kv_wire)
    }
}

#[cfg(test)]
impl SnapshotCfg {
    /// The tests' bank for judging every state or step of a whole graph: 2
    /// accounts, 2 transfers each (89,010 states; 21,839 reduced).
    pub(crate) fn two_transfers() -> Self {
        SnapshotCfg {
            transfers: 2,
            ..SnapshotCfg::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    /// A send onto the ledger is remembered: the same frame sent again onto
    /// the same ledger, after other sends, shares the channels the first
    /// send made; and a remembered send is the one worked out afresh.
    #[test]
    fn a_send_onto_the_ledger_is_remembered() {
        let model = SnapshotCfg::default().into_model();
        let cfg = &model.cfg;
        // The first multicast frames the bank puts on a channel.
        let mut frames = Vec::new();
        crate::walk::each_state(&model, |s, _| {
            for (&(src, dst), flow) in match &s.network {
                stateright::actor::Network::Ordered(flows) => flows,
                _ => unreachable!("the bank's channels are ordered"),
            } {
                let env = Sent {
                    src,
                    dst,
                    msg: &flow[0],
                };
                let fresh = Ledger::new(2);
                let new = !frames.iter().any(|(_, _, m)| m == &flow[0]);
                if new && frames.len() < 3 && Ledger::record_out(cfg, &fresh, env).is_some() {
                    frames.push((src, dst, flow[0].clone()));
                }
            }
        });
        assert_eq!(frames.len(), 3);
        let l = Ledger::new(2);
        let send = |(src, dst, msg): &(_, _, KvWire)| {
            Ledger::record_out(
                cfg,
                &l,
                Sent {
                    src: *src,
                    dst: *dst,
                    msg,
                },
            )
            .unwrap()
        };
        let first = send(&frames[0]);
        for other in &frames[1..] {
            send(other);
        }
        let again = send(&frames[0]);
        assert!(std::ptr::eq(&*first.sent, &*again.sent), "worked out again");
        SENDS.take();
        let afresh = send(&frames[0]);
        assert!(!std::ptr::eq(&*first.sent, &*afresh.sent));
        assert_eq!(afresh, first);
        assert_eq!(afresh.sent.digest(), first.sent.digest());
    }

    /// Letting judged parts go (`--por`) loses nothing. Against the reduced
    /// bank that holds its parts until the commit: the states are the same but
    /// for their parts; every whole snapshot that bank holds is judged, by the
    /// same verdicts, on the step that completes it; no kept state holds a
    /// whole one. And it saves states.
    #[test]
    fn judged_snapshots_are_let_go_with_their_verdicts() {
        use crate::digest::digest;
        use crate::replica::ReplicaState;
        use crate::wrap::Wrapper;
        use std::collections::HashSet;
        let longer = SnapshotCfg::two_transfers();
        for (cfg, counts) in [
            (SnapshotCfg::default(), (1482, 1198)),
            (longer, (22148, 15395)),
        ] {
            let letting_go = cfg.clone().into_reduced_model();
            let mut holding = cfg.into_reduced_model();
            holding.after_step = None;
            // A state without its parts (and whether it has terminated, which
            // reads them: a part let go still counts as complete).
            let rest = |s: &State| {
                let replicas: Vec<u64> = s
                    .actor_states
                    .iter()
                    .map(|a| {
                        let mut a = ReplicaState::clone(a);
                        a.parts.clear();
                        a.judged.clear();
                        digest(&a)
                    })
                    .collect();
                digest(&(replicas, &s.network, &s.history.sent, terminated_now(s)))
            };
            let whole = |s: &State| -> Vec<u64> {
                sealed_snapshots(s)
                    .iter()
                    .map(|p| digest(&p.iter().map(Sealed::digest).collect::<Vec<_>>()))
                    .collect()
            };
            let (mut held, mut held_whole) = (HashSet::new(), HashSet::new());
            let holding_states = crate::walk::each_state(&holding, |s, _| {
                held.insert(rest(s));
                held_whole.extend(whole(s));
            });
            let (mut kept, mut judged) = (HashSet::new(), HashSet::new());
            let full = letting_go.inner();
            let mut actions = Vec::new();
            let kept_states = crate::walk::each_state(&letting_go, |s, _| {
                kept.insert(rest(s));
                assert!(whole(s).is_empty(), "a kept state holds a whole snapshot");
                assert!(s.history.judged.failed.is_empty(), "{:?}", s.history.judged);
                // Each step as the full model takes it, before the parts go.
                letting_go.actions(s, &mut actions);
                for a in actions.drain(..) {
                    judged.extend(full.next_state(s, a).iter().flat_map(whole));
                }
            });
            assert_eq!((holding_states, kept_states), counts);
            assert_eq!(held, kept, "the states differ but for their parts");
            assert_eq!(held_whole, judged, "whole snapshots go unjudged");
            assert!(!judged.is_empty());
        }
    }

    /// Judging can fail on a correct run's state: a whole snapshot with a
    /// transfer in flight passes, with a part's accounts doctored it fails
    /// conservation and restores, and with the ledger's in-flight message
    /// doctored (the same parts) it fails exact channel state.
    #[test]
    fn judging_notices_a_doctored_part_or_ledger() {
        let cfg = SnapshotCfg::default();
        let in_flight = |p: &Vec<Sealed<Part>>| p.iter().any(|p| p.channel_messages() > 0);
        let mut found = None;
        crate::walk::each_state(&cfg.clone().into_model(), |s, _| {
            if found.is_none() {
                let whole = sealed_snapshots(s).into_iter().find(in_flight);
                found = whole.map(|parts| (s.clone(), parts));
            }
        });
        let (s, parts) = found.expect("a whole snapshot records a transfer in flight");
        let judged = |s: &State| {
            let mut s = s.clone();
            let_judged_go(&cfg, &mut s);
            assert!(sealed_snapshots(&s).is_empty(), "the parts go");
            s.history.judged.failed.into_keys().collect::<Vec<_>>()
        };
        assert_eq!(judged(&s), Vec::<&str>::new());

        let mut doctored = s.clone();
        let a = Arc::make_mut(&mut doctored.actor_states[0]);
        let id = parts[0].id;
        let mut part = a.parts[&id].clone().into_inner();
        part.state.kv = opening(cfg.nodes, cfg.balance + 1).store();
        a.parts.insert(id, Sealed::new(part));
        a.digest = Default::default();
        assert_eq!(judged(&doctored), ["conservation", "snapshot restores"]);

        // The message a part recorded in flight, gone from the ledger: the
        // parts are the very same.
        let (j, i) = (0..parts.len())
            .flat_map(|j| (0..parts.len()).map(move |i| (j, i)))
            .find(|&(j, i)| !parts[j].channels[i].is_empty())
            .unwrap();
        let at = parts[j].received[i] as usize;
        let mut doctored = s.clone();
        doctored.history.edit(i, j, |msgs| {
            msgs.remove(at);
        });
        assert_eq!(judged(&doctored), ["exact channel state"]);
    }

    /// The bank's data are its transfers; the sequencer's numbers (to a
    /// transfer's sender, which holds it) and ISIS's proposals and agreements
    /// are not.
    #[test]
    fn a_transfer_is_a_data_message_and_a_number_is_not() {
        for mode in [Mode::TotalSequencer, Mode::TotalIsis] {
            let want = [(false, false), (true, true)];
            let mut kinds = std::collections::BTreeSet::new();
            let cfg = SnapshotCfg {
                mode,
                ..SnapshotCfg::default()
            };
            crate::walk::each_state(&cfg.into_model(), |s, _| {
                for w in s.history.sent.iter().flatten().flat_map(|c| c.iter()) {
                    kinds.insert((w.payload().is_some(), is_transfer(w)));
                }
            });
            assert_eq!(kinds, want.into(), "{mode}");
        }
    }

    fn catches(bug: SnapshotBug) -> String {
        let cfg = SnapshotCfg {
            broken: Some(bug),
            // Below the default's 2 snapshots, for the bound's variant.
            max_snapshots: (bug == SnapshotBug::UnboundedSnapshots).then_some(1),
            ..SnapshotCfg::default()
        };
        let property = bug.caught_by();
        // Stop at the promised violation: the reordering variant's full space
        // (no link layer on an unordered network) takes minutes.
        let checker = cfg
            .into_model()
            .checker()
            .finish_when(stateright::HasDiscoveries::AnyOf([property].into()))
            .spawn_bfs()
            .join();
        let path = checker
            .discovery(property)
            .unwrap_or_else(|| panic!("{bug:?} not caught by {property}"));
        checker
            .model()
            .why(property, path.last_state())
            .unwrap_or_else(|| panic!("{property}: the explanation must agree with the verdict"))
    }

    #[test]
    fn bank_snapshots_are_exact() {
        let checker = SnapshotCfg::default()
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 2947);
    }

    /// Without snapshots the bank still conserves money and refuses overdrafts,
    /// and no snapshot example is asked for (it would be vacuous, a FAIL).
    #[test]
    fn the_bank_without_snapshots_passes() {
        let cfg = SnapshotCfg {
            snapshots: 0,
            ..SnapshotCfg::default()
        };
        let v = crate::verdict::check(cfg.into_model(), &crate::verdict::Search::default());
        assert!(v.complete && v.passed(), "{v:?}");
        assert_eq!(v.unique_states, 17);
    }

    /// With room for one snapshot in progress, a replica's second start
    /// while its first runs is refused: still every snapshot started ends
    /// and every property holds, in fewer states.
    #[test]
    fn a_bound_of_one_snapshot_refuses_the_second() {
        let cfg = SnapshotCfg {
            max_snapshots: Some(1),
            ..SnapshotCfg::default()
        };
        let v = crate::verdict::check(cfg.into_model(), &crate::verdict::Search::default());
        assert!(v.complete && v.passed(), "{v:?}");
        assert_eq!(v.unique_states, 2114);
    }

    #[test]
    fn a_replica_ignoring_its_snapshot_bound_is_caught() {
        let why = catches(SnapshotBug::UnboundedSnapshots);
        assert!(
            why.contains("has 2 snapshots of its own in progress, over its bound of 1"),
            "{why}"
        );
    }

    #[test]
    fn forgetting_channels_loses_transfers() {
        let why = catches(SnapshotBug::NoChannelRecording);
        assert!(why.contains("in flight"), "{why}");
    }

    #[test]
    fn shared_channel_state_between_snapshots_is_caught() {
        let why = catches(SnapshotBug::SharedChannelClosing);
        assert!(why.contains("in flight"), "{why}");
    }

    #[test]
    fn debit_only_transfer_loses_money() {
        let why = catches(SnapshotBug::DebitOnly);
        assert!(why.contains("acct:"), "{why}");
    }

    /// Conservation judges each replica's own accounts, not only the
    /// snapshots' records of them: in every state of the bank that loses
    /// money, a replica short of it fails conservation, and such states are
    /// reached before any snapshot has recorded a loss.
    #[test]
    fn lost_money_fails_conservation_where_it_is_lost() {
        let cfg = SnapshotCfg {
            broken: Some(SnapshotBug::DebitOnly),
            ..SnapshotCfg::default()
        };
        let total = cfg.total();
        let mut unrecorded = 0;
        crate::walk::each_state(&cfg.into_model(), |s, _| {
            let short = s
                .actor_states
                .iter()
                .any(|a| crate::kv::bank_total(a.node.kv()) != total);
            if short {
                assert!(!conserved_now(total, s));
                let recorded = complete_snapshots(s);
                if recorded
                    .iter()
                    .all(|p| crate::kv::parts_conserved(total, p).is_ok())
                {
                    unrecorded += 1;
                }
            }
        });
        assert!(
            unrecorded > 0,
            "no state lost money before a snapshot recorded it"
        );
    }

    /// "Overdraft refused" is not reached for free: the opening state has
    /// neither a refusal nor an account below zero.
    #[test]
    fn no_overdraft_is_tried_at_the_start() {
        let model = SnapshotCfg::default().into_model();
        let start = model.init_states();
        assert!(!start.is_empty() && start.iter().all(|s| !overdraft_tried(s)));
    }

    #[test]
    fn reordering_breaks_the_cut() {
        catches(SnapshotBug::Reordering);
    }

    #[test]
    fn lost_markers_never_finish() {
        let why = catches(SnapshotBug::Lossy);
        assert!(why.contains("never"), "{why}");
    }

    #[test]
    fn only_total_orders_keep_money() {
        for mode in [Mode::Fifo, Mode::Causal] {
            let cfg = SnapshotCfg {
                mode,
                ..SnapshotCfg::default()
            };
            assert!(cfg.validate().is_err());
        }
    }

    /// What letting committed parts go rests on ([`crate::replica::ReplicaState::parts`]):
    /// a snapshot's first commit anywhere is a step from a state in which every
    /// replica holds its part, so that state is judged. On every transition of two banks.
    #[test]
    fn every_part_is_held_when_a_snapshot_first_commits() {
        for cfg in [SnapshotCfg::default(), SnapshotCfg::two_transfers()] {
            let mut first_commits = 0;
            crate::walk::each_state(&cfg.into_model(), |s, next| {
                for t in next {
                    for id in t.actor_states.iter().flat_map(|a| &a.ghost.committed) {
                        if s.actor_states
                            .iter()
                            .any(|a| a.ghost.committed.contains(id))
                        {
                            continue;
                        }
                        first_commits += 1;
                        assert!(
                            s.actor_states.iter().all(|a| a.parts.contains_key(id)),
                            "snapshot {id} commits before every part is held"
                        );
                    }
                }
            });
            assert!(first_commits > 0);
        }
    }

    #[test]
    fn the_bank_is_the_kv_store() {
        // One bank: the accounts are the K/V store's keys, moved by its TRANSFER.
        let kv = opening(2, 5).store();
        assert_eq!(crate::kv::bank_total(&kv), 10);
    }
}
