//! A replica's steps, each worked out once per replica state and step, for
//! the sleep-set search of the reduced bank ([`crate::por::Persistent`],
//! [`crate::sleep`]).
//!
//! A step of replica `i` reads and writes only `i`'s state, the head of one
//! channel into `i`, `i`'s timers, channels out of `i` and the ledger (the
//! independence argument of [`crate::por`]). So one replica-level transition
//! (state `r`, step `t`) to (`r'`, commands) recurs in every global state that
//! holds `r` at `i`, whatever the other replicas are doing: on the 3-account,
//! 2-snapshot bank 96% of steps are ones already worked out. Working one out
//! copies the replica's whole spec `Node`, runs it, hashes the copy and later
//! frees it; remembered, a step shares the result (`r'` behind its `Arc`,
//! its digest cached) and only carries the commands out on the global state,
//! as stateright's `ActorModel::next_state` does (mirrored here for the one
//! network the reduction runs on, reliable FIFO channels; every other kind
//! of step goes to stateright).
//!
//! **Keyed as the search counts.** A transition is keyed by the model's
//! identity, the replica's index, the replica state's digest and the step's
//! digest: the digests the search tells states apart by. Those leave out the
//! links' acknowledgement bookkeeping and the acknowledgement a frame carries
//! ([`crate::faults::Faults::acks_unread`]), and the bank's ghost log
//! ([`crate::replica::Replica::log_judged`]), because nothing the search
//! judges reads them and states equal but for them step alike (the premise
//! of counting them so, [`gsmo_spec::node::Node::hash_live`]). So a
//! remembered step may give a successor whose replica carries another run's
//! acknowledgement counts and log, with exactly the digest of the true
//! successor: the search meets the same states and judges them alike.
//! `steps_remembered_count_as_the_true_ones` checks that on every step of a
//! whole bank; `crate::por`'s sleep-set tests, which compare what each
//! replica meets and how runs end with the unreduced model, search with the
//! memo; and the 3-account bank counts the same 43,855,199 states with it
//! and without. Keyed exactly, only 62% of the steps were found at one snapshot,
//! and the 3-account search took 141 s instead of 99.
//!
//! **Only while searching.** What a person sees must be the true run, so the
//! memo is used only inside [`remembering`] (the sleep search runs in it);
//! the paths it found, the explorer and every other caller replay steps
//! through stateright itself.

use crate::adapter::Step;
use crate::digest::{digest, kept};
use crate::replica::{Commanded, Replica, ReplicaState};
use gsmo_spec::snapshot::SnapshotId;
use stateright::actor::{
    ActorModel, ActorModelAction, ActorModelState, Command, Envelope, Id, Network, Out,
};
use stateright::Model;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;

type State<H> = ActorModelState<Replica, H>;
type Action = ActorModelAction<crate::faults::Wire, crate::adapter::Step, ()>;

/// A replica's state after a step (`None`: unchanged) and the commands the
/// step gave, in order.
type Transition = Rc<(Option<Arc<ReplicaState>>, Vec<Commanded>)>;

/// Transitions remembered per thread at most; then the memo starts afresh
/// (a bound, not a loss: a forgotten transition is worked out again). On the
/// 3-account bank 2^14 was as fast as 2^18, whose peak was 2.3 GB higher.
const REMEMBERED: usize = 1 << 14;

/// Lookups per judgement of whether the memo pays ([`Known::ask`]).
const WINDOW: u32 = 1 << 12;

/// Steps taken without the memo after a window in which it did not pay.
const REST: u32 = WINDOW * 16;

thread_local! {
    /// Whether this thread is searching ([`remembering`]).
    static SEARCHING: Cell<bool> = const { Cell::new(false) };
    static KNOWN: RefCell<Known> = RefCell::default();
}

