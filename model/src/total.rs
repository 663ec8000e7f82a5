//! Total-order multicast, both ways the spec offers: a fixed sequencer
//! (Chang & Maxemchuk 1984; Kaashoek's Amoeba) and ISIS agreed priorities
//! (Birman & Joseph 1987, ABCAST; also attributed to Skeen).
//!
//! `nodes` nodes each multicast up to `msgs` messages at any moment. Always:
//! every two nodes deliver the messages they share in the same order (total
//! order), each sender's messages in send order (FIFO order, which both modes
//! promise over FIFO channels), and nothing twice or unsent (integrity).
//! Eventually: everything delivered everywhere.
//!
//! Broken variants: `no-wait` (a sequencer member delivering its own message
//! when it sends it, before its number arrives) and `no-tie-break` (ISIS ordering equal priorities by local arrival)
//! break total order; `reordering` channels break FIFO order, because the
//! sequencer numbers, and ISIS proposes, in arrival order; `duplicating`
//! channels make the sequencer number a message twice, breaking integrity;
//! `lossy` channels break "all delivered".

use crate::adapter::{self, Channels, Delivery, Multicaster};
use crate::verdict::Explained;
use gsmo_spec::multicast::Mode;
use gsmo_spec::properties::{fifo_order, integrity, total_order};
use stateright::actor::{ActorModel, ActorModelState};
use stateright::{Expectation, Model};

/// The total-order model's configuration.
#[derive(Clone, Debug)]
pub struct TotalCfg {
    /// `TotalSequencer` or `TotalIsis`.
    pub mode: Mode,
    pub nodes: usize,
    /// Messages each node multicasts.
    pub msgs: u64,
    pub channels: Channels,
    pub broken: Option<TotalBug>,
}

/// The total-order models' deliberately broken variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TotalBug {
    /// total-sequencer only: a member delivers its own message when it sends
    /// it, before its global number. Caught by "total order".
    NoWait,
    /// total-isis only: order equal priorities by local arrival, not node id.
    /// Caught by "total order".
    NoTieBreak,
    /// Channels that reorder: numbering and proposals follow arrival, not send
    /// order. Caught by "fifo order" (needs 2 messages per node).
    Reordering,
    /// Channels that may deliver a message again: the sequencer numbers it
    /// twice. Caught by "integrity".
    Duplicating,
    /// Channels that lose messages. Caught by "all delivered".
    Lossy,
}

impl TotalBug {
    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        match self {
            TotalBug::NoWait | TotalBug::NoTieBreak => "total order",
            TotalBug::Reordering => "fifo order",
            TotalBug::Duplicating => "integrity",
            TotalBug::Lossy => "all delivered",
        }
    }
}

pub type TotalModel = ActorModel<Multicaster, TotalCfg>;
type State = ActorModelState<Multicaster>;

impl TotalCfg {
    /// The spec's delivery properties the model judges in every state: FIFO
    /// order only where the mode promises it.
    fn judged(&self) -> &'static [Delivery] {
        const FIFO: &[Delivery] = &[
            Delivery::Total,
            Delivery::Fifo,
            Delivery::Integrity,
            Delivery::AllDelivered,
        ];
        const NOT_FIFO: &[Delivery] =
            &[Delivery::Total, Delivery::Integrity, Delivery::AllDelivered];
        if self.mode.is_fifo() {
            FIFO
        } else {
            NOT_FIFO
        }
    }

    /// The default configuration for `mode`.
    pub fn new(mode: Mode) -> Self {
        TotalCfg {
            mode,
            nodes: 3,
            msgs: 1,
            channels: Channels::Ordered,
            broken: None,
        }
    }

    /// Refuses a broken variant that belongs to the other total mode.
    pub fn validate(&self) -> Result<(), String> {
        match (self.mode, self.broken) {
            (Mode::TotalIsis, Some(TotalBug::NoWait)) => Err(
                "no-wait is total-sequencer's broken variant; total-isis has no-tie-break".into(),
            ),
            (Mode::TotalSequencer, Some(TotalBug::NoTieBreak)) => Err(
                "no-tie-break is total-isis's broken variant; total-sequencer has no-wait".into(),
            ),
            (mode, _) if mode.is_total() => Ok(()),
            (other, _) => Err(format!("{other} is not a total-order mode")),
        }
    }

    /// The channels actually used: a network variant overrides `channels`.
    pub fn effective_channels(&self) -> Channels {
        match self.broken {
            Some(TotalBug::Reordering) => Channels::Unordered,
            Some(TotalBug::Duplicating) => Channels::Duplicating,
            Some(TotalBug::Lossy) => Channels::Lossy,
            _ => self.channels,
        }
    }

    pub fn into_model(self) -> TotalModel {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let channels = self.effective_channels();
        let node = Multicaster {
            mode: self.mode,
            n: self.nodes,
            msgs: self.msgs,
            broken: matches!(self.broken, Some(TotalBug::NoWait | TotalBug::NoTieBreak)),
        };
        let mut model = ActorModel::new(self.clone(), ())
            .actors(vec![node; self.nodes])
            .init_network(channels.network())
            .lossy_network(channels.lossy())
            .property(Expectation::Always, "total order", |m, s| {
                adapter::holds(m.cfg.judged(), Delivery::Total, &s.actor_states)
            });
        if self.mode.is_fifo() {
            model = model.property(Expectation::Always, "fifo order", |m, s| {
                adapter::holds(m.cfg.judged(), Delivery::Fifo, &s.actor_states)
            });
        }
        model = model
            .property(Expectation::Always, "integrity", |m, s| {
                adapter::holds(m.cfg.judged(), Delivery::Integrity, &s.actor_states)
            })
            // Sound on reliable or lossy channels: the model is finite and acyclic.
            // Every step multicasts (at most `msgs` per node) or consumes one of
            // the finitely many messages the protocol sends (each multicast causes
            // at most n data + n orders, or n data + n proposals + n agreements),
            // so no path revisits a state; the condition is stable, so judging it
            // where paths end is exact. On duplicating channels paths can cycle and
            // stateright cannot see a violation on a cycle: there it is not evidence.
            .property(Expectation::Eventually, "all delivered", |m, s| {
                adapter::all_done(m.cfg.judged(), m.cfg.msgs, &s.actor_states)
            });
        model = if self.mode == Mode::TotalSequencer {
            // Non-vacuity: a sender waits for its own message's number. (A
            // member gets every number from the sequencer over one FIFO
            // channel, in order, so it holds back only its own messages: never
            // two, with one each.)
            model.property(Expectation::Sometimes, "sender waits", |_, s| {
                s.actor_states.iter().any(|a| {
                    let e = &a.endpoint;
                    e.sent() > e.delivered()[e.me()]
                })
            })
        } else {
            // Non-vacuity: some node holds two messages it cannot deliver yet.
            model.property(Expectation::Sometimes, "contended", |_, s| {
                s.actor_states
                    .iter()
                    .any(|a| a.endpoint.holdback_depth() >= 2)
            })
        };
        if channels == Channels::Duplicating {
            // Redelivery makes the space infinite; a duplicate delivery is the
            // point, so allow one more delivery than a correct run makes.
            model = model.within_boundary(|cfg, s| {
                let most = cfg.msgs as usize * (cfg.nodes + 1) + 1;
                s.actor_states.iter().all(|a| a.log.len() <= most)
            });
        }
        model
    }
}

