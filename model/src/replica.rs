//! The replica actor every K/V-based model runs (kv, the snapshot bank, the
//! abort model): the spec's whole [`Node`] behind stateright's [`Actor`], its
//! scripted client writes, snapshot starts and ghost history. Only feeds
//! [`Input`]s to [`Node::handle`] and carries its [`Output`]s out.

use crate::adapter::{arm, Step};
use crate::digest::{digest, digest_with, Digest, Keyed, Sealed, Shared};
use crate::faults::{Faults, Ghost, Runtime, Wire};
use gsmo_spec::kv::{KvStore, Op, Reply, Resolution, Stamp, Write, INSUFFICIENT_FUNDS};
use gsmo_spec::multicast::{Mode, Multicast};
use gsmo_spec::node::{Command, Input, Limits, Node, Output, Part};
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::{Recorder, SnapshotId};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Snapshots started by all replicas together: what bounds the models' snapshot steps.
pub fn snapshots_started(states: &[Arc<ReplicaState>]) -> usize {
    states.iter().map(|a| a.snapshots_started).sum()
}

/// Which parts of a replica are deliberately broken (each a knob of the spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The mode's broken multicast ([`Multicast::broken`]).
    pub multicast: bool,
    /// Apply fifo/causal writes in delivery order, not last-writer-wins.
    pub delivery_order: bool,
    /// A recorder that records no channel contents.
    pub no_channel_recording: bool,
    /// A recorder whose markers close a channel for every snapshot in progress.
    pub shared_channel_closing: bool,
    /// A store whose short-of-funds `TRANSFER` debits without crediting.
    pub debit_only: bool,
    /// A replica that starts snapshots however many are in progress there.
    pub unbounded_snapshots: bool,
}

/// What every replica's store opens with: these keys set to these values.
///
/// Pairs, not a store, so that every initial state builds a store of its own
/// ([`Opening::store`]). Cloned from one shared store, the states of every
/// checker thread would hold its index's nodes, and each copy and drop of a
/// state would move their reference counts from core to core: the bank's
/// parts checked side by side ([`crate::verdict`]) ran 6-10% slower so.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opening {
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Opening {
    /// A fresh store holding the pairs, sharing nothing with any other.
    pub fn store(&self) -> KvStore {
        let mut kv = KvStore::new();
        kv.apply(
            &Write {
                stamp: Stamp::default(),
                op: Op::MSet {
                    pairs: self.pairs.clone(),
                },
            },
            Resolution::DeliveryOrder,
        );
        kv
    }
}

/// A replica: the spec's [`Node`], driven by client writes and snapshot orders.
/// The kv model and the snapshot model (the bank) both run it.
#[derive(Clone, Debug)]
pub struct Replica {
    pub mode: Mode,
    /// Each replica's client writes, in order (index = replica).
    pub script: Arc<Vec<Vec<Op>>>,
    /// The balances every replica's store starts from, built afresh for each
    /// initial state ([`Opening`] says why).
    pub opening: Opening,
    pub bugs: Bugs,
    /// Whether snapshots may be started at all (how many: `within_boundary`).
    pub snapshots: bool,
    /// The most writes in one batch ([`Limits::max_batch`]).
    pub batch: u64,
    /// Snapshots in progress from which a replica refuses to start another
    /// ([`Limits::max_snapshots`]); `None`: the spec's default.
    pub max_snapshots: Option<u64>,
    /// Whether the recorder insists on FIFO channel positions (it does whenever
    /// the channels promise them; other networks run the tolerant recorder).
    pub strict_fifo: bool,
    pub faults: Faults,
    /// Whether a property reads the ghost log ([`ReplicaState::log`]). Where
    /// none does (the bank), the log is kept for pictures and traces but not
    /// counted in the state: two runs that differ only in the order of a
    /// replica's own sends and deliveries are one state.
    pub log_judged: bool,
}