/// Runs `search` with this thread's replica steps remembered; the memo is
/// emptied after, so that nothing it holds outlives the search.
pub fn remembering<T>(search: impl FnOnce() -> T) -> T {
    /// Restores the thread on the way out, unwinding too.
    struct Leave(bool);
    impl Drop for Leave {
        fn drop(&mut self) {
            SEARCHING.set(self.0);
            KNOWN.take();
        }
    }
    let _leave = Leave(SEARCHING.replace(true));
    search()
}

/// The transitions worked out on this thread, by model, replica, the
/// replica's digest and the step's digest (digests already, so aHash, not
/// SipHash, mixes them); and how often they were found lately.
#[derive(Default)]
struct Known {
    map: ahash::AHashMap<(u64, usize, u64, u64), Transition>,
    asked: u32,
    found: u32,
    /// Steps left to take without the memo.
    resting: u32,
    /// Replicas with a snapshot's part let go ([`let_go`]).
    let_go: ahash::AHashMap<(u64, SnapshotId), Arc<ReplicaState>>,
}

impl Known {
    /// Whether to use the memo for this step, or to rest from it.
    fn awake(&mut self) -> bool {
        self.resting = self.resting.saturating_sub(1);
        self.resting == 0
    }

    /// The transition `key` names, remembered or worked out by `work`. Where
    /// fewer than half the steps of a window are found (replicas whose states
    /// rarely recur across global states, as in the 2-account bank with 4
    /// transfers each), remembering costs more than it saves (25% there; 7%
    /// with the rest), so the memo is emptied and rests for [`REST`] steps.
    fn ask(
        &mut self,
        key: (u64, usize, u64, u64),
        work: impl FnOnce() -> Transition,
    ) -> Transition {
        let (t, found) = kept(&mut self.map, REMEMBERED, key, work);
        self.found += u32::from(found);
        self.asked += 1;
        if self.asked == WINDOW {
            if self.found < WINDOW / 2 {
                self.resting = REST;
                self.map.clear();
            }
            (self.asked, self.found) = (0, 0);
        }
        t
    }
}

/// `model`'s successor of `state` by `action`, as `model.next_state` gives it
/// or, inside [`remembering`], one the search counts as the same: `ident`
/// names the model (two models' replicas may be in equal states and step
/// differently). Inside [`remembering`], a state handed over owned is
/// stepped itself, not copied, whether the memo is awake or resting.
pub(crate) fn next_state<C, H>(
    model: &ActorModel<Replica, C, H>,
    ident: u64,
    state: Cow<'_, State<H>>,
    action: Action,
) -> Option<State<H>>
where
    H: Clone + Debug + Hash,
{
    if SEARCHING.get() {
        remembered(model, ident, state, action)
    } else {
        model.next_state(&state, action)
    }
}

/// [`next_state`] through the memo.
fn remembered<C, H>(
    model: &ActorModel<Replica, C, H>,
    ident: u64,
    state: Cow<'_, State<H>>,
    action: Action,
) -> Option<State<H>>
where
    H: Clone + Debug + Hash,
{
    let (id, deliver) = match &action {
        ActorModelAction::Deliver { src, dst, .. } => (*dst, Some(*src)),
        ActorModelAction::Timeout(id, _) => (*id, None),
        _ => return model.next_state(&state, action),
    };
    let i = usize::from(id);
    if !matches!(model.init_network, Network::Ordered(_)) || i >= state.actor_states.len() {
        return model.next_state(&state, action);
    }
    if deliver.is_some() && state.crashed[i] {
        return None;
    }
    // Resting, the step is still carried out here, on a state handed over
    // if it was.
    let step = step_of(ident, &model.actors[i], id, &state.actor_states[i], &action);
    let (after, commands) = &*step;
    if commands
        .iter()
        .any(|c| matches!(c, Command::ChooseRandom(..) | Command::Save(_)))
    {
        return model.next_state(&state, action);
    }
    let mut next = match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            let history = (model.record_msg_in)(
                &model.cfg,
                &state.history,
                Envelope {
                    src,
                    dst,
                    msg: &msg,
                },
            );
            let mut next = state.into_owned();
            take_head(&mut next.network, src, dst, &msg);
            if let Some(history) = history {
                next.history = history;
            }
            next
        }
        ActorModelAction::Timeout(_, timer) => {
            // stateright's is_no_op_with_timer: nothing changed but the same
            // timer set again.
            let renewed = commands.len() == 1
                && matches!(&commands[0], Command::SetTimer(t, _) if *t == timer);
            if after.is_none() && renewed {
                return None;
            }
            let mut next = state.into_owned();
            next.timers_set[i].cancel(&timer);
            next
        }
        _ => unreachable!("only receipts and timers are remembered"),
    };
    if let Some(after) = after {
        next.actor_states[i] = Arc::clone(after);
    }
    carry_out(model, id, commands, &mut next);
    Some(next)
}

