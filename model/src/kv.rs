//! The replicated K/V store over one ordering mode: the spec's whole replica
//! ([`Node`]: multicast + K/V state machine + Chandy-Lamport recorder, the very
//! one the tokio node runs), model checked. Orders: FIFO, causal (Birman,
//! Schiper & Stephenson 1991), a fixed sequencer (Chang & Maxemchuk 1984), ISIS
//! agreed priorities (Birman & Joseph 1987); snapshots: Chandy & Lamport (1985);
//! last-writer-wins registers stamped with Lamport clocks (Lamport 1978).
//!
//! `nodes` replicas each issue `writes` client writes at any moment, from
//! [`KvCfg::script`]: odd ones `LPUSH x <origin>.<k>` (a list: order matters),
//! even ones `INCR c` (not idempotent: under fifo/causal resolved at the
//! origin; under the total modes every increment must count) and, with two or
//! more, last a `TRANSFER` between the bank's accounts (one covered, one
//! overdrawing unless the other came first), and any replica may start a
//! snapshot (at most `snapshots` in all). The [`Replica`] actor is also the
//! snapshot model's account: one bank, the product's.
//! An actor only feeds [`Input`](gsmo_spec::node::Input)s to [`Node::handle`] and carries its
//! [`Output`](gsmo_spec::node::Output)s out; a ghost log of sends and deliveries, and the snapshot parts
//! the replica completes, are what the properties judge. Always:
//! * **convergence**: replicas that delivered the same set of writes hold the
//!   same store ([`gsmo_spec::properties::convergence`]);
//! * **integrity**, and **total order** under the total modes;
//! * **conservation** under the total modes: every replica's accounts, and
//!   every recorded part's, hold the opening total;
//! * **consistent cut**: every completed snapshot is a consistent cut, by
//!   channel counts and by delivery vectors;
//! * **snapshot restores**: every completed snapshot, restored with
//!   [`Cluster::restore`] and run to quiescence, leaves every replica with the
//!   same store, holding exactly the writes their origins had sent before the cut.
//!
//! Eventually: every write delivered everywhere, and **termination**: every
//! write answered, every snapshot started complete at every replica.
//! With links small enough to fill ([`Faults::link_buffer`]), always: **writes
//! flow when quiet**, no link full once nothing is in flight
//! ([`gsmo_spec::properties::writes_flow`]); under total-sequencer, **held acks
//! stay held**: no member learns of deliveries past the sequencer's hold, not
//! even from a reconnect ([`gsmo_spec::properties::acks_stay_held`]).
//!
//! Broken variants: `delivery-order` (FIFO/causal replicas applying writes in
//! delivery order rather than last-writer-wins) diverges; `no-wait` and
//! `no-tie-break` (the total modes' broken multicasts) break total order and
//! then convergence; `debit-only` (a TRANSFER short of funds that debits and
//! credits nobody) breaks conservation; `no-channel-recording` (a recorder that records states
//! only) loses the writes in flight at the cut on restore; `reordering`
//! channels let a marker overtake a write, which the restore then loses;
//! `silent-release` (the sequencer's ack hold let go without the acks owed)
//! leaves a member refusing writes for good; `leaky-resume` (a reconnect told
//! the true resume point under a hold) lets a member past the hold.
//!
//! [`Node`]: gsmo_spec::node::Node
//! [`Node::handle`]: gsmo_spec::node::Node::handle

use crate::adapter::{self, Channels};
use crate::digest::{digest, holds, Sealed};
use crate::faults::Faults;
use crate::verdict::Explained;
use clap::ValueEnum;
use gsmo_spec::kv::{Data, KvStore, Op};
use gsmo_spec::link::LinkBug;
use gsmo_spec::multicast::sequencer::SEQUENCER;
use gsmo_spec::multicast::{Mode, MsgId};
use gsmo_spec::node::Part;
use gsmo_spec::properties::{
    acks_stay_held, all_delivered, causal_order, consistent_cut, consistent_delivery_vectors,
    convergence, integrity, total_order, writes_flow, Event, FullLink, LeakedHold, Violation,
};
use gsmo_spec::sim::Cluster;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_view::text;
use stateright::actor::{ActorModel, ActorModelState};
use stateright::{Expectation, Model};
use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

