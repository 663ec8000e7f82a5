//! The explorer a person can read: stateright's web explorer over a model
//! wrapped so that its three hooks speak gsmo's language. `format_action` is
//! the counterexample's line (`n0 → n1  data n0#1 SET x=0.1  [1,0]`), a state
//! (and a step's outcome) is the per-node summary of [`crate::display`], and
//! `as_svg` is the path so far as a space-time diagram ([`crate::picture`]),
//! cut and recorded messages included.
//!
//! The wrapper changes nothing else: the same states, actions, boundary and
//! properties (reached through [`crate::wrap`]'s trampolines).

use crate::abort::AbortModel;
use crate::causal::CausalModel;
use crate::kv::KvModel;
use crate::link::LinkModel;
use crate::picture::{self, Steps};
use crate::snapshot::SnapshotModel;
use crate::total::TotalModel;
use crate::verdict::Explained;
use crate::wrap::{self, Wrapper};
use crate::{display, Channels};
use gsmo_view::spacetime::{self, Diagram};
use stateright::{Model, Path, Property};
use std::fmt::{self, Debug};
use std::hash::{Hash, Hasher};

/// A model a person can explore: its states summarised, its paths drawn.
pub trait Presented: Explained {
    /// The state as a compact per-node summary.
    fn summary(state: &Self::State) -> String;
    /// A path (each state with the action taken from it) as a space-time diagram.
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram;
}

/// A state of `M` whose `Debug` (what the explorer prints) is its summary.
pub struct Shown<M: Presented>(pub M::State);

impl<M: Presented> Debug for Shown<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&M::summary(&self.0))
    }
}

impl<M: Presented> Clone for Shown<M>
where
    M::State: Clone,
{
    fn clone(&self) -> Self {
        Shown(self.0.clone())
    }
}

impl<M: Presented> PartialEq for Shown<M>
where
    M::State: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<M: Presented> Hash for Shown<M>
