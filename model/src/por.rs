//! Partial-order reduction by persistent sets (Godefroid 1996, "Partial-Order
//! Methods for the Verification of Concurrent Systems", LNCS 1032, ch. 4) for
//! the snapshot bank: of the steps enabled in a state, the search takes those
//! of a few replicas only, chosen so that nothing it judges is lost.
//!
//! **Independence.** A step of replica `i` (a delivery to it, one of its
//! timers) reads and writes only `i`'s state and timers, takes the head of one
//! channel into `i`, appends to channels out of `i`, and extends the ledger
//! rows of `i`'s sends. A step of another replica touches none of that, and
//! cannot take away the frame `i` is about to take, so neither disables the
//! other and both orders end in the same state. The one exception is the
//! global bound on snapshot starts: a start by `j` may use up the last one `i`
//! wanted. So the reduced model hands the bound out first, one initial state
//! per way of splitting it into quotas ([`crate::replica::ReplicaState::snapshot_quota`]).
//! Every run of the full model stays within one split, and a start is local.
//! A quota never changes, so the splits are also parts no state is in twice
//! ([`crate::verdict::Explained::parts`]), which a search on several threads
//! checks side by side.
//!
//! **Persistence.** The steps of a set `S` of replicas are persistent (no run
//! of other steps can reach a step that depends on them) when every channel
//! into a replica of `S` from a replica outside `S` holds a frame, or its
//! sender will put none on it while `S` takes no step. A frame sent later
//! queues behind the one there (the channels are FIFO), so no step outside `S`
//! gives a replica in `S` a new step before it takes one of those it has.
//! From each replica with a step, the closure adds every sender whose channel
//! into the set is empty, unless that sender is *quiet* towards it: it has
//! only receipts left, every snapshot that can still reach it is one it has
//! recorded, and the spec says its receipts send nothing on that channel
//! ([`gsmo_spec::node::Node::quiet_towards`]; `quiet` below says why this
//! holds for the rest of any run outside `S`). The search takes the set with
//! the fewest steps. Often it is every replica, hence a modest reduction
//! (`check --por --compare`).
//!
//! **Silent receipts.** Finer: one receipt, taken alone, when the set above
//! has more than one step. Replica `i` is *settled* when it will never record
//! another snapshot (every start the quotas allow has happened, and `i` has
//! recorded each), has issued its whole script and has no timer armed: from
//! then on its only steps are receipts. The spec says which receipts are
//! *silent* ([`gsmo_spec::node::Node::silent_head`]): under the sequencer, at a
//! replica other than the sequencer, the number (with the data, but for its
//! own writes) of the write it delivers next. Such a receipt sends nothing,
//! whatever arrives first; its effect (its channel's link and recorder
//! counts, its copy into the recordings open on that channel, the hold-back,
//! whose deliveries follow the sequencer's numbers) commutes with any other receipt at `i` that starts no
//! recording, which a settled replica gets none of, up to the links'
//! acknowledgement bookkeeping that these runs never read
//! ([`gsmo_spec::node::Node::hash_live`]); steps of other replicas commute
//! with it as above. So it is persistent on its own. It may deliver, but until
//! it arrives `i` delivers nothing (its next delivery needs it), so taking it
//! first can split a later run of `i`'s deliveries, never join two: `i` still
//! passes every prefix of its deliveries it passed. `spec/tests/interleavings.rs`
//! checks these claims at every step of random bank runs.
//!
//! **Commuting steps** (`check --por --sleep`: sleep sets, [`crate::sleep`]).
//! Two steps of one replica commute in a state, for the search, when each
//! leaves the other enabled, both orders end in the same state, and their
//! order does not show in what the properties read of the replica
//! ([`ReplicaState::judged`], piece by piece: its deliveries; each snapshot it
//! knows of): at most one of them changes each piece, or both change it to
//! one value (two markers of a snapshot the replica has not joined, from two
//! channels: either opens it, the other closes the second channel).
//! `commute` below decides it on the replica alone, by taking both orders:
//! receipts from two channels (a receipt takes only its own channel's head)
//! or a timer and a receipt, whose commands leave each other's timer armed,
//! must reach equal replica states, having sent the same frames on each
//! channel and left every timer alike; the rest of the whole state then
//! follows. A closing marker and a frame on another channel commute so, as do
//! two markers, or the steps that finish two different snapshots. Swapping
//! two such steps changes one replica's order of steps, but each piece of what it judges takes the same values in
//! the same order, one of them at most held a step longer; so every argument
//! below holds of the swapped run, since each property of the bank reads one
//! piece only (conservation and a refused overdraft the deliveries, with each
//! snapshot's parts; the cut, the channel state and the restore one complete
//! snapshot) or the state a run ends in (termination). The exceptions are two
//! examples: two snapshots in progress at one replica, which reads two
//! snapshots' pieces, and a transfer recorded in flight, which reads a
//! recording in progress: a search that missed every state showing one would
//! report it missing, a FAIL, never a false PASS. The snapshot a recording
//! completes, if one does, is the same either way (it is the same state), and
//! is judged as it completes, whichever step that is. `spec`-side, nothing
//! changes.
//!
//! **What is kept.** The state graph is finite and acyclic (every step issues
//! a write, starts a snapshot or consumes one of finitely many frames), so no
//! cycle proviso is needed, and every complete run of the full model has a
//! reordering of independent steps that the reduced model runs, in which each
//! replica takes the same steps in the same order, but for silent receipts
//! taken earlier. Hence:
//! * a property of one replica's own state (conservation in its accounts and
//!   parts, a refused overdraft, two snapshots in progress) meets the same
//!   sequence of that replica's deliveries, parts and recordings (a silent
//!   receipt starts, completes and commits no snapshot, lands in the same
//!   recordings either way, its channel's marker queuing behind it, and only
//!   splits runs of deliveries), so the same values of what it judges;
//! * a property of a completed snapshot (a consistent cut, exact channel
//!   state, restores) reads its parts, which are local states, and ledger
//!   slices below the senders' record points, which a sender's own steps fix.
//!   Every run passes a state holding every part and no commit (the initiator
//!   commits only once every part is stored, and a commit lets the parts go:
//!   [`crate::replica::Replica`]'s `record`), and the reordered run passes one
//!   with the same parts and slices, so the verdict is the same. (The bank
//!   judges it in the state the completing step reaches, then lets the parts
//!   go: [`crate::snapshot::let_judged_go`], run by `Persistent::after_each_step`.
//!   That only merges states that differ in parts already judged.)
//! * termination holds or fails at the end of a run, and the reduced model
//!   reaches every final state.
//!
//! Properties that relate two replicas at one moment (the kv model's
//! convergence) are neither, so the kv model is not reduced; nor are channels
//! that reorder or lose frames, where a later frame need not queue. The tests
//! check the claim on whole state graphs: each replica passes through exactly
//! the states it does unreduced (the configurations with no silent receipts)
//! or what the properties read of them (with silent receipts), and runs end in
//! exactly the same final states.

