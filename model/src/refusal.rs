//! When a refused handshake stops a node ([`gsmo_spec::refusal`]), model
//! checked over every cast of characters and every order of dials.
//!
//! Each of `nodes` addresses holds a node with the cluster's configuration
//! (`A`), a misconfigured one (`B`: another secret, cluster id or mode), or a
//! *stranger*: something on the port that refuses every dialer and dials
//! nobody (a dead peer's port taken over). Every assignment is an initial
//! state. A running node may dial any other address at any time; the
//! handshake completes when both ends hold the same configuration (both
//! *meet*), and is refused otherwise, the dialer then asking its
//! [`Refusals`] what to do. A node that gives up stops, and a dial to its
//! address fails (nobody listens), which is no refusal. Repeated dials are
//! the same step again, so the space is finite.
//!
//! Always: **no node stops while another shares its configuration**: a node
//! that stopped had no peer that could have vouched for it, so a healthy
//! node never stops because of a misconfigured peer or a stranger. Sometimes
//! (non-vacuity): **the odd one out stops**, a `B` node among `A`s.
//!
//! The broken variant `first-refusal-stops` (the runtime's rule before
//! [`gsmo_spec::refusal`]: any refusal stops the dialer) is caught: a healthy
//! node dials a stranger and stops.

use crate::verdict::Explained;
use gsmo_spec::refusal::{Refusals, Verdict};
use gsmo_spec::NodeId;
use stateright::{Model, Property};

/// The refusal model's configuration.
#[derive(Clone, Debug)]
pub struct RefusalCfg {
    pub nodes: usize,
    pub broken: Option<RefusalBug>,
}

impl Default for RefusalCfg {
    fn default() -> Self {
        RefusalCfg {
            nodes: 3,
            broken: None,
        }
    }
}

/// The rule's deliberately broken variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RefusalBug {
    /// Any refusal stops the dialer. Caught by "no node stops while another shares its configuration".
    FirstRefusalStops,
}

impl RefusalBug {
    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        SHARED
    }
}

const SHARED: &str = "no node stops while another shares its configuration";
const ODD: &str = "the odd one out stops";

/// Who answers at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Occupant {
    /// A node holding configuration `0` (the cluster's) or `1` (another).
    Node(u8),
    /// Refuses every dialer, dials nobody.
    Stranger,
}

/// One address: who is there, and, for a node, its record and whether it stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    pub occupant: Occupant,
    pub refusals: Refusals,
    /// Why it stopped, if it did.
    pub stopped: Option<String>,
}

impl Slot {
    fn running_node(&self) -> Option<u8> {
        match (self.occupant, &self.stopped) {
            (Occupant::Node(c), None) => Some(c),
            _ => None,
        }
    }
}

/// The whole system: one slot per address.
pub type RefusalState = Vec<Slot>;

/// A running node dials another address, whose occupant answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dial {
    pub from: NodeId,
    pub to: NodeId,
}

#[derive(Clone, Debug)]
pub struct RefusalModel {
    pub cfg: RefusalCfg,
}

impl RefusalCfg {
    pub fn into_model(self) -> RefusalModel {
        assert!(self.nodes >= 2, "a refusal needs two addresses");
        RefusalModel { cfg: self }
    }
}

/// Where a stopped node had a peer with its own configuration.
fn stopped_beside_a_twin(s: &RefusalState) -> Result<(), String> {
    for (i, slot) in s.iter().enumerate() {
        let (Occupant::Node(c), Some(why)) = (slot.occupant, &slot.stopped) else {
            continue;
        };
        if let Some(j) = (0..s.len()).find(|&j| j != i && s[j].occupant == Occupant::Node(c)) {
            return Err(format!(
                "n{i} stopped, though n{j} shares its configuration: {why}"
            ));
        }
    }
    Ok(())
}

impl Model for RefusalModel {
    type State = RefusalState;
    type Action = Dial;

    fn init_states(&self) -> Vec<RefusalState> {
        let n = self.cfg.nodes;
        let kinds = [Occupant::Node(0), Occupant::Node(1), Occupant::Stranger];
        let mut states = vec![Vec::new()];
        for i in 0..n {
            states = states
                .into_iter()
                .flat_map(|s: RefusalState| {
                    kinds.iter().map(move |&occupant| {
                        let mut s = s.clone();
                        s.push(Slot {
                            occupant,
                            refusals: Refusals::new(i, n),
                            stopped: None,
                        });
                        s
                    })
                })
                .collect();
        }
        states
    }

    fn actions(&self, s: &RefusalState, actions: &mut Vec<Dial>) {
        for from in (0..s.len()).filter(|&i| s[i].running_node().is_some()) {
            for to in (0..s.len()).filter(|&j| j != from) {
                let listening = s[to].occupant == Occupant::Stranger || s[to].stopped.is_none();
                if listening {
                    actions.push(Dial { from, to });
                }
            }
        }
    }

    fn next_state(&self, last: &RefusalState, Dial { from, to }: Dial) -> Option<RefusalState> {
        let mut s = last.clone();
        let mine = s[from].running_node().expect("only running nodes dial");
        if s[to].occupant == Occupant::Node(mine) {
            s[from].refusals.met(to);
            s[to].refusals.met(from);
            return Some(s);
        }
        let why = match s[to].occupant {
            Occupant::Stranger => "a stranger",
            Occupant::Node(_) => "another configuration",
        };
        let verdict = match s[from].refusals.refused(to, why.into()) {
            _ if self.cfg.broken == Some(RefusalBug::FirstRefusalStops) => {
                Verdict::GiveUp(format!("node {to} refused: {why}"))
            }
            v => v,
        };
        if let Verdict::GiveUp(why) = verdict {
            s[from].stopped = Some(why);
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(SHARED, |_, s: &RefusalState| {
                stopped_beside_a_twin(s).is_ok()
            }),
            Property::sometimes(ODD, |_, s: &RefusalState| {
                let lone_b = s.iter().filter(|x| x.occupant == Occupant::Node(1)).count() == 1;
                let a = s.iter().any(|x| x.occupant == Occupant::Node(0));
                lone_b
                    && a
                    && s.iter()
                        .any(|x| x.occupant == Occupant::Node(1) && x.stopped.is_some())
            }),
        ]
    }
}

impl Explained for RefusalModel {
    fn why(&self, property: &'static str, s: &RefusalState) -> Option<String> {
        match property {
            SHARED => stopped_beside_a_twin(s).err(),
            _ => None,
        }
    }

    fn describe(&self, action: &Dial) -> String {
        crate::display::refusal_action(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    fn states(nodes: usize) -> usize {
        let cfg = RefusalCfg {
            nodes,
            broken: None,
        };
        let checker = cfg.into_model().checker().spawn_bfs().join();
        checker.assert_properties();
        checker.unique_state_count()
    }

    #[test]
    fn the_rule_holds_on_two_to_four_addresses() {
        assert_eq!(
            [2, 3, 4].map(states),
            [19, 371, 16_409],
            "unique states on 2, 3 and 4 addresses"
        );
    }

    #[test]
    fn the_old_rule_stops_a_healthy_node() {
        let bug = RefusalBug::FirstRefusalStops;
        let cfg = RefusalCfg {
            nodes: 3,
            broken: Some(bug),
        };
        let checker = cfg.into_model().checker().spawn_bfs().join();
        let path = checker
            .discovery(bug.caught_by())
            .unwrap_or_else(|| panic!("{bug:?} not caught"));
        let why = checker.model().why(bug.caught_by(), path.last_state());
        assert!(
            why.is_some_and(|w| w.contains("shares its configuration")),
            "{path}"
        );
    }
}