pub use crate::replica::{snapshots_started, Bugs, Opening, Replica, ReplicaState};

/// The list every replica pushes to: all pushes conflict, which is the point.
pub const KEY: &[u8] = b"x";
/// The counter every replica increments.
pub const COUNTER: &[u8] = b"c";

/// The prefix of the bank's account keys, one account per replica (`acct:0`, ...).
pub const ACCOUNT: &str = "acct:";

/// Replica `i`'s account key.
pub fn account(i: usize) -> Vec<u8> {
    format!("{ACCOUNT}{i}").into_bytes()
}

/// The bank's opening: `balance` in every replica's account.
pub fn opening(n: usize, balance: u64) -> Opening {
    Opening {
        pairs: (0..n)
            .map(|i| (account(i), balance.to_string().into_bytes()))
            .collect(),
    }
}

/// The money in every account of `kv`.
pub fn bank_total(kv: &KvStore) -> i64 {
    kv.sum_prefix(ACCOUNT.as_bytes())
        .expect("accounts hold integers")
}

/// `TRANSFER` from replica `i`'s account to the next replica's.
pub fn transfer_to_next(i: usize, n: usize, amount: u64) -> Op {
    Op::Transfer {
        from: account(i),
        to: account((i + 1) % n),
        amount: amount as i64,
    }
}

/// The K/V model's configuration.
#[derive(Clone, Debug)]
pub struct KvCfg {
    /// The ordering mode every replica runs.
    pub mode: Mode,
    pub nodes: usize,
    /// Writes each replica issues.
    pub writes: u64,
    /// Snapshots started in all, by any replicas.
    pub snapshots: usize,
    pub channels: Channels,
    pub broken: Option<KvBug>,
    /// Broken connections (and, for other models, crashes, time, disks).
    pub faults: Faults,
    /// Writes a replica multicasts as one batch at most ([`Limits::max_batch`](gsmo_spec::node::Limits::max_batch));
    /// above 1 a replica may also flush a smaller batch at any moment.
    pub batch: u64,
}

/// The K/V model's deliberately broken variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KvBug {
    /// fifo/causal only: apply writes in delivery order instead of by
    /// last-writer-wins stamps. Caught by "convergence".
    DeliveryOrder,
    /// total-sequencer only: a member delivers its own writes when it sends
    /// them, before their global number.
    /// Caught by "total order" (and then "convergence").
    NoWait,
    /// total-isis only: order equal priorities by local arrival, not node id.
    /// Caught by "total order" (and then "convergence").
    NoTieBreak,
    /// total modes only: a `TRANSFER` short of funds debits its source and
    /// credits nobody. Caught by "conservation".
    DebitOnly,
    /// The recorder records states but not channel contents: writes in flight
    /// at the cut vanish on restore. Caught by "snapshot restores".
    NoChannelRecording,
    /// Channels that reorder, and no link layer to put frames back in order:
    /// a marker overtakes a write, which then belongs to no part of the
    /// snapshot. Caught by "snapshot restores".
    Reordering,
    /// No link layer under broken connections: what was in flight is lost.
    /// Caught by "all delivered".
    NoLinkLayer,
    /// total-sequencer with a small `--link-buffer`: the sequencer lets its
    /// held acks go without sending them, so a member whose writes its hold
    /// refused stays full. Caught by "writes flow when quiet".
    SilentRelease,
    /// total-sequencer with a small `--link-buffer` and `--disconnects`: a
    /// member reconnecting to the sequencer during a hold is told the true
    /// resume point, which acknowledges what the hold holds. Caught by "held
    /// acks stay held".
    LeakyResume,
}

impl KvBug {
    /// The variant's name on the command line.
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        match self {
            KvBug::DeliveryOrder => "convergence",
            KvBug::NoWait | KvBug::NoTieBreak => "total order",
            KvBug::DebitOnly => "conservation",
            KvBug::NoChannelRecording | KvBug::Reordering => "snapshot restores",
            KvBug::NoLinkLayer => "all delivered",
            KvBug::SilentRelease => FLOW,
            KvBug::LeakyResume => HELD,
        }
    }
}