use crate::adapter::Step;
use crate::digest::digest;
use crate::replica::{Commanded, Replica, ReplicaState};
use crate::verdict::Explained;
use crate::wrap::{self, Wrapper};
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Id};
use stateright::{Model, Property};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

type State<H> = ActorModelState<Replica, H>;
type Action = ActorModelAction<crate::faults::Wire, Step, ()>;

/// A model of replicas, explored a persistent set of steps at a time.
#[derive(Clone)]
pub struct Persistent<C, H>
where
    H: Clone + Debug + Hash,
{
    model: ActorModel<Replica, C, H>,
    properties: Vec<Property<ActorModel<Replica, C, H>>>,
    /// Snapshots started in all: what the initial states split into quotas.
    snapshots: usize,
    /// The mistake the tests must catch: one replica's steps, however empty
    /// its channels (a peer may then send it a frame that belongs first).
    careless: bool,
    /// Which replicas' silent receipts are taken alone: settled ones; or, to
    /// show what they save, none; or, the mistake the tests must catch, any.
    silence: Silence,
    /// What the model does to every state a step reaches, if anything (the
    /// bank judges complete snapshots and lets their parts go:
    /// [`crate::snapshot::let_judged_go`]).
    pub(crate) after_step: Option<fn(&C, &mut State<H>)>,
    /// Only the initial states of this split of the bound into quotas (the
    /// `k`-th of [`splits`]): one of the model's parts ([`Explained::parts`]).
    split: Option<usize>,
    /// Which model this is, for [`COMMUTING`]: replicas of two models (a
    /// broken variant and the correct one, say) may be in equal states and
    /// still step differently. Its copies and parts share it.
    ident: u64,
}

impl<C, H: Clone + Debug + Hash> Persistent<C, H> {
    /// `model`, whose replicas may start `snapshots` snapshots in all. The
    /// caller vouches for what the module doc assumes: reliable FIFO channels,
    /// no faults (a crashed replica's steps do nothing, and a set of such
    /// steps would end the search early), and properties that are local or
    /// stable ([`crate::snapshot::SnapshotCfg::into_reduced_model`] does).
    pub(crate) fn new(model: ActorModel<Replica, C, H>, snapshots: usize) -> Self {
        Persistent {
            properties: wrap::take_properties(&model),
            model,
            snapshots,
            careless: false,
            silence: Silence::Settled,
            after_step: None,
            split: None,
            ident: {
                static MODELS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                MODELS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }
    }

    /// The same, doing `f` to every state a step reaches.
    pub(crate) fn after_each_step(self, f: fn(&C, &mut State<H>)) -> Self {
        Persistent {
            after_step: Some(f),
            ..self
        }
    }

    /// A step from `state`, borrowed or handed over ([`Explained::next_state_from`]).
    fn step(&self, state: Cow<'_, State<H>>, action: Action) -> Option<State<H>> {
        let mut next = crate::transitions::next_state(&self.model, self.ident, state, action)?;
        if let Some(f) = self.after_step {
            f(&self.model.cfg, &mut next);
        }
        Some(next)
    }
}

/// The replica whose step `action` is.
fn actor(action: &Action) -> usize {
    usize::from(match action {
        ActorModelAction::Deliver { dst, .. } => *dst,
        ActorModelAction::Drop(env) => env.dst,
        ActorModelAction::Timeout(id, _)
        | ActorModelAction::Crash(id)
        | ActorModelAction::Recover(id) => *id,
        ActorModelAction::SelectRandom { actor, .. } => *actor,
    })
}

/// What the persistent-set rules read of each replica, once per state, as
/// sets of replicas (bit `k` for replica `k`): the closure below asks
/// [`Standing::quiet`] of many sets, and walking every replica's recorded
/// snapshots again for each question cost 1.5% of a 2-account bank check.
struct Standing {
    /// Every replica.
    all: u64,
    /// Replicas that have issued their whole script and have no timer armed:
    /// their only steps from now on are receipts.
    idle: u64,
    /// Replicas that have started every snapshot their quota allows.
    spent: u64,
    /// For each replica `j`, the replicas every snapshot of which started so
    /// far `j` has recorded (an array, so that asking costs no allocation).
    recorded: [u64; 64],
    /// Messages the replicas have multicast, all together.
    sent: u64,
}

impl Standing {
    fn of<H: Clone + Debug + Hash>(state: &State<H>) -> Self {
        let replicas = &state.actor_states;
        assert!(replicas.len() <= 64, "more replicas than bits");
        let set = |has: &dyn Fn(usize, &ReplicaState) -> bool| {
            replicas
                .iter()
                .enumerate()
                .filter(|(k, a)| has(*k, a))
                .fold(0u64, |bits, (k, _)| bits | 1 << k)
        };
        let mut recorded = [0; 64];
        for (j, me) in replicas.iter().enumerate() {
            recorded[j] = set(&|k, a| {
                a.snapshot_seqs().all(|seq| {
                    me.ghost
                        .recorded
                        .contains(&gsmo_spec::snapshot::SnapshotId { initiator: k, seq })
                })
            });
        }
        Standing {
            all: set(&|_, _| true),
            idle: set(&|k, a| a.issued == a.quota && state.timers_set[k].iter().next().is_none()),
            spent: set(&|_, a| a.snapshot_quota == Some(a.snapshots_started)),
            recorded,
            sent: replicas
                .iter()
                .map(|a| a.node.state().multicast.sent())
                .sum(),
        }
    }