/// A replica's state: the spec node plus what the properties judge. Hashed
/// once per change ([`crate::digest`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    pub node: Node,
    /// Ghost: this replica's multicasts and deliveries in order (the node
    /// itself keeps only counts). The protocol never reads it.
    pub log: Vec<Event>,
    /// The snapshot parts this replica completed and has not yet seen
    /// committed; sealed, since a completed part never changes. A commit lets
    /// the part go (`Replica::record` says why); `ghost.committed` keeps the id.
    pub parts: BTreeMap<SnapshotId, Sealed<Part>>,
    /// Snapshots whose part this replica completed, judged and let go before
    /// their commit reached it: the bank under `--por` judges a snapshot at the
    /// step that completes it everywhere ([`crate::snapshot::let_judged_go`]).
    /// A commit forgets the id, as it does a part.
    pub judged: BTreeSet<SnapshotId>,
    /// Ghost: snapshots started here, for the global bound (refused ones
    /// included: each is a step).
    pub snapshots_started: usize,
    /// Ghost: starts the node refused ([`Node::snapshot_refusal`]).
    pub snapshots_refused: usize,
    /// The most snapshots this replica may start, if it has a quota of its own
    /// ([`crate::por`] hands the global bound out this way); `None`: only the
    /// global bound (`within_boundary`) limits it.
    pub snapshot_quota: Option<usize>,
    /// Ghost: client writes issued here (refused ones included).
    pub issued: usize,
    /// How many writes this replica's script holds (a constant).
    pub quota: usize,
    /// Ghost: client writes refused for want of funds.
    pub refused: usize,
    /// The runtime's side: connections, the disk, what is unanswered. Shared
    /// with the state it came from until a step changes it (most receipts do
    /// not), since copying its sets was 2% of a bank check.
    pub ghost: Shared<Ghost>,
    /// Whether the node is counted without its links' acknowledgement
    /// bookkeeping ([`Faults::acks_unread`]; the same in every state of a run).
    pub acks_unread: bool,
    /// Whether the log counts in the state and in [`ReplicaState::judged`]
    /// ([`Replica::log_judged`]; the same in every state of a run).
    pub log_judged: bool,
    /// The hash of all of the above, once computed.
    pub digest: Digest,
    /// The money in the node's accounts and whether one is below zero, kept
    /// while the store stays the same: the bank's properties read them in
    /// every state (`crate::kv::accounts`), and summing them once per state
    /// was 4% of a bank check (7% every time asked).
    pub accounts: Keyed<(i64, bool)>,
}

impl Hash for ReplicaState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Destructured, so that a new field cannot be left out of the hash.
        let ReplicaState {
            node,
            log,
            parts,
            judged,
            snapshots_started,
            snapshots_refused,
            snapshot_quota,
            issued,
            quota,
            refused,
            ghost,
            acks_unread,
            log_judged,
            digest: cache,
            accounts: _,
        } = self;
        state.write_u64(cache.get(|| {
            let node = if *acks_unread {
                digest_with(|h| node.hash_live(h))
            } else {
                digest(node)
            };
            let log = log_judged.then_some(log);
            digest(&(
                node,
                log,
                parts,
                judged,
                snapshots_started,
                snapshots_refused,
                snapshot_quota,
                issued,
                quota,
                refused,
                ghost,
            ))
        }));
    }
}

/// What a replica's step does to the network and its timers.
pub(crate) type Commanded = stateright::actor::Command<Wire, Step, (), ()>;

impl ReplicaState {
    /// The sequence numbers of the snapshots this replica initiated: a
    /// refused start takes none.
    pub fn snapshot_seqs(&self) -> std::ops::RangeInclusive<u64> {
        1..=(self.snapshots_started - self.snapshots_refused) as u64
    }

    /// What the properties read of this replica at every state
    /// ([`Judged`]). A reduction that reorders a replica's steps keeps, for
    /// each piece, the order of its values ([`crate::por`]).
    pub fn judged(&self) -> Judged {
        let (node, g) = (&self.node, &self.ghost);
        let log = self.log_judged.then_some(&self.log);
        let progress = node.snapshots_in_progress();
        let mut ids: BTreeSet<SnapshotId> = self.parts.keys().copied().collect();
        ids.extend(
            progress
                .iter()
                .chain(&g.recorded)
                .chain(&g.disk)
                .chain(&g.committed),
        );
        let snapshot = |id| {
            let known = |set: &BTreeSet<SnapshotId>| set.contains(&id);
            let stage = (known(&g.recorded), known(&g.disk), known(&g.committed));
            digest(&(self.parts.get(&id), progress.contains(&id), stage))
        };
        Judged {
            deliveries: digest(&(node.kv(), self.refused, log)),
            snapshots: ids.into_iter().map(|id| (id, snapshot(id))).collect(),
        }
    }
}