where
    M::State: Hash,
{
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

/// `M`, as the explorer shows it.
pub struct Explorer<M: Model> {
    pub model: M,
    properties: Vec<Property<M>>,
}

impl<M: Presented> Explorer<M> {
    pub fn new(model: M) -> Self {
        let properties = wrap::take_properties(&model);
        Explorer { model, properties }
    }
}

impl<M: Presented> Wrapper for Explorer<M>
where
    M::State: Clone,
{
    type Inner = M;
    fn inner(&self) -> &M {
        &self.model
    }
    fn inner_properties(&self) -> &[Property<M>] {
        &self.properties
    }
    fn inner_state(state: &Shown<M>) -> &M::State {
        &state.0
    }
}

impl<M: Presented> Model for Explorer<M>
where
    M::State: Clone,
{
    type State = Shown<M>;
    type Action = M::Action;

    fn init_states(&self) -> Vec<Shown<M>> {
        self.model.init_states().into_iter().map(Shown).collect()
    }

    fn actions(&self, s: &Shown<M>, actions: &mut Vec<M::Action>) {
        self.model.actions(&s.0, actions)
    }

    fn next_state(&self, s: &Shown<M>, action: M::Action) -> Option<Shown<M>> {
        self.model.next_state(&s.0, action).map(Shown)
    }

    fn format_action(&self, action: &M::Action) -> String {
        self.model.describe(action)
    }

    fn format_step(&self, last: &Shown<M>, action: M::Action) -> Option<String> {
        self.model
            .next_state(&last.0, action)
            .map(|s| M::summary(&s))
    }

    fn as_svg(&self, path: Path<Shown<M>, M::Action>) -> Option<String> {
        let steps: Vec<(M::State, Option<M::Action>)> =
            path.into_vec().into_iter().map(|(s, a)| (s.0, a)).collect();
        Some(spacetime::svg(&self.model.picture(&steps)))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        wrap::properties(self)
    }

    fn within_boundary(&self, s: &Shown<M>) -> bool {
        self.model.within_boundary(&s.0)
    }
}

impl Presented for KvModel {
    fn summary(s: &Self::State) -> String {
        display::kv_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        picture::kv(self, steps)
    }
}

impl Presented for SnapshotModel {
    fn summary(s: &Self::State) -> String {
        display::kv_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        picture::bank(self, steps)
    }
}

impl Presented for AbortModel {
    fn summary(s: &Self::State) -> String {
        display::kv_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        let title = format!(
            "abort over {}, {} replicas: {} steps",
            self.cfg.mode,
            self.actors.len(),
            steps.len().saturating_sub(1)
        );
        picture::replicas(title, &self.actors, steps)
    }
}

impl Presented for crate::refusal::RefusalModel {
    fn summary(s: &Self::State) -> String {
        display::refusal_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        picture::refusal(self, steps)
    }
}

impl Presented for LinkModel {
    fn summary(s: &Self::State) -> String {
        display::link_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        picture::link(self, steps)
    }
}

fn channels_note(c: Channels) -> String {
    if c == Channels::Ordered {
        String::new()
    } else {
        format!(", {c} channels")
    }
}

impl Presented for CausalModel {
    fn summary(s: &Self::State) -> String {
        display::multicast_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        let title = format!(
            "causal, {} nodes{}: {} steps",
            self.actors.len(),
            channels_note(self.cfg.effective_channels()),
            steps.len().saturating_sub(1)
        );
        picture::multicast(title, &self.actors, steps)
    }
}

impl Presented for TotalModel {
    fn summary(s: &Self::State) -> String {
        display::multicast_state(s)
    }
    fn picture(&self, steps: &Steps<Self::State, Self::Action>) -> Diagram {
        let title = format!(
            "{}, {} nodes{}: {} steps",
            self.cfg.mode,
            self.actors.len(),
            channels_note(self.cfg.effective_channels()),
            steps.len().saturating_sub(1)
        );
        picture::multicast(title, &self.actors, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CausalCfg, KvCfg, SnapshotCfg, TotalCfg};
    use gsmo_spec::multicast::Mode;
    use stateright::Checker;

    /// Walks `e` from its first initial state: a snapshot first (if it has
    /// them), then always the first action that leads somewhere. Checks every
    /// label is readable and every wrapped property agrees with the model's
    /// own; returns the picture of the whole path.
    fn walk<M: Presented>(e: &Explorer<M>) -> String
    where
        M::State: Clone + Hash + PartialEq,
        M::Action: Clone + Debug + PartialEq,
    {
        let mut state = e.init_states().remove(0);
        let mut actions_taken = Vec::new();
        for _ in 0..60 {
            let mut actions = Vec::new();
            e.actions(&state, &mut actions);
            let choice = actions
                .iter()
                .position(|a| {
                    actions_taken.is_empty() && e.format_action(a).ends_with("starts a snapshot")
                })
                .into_iter()
                .chain(0..actions.len())
                .find(|&k| {
                    e.next_state(&state, actions[k].clone())
                        .is_some_and(|s| e.within_boundary(&s))
                });
            let Some(k) = choice else { break };
            let a = actions[k].clone();
            let label = e.format_action(&a);
            assert!(!label.contains("Id(") && !label.contains("Msg"), "{label}");
            let outcome = e.format_step(&state, a.clone()).unwrap();
            assert!(
                !outcome.contains("Arc") && !outcome.contains('{'),
                "{outcome}"
            );
            state = e.next_state(&state, a.clone()).unwrap();
            actions_taken.push(a);
            for (wrapped, inner) in e.properties().iter().zip(&e.properties) {
                assert_eq!(
                    (wrapped.condition)(e, &state),
                    (inner.condition)(&e.model, &state.0),
                    "{}",
                    inner.name
                );
            }
        }
        let init = e.init_states().remove(0);
        let path = Path::from_actions(e, init, &actions_taken).expect("a path");
        e.as_svg(path).unwrap()
    }

    #[test]
    fn every_model_is_drawn_with_its_timelines_and_cuts() {
        for mode in Mode::ALL {
            let svg = walk(&Explorer::new(KvCfg::new(mode).into_model()));
            assert_eq!(svg.matches("class='timeline'").count(), 2, "{mode}");
            assert!(
                svg.contains("<polyline class='cut' data-snapshot='0-1'"),
                "{mode}: {svg}"
            );
        }
        let svg = walk(&Explorer::new(SnapshotCfg::default().into_model()));
        assert!(
            svg.contains("<polyline class='cut' data-snapshot='0-1'"),
            "{svg}"
        );
        assert!(svg.contains("TRANSFER acct:"), "{svg}");
        let svg = walk(&Explorer::new(CausalCfg::default().into_model()));
        assert_eq!(svg.matches("class='timeline'").count(), 3, "{svg}");
        let svg = walk(&Explorer::new(TotalCfg::new(Mode::TotalIsis).into_model()));
        assert!(
            svg.contains("msg control"),
            "ISIS proposals and agreements: {svg}"
        );
        assert!(svg.contains("class='held'"), "ISIS holds data back: {svg}");
    }

    #[test]
    fn the_wrapper_explores_the_same_space() {
        let inner = CausalCfg::default().into_model();
        let checker = Explorer::new(inner).checker().spawn_bfs().join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 690);
    }
}
