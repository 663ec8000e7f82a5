//! The Chandy-Lamport snapshot (Chandy & Lamport 1985, "Distributed Snapshots:
//! Determining Global States of Distributed Systems") on the bank of the
//! Dr. TLA+ lecture: `nodes` accounts start with `balance` each, money moves as
//! transfer messages over FIFO channels, so part of the total is always in
//! flight, and any node may start a snapshot at any moment (at most `snapshots`
//! in all).
//!
//! Every account runs the spec's [`Recorder`] on its channels; the model only
//! carries its markers and stores the parts it completes. The wire is the
//! ground truth: a ghost [`Ledger`], written by stateright's `record_msg_in/out`
//! hooks, sees every transfer leave and arrive and the moment each node sends
//! its markers (which is the moment it records). For every snapshot complete at
//! all nodes, always:
//! * **consistent cut**: nobody recorded a receipt whose send is after the cut;
//! * **exact channel state**: each channel holds exactly the transfers in flight
//!   at the cut, checked against the ledger;
//! * **conservation**: recorded balances plus recorded channel money = the total;
//! * **Chandy-Lamport theorem**, by replay: the ledger's events before each
//!   record point, replayed from the initial state, form a possible global state
//!   (no receipt before its send) equal to the recorded one, balances and
//!   channels; and each node's events after its record point, replayed from its
//!   recorded balance, give its balance now.
//!
//! And eventually **termination**: every snapshot started is complete everywhere.
//!
//! Broken variants: `no-channel-recording` (a recorder that records states only)
//! loses money in flight; `reordering` channels let a marker overtake a transfer
//! and the cut break; `lossy` channels lose markers, so snapshots never finish.

use crate::adapter::{self, arm, describe_action, Channels, Step};
use crate::verdict::Explained;
use gsmo_spec::bank::{Account, AccountEvent, Transfer};
use gsmo_spec::properties::{
    channel_contents_match, conservation, consistent_cut, exact_channel_state, Violation,
};
use gsmo_spec::snapshot::{Envelope, LocalSnapshot, Recorder, SnapshotEffect, SnapshotId};
use gsmo_spec::NodeId;
use stateright::actor::{Actor, ActorModel, ActorModelState, Envelope as Sent, Id, Out};
use stateright::{Expectation, Model};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// What travels on a channel: a framed transfer or a marker.
pub type Wire = Envelope<Transfer>;
/// One account's part of a snapshot.
pub type Part = LocalSnapshot<Account, Transfer>;

/// The snapshot model's configuration.
#[derive(Clone, Debug)]
pub struct SnapshotCfg {
    pub nodes: usize,
    /// Transfers each node makes.
    pub transfers: u64,
    /// Each account's starting balance.
    pub balance: u64,
    /// The amount every transfer moves.
    pub amount: u64,
    /// Snapshots started in all, by any nodes.
    pub snapshots: usize,
    pub channels: Channels,
    pub broken: Option<SnapshotBug>,
}

/// The snapshot model's deliberately broken variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapshotBug {
    /// The recorder records local states but no channel contents: money in
    /// flight at the cut vanishes. Caught by "exact channel state", "conservation".
    NoChannelRecording,
    /// Channels that reorder: a marker overtakes a transfer. Caught by
    /// "consistent cut" and "Chandy-Lamport theorem".
    Reordering,
    /// Channels that lose messages, markers included. Caught by "termination".
    Lossy,
}

impl SnapshotBug {
    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        match self {
            SnapshotBug::NoChannelRecording => "exact channel state",
            SnapshotBug::Reordering => "consistent cut",
            SnapshotBug::Lossy => "termination",
        }
    }
}