/// What the bank's properties read of one replica at every state, piece by
/// piece: conservation and the refused overdraft read its deliveries, and
/// each property of a snapshot reads that one snapshot. Termination reads
/// the state a run ends in, which a reordering keeps whole, so what is still
/// unanswered is no piece.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Judged {
    /// Its accounts and refusals, and its log where a model judges one.
    pub deliveries: u64,
    /// Each snapshot it knows of: its part, whether it is recording it, and
    /// whether it has recorded it, stored its part and seen it committed.
    pub snapshots: BTreeMap<SnapshotId, u64>,
}

impl Judged {
    /// Whether the order of the steps from `self` to `u` and from `self` to
    /// `t` shows in what is judged: both change one piece, each to a value
    /// of its own. Otherwise each piece takes the same values in the same
    /// order either way: a value one step gives is held a step longer, or
    /// the two give the same value.
    pub fn order_shows(&self, u: &Judged, t: &Judged) -> bool {
        fn clash<T: PartialEq>(before: T, u: T, t: T) -> bool {
            u != before && t != before && u != t
        }
        let piece = |j: &Judged, id| j.snapshots.get(id).copied();
        let mut ids = [self, u, t].into_iter().flat_map(|j| j.snapshots.keys());
        clash(self.deliveries, u.deliveries, t.deliveries)
            || ids.any(|id| clash(piece(self, id), piece(u, id), piece(t, id)))
    }
}

impl Replica {
    fn node(&self, me: usize) -> Node {
        let n = self.script.len();
        let multicast = if self.bugs.multicast {
            Multicast::broken(self.mode, me, n)
        } else {
            Multicast::new(self.mode, me, n)
        };
        let mut recorder = Recorder::new(me, n);
        if self.bugs.no_channel_recording {
            recorder = recorder.without_channel_recording();
        }
        if self.bugs.shared_channel_closing {
            recorder = recorder.with_shared_channel_closing();
        }
        if !self.strict_fifo {
            recorder = recorder.tolerate_reordering();
        }
        let mut kv = self.opening.store();
        if self.bugs.debit_only {
            kv = kv.debit_only_when_short();
        }
        let node = self
            .faults
            .node(Node::from_parts(multicast, recorder).with_store(kv));
        let defaults = node.limits();
        let max_snapshots = match (self.bugs.unbounded_snapshots, self.max_snapshots) {
            (true, _) => u64::MAX,
            (false, max) => max.unwrap_or(defaults.max_snapshots),
        };
        let limits = Limits {
            max_batch: self.batch,
            max_snapshots,
            ..defaults
        };
        let node = node.with_limits(limits);
        if self.bugs.delivery_order {
            node.with_resolution(Resolution::DeliveryOrder)
        } else {
            node
        }
    }

    /// Replica `me`'s next client write from its script, in state `s`.
    pub fn next_write(&self, me: usize, s: &ReplicaState) -> Input {
        Input::Client {
            req: s.issued as u64 + 1,
            cmd: Command::Write(self.script[me][s.issued].clone()),
        }
    }

    /// Feeds one input to the spec node and carries its outputs out.
    fn handle(&self, s: &mut ReplicaState, input: Input, o: &mut Out<Self>) {
        let mut rt = Runtime {
            faults: &self.faults,
            node: &mut s.node,
            ghost: &mut s.ghost,
        };
        let outputs = rt.feed(input, o);
        rt.rearm(o);
        Self::record(s, outputs);
    }

    /// Records what the properties judge; the runtime did the rest.
    fn record(s: &mut ReplicaState, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Multicast { id } => s.log.push(Event::Send(id)),
                Output::Delivered { id, .. } => s.log.push(Event::Deliver(id)),
                Output::SnapshotComplete(part) => {
                    s.parts.insert(part.id, Sealed::new(*part));
                }
                // Every property of a snapshot reads its parts and ledger
                // slices that are fixed once every part is complete, and the
                // initiator commits only after every part is stored: so each
                // run passes a state holding all of them, judged there. After
                // that a part is dead weight, and two runs that recorded
                // differently would stay apart for the rest of the search.
                Output::SnapshotCommitted { id, .. } => {
                    s.parts.remove(&id);
                    s.judged.remove(&id);
                }
                Output::Reply {
                    reply: Reply::Error(e),
                    ..
                } if e == INSUFFICIENT_FUNDS => s.refused += 1,
                // The runtime carried out the rest.
                _ => {}
            }
        }
    }

    /// This replica's runtime over state `s` (the picture re-runs steps with it).
    pub(crate) fn runtime<'a>(&'a self, s: &'a mut ReplicaState) -> Runtime<'a> {
        Runtime {
            faults: &self.faults,
            node: &mut s.node,
            ghost: &mut s.ghost,
        }
    }
}