impl Default for KvCfg {
    fn default() -> Self {
        KvCfg {
            mode: Mode::TotalSequencer,
            nodes: 2,
            writes: 2,
            snapshots: 1,
            channels: Channels::Ordered,
            broken: None,
            faults: Faults::default(),
            batch: 1,
        }
    }
}

impl KvCfg {
    /// The default configuration over `mode`.
    pub fn new(mode: Mode) -> Self {
        KvCfg {
            mode,
            ..KvCfg::default()
        }
    }

    /// Refuses configurations the model cannot run or a variant cannot apply to.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 {
            return Err("a cluster needs at least one replica".into());
        }
        if self.batch == 0 {
            return Err("a batch holds at least one write: --batch 1 or more".into());
        }
        self.effective_faults()
            .check_ack_budget(self.nodes * self.writes as usize, self.snapshots)?;
        // Redelivery would make the space infinite and a replica's recorder
        // count a write twice; total-sequencer --broken duplicating shows it.
        if self.effective_channels() == Channels::Duplicating {
            return Err("kv runs on ordered, unordered or lossy channels, not duplicating".into());
        }
        match (self.broken, self.mode) {
            (Some(KvBug::DeliveryOrder), m) if m.is_total() => Err(format!(
                "delivery-order is the fifo/causal variant: {m} already applies in delivery order"
            )),
            (Some(KvBug::NoWait), m) if m != Mode::TotalSequencer => Err(format!(
                "no-wait is total-sequencer's broken variant, not {m}'s"
            )),
            (Some(KvBug::NoTieBreak), m) if m != Mode::TotalIsis => Err(format!(
                "no-tie-break is total-isis's broken variant, not {m}'s"
            )),
            (Some(KvBug::DebitOnly), m) if !m.is_total() => Err(format!(
                "debit-only breaks conservation, which {m} does not promise (concurrent transfers \
                 are last-writer-wins there): use a total mode"
            )),
            (Some(KvBug::DebitOnly), _) if self.writes < 2 => {
                Err("debit-only needs a TRANSFER: --msgs 2 or more".into())
            }
            (Some(b @ (KvBug::NoChannelRecording | KvBug::Reordering)), _)
                if self.snapshots == 0 =>
            {
                Err(format!(
                    "{} breaks snapshots: it needs --snapshots 1 or more",
                    b.name()
                ))
            }
            (Some(KvBug::NoLinkLayer), _) if self.faults.disconnects == 0 => {
                Err("no-link-layer loses frames with broken connections: it needs --disconnects 1 or more".into())
            }
            (Some(b @ (KvBug::SilentRelease | KvBug::LeakyResume)), m)
                if m != Mode::TotalSequencer =>
            {
                Err(format!(
                    "{} breaks the sequencer's ack hold, which {m} does not have",
                    b.name()
                ))
            }
            (Some(b @ (KvBug::SilentRelease | KvBug::LeakyResume)), _)
                if self.faults.link_buffer.is_none() =>
            {
                Err(format!(
                    "{} breaks the ack hold, which needs a link to fill: --link-buffer 1, say",
                    b.name()
                ))
            }
            (Some(KvBug::LeakyResume), _) if self.faults.disconnects == 0 => Err(
                "leaky-resume lets a hold go at a reconnect: it needs --disconnects 1 or more"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The channels actually used: a network variant overrides `channels`.
    pub fn effective_channels(&self) -> Channels {
        match self.broken {
            Some(KvBug::Reordering) => Channels::Unordered,
            _ => self.channels,
        }
    }

    /// Replica `i`'s client writes: `LPUSH x i.k` (odd k) and `INCR c` (even k), except that with two writes or
    /// more the last is `TRANSFER acct:i acct:i+1 (i+1)` out of an opening
    /// balance of 1. Replica 0's is covered; replica 1's overdraws unless replica
    /// 0's has arrived first, so both sides of the funds check are reached.
    /// With batches under fifo/causal the others are blind `SET x i.k`: a
    /// read-modify-write flushes the batch before it there, so only blind
    /// writes share a batch.
    pub fn script(&self) -> Vec<Vec<Op>> {
        let blind = self.batch > 1 && !self.mode.is_total();
        (0..self.nodes)
            .map(|i| {
                (1..=self.writes)
                    .map(|k| {
                        if k == self.writes && k >= 2 {
                            transfer_to_next(i, self.nodes, i as u64 + 1)
                        } else if blind {
                            Op::Set {
                                key: KEY.to_vec(),
                                value: format!("{i}.{k}").into_bytes(),
                            }
                        } else if k % 2 == 1 {
                            // A list push: order-sensitive, so convergence is at stake.
                            Op::Push {
                                key: KEY.to_vec(),
                                values: vec![format!("{i}.{k}").into_bytes()],
                                left: true,
                            }
                        } else {
                            // Not idempotent: a duplicate or lost delivery shows.
                            Op::IncrBy {
                                key: COUNTER.to_vec(),
                                delta: 1,
                            }
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The bank's money: an opening balance of 1 in every account.
    pub fn total(&self) -> i64 {
        self.nodes as i64
    }

    /// The faults actually used: the link variants run without the link layer.
    pub fn effective_faults(&self) -> Faults {
        let link = match self.broken {
            Some(KvBug::Reordering | KvBug::NoLinkLayer) => LinkBug::Bypass,
            Some(KvBug::SilentRelease) => LinkBug::SilentRelease,
            Some(KvBug::LeakyResume) => LinkBug::LeakyResume,
            _ => self.faults.link,
        };
        Faults {
            link,
            ..self.faults
        }
    }

    pub fn into_model(self) -> KvModel {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let channels = self.effective_channels();
        let b = self.broken;
        let replica = Replica {
            mode: self.mode,
            script: Arc::new(self.script()),
            opening: opening(self.nodes, 1),
            bugs: Bugs {
                multicast: matches!(b, Some(KvBug::NoWait | KvBug::NoTieBreak)),
                delivery_order: b == Some(KvBug::DeliveryOrder),
                no_channel_recording: b == Some(KvBug::NoChannelRecording),
                shared_channel_closing: false,
                debit_only: b == Some(KvBug::DebitOnly),
                unbounded_snapshots: false,
            },
            snapshots: self.snapshots > 0,
            batch: self.batch,
            max_snapshots: None,
            strict_fifo: channels == Channels::Ordered,
            faults: self.effective_faults(),
            log_judged: true,
        };
        let mut model = ActorModel::new(self.clone(), ())
            .actors(vec![replica; self.nodes])
            .init_network(channels.network())
            .lossy_network(channels.lossy())
            .property(Expectation::Always, "convergence", |_, s| {
                converged(s).is_ok()
            })
            .property(Expectation::Always, "integrity", |_, s| {
                integrity(&logs(&s.actor_states)).is_ok()
            });
        if self.mode.is_total() {
            model = model.property(Expectation::Always, "total order", |_, s| {
                total_order(&logs(&s.actor_states)).is_ok()
            });
        }
        if self.mode.is_causal() {
            model = model.property(Expectation::Always, "causal order", |_, s| {
                causal_order(&logs(&s.actor_states)).is_ok()
            });
        }
        if self.mode.is_total() {
            // Money is conserved only under a total order: fifo/causal resolve a
            // TRANSFER at its origin, and concurrent ones are last-writer-wins.
            model = model.property(Expectation::Always, "conservation", |m, s| {
                conserved_now(m.cfg.total(), s)
            });
        }
        model = model
            .property(Expectation::Always, "consistent cut", |_, s| {
                all_snapshots(s, "cut", |p| cut(p).is_ok())
            })
            .property(Expectation::Always, "snapshot restores", |_, s| {
                all_snapshots(s, "restores", |p| restores(p).is_ok())
            })
            // Sound: the model is finite and acyclic. Every step issues a write
            // (at most `writes` per replica), starts a snapshot (at most
            // `snapshots`, by the boundary), or consumes one of the finitely many
            // messages sent (each write causes a bounded number of protocol
            // messages, each snapshot n-1 markers per replica), so no path revisits
            // a state. Paths end only when nothing is left to do. The condition is
            // stable, so whether it held earlier on a path depends on the state
            // alone (stateright's per-path bits, not part of the fingerprint,
            // cannot disagree where paths join), and judging it where paths end
            // is exact.
            .property(Expectation::Eventually, "all delivered", |_, s| {
                all_delivered(&logs(&s.actor_states)).is_ok() && all_issued(s)
            })
            // Sound for the reason above.
            .property(Expectation::Eventually, "termination", |_, s| {
                terminated_now(s)
            });
        if self.faults.link_buffer.is_some() && !self.faults.crash {
            // A crashed peer never acks: its link stays full for good (a
            // whole-cluster restore is the way back), so crashes are left out.
            model = model
                .property(Expectation::Always, FLOW, |_, s| {
                    !quiet(s) || writes_flow(&full_links(s)).is_ok()
                })
                // Non-vacuity: a link fills, so a write can be refused.
                .property(Expectation::Sometimes, "link full", |_, s| {
                    !full_links(s).is_empty()
                });
            if self.mode == Mode::TotalSequencer && self.nodes >= 2 {
                model = model
                    .property(Expectation::Always, HELD, |_, s| {
                        acks_stay_held(&leaked_holds(s)).is_ok()
                    })
                    // Non-vacuity: the sequencer holds its acks back.
                    .property(Expectation::Sometimes, "acks held", |_, s| {
                        let n0 = &s.actor_states[SEQUENCER].node;
                        (1..n0.cluster_size()).any(|j| n0.link(j).acks_held())
                    });
            }
        }
        if self.snapshots > 0 {
            // Non-vacuity: some snapshot really has to restore a write in flight.
            model = model.property(
                Expectation::Sometimes,
                "write in flight recorded",
                |_, s| {
                    sealed_snapshots(s)
                        .iter()
                        .any(|parts| parts.iter().any(|p| p.channel_messages() > 0))
                },
            );
        }
        if self.writes >= 2 {
            // Non-vacuity: the funds check refuses (or, broken, overdraws) somewhere.
            model = model.property(Expectation::Sometimes, "overdraft refused", |_, s| {
                overdraft_tried(s)
            });
        }
        if !self.mode.is_total() {
            // Non-vacuity: convergence is tested on replicas that applied the same
            // writes in different orders, where delivery order alone would diverge.
            model = model.property(Expectation::Sometimes, "orders differ", |_, s| {
                orders_differ(s)
            });
        }
        model.within_boundary(|cfg, s| snapshots_started(&s.actor_states) <= cfg.snapshots)
    }
}

pub type KvModel = ActorModel<Replica, KvCfg>;
type State = ActorModelState<Replica>;
/// A state of any model of [`Replica`]s, whatever its ghost history.
pub type ReplicasState<H> = ActorModelState<Replica, H>;

/// Each replica's ghost log, in node order: the shape the spec predicates take.
pub fn logs(states: &[Arc<ReplicaState>]) -> Vec<&[Event]> {
    states.iter().map(|s| s.log.as_slice()).collect()
}

fn delivered(log: &[Event]) -> impl Iterator<Item = MsgId> + '_ {
    log.iter().filter_map(|e| match e {
        Event::Deliver(m) => Some(*m),
        Event::Send(_) => None,
    })
}

/// The name of [`writes_flow`]'s property.
const FLOW: &str = "writes flow when quiet";

/// The name of [`acks_stay_held`]'s property.
const HELD: &str = "held acks stay held";

/// The members that know of more of their frames delivered than the
/// sequencer's hold on them began with ([`Node::leaked_hold`](gsmo_spec::node::Node::leaked_hold)).
fn leaked_holds<H>(s: &ReplicasState<H>) -> Vec<LeakedHold> {
    let n0 = &s.actor_states[SEQUENCER].node;
    s.actor_states
        .iter()
        .skip(SEQUENCER + 1)
        .filter_map(|a| n0.leaked_hold(&a.node))
        .collect()
}

/// Nothing in flight and every connection up: every frame sent was delivered
/// and every ack owed could have gone.
fn quiet<H>(s: &ReplicasState<H>) -> bool {
    s.network.len() == 0
        && s.actor_states.iter().all(|a| {
            let node = &a.node;
            (0..node.cluster_size()).all(|j| j == node.id() || node.link(j).is_up())
        })
}

/// Every replica's full link, if any ([`Node::full_link`](gsmo_spec::node::Node::full_link)).
fn full_links<H>(s: &ReplicasState<H>) -> Vec<FullLink> {
    s.actor_states
        .iter()
        .filter_map(|a| a.node.full_link(0))
        .collect()
}

/// Whether every replica has issued every write of its script.
fn all_issued<H>(s: &ReplicasState<H>) -> bool {
    s.actor_states.iter().all(|a| a.issued == a.quota)
}

/// Termination: every write issued and answered, and every snapshot started is
/// complete at every replica (its part kept, or committed and let go).
pub fn terminated<H>(s: &ReplicasState<H>) -> Result<(), Violation> {
    let waiting: Vec<String> = waiting(s).map(|w| w.to_string()).collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(Violation {
            property: "termination",
            detail: waiting.join("; "),
        })
    }
}

/// [`terminated`] as the checker asks it, in every state: nothing is
/// formatted unless a report needs it (formatting was 5% of a bank check).
pub fn terminated_now<H>(s: &ReplicasState<H>) -> bool {
    waiting(s).next().is_none()
}

/// What keeps a run from having terminated, one item per gap, in replica order.
fn waiting<H>(s: &ReplicasState<H>) -> impl Iterator<Item = Waiting> + '_ {
    let states = &s.actor_states;
    states.iter().enumerate().flat_map(move |(i, a)| {
        let unissued = (a.issued < a.quota).then_some(Waiting::Unissued {
            node: i,
            issued: a.issued,
            quota: a.quota,
        });
        let pending = a.node.pending_writes();
        let unanswered = (pending > 0).then_some(Waiting::Unanswered { node: i, pending });
        let incomplete = a.snapshot_seqs().flat_map(move |seq| {
            let id = SnapshotId { initiator: i, seq };
            states.iter().enumerate().filter_map(move |(j, b)| {
                (!b.parts.contains_key(&id)
                    && !b.judged.contains(&id)
                    && !b.ghost.committed.contains(&id))
                .then_some(Waiting::Incomplete { node: j, id })
            })
        });
        unissued.into_iter().chain(unanswered).chain(incomplete)
    })
}

/// One reason a run has not terminated.
enum Waiting {
    Unissued {
        node: usize,
        issued: usize,
        quota: usize,
    },
    Unanswered {
        node: usize,
        pending: usize,
    },
    Incomplete {
        node: usize,
        id: SnapshotId,
    },
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Unissued {
                node,
                issued,
                quota,
            } => write!(f, "n{node} issued {issued} of its {quota} writes"),
            Waiting::Unanswered { node, pending } => {
                write!(f, "n{node} never answered {pending} of its writes")
            }
            Waiting::Incomplete { node, id } => write!(f, "n{node} never completed snapshot {id}"),
        }
    }
}

/// Whether some replica's funds check refused a TRANSFER (or, broken, let it overdraw).
pub fn overdraft_tried<H>(s: &ReplicasState<H>) -> bool {
    s.actor_states
        .iter()
        .any(|a| a.refused > 0 || accounts(a).1)
}

/// A replica's money and whether one of its accounts is below zero, computed
/// once per change of the replica's store (the properties ask in every state).
pub(crate) fn accounts(a: &ReplicaState) -> (i64, bool) {
    let kv = a.node.kv();
    a.accounts.get(digest(kv), || fresh_accounts(kv))
}

/// [`accounts`], computed afresh.
pub(crate) fn fresh_accounts(kv: &KvStore) -> (i64, bool) {
    (bank_total(kv), overdrawn(kv))
}

fn overdrawn(kv: &KvStore) -> bool {
    kv.iter().any(|(k, v)| {
        k.starts_with(ACCOUNT.as_bytes()) && matches!(v, Data::Str(b) if b.starts_with(b"-"))
    })
}

/// Conservation on the real TRANSFER: every replica's accounts hold `total`,
/// now and in every part of every completed snapshot. (A replicated TRANSFER is
/// applied atomically at each replica, so unlike the lecture's bank no money is
/// ever "in flight": a transfer recorded in a channel is caught by the restore.)
pub fn conserved<H>(total: i64, s: &ReplicasState<H>) -> Result<(), Violation> {
    let fail = |detail: String| {
        Err(Violation {
            property: "conservation",
            detail,
        })
    };
    for (i, a) in s.actor_states.iter().enumerate() {
        let held = bank_total(a.node.kv());
        if held != total {
            return fail(format!(
                "n{i}'s accounts hold {held}, not {total}: {}",
                balances(a.node.kv())
            ));
        }
    }
    complete_snapshots(s)
        .iter()
        .try_for_each(|parts| parts_conserved(total, parts))
}

/// [`conserved`] as a property: each completed snapshot judged once.
pub fn conserved_now<H>(total: i64, s: &ReplicasState<H>) -> bool {
    s.actor_states.iter().all(|a| accounts(a).0 == total)
        && sealed_snapshots(s).iter().all(|p| {
            snapshot_holds("conservation", p, total, |p| {
                parts_conserved(total, p).is_ok()
            })
        })
}

/// Every part of one snapshot records `total` in its accounts.
pub(crate) fn parts_conserved(total: i64, parts: &[Part]) -> Result<(), Violation> {
    for p in parts {
        let held = bank_total(&p.state.kv);
        if held != total {
            return Err(Violation {
                property: "conservation",
                detail: format!(
                    "n{}'s part of snapshot {} records {held}, not {total}: {}",
                    p.node,
                    p.id,
                    balances(&p.state.kv)
                ),
            });
        }
    }
    Ok(())
}

/// `acct:0 = 1, acct:1 = -1`
pub fn balances(kv: &KvStore) -> String {
    kv.iter()
        .filter(|(k, _)| k.starts_with(ACCOUNT.as_bytes()))
        .map(|(k, v)| format!("{} = {}", text::bytes(k), text::data(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn converged(s: &State) -> Result<(), Violation> {
    let replicas: Vec<(BTreeSet<MsgId>, _)> = s
        .actor_states
        .iter()
        .map(|a| (delivered(&a.log).collect(), a.node.kv()))
        .collect();
    convergence(&replicas)
}

fn orders_differ(s: &State) -> bool {
    let orders: Vec<Vec<MsgId>> = s
        .actor_states
        .iter()
        .map(|a| delivered(&a.log).collect())
        .collect();
    orders.iter().enumerate().any(|(i, a)| {
        orders[i + 1..].iter().any(|b| {
            a != b && a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
        })
    })
}

/// Every snapshot whose parts all replicas have completed, parts in node order.
pub fn complete_snapshots<H>(s: &ReplicasState<H>) -> Vec<Vec<Part>> {
    sealed_snapshots(s)
        .into_iter()
        .map(|parts| parts.iter().map(|p| Part::clone(p)).collect())
        .collect()
}

/// [`complete_snapshots`], the parts shared rather than copied.
pub fn sealed_snapshots<H>(s: &ReplicasState<H>) -> Vec<Vec<Sealed<Part>>> {
    adapter::complete_snapshots(&s.actor_states, |a| &a.parts)
}

/// Whether `check` holds for the snapshot of `parts`, judged once per distinct
/// parts and `extra` (which must be everything else `check` reads).
pub fn snapshot_holds(
    what: &str,
    parts: &[Sealed<Part>],
    extra: impl Hash,
    check: impl FnOnce(&[Part]) -> bool,
) -> bool {
    let ids: Vec<u64> = parts.iter().map(Sealed::digest).collect();
    holds(digest(&(what, ids, extra)), || {
        check(&parts.iter().map(|p| Part::clone(p)).collect::<Vec<_>>())
    })
}

/// Every completed snapshot passes `check` (named `what`, reading nothing but the parts).
pub fn all_snapshots<H>(s: &ReplicasState<H>, what: &str, check: fn(&[Part]) -> bool) -> bool {
    sealed_snapshots(s)
        .iter()
        .all(|p| snapshot_holds(what, p, (), check))
}

/// Consistent cut, by channel counts and by the multicast delivery vectors.
pub fn cut(parts: &[Part]) -> Result<(), Violation> {
    consistent_cut(parts)?;
    let sent: Vec<u64> = parts.iter().map(|p| p.state.multicast.sent()).collect();
    let delivered: Vec<Vec<u64>> = parts
        .iter()
        .map(|p| p.state.multicast.delivered().to_vec())
        .collect();
    consistent_delivery_vectors(&sent, &delivered)
}

fn restore_violation(id: SnapshotId, detail: String) -> Violation {
    Violation {
        property: "snapshot restores",
        detail: format!("snapshot {id}: {detail}"),
    }
}

/// Restores a snapshot with the spec's own [`Cluster::restore`], runs it to
/// quiescence, and demands one store everywhere holding exactly the writes
/// each origin had sent before its record point.
pub fn restores(parts: &[Part]) -> Result<(), Violation> {
    let id = parts[0].id;
    let mut c = Cluster::restore(parts)
        .map_err(|e| restore_violation(id, format!("restore failed: {e}")))?;
    c.quiesce()
        .map_err(|e| restore_violation(id, format!("restored cluster failed: {e}")))?;
    let cut: Vec<u64> = parts.iter().map(|p| p.state.multicast.sent()).collect();
    for (j, node) in c.nodes.iter().enumerate() {
        let held = node.state().multicast.delivered();
        if held != cut.as_slice() {
            return Err(restore_violation(
                id,
                format!(
                    "after restore node {j} holds {held:?} writes per origin, but the origins had sent {cut:?} before the cut"
                ),
            ));
        }
        if node.kv() != c.nodes[0].kv() {
            return Err(restore_violation(
                id,
                format!(
                    "after restore nodes 0 and {j} hold different stores: x = {} vs x = {}",
                    show(c.nodes[0].kv().data(KEY)),
                    show(node.kv().data(KEY))
                ),
            ));
        }
    }
    Ok(())
}

fn show(v: Option<&gsmo_spec::kv::Data>) -> String {
    v.map_or("(nil)".into(), |v| {
        String::from_utf8_lossy(&v.render()).into_owned()
    })
}

impl Explained for KvModel {
    fn why(&self, property: &'static str, s: &State) -> Option<String> {
        let logs = logs(&s.actor_states);
        let r = match property {
            "convergence" => converged(s).map_err(|v| {
                let stores: Vec<String> = s
                    .actor_states
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("n{i}: x = {}", show(a.node.kv().data(KEY))))
                    .collect();
                Violation {
                    detail: format!("{} ({})", v.detail, stores.join(", ")),
                    ..v
                }
            }),
            "integrity" => integrity(&logs),
            "total order" => total_order(&logs),
            "causal order" => causal_order(&logs),
            "consistent cut" => complete_snapshots(s).iter().try_for_each(|p| cut(p)),
            "snapshot restores" => complete_snapshots(s).iter().try_for_each(|p| restores(p)),
            "all delivered" => all_delivered(&logs),
            "conservation" => conserved(self.cfg.total(), s),
            "termination" => terminated(s),
            FLOW if quiet(s) => writes_flow(&full_links(s)),
            HELD => acks_stay_held(&leaked_holds(s)),
            _ => Ok(()),
        };
        r.err().map(|v| v.to_string())
    }

    fn describe(&self, action: &<Self as Model>::Action) -> String {
        crate::display::action(action, crate::display::kv_wire)
    }
}

#[cfg(test)]
mod tests;