    /// Whether idle replica `j` will record no snapshot it has not recorded
    /// already, as long as the replicas in `standing_still` take no step: it
    /// has recorded every snapshot started so far, and every other replica
    /// has used its quota of starts (a start is a step of its replica).
    fn receipts_only(&self, j: usize, standing_still: u64) -> bool {
        self.idle & 1 << j != 0
            && self.recorded[j] == self.all
            && (standing_still | self.spent) == self.all
    }

    /// Whether replica `i` is settled: it will never record another snapshot
    /// (every start the quotas allow has happened, and it has recorded each
    /// snapshot started), it has issued its whole script, and no timer of its
    /// is armed, so that from now on its only steps are receipts.
    fn settled(&self, i: usize) -> bool {
        self.receipts_only(i, 0)
    }

    /// Whether replica `j`, outside `set`, puts no frame on its channel to `i`
    /// while the replicas in `set` take no step, so that an empty channel from
    /// `j` into the set leaves `j` out of it. Then `j`'s only steps are
    /// receipts (its script is issued, no timer of its is armed); no snapshot
    /// it has not recorded will reach it (those started so far it has
    /// recorded, and no replica outside the set may start one: a start in the
    /// set is a step of the set); and the spec says such receipts send nothing
    /// to `i` ([`gsmo_spec::node::Node::quiet_towards`]), told how many
    /// messages the group multicasts in all when no replica outside the set
    /// will multicast again. Every one of these stays true while only replicas
    /// outside the set step.
    fn quiet<H: Clone + Debug + Hash>(
        &self,
        state: &State<H>,
        j: usize,
        i: usize,
        set: u64,
    ) -> bool {
        let group_sent = ((set | self.idle) == self.all).then_some(self.sent);
        self.receipts_only(j, set) && state.actor_states[j].node.quiet_towards(i, group_sent)
    }
}

/// Where [`Persistent`] takes silent receipts alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Silence {
    /// Nowhere: persistent sets of replicas only (a test's baseline).
    #[cfg_attr(not(test), allow(dead_code))]
    Never,
    /// At settled replicas: the reduction.
    Settled,
    /// At any replica, settled or not: a mistake the tests must catch, which
    /// a replica that may still record a snapshot first would make.
    #[cfg_attr(not(test), allow(dead_code))]
    Careless,
}

/// Whether `action` is a receipt that is a persistent set on its own: a
/// silent one ([`gsmo_spec::node::Node::silent_head`]) at a settled replica
/// (at any replica, if `careless`).
fn silent_receipt<H: Clone + Debug + Hash>(
    state: &State<H>,
    standing: &Standing,
    action: &Action,
    careless: bool,
) -> bool {
    let ActorModelAction::Deliver {
        src,
        dst,
        msg: crate::faults::Wire::Frame { frame, .. },
    } = action
    else {
        return false;
    };
    let (src, dst) = (usize::from(*src), usize::from(*dst));
    (careless || standing.settled(dst)) && state.actor_states[dst].node.silent_head(src, frame)
}

thread_local! {
    /// [`commute`]'s answers, by the model and the digests of the replica's
    /// state and of the two steps. A replica meets the same pair in many
    /// states of the whole, and the answer depends on its own state alone.
    /// Emptied when it holds a million. Keyed by digests already, so aHash,
    /// not SipHash, mixes them.
    static COMMUTING: std::cell::RefCell<ahash::AHashMap<(u64, u64, u64, u64), bool>> =
        Default::default();
}

/// Whether steps `u` and `t` of replica `id` commute in its state `r` as
/// the module doc's "Commuting steps" asks: each leaves the other's timer
/// armed, their order does not show in what the properties read
/// ([`crate::replica::Judged::order_shows`]), and both orders end in the
/// same replica state, having sent the same frames on each channel and left
/// each timer the same.
fn commute(
    ident: u64,
    replica: &Replica,
    id: Id,
    r: &Arc<ReplicaState>,
    u: &Action,
    t: &Action,
) -> bool {
    let take = |r: &Arc<ReplicaState>, step: &Action| {
        crate::transitions::take(ident, replica, id, r, step)
    };
    let (Some((ru, did_u)), Some((rt, did_t))) = (take(r, u), take(r, t)) else {
        return false;
    };
    if r.judged().order_shows(&ru.judged(), &rt.judged())
        || disarms(did_u.iter(), t)
        || disarms(did_t.iter(), u)
    {
        return false;
    }
    let (Some((rut, did_ut)), Some((rtu, did_tu))) = (take(&ru, t), take(&rt, u)) else {
        return false;
    };
    let ut = effect(did_u.iter().chain(did_ut.iter()));
    digest(&rut) == digest(&rtu) && ut.is_some() && ut == effect(did_t.iter().chain(did_tu.iter()))
}