impl Default for SnapshotCfg {
    fn default() -> Self {
        SnapshotCfg {
            nodes: 2,
            transfers: 2,
            balance: 2,
            amount: 1,
            snapshots: 1,
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

    /// The money in the bank, wherever it is.
    pub fn total(&self) -> i128 {
        self.nodes as i128 * self.balance as i128
    }
}

/// An account: the spec's [`Account`] with the spec's [`Recorder`] on its channels.
#[derive(Clone, Debug)]
pub struct Bank {
    pub n: usize,
    pub transfers: u64,
    pub balance: u64,
    pub amount: u64,
    pub record_channels: bool,
    /// Whether the channels keep order (the recorder then insists on it).
    pub fifo: bool,
}

/// An account's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BankState {
    pub account: Account,
    pub recorder: Recorder<Account, Transfer>,
    /// The parts of snapshots this node has completed (what a node persists).
    pub parts: BTreeMap<SnapshotId, Part>,
}

impl BankState {
    fn transfers_made(&self) -> u64 {
        self.recorder.sent_counts().iter().sum()
    }
}

impl Bank {
    fn carry_out(
        effects: Vec<SnapshotEffect<Account, Transfer>>,
        parts: &mut BTreeMap<SnapshotId, Part>,
        o: &mut Out<Self>,
    ) {
        for e in effects {
            match e {
                SnapshotEffect::Send { to, envelope } => o.send(Id::from(to), envelope),
                // The ledger sees the record point as the markers leave. Parts
                // are never reported stored here, so no snapshot is committed or
                // aborted: the bank checks the cut, not how snapshots end.
                SnapshotEffect::Recorded { .. }
                | SnapshotEffect::Committed { .. }
                | SnapshotEffect::Aborted { .. }
                | SnapshotEffect::DropPart { .. } => {}
                SnapshotEffect::Complete(part) => {
                    parts.insert(part.id, part);
                }
            }
        }
    }
}

impl Actor for Bank {
    type Msg = Wire;
    type State = BankState;
    type Timer = Step;
    type Random = ();
    type Storage = ();

    fn on_start(&self, id: Id, _: &Option<()>, o: &mut Out<Self>) -> BankState {
        let me = usize::from(id);
        if self.transfers > 0 {
            for to in (0..self.n).filter(|&to| to != me) {
                arm(o, Step::Transfer { to });
            }
        }
        arm(o, Step::Snapshot);
        let mut recorder = Recorder::new(me, self.n);
        if !self.record_channels {
            recorder = recorder.without_channel_recording();
        }
        if !self.fifo {
            recorder = recorder.tolerate_reordering();
        }
        BankState {
            account: Account {
                balance: self.balance,
            },
            recorder,
            parts: BTreeMap::new(),
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<BankState>, step: &Step, o: &mut Out<Self>) {
        match *step {
            Step::Transfer { to } => {
                if state.account.balance < self.amount {
                    // Not now; maybe after a transfer arrives. (Unchanged: no step.)
                    arm(o, *step);
                    return;
                }
                let s = state.to_mut();
                let t = s.account.send(self.amount).expect("balance checked");
                let env = s.recorder.wrap(to, t);
                o.send(Id::from(to), env);
                if s.transfers_made() < self.transfers {
                    arm(o, *step);
                } else {
                    let me = usize::from(id);
                    for other in (0..self.n).filter(|&j| j != me && j != to) {
                        o.cancel_timer(Step::Transfer { to: other });
                    }
                }
            }
            Step::Snapshot => {
                let s = state.to_mut();
                let (_, effects) = s.recorder.initiate(s.account);
                Bank::carry_out(effects, &mut s.parts, o);
                // How many snapshots may start is bounded globally (`within_boundary`).
                arm(o, Step::Snapshot);
            }
            Step::Multicast | Step::Write | Step::Fault(_) => {
                unreachable!("a bank neither multicasts nor writes, and suffers no faults")
            }
        }
    }

    fn on_msg(&self, _: Id, state: &mut Cow<BankState>, src: Id, msg: Wire, o: &mut Out<Self>) {
        let s = state.to_mut();
        let account = s.account;
        let (transfer, effects) = s
            .recorder
            .on_envelope(usize::from(src), msg, || account)
            .expect("FIFO channels stay in order; other channels run a tolerant recorder");
        Bank::carry_out(effects, &mut s.parts, o);
        if let Some(t) = transfer {
            s.account.receive(t);
        }
    }
}

/// One account event as seen on the wire, with its channel position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Move {
    /// A transfer left for `to`, the `seq`-th on that channel.
    Out { to: NodeId, seq: u64, amount: u64 },
    /// A transfer arrived from `from`, the `seq`-th on that channel.
    In { from: NodeId, seq: u64, amount: u64 },
}

impl Move {
    fn event(self) -> AccountEvent {
        match self {
            Move::Out { amount, .. } => AccountEvent::Debit(amount),
            Move::In { amount, .. } => AccountEvent::Credit(amount),
        }
    }
}

/// Ghost history: what every account did, in order, observed on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ledger {
    /// Per node, its account's moves in order.
    pub moves: Vec<Vec<Move>>,
    /// Per node, for each snapshot it recorded, how many of its moves came first.
    pub record_points: Vec<BTreeMap<SnapshotId, usize>>,
}