impl Actor for Replica {
    type Msg = Wire;
    type State = ReplicaState;
    type Timer = Step;
    type Random = ();
    type Storage = ();

    fn on_start(&self, id: Id, _: &Option<()>, o: &mut Out<Self>) -> ReplicaState {
        if !self.script[usize::from(id)].is_empty() {
            arm(o, Step::Write);
        }
        if self.snapshots {
            // How many snapshots may start is bounded globally (`within_boundary`).
            arm(o, Step::Snapshot);
        }
        self.faults.arm(usize::from(id), self.script.len(), o);
        ReplicaState {
            node: self.node(usize::from(id)),
            log: Vec::new(),
            parts: BTreeMap::new(),
            judged: BTreeSet::new(),
            snapshots_started: 0,
            snapshots_refused: 0,
            snapshot_quota: None,
            issued: 0,
            quota: self.script[usize::from(id)].len(),
            refused: 0,
            ghost: Shared::default(),
            acks_unread: self.faults.acks_unread(),
            log_judged: self.log_judged,
            digest: Digest::default(),
            accounts: Keyed::default(),
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<ReplicaState>, step: &Step, o: &mut Out<Self>) {
        if state.ghost.crashed {
            return;
        }
        let s = state.to_mut();
        match step {
            Step::Write => {
                let input = self.next_write(usize::from(id), s);
                s.issued += 1;
                self.handle(s, input, o);
                if s.issued < s.quota {
                    arm(o, Step::Write);
                }
                // A flush is a step of its own only while a batch waits.
                if s.node.unflushed_writes() > 0 {
                    arm(o, Step::Flush);
                } else {
                    o.cancel_timer(Step::Flush);
                }
            }
            Step::Flush => self.handle(s, Input::Flush, o),
            Step::Snapshot => {
                s.snapshots_started += 1;
                // Still a step of the node, which changes nothing there.
                if s.node.snapshot_refusal().is_some() {
                    s.snapshots_refused += 1;
                }
                self.handle(s, Input::StartSnapshot, o);
                if s.snapshot_quota.is_none_or(|q| s.snapshots_started < q) {
                    arm(o, Step::Snapshot);
                }
            }
            Step::Fault(fault) => {
                let outputs = self.runtime(s).on_fault(*fault, o);
                Self::record(s, outputs);
            }
            Step::Multicast => unreachable!("a replica only writes and snapshots"),
        }
    }

    fn on_msg(&self, _: Id, state: &mut Cow<ReplicaState>, src: Id, wire: Wire, o: &mut Out<Self>) {
        if state.ghost.crashed {
            return;
        }
        let s = state.to_mut();
        let outputs = self.runtime(s).on_wire(usize::from(src), wire, o);
        Self::record(s, outputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(deliveries: u64, snapshots: &[(u64, u64)]) -> Judged {
        let id = |seq| SnapshotId { initiator: 0, seq };
        Judged {
            deliveries,
            snapshots: snapshots.iter().map(|&(seq, d)| (id(seq), d)).collect(),
        }
    }

    /// The order of two steps shows when both change the deliveries, or
    /// both one snapshot (a snapshot first known counts as changed), each
    /// to a value of its own; not when they change different pieces, or one
    /// piece to the same value.
    #[test]
    fn the_order_shows_where_two_steps_change_a_piece_apart() {
        let before = judged(1, &[(1, 10)]);
        let shows = |u: Judged, t: Judged| before.order_shows(&u, &t);
        assert!(shows(judged(2, &[(1, 10)]), judged(3, &[(1, 10)])));
        assert!(shows(judged(1, &[(1, 11)]), judged(1, &[(1, 12)])));
        assert!(shows(
            judged(1, &[(1, 10), (2, 20)]),
            judged(1, &[(1, 10), (2, 21)])
        ));
        assert!(!shows(
            judged(1, &[(1, 11)]),
            judged(1, &[(1, 10), (2, 20)])
        ));
        assert!(!shows(judged(2, &[(1, 10)]), judged(1, &[(1, 11)])));
        assert!(!shows(judged(1, &[(1, 10)]), judged(2, &[(1, 11)])));
        assert!(!shows(judged(2, &[(1, 11)]), judged(2, &[(1, 11)])));
        assert!(!shows(
            judged(1, &[(1, 10), (2, 20)]),
            judged(1, &[(1, 10), (2, 20)])
        ));
    }
}
