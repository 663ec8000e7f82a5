//! Causal multicast: Birman, Schiper & Stephenson (1991), "Lightweight causal
//! and atomic group multicast" (the CBCAST vector-timestamp rule).
//!
//! `nodes` nodes each multicast up to `msgs` messages, at any moment, and deliver
//! what they receive by the spec's rule. The ghost logs of sends and deliveries
//! are judged by the spec's predicates: causal order (happened-before computed
//! from the logs, not from the algorithm's clocks) and integrity, always; and
//! every message delivered everywhere, eventually.
//!
//! Broken variants: `fifo-only` (the spec's CBCAST checking only the sender's
//! entry, i.e. FIFO delivery) violates causal order with three nodes; `lossy`
//! channels violate "all delivered". Causal delivery needs no FIFO channels:
//! the vector timestamps hold back whatever arrives early, so the model passes
//! on the unordered network too.

use crate::adapter::{self, Channels, Delivery, Multicaster};
use crate::verdict::Explained;
use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{causal_order, integrity, Violation};
use stateright::actor::{ActorModel, ActorModelState};
use stateright::{Expectation, Model};

/// The causal model's configuration.
#[derive(Clone, Debug)]
pub struct CausalCfg {
    pub nodes: usize,
    /// Messages each node multicasts.
    pub msgs: u64,
    pub channels: Channels,
    pub broken: Option<CausalBug>,
}

/// The causal model's deliberately broken variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CausalBug {
    /// Deliver when a message is the sender's next, ignoring the other entries
    /// (FIFO order only). Caught by "causal order" (needs 3 nodes).
    FifoOnly,
    /// Channels that lose messages. Caught by "all delivered".
    Lossy,
}

impl CausalBug {
    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        match self {
            CausalBug::FifoOnly => "causal order",
            CausalBug::Lossy => "all delivered",
        }
    }
}

impl Default for CausalCfg {
    fn default() -> Self {
        CausalCfg {
            nodes: 3,
            msgs: 1,
            channels: Channels::Ordered,
            broken: None,
        }
    }
}

pub type CausalModel = ActorModel<Multicaster, CausalCfg>;
type State = ActorModelState<Multicaster>;

/// The spec's delivery properties this model judges in every state.
const JUDGED: &[Delivery] = &[
    Delivery::Causal,
    Delivery::Integrity,
    Delivery::AllDelivered,
];

impl CausalCfg {
    /// The channels actually used: a network variant overrides `channels`.
    pub fn effective_channels(&self) -> Channels {
        match self.broken {
            Some(CausalBug::Lossy) => Channels::Lossy,
            _ => self.channels,
        }
    }

    pub fn into_model(self) -> CausalModel {
        let channels = self.effective_channels();
        let node = Multicaster {
            mode: Mode::Causal,
            n: self.nodes,
            msgs: self.msgs,
            broken: self.broken == Some(CausalBug::FifoOnly),
        };
        ActorModel::new(self.clone(), ())
            .actors(vec![node; self.nodes])
            .init_network(channels.network())
            .lossy_network(channels.lossy())
            .property(Expectation::Always, "causal order", |_, s| {
                adapter::holds(JUDGED, Delivery::Causal, &s.actor_states)
            })
            .property(Expectation::Always, "integrity", |_, s| {
                adapter::holds(JUDGED, Delivery::Integrity, &s.actor_states)
            })
            // Sound: the model is finite and acyclic. Each step multicasts (at most
            // `msgs` per node) or receives a message (finitely many are ever sent),
            // so the pair (messages multicast, messages received) grows on every
            // step and no path revisits a state. The condition is also stable (once
            // everything is delivered it stays so), so judging it where paths end,
            // as stateright does, is exact.
            .property(Expectation::Eventually, "all delivered", |m, s| {
                adapter::all_done(JUDGED, m.cfg.msgs, &s.actor_states)
            })
            // Non-vacuity: some run really needs the hold-back queue.
            .property(Expectation::Sometimes, "held back", |_, s| {
                s.actor_states
                    .iter()
                    .any(|a| a.endpoint.holdback_depth() > 0)
            })
    }
}

fn causal(s: &State) -> Result<(), Violation> {
    causal_order(&adapter::logs(&s.actor_states))
}

impl Explained for CausalModel {
    fn why(&self, property: &'static str, s: &State) -> Option<String> {
        let logs = adapter::logs(&s.actor_states);
        let r = match property {
            "causal order" => causal(s),
            "integrity" => integrity(&logs),
            "all delivered" => gsmo_spec::properties::all_delivered(&logs),
            _ => Ok(()),
        };
        r.err().map(|v| v.to_string())
    }

    fn describe(&self, action: &<Self as Model>::Action) -> String {
        crate::display::action(action, crate::display::multicast_msg)
    }

    /// CBCAST treats every node alike ([`crate::symmetry`] says why that is exact).
    fn symmetry(&self) -> Option<crate::verdict::Representative<Self>> {
        Some(crate::symmetry::representative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::{Checker, HasDiscoveries};

    fn cfg(nodes: usize, msgs: u64, channels: Channels, broken: Option<CausalBug>) -> CausalCfg {
        CausalCfg {
            nodes,
            msgs,
            channels,
            broken,
        }
    }

    #[test]
    fn causal_holds_on_fifo_channels() {
        let checker = cfg(3, 1, Channels::Ordered, None)
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 690);
    }

    #[test]
    fn causal_holds_on_reordering_channels() {
        let checker = cfg(2, 2, Channels::Unordered, None)
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 165);
    }

    #[test]
    fn fifo_only_delivery_is_caught() {
        let checker = cfg(3, 1, Channels::Ordered, Some(CausalBug::FifoOnly))
            .into_model()
            .checker()
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join();
        let path = checker.discovery("causal order").expect("counterexample");
        let v = causal(path.last_state()).unwrap_err();
        assert!(v.detail.contains("happened before it"), "{v}");
    }

    #[test]
    fn the_verdict_tells_the_shortest_counterexample() {
        let model = cfg(3, 1, Channels::Ordered, Some(CausalBug::FifoOnly)).into_model();
        let v = crate::verdict::check(model, &crate::verdict::Search::default());
        assert!(!v.passed());
        let f = v.finding("causal order").expect("caught");
        // a multicasts, b delivers it and multicasts, c delivers b's message
        // first: which only the FIFO-only rule allows.
        assert_eq!(f.path.len(), 4, "{:#?}", f.path);
        assert!(f.path[3].starts_with("n1 → "), "{:#?}", f.path);
        assert!(f
            .why
            .as_deref()
            .unwrap_or("")
            .contains("causal order violated"));
    }

    #[test]
    fn lossy_channels_lose_deliveries() {
        let checker = cfg(2, 1, Channels::Ordered, Some(CausalBug::Lossy))
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        assert!(checker.discovery("all delivered").is_some());
        checker.assert_no_discovery("causal order");
        checker.assert_no_discovery("integrity");
    }
}