impl Ledger {
    fn new(n: usize) -> Self {
        Ledger {
            moves: vec![Vec::new(); n],
            record_points: vec![BTreeMap::new(); n],
        }
    }

    /// Snapshots started so far (a node records first, then sends its markers).
    pub fn started(&self) -> BTreeSet<SnapshotId> {
        self.record_points
            .iter()
            .flat_map(|r| r.keys().copied())
            .collect()
    }

    /// `sent[i][j]`: every transfer `i` put on channel `i -> j`, in order.
    pub fn sent(&self) -> Vec<Vec<Vec<Transfer>>> {
        let n = self.moves.len();
        let mut sent = vec![vec![Vec::new(); n]; n];
        for (i, moves) in self.moves.iter().enumerate() {
            for m in moves {
                if let Move::Out { to, amount, .. } = *m {
                    sent[i][to].push(Transfer(amount));
                }
            }
        }
        sent
    }

    fn record_out(_: &SnapshotCfg, h: &Ledger, env: Sent<&Wire>) -> Option<Ledger> {
        let i = usize::from(env.src);
        let mut h = h.clone();
        match env.msg {
            Envelope::Msg { seq, body } => h.moves[i].push(Move::Out {
                to: usize::from(env.dst),
                seq: *seq,
                amount: body.0,
            }),
            Envelope::Marker { id } => {
                if h.record_points[i].contains_key(id) {
                    return None;
                }
                let at = h.moves[i].len();
                h.record_points[i].insert(*id, at);
            }
            Envelope::Abort { .. } | Envelope::Stored { .. } | Envelope::Committed { .. } => {
                return None
            }
        }
        Some(h)
    }

    fn record_in(_: &SnapshotCfg, h: &Ledger, env: Sent<&Wire>) -> Option<Ledger> {
        let Envelope::Msg { seq, body } = env.msg else {
            return None;
        };
        let mut h = h.clone();
        h.moves[usize::from(env.dst)].push(Move::In {
            from: usize::from(env.src),
            seq: *seq,
            amount: body.0,
        });
        Some(h)
    }
}

pub type SnapshotModel = ActorModel<Bank, SnapshotCfg, Ledger>;
type State = ActorModelState<Bank, Ledger>;

impl SnapshotCfg {
    pub fn into_model(self) -> SnapshotModel {
        let channels = self.effective_channels();
        let bank = Bank {
            n: self.nodes,
            transfers: self.transfers,
            balance: self.balance,
            amount: self.amount,
            record_channels: self.broken != Some(SnapshotBug::NoChannelRecording),
            fifo: channels == Channels::Ordered,
        };
        ActorModel::new(self.clone(), Ledger::new(self.nodes))
            .actors(vec![bank; self.nodes])
            .init_network(channels.network())
            .lossy_network(channels.lossy())
            .property(Expectation::Always, "consistent cut", |_, s| {
                each_snapshot(s, consistent_cut)
            })
            .property(Expectation::Always, "exact channel state", |_, s| {
                each_snapshot(s, |parts| exact_channels(s, parts))
            })
            .property(Expectation::Always, "conservation", |m, s| {
                each_snapshot(s, |parts| conserved(&m.cfg, parts))
            })
            .property(Expectation::Always, "Chandy-Lamport theorem", |m, s| {
                each_snapshot(s, |parts| replay(&m.cfg, s, parts))
            })
            // Sound: the model is finite and acyclic. Every step makes a transfer
            // (at most `transfers` per node), starts a snapshot (at most
            // `snapshots`), or consumes one of the finitely many messages sent
            // (transfers, and n-1 markers per node per snapshot), so no path
            // revisits a state. A path ends only once `snapshots` have started
            // (a node may always start one until then), and from there the
            // condition is stable, so judging it where paths end is exact.
            .property(Expectation::Eventually, "termination", |m, s| {
                terminated(&m.cfg, s)
            })
            // Non-vacuity: some snapshot really records money in flight.
            .property(
                Expectation::Sometimes,
                "money in flight recorded",
                |_, s| {
                    complete_snapshots(s)
                        .iter()
                        .any(|parts| parts.iter().any(|p| p.channel_messages() > 0))
                },
            )
            .record_msg_out(Ledger::record_out)
            .record_msg_in(Ledger::record_in)
            .within_boundary(|cfg, s| s.history.started().len() <= cfg.snapshots)
    }
}