/// Replica `id`'s step from `r` in the search: remembered while the memo is
/// awake, worked out afresh while it rests.
fn step_of(
    ident: u64,
    replica: &Replica,
    id: Id,
    r: &Arc<ReplicaState>,
    step: &Action,
) -> Transition {
    let work = || Rc::new(work_out(replica, id, r, step));
    KNOWN.with_borrow_mut(|known| match known.awake() {
        true => known.ask((ident, usize::from(id), digest(&**r), digest(step)), work),
        false => work(),
    })
}

/// Replica `id` (of model `ident`) in state `r` taking a step of its own, a
/// receipt or a timer: its state after, and what it does to the network and
/// its timers, in order (a timer that fires is cancelled first). `None` for
/// a step of another replica, a fault's timer, or any other kind. For
/// [`crate::por`]'s commutation check, which takes four such steps for a
/// pair of steps; inside [`remembering`] they are remembered with the
/// search's own, which are mostly the same steps.
pub(crate) fn take(
    ident: u64,
    replica: &Replica,
    id: Id,
    r: &Arc<ReplicaState>,
    step: &Action,
) -> Option<(Arc<ReplicaState>, Did)> {
    let cancelled = match step {
        ActorModelAction::Deliver { dst, .. } if *dst == id => None,
        ActorModelAction::Timeout(at, timer) if *at == id && !matches!(timer, Step::Fault(_)) => {
            Some(Command::CancelTimer(*timer))
        }
        _ => return None,
    };
    let step = match SEARCHING.get() {
        true => step_of(ident, replica, id, r, step),
        false => Rc::new(work_out(replica, id, r, step)),
    };
    let after = step.0.clone().unwrap_or_else(|| Arc::clone(r));
    Some((after, Did { cancelled, step }))
}

/// What a step [`take`]n did to the network and the replica's timers.
pub(crate) struct Did {
    cancelled: Option<Commanded>,
    step: Transition,
}

impl Did {
    /// The commands, in order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Commanded> {
        self.cancelled.iter().chain(&self.step.1)
    }
}

/// Replica state `a` with its complete part of snapshot `id` let go, as
/// [`crate::snapshot::let_judged_go`] does at the step that completes the
/// snapshot everywhere. Remembered like a step inside [`remembering`]: that
/// step copied every replica whole, and the same replica states let go of
/// the same snapshot recur across global states.
pub(crate) fn let_go(a: &Arc<ReplicaState>, id: SnapshotId) -> Arc<ReplicaState> {
    let work = || {
        // A copy, so its digests start empty.
        let mut b = ReplicaState::clone(a);
        b.parts.remove(&id);
        b.judged.insert(id);
        Arc::new(b)
    };
    if !SEARCHING.get() {
        return work();
    }
    KNOWN.with_borrow_mut(|known| kept(&mut known.let_go, REMEMBERED, (digest(&**a), id), work).0)
}