impl Explained for TotalModel {
    fn why(&self, property: &'static str, s: &State) -> Option<String> {
        let logs = adapter::logs(&s.actor_states);
        let r = match property {
            "total order" => total_order(&logs),
            "fifo order" => fifo_order(&logs),
            "integrity" => integrity(&logs),
            "all delivered" => gsmo_spec::properties::all_delivered(&logs),
            _ => Ok(()),
        };
        r.err().map(|v| v.to_string())
    }

    fn describe(&self, action: &<Self as Model>::Action) -> String {
        crate::display::action(action, crate::display::multicast_msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::{Checker, HasDiscoveries};

    fn cfg(mode: Mode, nodes: usize, msgs: u64, broken: Option<TotalBug>) -> TotalCfg {
        TotalCfg {
            nodes,
            msgs,
            broken,
            ..TotalCfg::new(mode)
        }
    }

    fn catches(c: TotalCfg) {
        let bug = c.broken.expect("a broken variant");
        let model = c.into_model();
        let checker = model
            .checker()
            .finish_when(HasDiscoveries::AnyOf([bug.caught_by()].into()))
            .spawn_bfs()
            .join();
        let path = checker
            .discovery(bug.caught_by())
            .unwrap_or_else(|| panic!("{bug:?} not caught"));
        let why = checker.model().why(bug.caught_by(), path.last_state());
        assert!(why.is_some(), "the spec predicate must agree: {path}");
    }

    #[test]
    fn sequencer_holds() {
        let checker = cfg(Mode::TotalSequencer, 3, 1, None)
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 477);
    }

    #[test]
    fn isis_holds() {
        let checker = cfg(Mode::TotalIsis, 3, 1, None)
            .into_model()
            .checker()
            .spawn_bfs()
            .join();
        checker.assert_properties();
        assert_eq!(checker.unique_state_count(), 42594);
    }

    #[test]
    fn sequencer_without_waiting_is_caught() {
        catches(cfg(Mode::TotalSequencer, 2, 1, Some(TotalBug::NoWait)));
    }

    #[test]
    fn isis_without_tie_break_is_caught() {
        catches(cfg(Mode::TotalIsis, 2, 1, Some(TotalBug::NoTieBreak)));
    }

    #[test]
    fn reordering_channels_break_fifo() {
        catches(cfg(Mode::TotalSequencer, 2, 2, Some(TotalBug::Reordering)));
        catches(cfg(Mode::TotalIsis, 2, 2, Some(TotalBug::Reordering)));
    }

    #[test]
    fn duplicating_channels_break_integrity() {
        catches(cfg(Mode::TotalSequencer, 2, 1, Some(TotalBug::Duplicating)));
    }

    #[test]
    fn lossy_channels_lose_deliveries() {
        catches(cfg(Mode::TotalIsis, 2, 1, Some(TotalBug::Lossy)));
    }

    #[test]
    fn a_broken_variant_of_the_other_mode_is_refused() {
        assert!(cfg(Mode::TotalIsis, 2, 1, Some(TotalBug::NoWait))
            .validate()
            .is_err());
        assert!(cfg(Mode::TotalSequencer, 2, 1, Some(TotalBug::NoTieBreak))
            .validate()
            .is_err());
        assert!(cfg(Mode::Causal, 2, 1, None).validate().is_err());
    }
}