/// Every snapshot whose parts all nodes have completed, parts in node order.
pub fn complete_snapshots(s: &State) -> Vec<Vec<Part>> {
    adapter::complete_snapshots(&s.actor_states, |a| &a.parts)
}

fn each_snapshot(s: &State, check: impl Fn(&[Part]) -> Result<(), Violation>) -> bool {
    first_violation(s, check).is_none()
}

fn first_violation(
    s: &State,
    check: impl Fn(&[Part]) -> Result<(), Violation>,
) -> Option<Violation> {
    complete_snapshots(s)
        .iter()
        .find_map(|parts| check(parts).err())
}

/// Positions against the recorder's own counts, then contents against the ledger.
fn exact_channels(s: &State, parts: &[Part]) -> Result<(), Violation> {
    exact_channel_state(parts)?;
    channel_contents_match(parts, &s.history.sent())
}

fn conserved(cfg: &SnapshotCfg, parts: &[Part]) -> Result<(), Violation> {
    conservation(
        cfg.total(),
        parts.iter().map(|p| p.state.balance as i128),
        parts
            .iter()
            .flat_map(|p| p.channels.iter().flatten().map(|(_, t)| t.0 as i128)),
    )
}

fn terminated(cfg: &SnapshotCfg, s: &State) -> bool {
    let started = s.history.started();
    started.len() == cfg.snapshots
        && started
            .iter()
            .all(|id| s.actor_states.iter().all(|a| a.parts.contains_key(id)))
}

fn theorem(detail: String) -> Result<(), Violation> {
    Err(Violation {
        property: "Chandy-Lamport theorem",
        detail,
    })
}

/// The theorem, by replaying the ledger around the record points.
fn replay(cfg: &SnapshotCfg, s: &State, parts: &[Part]) -> Result<(), Violation> {
    let id = parts[0].id;
    let n = parts.len();
    let mut cut = Vec::with_capacity(n);
    for (i, part) in parts.iter().enumerate() {
        let Some(&at) = s.history.record_points[i].get(&id) else {
            return theorem(format!(
                "node {i} completed {id} but never sent its markers"
            ));
        };
        let (before, after) = s.history.moves[i].split_at(at);
        let start = Account {
            balance: cfg.balance,
        };
        let replayed = start.replay(&before.iter().map(|m| m.event()).collect::<Vec<_>>());
        if replayed != part.state {
            return theorem(format!(
                "node {i} recorded balance {} for {id}, but its {} moves before the record give {}",
                part.state.balance,
                before.len(),
                replayed.balance
            ));
        }
        let now = part
            .state
            .replay(&after.iter().map(|m| m.event()).collect::<Vec<_>>());
        if now != s.actor_states[i].account {
            return theorem(format!(
                "node {i}'s moves after its record for {id} lead from {} to {}, but it holds {}",
                part.state.balance, now.balance, s.actor_states[i].account.balance
            ));
        }
        cut.push(before);
    }
    // The global state the pre-record moves reach: a transfer is in flight on
    // i -> j if i sent it before its record and j had not received it before its.
    for (i, before_i) in cut.iter().enumerate() {
        for (j, before_j) in cut.iter().enumerate().filter(|(j, _)| *j != i) {
            let sent: BTreeMap<u64, u64> = before_i
                .iter()
                .filter_map(|m| match *m {
                    Move::Out { to, seq, amount } if to == j => Some((seq, amount)),
                    _ => None,
                })
                .collect();
            let mut in_flight = sent.clone();
            for m in before_j.iter() {
                if let Move::In { from, seq, .. } = *m {
                    if from == i && in_flight.remove(&seq).is_none() {
                        return theorem(format!(
                            "node {j} received transfer {seq} from node {i} before recording {id}, \
                             but node {i} sent it after recording: no run passes through this cut"
                        ));
                    }
                }
            }
            let recorded: BTreeMap<u64, u64> = parts[j].channels[i]
                .iter()
                .map(|(q, t)| (*q, t.0))
                .collect();
            if recorded != in_flight {
                return theorem(format!(
                    "channel {i}->{j} recorded {recorded:?} for {id}, but replay puts {in_flight:?} in flight"
                ));
            }
        }
    }
    Ok(())
}