/// Whether commands `did` leave the timer of step `other`, if it is one, cancelled.
fn disarms<'a>(did: impl DoubleEndedIterator<Item = &'a Commanded>, other: &Action) -> bool {
    let ActorModelAction::Timeout(_, timer) = other else {
        return false;
    };
    did.rev().find_map(|c| match c {
        Commanded::SetTimer(t, _) if t == timer => Some(false),
        Commanded::CancelTimer(t) if t == timer => Some(true),
        _ => None,
    }) == Some(true)
}

/// What commands `did` (two steps' in turn) do together: the frames put on
/// each channel, in order, and each timer's last setting (set or cancelled).
/// Frames by their digests, as a state counts them: without what they
/// acknowledge ([`gsmo_spec::node::Node::hash_live`]).
fn effect<'a>(did: impl Iterator<Item = &'a Commanded>) -> Option<Effect> {
    let mut sent: BTreeMap<Id, Vec<u64>> = BTreeMap::new();
    let mut timers: BTreeMap<Step, bool> = BTreeMap::new();
    for c in did {
        match c {
            Commanded::Send(to, msg) => sent.entry(*to).or_default().push(digest(msg)),
            Commanded::SetTimer(step, _) => _ = timers.insert(*step, true),
            Commanded::CancelTimer(step) => _ = timers.insert(*step, false),
            // No replica of the bank does these; were one to, not judged.
            Commanded::ChooseRandom(..) | Commanded::Save(_) => return None,
        }
    }
    Some((sent, timers))
}

type Effect = (BTreeMap<Id, Vec<u64>>, BTreeMap<Step, bool>);

/// Every way of splitting `total` among `n` replicas, in a fixed order.
fn splits(n: usize, total: usize) -> Vec<Vec<usize>> {
    if n == 1 {
        return vec![vec![total]];
    }
    (0..=total)
        .rev()
        .flat_map(|first| {
            splits(n - 1, total - first)
                .into_iter()
                .map(move |mut rest| {
                    rest.insert(0, first);
                    rest
                })
        })
        .collect()
}

impl<C, H> Model for Persistent<C, H>
where
    C: Clone + Debug + Send + Sync + 'static,
    H: Clone + Debug + Hash + Eq + Send + Sync + 'static,
{
    type State = State<H>;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let mut states = Vec::new();
        for s in self.model.init_states() {
            if self.snapshots == 0 {
                states.push(s);
                continue;
            }
            for (k, quotas) in splits(s.actor_states.len(), self.snapshots)
                .into_iter()
                .enumerate()
            {
                if self.split.is_some_and(|split| split != k) {
                    continue;
                }
                let mut s = s.clone();
                for (i, q) in quotas.into_iter().enumerate() {
                    let mut a = (*s.actor_states[i]).clone();
                    a.snapshot_quota = Some(q);
                    a.digest = Default::default();
                    s.actor_states[i] = Arc::new(a);
                    if q == 0 {
                        s.timers_set[i].cancel(&Step::Snapshot);
                    }
                }
                states.push(s);
            }
        }
        states
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        let n = state.actor_states.len();
        // Every step offered, appended to `actions` and cut down there to the
        // chosen ones in their order: a vector of its own per state was 1.5%
        // of the 3-account bank's search, in the allocator.
        let start = actions.len();
        self.model.actions(state, actions);
        let all = &actions[start..];
        let standing = Standing::of(state);
        // Per replica (at most 64, as in a bit set): its steps, and which
        // channels into it hold a frame (bit `j` of `fed[i]`: the channel
        // from `j`).
        let (mut steps, mut fed) = ([0usize; 64], [0u64; 64]);
        let fed = &mut fed[..n];
        for a in all {
            steps[actor(a)] += 1;
            if let ActorModelAction::Deliver { src, dst, .. } = a {
                fed[usize::from(*dst)] |= 1 << usize::from(*src);
            }
        }
        if self.careless {
            fed.fill(standing.all);
        }
        // From each replica with a step: the replicas a step outside the set
        // could give a new step, added until none can (see the module doc).
        let mut best: Option<(usize, u64)> = None;
        for seed in (0..n).filter(|&i| steps[i] > 0) {
            let mut set = 1u64 << seed;
            let mut grew = true;
            while grew {
                grew = false;
                for (i, into_i) in fed.iter().enumerate() {
                    for j in 0..n {
                        let open = set & 1 << i != 0 && (set | into_i) & 1 << j == 0;
                        if open && !standing.quiet(state, j, i, set) {
                            set |= 1 << j;
                            grew = true;
                        }
                    }
                }
            }
            let size: usize = (0..n)
                .filter(|&i| set & 1 << i != 0)
                .map(|i| steps[i])
                .sum();
            if best.is_none_or(|(b, _)| size < b) {
                best = Some((size, set));
            }
        }
        let Some((size, set)) = best else {
            actions.truncate(start);
            return;
        };
        if size > 1 && self.silence != Silence::Never {
            let careless = self.silence == Silence::Careless;
            if let Some(k) = all
                .iter()
                .position(|a| silent_receipt(state, &standing, a, careless))
            {
                actions.swap(start, start + k);
                actions.truncate(start + 1);
                return;
            }
        }
        // The set's steps, moved forward in their order.
        let mut kept = start;
        for at in start..actions.len() {
            if set & 1 << actor(&actions[at]) != 0 {
                actions.swap(kept, at);
                kept += 1;
            }
        }
        actions.truncate(kept);
    }

    fn next_state(&self, state: &Self::State, action: Self::Action) -> Option<Self::State> {
        self.step(Cow::Borrowed(state), action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        wrap::properties(self)
    }

    fn within_boundary(&self, state: &Self::State) -> bool {
        Model::within_boundary(&self.model, state)
    }
}