/// Replica `id`'s step from `r`, run as stateright runs it.
fn work_out(
    replica: &Replica,
    id: Id,
    r: &Arc<ReplicaState>,
    action: &Action,
) -> (Option<Arc<ReplicaState>>, Vec<Commanded>) {
    use stateright::actor::Actor;
    let mut state = Cow::Borrowed(&**r);
    let mut out = Out::new();
    match action {
        ActorModelAction::Deliver { src, msg, .. } => {
            replica.on_msg(id, &mut state, *src, msg.clone(), &mut out)
        }
        ActorModelAction::Timeout(_, timer) => replica.on_timeout(id, &mut state, timer, &mut out),
        _ => unreachable!("only receipts and timers are remembered"),
    }
    let after = match state {
        Cow::Owned(s) => Some(Arc::new(s)),
        Cow::Borrowed(_) => None,
    };
    (after, out.into_iter().collect())
}

/// The network's part of delivering `msg` from `src` to `dst`, as
/// stateright's ordered network does it: the message leaves its flow, and an
/// emptied flow leaves the map.
fn take_head(
    network: &mut Network<crate::faults::Wire>,
    src: Id,
    dst: Id,
    msg: &crate::faults::Wire,
) {
    let Network::Ordered(flows) = network else {
        unreachable!("remembered on ordered networks only");
    };
    let flow = flows.get_mut(&(src, dst)).expect("the flow delivered from");
    let at = flow
        .iter()
        .position(|m| m == msg)
        .expect("the message delivered");
    if flow.len() > 1 {
        flow.remove(at);
    } else {
        flows.remove(&(src, dst));
    }
}