impl Explained for SnapshotModel {
    fn why(&self, property: &'static str, s: &State) -> Option<String> {
        let v = match property {
            "consistent cut" => first_violation(s, consistent_cut),
            "exact channel state" => first_violation(s, |p| exact_channels(s, p)),
            "conservation" => first_violation(s, |p| conserved(&self.cfg, p)),
            "Chandy-Lamport theorem" => first_violation(s, |p| replay(&self.cfg, s, p)),
            "termination" => {
                let waiting: Vec<String> = s
                    .history
                    .started()
                    .iter()
                    .flat_map(|id| {
                        s.actor_states
                            .iter()
                            .enumerate()
                            .filter(|(_, a)| !a.parts.contains_key(id))
                            .map(move |(i, _)| format!("node {i} never completed {id}"))
                    })
                    .collect();
                return (!waiting.is_empty()).then(|| waiting.join("; "));
            }
            _ => None,
        };
        v.map(|v| v.to_string())
    }

    fn describe(&self, action: &<Self as Model>::Action) -> String {
        describe_action(action, |w: &Wire| match w {
            Envelope::Msg { seq, body } => format!("transfer #{seq} of {}", body.0),
            other => crate::adapter::describe_control(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::{Checker, HasDiscoveries};

    fn catches(bug: SnapshotBug, also: &[&'static str]) {
        let cfg = SnapshotCfg {
            broken: Some(bug),
            ..SnapshotCfg::default()
        };
        let checker = cfg.into_model().checker().spawn_bfs().join();
        for property in [bug.caught_by()].iter().chain(also) {
            let path = checker
                .discovery(property)
                .unwrap_or_else(|| panic!("{bug:?} not caught by {property}"));
            assert!(
                checker.model().why(property, path.last_state()).is_some(),
                "{property}: the explanation must agree with the verdict"
            );
        }
    }

    #[test]
    fn bank_snapshots_are_exact() {
        let checker = SnapshotCfg::default()
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 2736);
    }

    #[test]
    fn concurrent_snapshots_do_not_interfere() {
        let cfg = SnapshotCfg {
            snapshots: 2,
            ..SnapshotCfg::default()
        };
        let checker = cfg.into_model().checker().spawn_bfs().join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 29961);
    }

    #[test]
    fn three_accounts() {
        // Three accounts with two concurrent snapshots is ~13 M states: the
        // `check` binary's business, not a test's.
        let cfg = SnapshotCfg {
            nodes: 3,
            transfers: 1,
            balance: 1,
            ..SnapshotCfg::default()
        };
        let checker = cfg.into_model().checker().spawn_bfs().join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 132626);
    }

    #[test]
    fn forgetting_channels_loses_money() {
        catches(
            SnapshotBug::NoChannelRecording,
            &["conservation", "Chandy-Lamport theorem"],
        );
    }

    #[test]
    fn reordering_breaks_the_cut() {
        catches(SnapshotBug::Reordering, &["Chandy-Lamport theorem"]);
    }

    #[test]
    fn lost_markers_never_finish() {
        catches(SnapshotBug::Lossy, &[]);
    }

    #[test]
    fn replay_catches_a_doctored_part() {
        // The theorem must be able to fail on a correct run's state too: tamper
        // with a recorded balance and replay has to notice.
        let model = SnapshotCfg::default().into_model();
        let checker = model
            .clone()
            .checker()
            .finish_when(HasDiscoveries::AnyOf(["money in flight recorded"].into()))
            .spawn_bfs()
            .join();
        let path = checker.discovery("money in flight recorded").unwrap();
        let mut s = path.last_state().clone();
        assert!(replay(&model.cfg, &s, &complete_snapshots(&s)[0]).is_ok());
        let mut a = (*s.actor_states[0]).clone();
        let id = *a.parts.keys().next().unwrap();
        a.parts.get_mut(&id).unwrap().state.balance += 1;
        s.actor_states[0] = std::sync::Arc::new(a);
        assert!(replay(&model.cfg, &s, &complete_snapshots(&s)[0]).is_err());
    }
}