impl<C, H> Wrapper for Persistent<C, H>
where
    C: Clone + Debug + Send + Sync + 'static,
    H: Clone + Debug + Hash + Eq + Send + Sync + 'static,
{
    type Inner = ActorModel<Replica, C, H>;
    fn inner(&self) -> &Self::Inner {
        &self.model
    }
    fn inner_properties(&self) -> &[Property<Self::Inner>] {
        &self.properties
    }
    fn inner_state(state: &Self::State) -> &Self::State {
        state
    }
}

impl<C, H> Explained for Persistent<C, H>
where
    C: Clone + Debug + Send + Sync + 'static,
    H: Clone + Debug + Hash + Eq + Send + Sync + 'static,
    ActorModel<Replica, C, H>: Explained<Action = Action, State = State<H>>,
{
    fn why(&self, property: &'static str, state: &Self::State) -> Option<String> {
        self.model.why(property, state)
    }

    fn describe(&self, action: &Self::Action) -> String {
        self.model.describe(action)
    }

    /// A receipt by its channel, a timer by its replica and kind (a fault
    /// never sleeps): each names one step in any state, since a channel
    /// offers only its head.
    fn slot(&self, action: &Self::Action) -> Option<u32> {
        let n = self.model.actors.len();
        let slot = match action {
            ActorModelAction::Deliver { src, dst, .. } => usize::from(*src) * n + usize::from(*dst),
            ActorModelAction::Timeout(id, step) => {
                let kind = match step {
                    Step::Multicast => 0,
                    Step::Write => 1,
                    Step::Snapshot => 2,
                    Step::Flush => 3,
                    Step::Fault(_) => return None,
                };
                n * n + usize::from(*id) * 4 + kind
            }
            _ => return None,
        };
        u32::try_from(slot).ok().filter(|&s| s < 64)
    }

    fn next_state_from(&self, state: Self::State, action: Self::Action) -> Option<Self::State> {
        self.step(Cow::Owned(state), action)
    }

    /// What stateright's `Hash` hashes, in its order, but each replica's set
    /// of timers as its size and the sum of its timers' digests, and an
    /// empty map of random choices as one byte (a full one after it):
    /// stateright hashes each such set by hashing every element apart and
    /// sorting the results through a thread-local buffer (2% of the
    /// 3-account bank's search).
    fn fingerprint(&self, s: &Self::State) -> u64 {
        crate::digest::digest_with(|h| {
            s.actor_states.hash(h);
            s.history.hash(h);
            for timers in &s.timers_set {
                let sum = timers.iter().map(digest).fold(0u64, u64::wrapping_add);
                h.write_usize(timers.iter().count());
                h.write_u64(sum);
            }
            for choices in &s.random_choices {
                h.write_u8(u8::from(!choices.map.is_empty()));
                if !choices.map.is_empty() {
                    choices.hash(h);
                }
            }
            s.network.hash(h);
            s.crashed.hash(h);
            s.actor_storages.hash(h);
        })
    }

    /// Steps of two replicas always (the module doc's "Independence"); two
    /// steps of one replica where they commute ("Commuting steps").
    fn independent(&self, state: &Self::State, u: &Self::Action, t: &Self::Action) -> bool {
        let i = actor(u);
        if i != actor(t) {
            return true;
        }
        let r = &state.actor_states[i];
        let key = (self.ident, digest(&**r), digest(u), digest(t));
        COMMUTING.with_borrow_mut(|known| {
            let work = || commute(self.ident, &self.model.actors[i], Id::from(i), r, u, t);
            crate::digest::kept(known, 1 << 20, key, work).0
        })
    }

    /// One part per split of the snapshot bound into quotas. A replica's
    /// quota is part of its state, set in the initial state and changed by no
    /// step, so no state is reachable from two splits.
    ///
    /// Largest first, so that the part left running at the end is a small
    /// one: snapshots from more replicas interleave more, and the fewer the
    /// sequencer (replica 0) starts, the more its numbers interleave with
    /// markers. On the 3-account bank with sleep sets, the first part,
    /// quotas (0,1,1), holds 16.9 M of the 43.9 M states; then come (1,0,1)
    /// and (1,1,0) (7.5 and 8.1 M), (0,0,2), (0,2,0) (4.9 and 5.1 M) and last
    /// (2,0,0), 1.3 M.
    fn parts(&self) -> Option<Vec<Self>> {
        if self.snapshots == 0 || self.split.is_some() {
            return None;
        }
        let mut splits: Vec<(usize, Vec<usize>)> = splits(self.model.actors.len(), self.snapshots)
            .into_iter()
            .enumerate()
            .collect();
        splits.sort_by_key(|(_, quotas)| {
            let starters = quotas.iter().filter(|&&q| q > 0).count();
            (std::cmp::Reverse(starters), quotas.clone())
        });
        let part = |(k, _)| Persistent {
            split: Some(k),
            ..self.clone()
        };
        Some(splits.into_iter().map(part).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;
    use crate::replica::ReplicaState;
    use crate::snapshot::{SnapshotBug, SnapshotCfg};
    use gsmo_spec::snapshot::SnapshotId;
    use stateright::Checker;
    use std::collections::HashSet;

    /// What a search of a model reaches, judged the way the reduction claims to
    /// keep it: every state each replica is ever in, and every final state.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Reach {
        /// `(replica, digest of its state)`, the quota left out.
        local: HashSet<(usize, u64)>,
        /// Each piece of what the properties read of a replica
        /// ([`ReplicaState::judged`]): `(replica, digest)` of its deliveries,
        /// `(replica, snapshot, digest)` of each snapshot it knows of. A
        /// reordering keeps the values of each, not their combinations
        /// (`por.rs`'s doc).
        deliveries: HashSet<(usize, u64)>,
        snapshots: HashSet<(usize, SnapshotId, u64)>,
        /// Digests of the final states (replicas, network, ghost history; not the
        /// timers, where a quota and the global bound differ).
        finals: HashSet<u64>,
        /// States searched.
        states: usize,
    }

    /// A replica's state as the full model would hold it: without a quota.
    fn unquoted(a: &ReplicaState) -> u64 {
        let mut a = a.clone();
        a.snapshot_quota = None;
        a.digest = Default::default();
        digest(&a)
    }

    /// Searches `model` whole (depth first, one thread) and collects its [`Reach`].
    fn reach<M, H>(model: &M) -> Reach
    where
        M: Model<State = ActorModelState<Replica, H>>,
        H: Clone + Debug + Hash,
    {
        let mut reach = Reach::default();
        reach.states = crate::walk::each_state(model, |s, next| reach.note(s, next.is_empty()));
        reach
    }

    /// The same, searched with sleep sets ([`crate::sleep`]) as the checker
    /// searches, replica steps remembered ([`crate::transitions`]).
    fn reach_asleep(model: &crate::snapshot::ReducedSnapshotModel) -> Reach {
        let mut reach = Reach::default();
        let found = crate::transitions::remembering(|| {
            crate::sleep::search_visiting(model, None, |_| {}, |s, last| reach.note(s, last))
        });
        reach.states = found.reached.unique;
        reach
    }

    impl Reach {
        fn note<H: Clone + Debug + Hash>(&mut self, s: &ActorModelState<Replica, H>, last: bool) {
            for (i, a) in s.actor_states.iter().enumerate() {
                self.local.insert((i, unquoted(a)));
                let judged = a.judged();
                self.deliveries.insert((i, judged.deliveries));
                let snapshots = judged.snapshots.into_iter();
                self.snapshots.extend(snapshots.map(|(id, d)| (i, id, d)));
            }
            if last {
                let replicas: Vec<u64> = s.actor_states.iter().map(|a| unquoted(a)).collect();
                self.finals
                    .insert(digest(&(replicas, &s.network, &s.history)));
            }
        }
    }

    /// The bank reduced by persistent sets and silent receipts alone: its
    /// parts held until the commit, as the full model holds them (letting
    /// them go is tested on its own: `crate::snapshot`'s tests).
    fn holding_parts(cfg: SnapshotCfg) -> crate::snapshot::ReducedSnapshotModel {
        let mut reduced = cfg.into_reduced_model();
        reduced.after_step = None;
        reduced
    }

    /// The reduction's claim on the whole state graph, and the states it saves.
    fn keeps_what_is_judged(cfg: SnapshotCfg) -> (usize, usize) {
        let full = reach(&cfg.clone().into_model());
        let reduced = reach(&holding_parts(cfg.clone()));
        assert!(!full.finals.is_empty());
        assert_eq!(
            full.local, reduced.local,
            "{cfg:?}: a replica's states differ"
        );
        assert_eq!(full.finals, reduced.finals, "{cfg:?}: final states differ");
        (full.states, reduced.states)
    }

    #[test]
    fn each_replica_meets_the_same_states_and_runs_end_alike() {
        let two = SnapshotCfg::default();
        assert_eq!(keeps_what_is_judged(two.clone()), (2947, 1482));
        let three = SnapshotCfg {
            nodes: 3,
            snapshots: 0,
            ..two.clone()
        };
        assert_eq!(keeps_what_is_judged(three), (455, 404));
        let longer = SnapshotCfg {
            transfers: 2,
            ..two
        };
        assert_eq!(keeps_what_is_judged(longer), (61_383, 22_148));
    }

    /// Three accounts and a snapshot, where a replica has two channels in and
    /// silent receipts are taken early: each replica passes through no state
    /// it does not unreduced (not necessarily all of them), it meets every
    /// value of what the properties read, runs end alike, and the receipts
    /// save states over persistent sets alone. Taken before a replica is
    /// settled, they lose some.
    #[test]
    fn silent_receipts_keep_what_is_judged() {
        let cfg = SnapshotCfg {
            nodes: 3,
            snapshots: 1,
            ..SnapshotCfg::default()
        };
        let full = reach(&cfg.clone().into_model());
        let reduced = reach(&holding_parts(cfg.clone()));
        assert!(reduced.local.is_subset(&full.local));
        let mut without = holding_parts(cfg.clone());
        without.silence = Silence::Never;
        let without = reach(&without);
        assert!(reduced.states < without.states, "no receipt was silent");
        assert_eq!(without.states, 124_967);
        assert_eq!(full.deliveries, reduced.deliveries, "deliveries differ");
        assert_eq!(full.snapshots, reduced.snapshots, "snapshots differ");
        assert_eq!(full.finals, reduced.finals, "final states differ");
        assert_eq!((full.states, reduced.states), (321_040, 100_427));
        let mut careless = holding_parts(cfg);
        careless.silence = Silence::Careless;
        let careless = reach(&careless);
        assert!(careless.snapshots.is_subset(&full.snapshots));
        assert!(careless.snapshots.len() < full.snapshots.len());
    }

    /// Sleep sets on top, where steps of one replica may be swapped too
    /// ("Commuting steps"): still every value of what the properties read,
    /// and runs end alike, in fewer states; with parts held until the commit
    /// and with them let go once judged.
    #[test]
    fn sleep_sets_keep_what_is_judged() {
        let three = SnapshotCfg {
            nodes: 3,
            snapshots: 1,
            ..SnapshotCfg::default()
        };
        let longer = SnapshotCfg::two_transfers();
        for (cfg, held, let_go) in [(three, 69_367, 56_606), (longer, 20_938, 14_732)] {
            let full = reach(&cfg.clone().into_model());
            for (model, states) in [
                (holding_parts(cfg.clone()), held),
                (cfg.clone().into_reduced_model(), let_go),
            ] {
                let reduced = reach_asleep(&model);
                assert_eq!(
                    full.deliveries, reduced.deliveries,
                    "{cfg:?}: deliveries differ"
                );
                if model.after_step.is_none() {
                    assert_eq!(
                        full.snapshots, reduced.snapshots,
                        "{cfg:?}: snapshots differ"
                    );
                    assert_eq!(full.finals, reduced.finals, "{cfg:?}: final states differ");
                }
                assert_eq!(reduced.states, states, "{cfg:?}");
            }
        }
    }

    /// `check --por --sleep`: the 3-account bank with a snapshot passes, and
    /// every broken variant on FIFO channels is still caught by its property,
    /// its counterexample a path that replays; on one thread and in parts.
    #[test]
    fn sleep_sets_pass_the_bank_and_catch_every_bug() {
        use crate::verdict::{check, Outcome, Search, Strategy};
        for threads in [1, 2] {
            let search = Search {
                strategy: Strategy::Dfs,
                threads,
                por: true,
                sleep: true,
                ..Search::default()
            };
            let three = SnapshotCfg {
                nodes: 3,
                snapshots: 1,
                ..SnapshotCfg::default()
            };
            let v = check(three.into_reduced_model(), &search);
            let counts = (v.unique_states, v.total_states, v.max_depth);
            assert_eq!(
                (counts, v.judge(None)),
                ((56_606, 63_736, 23), Outcome::Pass)
            );
            for bug in FIFO_BUGS {
                let cfg = SnapshotCfg {
                    broken: Some(bug),
                    ..SnapshotCfg::default()
                };
                let v = check(cfg.into_reduced_model(), &search);
                assert_eq!(v.judge(Some(bug.caught_by())), Outcome::Caught, "{bug:?}");
                let found = v.findings.iter().find(|f| f.property == bug.caught_by());
                assert!(!found.expect("a finding").path.is_empty(), "{bug:?}");
            }
        }
    }

    /// The reduced bank's own fingerprint tells apart exactly the states
    /// stateright's hash does, over every state of the 2-account bank and
    /// the same states with a timer cancelled or set.
    #[test]
    fn the_fingerprint_tells_states_apart_as_the_digest_does() {
        let model = SnapshotCfg::two_transfers().into_reduced_model();
        let mut by_fingerprint = std::collections::HashMap::new();
        let mut note = |s: &State<_>| {
            let (fp, d) = (model.fingerprint(s), digest(s));
            assert_eq!(*by_fingerprint.entry(fp).or_insert(d), d, "{s:?}");
        };
        let states = crate::walk::each_state(&model, |s, _| {
            note(s);
            let mut other = s.clone();
            if !other.timers_set[0].cancel(&Step::Write) {
                other.timers_set[0].set(Step::Write);
            }
            note(&other);
        });
        let digests: std::collections::HashSet<_> = by_fingerprint.values().collect();
        assert_eq!((states, by_fingerprint.len()), (15_395, digests.len()));
        assert_eq!(
            by_fingerprint.len(),
            2 * states,
            "a timer tells states apart"
        );
        // The bank makes no random choices, but a state with some is told
        // apart by them too.
        let s = model.init_states().swap_remove(0);
        let with = |key: &str| {
            let mut t = s.clone();
            t.random_choices[0].map.insert(key.into(), vec![()]);
            model.fingerprint(&t)
        };
        let chosen = [model.fingerprint(&s), with("x"), with("y")];
        assert!(chosen[0] != chosen[1] && chosen[1] != chosen[2] && chosen[0] != chosen[2]);
    }

    /// A step whose commands leave another step's timer cancelled disables
    /// it: never commuting, whatever the states say. (No such pair of one
    /// replica's steps arises in the banks above, so this is its own test.)
    #[test]
    fn a_step_that_cancels_the_others_timer_disarms_it() {
        use std::time::Duration;
        let flush = ActorModelAction::Timeout(Id::from(0), Step::Flush);
        let cancel = || Commanded::CancelTimer(Step::Flush);
        let set = || Commanded::SetTimer(Step::Flush, Duration::ZERO..Duration::ZERO);
        let other = || Commanded::CancelTimer(Step::Write);
        let set_other = || Commanded::SetTimer(Step::Write, Duration::ZERO..Duration::ZERO);
        assert!(disarms([cancel()].iter(), &flush));
        assert!(disarms([cancel(), set_other()].iter(), &flush));
        assert!(disarms([set(), cancel(), other()].iter(), &flush));
        assert!(!disarms([cancel(), set()].iter(), &flush));
        assert!(!disarms([other()].iter(), &flush));
        let receipt = ActorModelAction::Deliver {
            src: Id::from(1),
            dst: Id::from(0),
            msg: crate::faults::Wire::Closed,
        };
        assert!(
            !disarms([cancel()].iter(), &receipt),
            "a receipt has no timer"
        );
    }

    /// What [`Explained::independent`] calls commuting, checked on the whole
    /// model: in every state of a bank, each such pair of steps of one
    /// replica leaves the other enabled, both orders reach one state, and
    /// their order does not show in what the properties read.
    #[test]
    fn steps_called_independent_commute() {
        let cfg = SnapshotCfg::two_transfers();
        let model = cfg.into_reduced_model();
        let (mut pairs, mut commuting) = (0, 0);
        crate::walk::each_state(&model, |s, _| {
            let mut all = Vec::new();
            model.model.actions(s, &mut all);
            for (k, u) in all.iter().enumerate() {
                for t in &all[k + 1..] {
                    let i = actor(u);
                    if i != actor(t) {
                        continue;
                    }
                    pairs += 1;
                    if !model.independent(s, u, t) {
                        continue;
                    }
                    commuting += 1;
                    let step = |s: &State<_>, a: &Action| model.next_state(s, a.clone()).unwrap();
                    let (su, st) = (step(s, u), step(s, t));
                    let enabled = |s: &State<_>, a: &Action| {
                        let mut next = Vec::new();
                        model.model.actions(s, &mut next);
                        next.contains(a)
                    };
                    assert!(enabled(&st, u) && enabled(&su, t), "{u:?} / {t:?}");
                    assert_eq!(
                        digest(&step(&st, u)),
                        digest(&step(&su, t)),
                        "{u:?} / {t:?}"
                    );
                    let j = |s: &State<_>| s.actor_states[i].judged();
                    let (j0, ju, jt) = (j(s), j(&su), j(&st));
                    assert!(!j0.order_shows(&ju, &jt), "{u:?} / {t:?}");
                }
            }
        });
        assert_eq!((pairs, commuting), (10_553, 3_771));
    }

    /// The test above has teeth: one replica's steps alone, whatever its
    /// channels hold, lose states.
    #[test]
    fn a_careless_choice_loses_states() {
        let cfg = SnapshotCfg::default();
        let full = reach(&cfg.clone().into_model());
        let mut careless = holding_parts(cfg);
        careless.careless = true;
        let reduced = reach(&careless);
        assert!(reduced.local.is_subset(&full.local));
        assert!(reduced.local.len() < full.local.len());
        assert!(reduced.finals.len() < full.finals.len());
    }

    /// The broken variants that run on FIFO channels, where `--por` applies.
    const FIFO_BUGS: [SnapshotBug; 3] = [
        SnapshotBug::NoChannelRecording,
        SnapshotBug::SharedChannelClosing,
        SnapshotBug::DebitOnly,
    ];

    /// The search itself, parts let go once judged: every property passes,
    /// in fewer states than [`reach`] found holding them.
    #[test]
    fn the_reduced_bank_passes() {
        let checker = SnapshotCfg::default()
            .into_reduced_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 1198);
    }

    /// The parts a search on several threads checks side by side: one per
    /// split of the bound, their initial states those of the whole, their
    /// states disjoint, so their counts add up to the whole's exactly.
    #[test]
    fn the_reduced_bank_in_parts_is_the_whole() {
        use crate::verdict::{check, Explained, Outcome, Search, Strategy};
        let whole = SnapshotCfg::default().into_reduced_model();
        let parts = whole.parts().expect("2 snapshots split 3 ways");
        assert_eq!(parts.len(), 3);
        let inits: Vec<_> = parts.iter().flat_map(|p| p.init_states()).collect();
        let all = whole.init_states();
        assert!(inits.len() == all.len() && inits.iter().all(|s| all.contains(s)));
        let counts: Vec<usize> = parts
            .iter()
            .map(|p| p.clone().checker().spawn_bfs().join().unique_state_count())
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 1198, "{counts:?}");
        assert!(parts.iter().all(|p| p.parts().is_none()));
        let search = Search {
            strategy: Strategy::Dfs,
            threads: 2,
            ..Search::default()
        };
        let v = check(whole, &search);
        assert_eq!((v.unique_states, v.judge(None)), (1198, Outcome::Pass));
    }

    /// Every broken variant on FIFO channels is still caught by its property.
    #[test]
    fn the_reduced_bank_catches_every_bug_on_fifo_channels() {
        for bug in FIFO_BUGS {
            let cfg = SnapshotCfg {
                broken: Some(bug),
                ..SnapshotCfg::default()
            };
            let model = cfg.into_reduced_model();
            let checker = model.clone().checker().spawn_bfs().join();
            let path = checker.discovery(bug.caught_by());
            let path = path.unwrap_or_else(|| panic!("{bug:?} not caught by {}", bug.caught_by()));
            // Judged when its last part completed, the parts let go since:
            // the report still says why.
            let last = path.last_state();
            assert!(
                model.why(bug.caught_by(), last).is_some(),
                "{bug:?}: no report"
            );
            if bug != SnapshotBug::DebitOnly {
                // No kept state holds a whole snapshot: only the verdict kept
                // when it was let go can fail a property of one, and it names
                // the snapshot.
                let kept = &last.history.judged.failed[bug.caught_by()];
                assert!(kept.detail.starts_with("snapshot "), "{kept:?}");
            }
        }
    }

    #[test]
    fn splits_cover_every_quota() {
        assert_eq!(
            splits(3, 2),
            vec![
                vec![2, 0, 0],
                vec![1, 1, 0],
                vec![1, 0, 1],
                vec![0, 2, 0],
                vec![0, 1, 1],
                vec![0, 0, 2]
            ]
        );
        assert_eq!(splits(2, 0), vec![vec![0, 0]]);
    }

    #[test]
    fn parts_come_largest_first() {
        let cfg = SnapshotCfg {
            nodes: 3,
            ..SnapshotCfg::default()
        };
        let quotas: Vec<Vec<usize>> = cfg
            .into_reduced_model()
            .parts()
            .expect("parts")
            .iter()
            .map(|p| {
                let init = p.init_states();
                assert_eq!(init.len(), 1);
                init[0]
                    .actor_states
                    .iter()
                    .map(|a| a.snapshot_quota.expect("a quota"))
                    .collect()
            })
            .collect();
        let q = |a, b, c| vec![a, b, c];
        assert_eq!(
            quotas,
            [
                q(0, 1, 1),
                q(1, 0, 1),
                q(1, 1, 0),
                q(0, 0, 2),
                q(0, 2, 0),
                q(2, 0, 0)
            ]
        );
    }
}