/// What stateright's `process_commands` does with replica `id`'s commands.
fn carry_out<C, H>(
    model: &ActorModel<Replica, C, H>,
    id: Id,
    commands: &[Commanded],
    next: &mut State<H>,
) where
    H: Clone + Debug + Hash,
{
    let i = usize::from(id);
    for c in commands {
        match c {
            Command::Send(dst, msg) => {
                let sent = Envelope {
                    src: id,
                    dst: *dst,
                    msg,
                };
                if let Some(history) = (model.record_msg_out)(&model.cfg, &next.history, sent) {
                    next.history = history;
                }
                let Network::Ordered(flows) = &mut next.network else {
                    unreachable!("remembered on ordered networks only");
                };
                flows.entry((id, *dst)).or_default().push_back(msg.clone());
            }
            // stateright sizes the timers here for a step of an actor not
            // yet started; every replica remembered has started.
            Command::SetTimer(timer, _) => _ = next.timers_set[i].set(*timer),
            Command::CancelTimer(timer) => {
                next.timers_set[i].cancel(timer);
            }
            // Left to stateright (`remembered` above).
            Command::ChooseRandom(..) | Command::Save(_) => {
                unreachable!("steps that choose or save are not remembered")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotCfg;

    /// Every step of the whole 2-account bank (2 transfers each), taken
    /// while searching, first and again, reaches a state with exactly the
    /// digest of stateright's successor (or none where it has none), though
    /// some successors are built from another run's remembered step; outside
    /// a search, every step is stateright's, value for value.
    #[test]
    fn steps_remembered_count_as_the_true_ones() {
        let model = SnapshotCfg::two_transfers().into_model();
        let ident = u64::MAX;
        let (mut steps, mut from_another_run) = (0, 0);
        let mut all = Vec::new();
        let states = remembering(|| {
            crate::walk::each_state(&model, |s, _| {
                model.actions(s, &mut all);
                for a in all.drain(..) {
                    let want = model.next_state(s, a.clone());
                    // Borrowed, then handed over (the search's last step).
                    for from in [Cow::Borrowed(s), Cow::Owned(s.clone())] {
                        let got = remembered(&model, ident, from, a.clone());
                        assert_eq!(got.as_ref().map(digest), want.as_ref().map(digest));
                        from_another_run += usize::from(got != want);
                    }
                    steps += 1;
                }
            })
        });
        assert_eq!(
            (states, steps, from_another_run),
            (61_383, 240_897, 111_920)
        );
        let s = &model.init_states()[0];
        let mut actions = Vec::new();
        model.actions(s, &mut actions);
        for a in actions {
            assert!(
                next_state(&model, ident, Cow::Borrowed(s), a.clone()) == model.next_state(s, a)
            );
        }
        assert_eq!(
            KNOWN.with_borrow(|k| k.map.len()),
            0,
            "remembered outside a search"
        );
    }

    /// The steps the commutation check takes, remembered while searching,
    /// count as the ones worked out afresh: the same state by digest, the
    /// same commands by digest (a timer's cancelled first), and none for a
    /// step of another replica or a fault's timer; every step of every
    /// replica in every state of the 2-account bank.
    #[test]
    fn steps_taken_remembered_count_as_the_true_ones() {
        let model = SnapshotCfg::two_transfers().into_model();
        let (mut taken, mut from_another_run, mut none) = (0, 0, 0);
        let mut all = Vec::new();
        let commands = |did: &Did| did.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>();
        let live = |did: &Did| {
            did.iter()
                .map(|c| match c {
                    Command::Send(to, msg) => digest(&(to, msg)),
                    c => digest(&format!("{c:?}")),
                })
                .collect::<Vec<_>>()
        };
        remembering(|| {
            crate::walk::each_state(&model, |s, _| {
                model.actions(s, &mut all);
                for a in all.drain(..) {
                    for (i, r) in s.actor_states.iter().enumerate() {
                        let (replica, id) = (&model.actors[i], Id::from(i));
                        SEARCHING.set(false);
                        let fresh = take(1, replica, id, r, &a);
                        SEARCHING.set(true);
                        let got = take(1, replica, id, r, &a);
                        match (fresh, got) {
                            (None, None) => none += 1,
                            (Some((want, did)), Some((got, got_did))) => {
                                assert_eq!(digest(&want), digest(&got));
                                assert_eq!(live(&did), live(&got_did));
                                let same = want == got && commands(&did) == commands(&got_did);
                                from_another_run += usize::from(!same);
                                taken += 1;
                            }
                            (want, got) => panic!(
                                "{want:?} / {got:?}",
                                want = want.is_some(),
                                got = got.is_some()
                            ),
                        }
                    }
                }
            })
        });
        assert_eq!((taken, from_another_run, none), (240_897, 55_960, 240_897));
    }

    /// A crashed replica's timer changes nothing and sends nothing: stateright
    /// still takes the step (it cancels the timer), and so does the memo.
    #[test]
    fn a_crashed_replicas_timer_steps_as_stateright_does() {
        let model = SnapshotCfg::default().into_model();
        let mut s = model.init_states().swap_remove(0);
        let a = Arc::make_mut(&mut s.actor_states[0]);
        a.ghost.make_mut().crashed = true;
        a.digest = Default::default();
        let mut actions = Vec::new();
        model.actions(&s, &mut actions);
        actions.retain(|a| matches!(a, ActorModelAction::Timeout(id, _) if usize::from(*id) == 0));
        assert_eq!(actions.len(), 2, "a write and a snapshot start");
        remembering(|| {
            for a in actions {
                let want = model.next_state(&s, a.clone());
                assert!(want.is_some());
                assert!(remembered(&model, 0, Cow::Borrowed(&s), a) == want);
            }
        });
    }

    /// Steps on a network other than reliable FIFO channels are stateright's
    /// own, even while searching (a write's timer sends, and only ordered
    /// flows are mirrored).
    #[test]
    fn other_networks_step_as_stateright_does() {
        let model = SnapshotCfg {
            broken: Some(crate::snapshot::SnapshotBug::Reordering),
            ..SnapshotCfg::default()
        }
        .into_model();
        let s = &model.init_states()[0];
        let mut actions = Vec::new();
        model.actions(s, &mut actions);
        assert!(actions
            .iter()
            .any(|a| matches!(a, ActorModelAction::Timeout(_, crate::adapter::Step::Write))));
        remembering(|| {
            for a in actions {
                assert!(
                    remembered(&model, 0, Cow::Borrowed(s), a.clone()) == model.next_state(s, a)
                );
            }
        });
    }

    /// A part let go is the replica without the part and with its id
    /// judged: value for value outside a search; while searching, remembered
    /// (asked twice), with the digest of that.
    #[test]
    fn a_part_let_go_is_the_replica_without_it() {
        let model = SnapshotCfg::default().into_model();
        let (mut let_go_once, mut from_another_run) = (0, 0);
        let without = |a: &ReplicaState, id| {
            let mut want = a.clone();
            want.parts.remove(&id);
            want.judged.insert(id);
            want
        };
        crate::walk::each_state(&model, |s, _| {
            for a in &s.actor_states {
                for &id in a.parts.keys() {
                    assert_eq!(*let_go(a, id), without(a, id));
                }
            }
        });
        remembering(|| {
            crate::walk::each_state(&model, |s, _| {
                for a in &s.actor_states {
                    for &id in a.parts.keys() {
                        let want = without(a, id);
                        for _ in 0..2 {
                            let got = let_go(a, id);
                            assert_eq!(digest(&*got), digest(&want));
                            from_another_run += usize::from(*got != want);
                        }
                        let_go_once += 1;
                    }
                }
            })
        });
        assert_eq!((let_go_once, from_another_run), (4_484, 1_968));
    }

    /// A search leaves the thread as it found it, unwinding too: not
    /// searching, nothing remembered.
    #[test]
    fn a_search_leaves_nothing_behind() {
        let remember = || {
            assert!(SEARCHING.get());
            KNOWN.with_borrow_mut(|k| k.ask((0, 0, 0, 0), || Rc::new((None, Vec::new()))));
            assert_eq!(KNOWN.with_borrow(|k| k.map.len()), 1);
        };
        let left = || (SEARCHING.get(), KNOWN.with_borrow(|k| k.map.len()));
        remembering(|| remembering(remember));
        assert_eq!(left(), (false, 0));
        let unwound = std::panic::catch_unwind(|| {
            remembering(|| {
                remember();
                panic!("a search that panics");
            })
        });
        assert!(unwound.is_err());
        assert_eq!(left(), (false, 0));
    }

    /// A resting memo remembers nothing, yet a search still steps replicas
    /// here, states handed over too: value for value as stateright does.
    #[test]
    fn a_resting_memo_steps_as_stateright_does() {
        let model = SnapshotCfg::default().into_model();
        let mut all = Vec::new();
        let steps = remembering(|| {
            let mut steps = 0;
            crate::walk::each_state(&model, |s, _| {
                model.actions(s, &mut all);
                for a in all.drain(..) {
                    KNOWN.with_borrow_mut(|k| k.resting = REST);
                    let want = model.next_state(s, a.clone());
                    let got = next_state(&model, 0, Cow::Owned(s.clone()), a);
                    assert!(got == want);
                    steps += 1;
                }
            });
            assert_eq!(KNOWN.with_borrow(|k| k.map.len()), 0, "remembered at rest");
            steps
        });
        assert_eq!(steps, 10_867);
    }

    /// A memo that finds fewer than half its steps in a window empties and
    /// rests (64 Ki steps, as docs/model-checking.md says); one that finds them stays
    /// awake.
    #[test]
    fn a_memo_that_finds_little_rests() {
        let work = || Rc::new((None, Vec::new()));
        let mut known = Known::default();
        for k in 0..u64::from(WINDOW) {
            assert!(known.awake());
            known.ask((0, 0, k / 2, 0), work);
        }
        assert_eq!((known.resting, known.map.len()), (0, WINDOW as usize / 2));
        // A quarter found: every fourth step repeats the one before.
        for k in 0..u64::from(WINDOW) {
            assert!(known.awake());
            known.ask((0, 0, k - u64::from(k % 4 == 3), 1), work);
        }
        assert_eq!((known.resting, known.map.len()), (1 << 16, 0));
        let rested = std::iter::from_fn(|| Some(known.awake()))
            .take_while(|awake| !awake)
            .count();
        assert_eq!(rested, REST as usize - 1);
        assert!(known.awake());
    }
}
