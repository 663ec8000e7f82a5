//! The resumable FIFO link ([`gsmo_spec::link::Link`]), model checked on a
//! network that loses, duplicates and reorders frames and whose connections
//! break. The link is the spec's answer to "TCP is reliable and FIFO only
//! within one connection": per-channel sequence numbers, a retained buffer,
//! cumulative acks and a resume handshake, as JGroups' UNICAST3/NAKACK2
//! (seqnos and retransmission tables) and Redis PSYNC (the replica's offset
//! into the master's backlog) do. stateright's own `ordered_reliable_link`
//! is the model-side counterpart; this model checks the spec's version.
//!
//! `nodes` nodes each send `msgs` messages (numbered 1, 2, ...) to every other
//! node through their [`Link`]s. The network is a bag of frames per directed
//! channel, oldest first, with stateright's three misbehaviours as actions
//! (a budget of `faults` in all): **lose** a frame, **duplicate** one, and
//! deliver one **out of order**. On top, **disconnect** (at most `disconnects`)
//! drops everything in flight on a channel and takes its connection down;
//! **reconnect** brings a new one up with the resume handshake.
//!
//! The handshake is one atomic step (the receiver's delivered count is read
//! and handed to [`Link::resume`]), not a message, because nothing can happen
//! in between that a message would let the checker see: the old connection's
//! frames were dropped with it and the new one carries nothing before the
//! handshake, so the count cannot change while the reply travels; a reply lost
//! with the new connection is the same as a disconnect right after the
//! reconnect, which the checker explores anyway.
//!
//! TCP never loses, duplicates or reorders within one connection, and the link
//! only resends on a resume (it keeps no retransmission timer). So a loss or a
//! reordering stands for a connection that has died unnoticed: it marks the
//! channel *broken*, and a broken channel is always disconnected eventually
//! (outside the budget), as a runtime notices a dead connection and re-dials.
//!
//! Always: per channel, what was delivered is a prefix of what was sent, in
//! order, without duplicates (**fifo exactly once**); no resume is refused
//! (**no link error**); and once nothing more can happen, every message was
//! delivered (**all delivered when quiet**) and acknowledged, so no retained
//! buffer holds a frame for good (**nothing retained when quiet**); both are
//! judged in terminal states, so they are sound with cycles too (the budgets
//! make the space finite).
//!
//! Broken variants ([`LinkBug`]): `no-dedup` delivers a duplicate, `no-resend`
//! and `resume-off-by-one` lose frames for good, `stale-ack` never re-sends an
//! ack that died with a connection.

use crate::verdict::Explained;
use gsmo_spec::link::{Frame, Link, LinkBug};
use gsmo_spec::NodeId;
use stateright::{Model, Property};

/// The link model's configuration.
#[derive(Clone, Debug)]
pub struct LinkCfg {
    pub nodes: usize,
    /// Messages each node sends to each other node.
    pub msgs: u8,
    /// Network faults (lose, duplicate, deliver out of order) in all.
    pub faults: u8,
    /// Connection breaks in all (besides those that repair a broken channel).
    pub disconnects: u8,
    /// Which faults the network may commit.
    pub lossy: bool,
    pub duplicating: bool,
    pub reordering: bool,
    pub broken: Option<LinkVariant>,
}

impl Default for LinkCfg {
    fn default() -> Self {
        LinkCfg {
            nodes: 2,
            msgs: 2,
            faults: 1,
            disconnects: 1,
            lossy: true,
            duplicating: true,
            reordering: true,
            broken: None,
        }
    }
}

/// The link's deliberately broken variants (the spec's [`LinkBug`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkVariant {
    /// Delivers duplicates and frames after a gap. Caught by "fifo exactly once".
    NoDedup,
    /// Does not resend on resume. Caught by "all delivered when quiet".
    NoResend,
    /// Resumes one frame too late. Caught by "all delivered when quiet".
    ResumeOffByOne,
    /// Never re-sends an ack lost with a connection. Caught by "nothing retained when quiet".
    StaleAck,
}

impl LinkVariant {
    pub fn bug(self) -> LinkBug {
        match self {
            LinkVariant::NoDedup => LinkBug::NoDedup,
            LinkVariant::NoResend => LinkBug::NoResend,
            LinkVariant::ResumeOffByOne => LinkBug::ResumeOffByOne,
            LinkVariant::StaleAck => LinkBug::StaleAck,
        }
    }

    /// The property this variant must violate.
    pub fn caught_by(self) -> &'static str {
        match self {
            LinkVariant::NoDedup => FIFO,
            LinkVariant::NoResend | LinkVariant::ResumeOffByOne => QUIET,
            LinkVariant::StaleAck => RETAINED,
        }
    }
}

const FIFO: &str = "fifo exactly once";
const QUIET: &str = "all delivered when quiet";
const ERRORS: &str = "no link error";
const RETAINED: &str = "nothing retained when quiet";

/// The whole system: every node's links, the wire, and ghost records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkState {
    /// `links[i][j]`: node `i`'s link with node `j` (`links[i][i]` unused).
    pub links: Vec<Vec<Link<u8>>>,
    /// `wire[i][j]`: frames in flight on channel `i -> j`, oldest first.
    pub wire: Vec<Vec<Vec<Frame<u8>>>>,
    /// Ghost: `delivered[i][j]`: what `j` delivered from `i`, in order.
    pub delivered: Vec<Vec<Vec<u8>>>,
    /// Ghost: channel `i -> j` lost or reordered a frame since its last
    /// disconnect: its connection is dead, and will be found so.
    pub broken: Vec<Vec<bool>>,
    pub faults_left: u8,
    pub disconnects_left: u8,
    /// Ghost: frames lost so far (by the network or with a connection).
    pub lost: u8,
    /// Ghost: a resume the spec refused.
    pub error: Option<String>,
}

/// One step of the system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkAction {
    /// `from` sends its next message to `to`.
    Send { from: NodeId, to: NodeId },
    /// The `k`-th frame in flight on `from -> to` arrives (k > 0: out of order, a fault).
    Deliver {
        from: NodeId,
        to: NodeId,
        k: usize,
        f: Frame<u8>,
    },
    /// The network loses the `k`-th frame in flight on `from -> to`.
    Lose {
        from: NodeId,
        to: NodeId,
        k: usize,
        f: Frame<u8>,
    },
    /// The network duplicates the `k`-th frame in flight on `from -> to`.
    Duplicate {
        from: NodeId,
        to: NodeId,
        k: usize,
        f: Frame<u8>,
    },
    /// `from` sends the ack it owes `to` (as a node does on a tick).
    Ack { from: NodeId, to: NodeId },
    /// The connection `from -> to` breaks: everything in flight on it is lost.
    Disconnect { from: NodeId, to: NodeId },
    /// A new connection `from -> to`, resumed from what `to` delivered.
    Reconnect { from: NodeId, to: NodeId },
}

/// The link model: a [`LinkCfg`] with its state machine.
#[derive(Clone, Debug)]
pub struct LinkModel {
    pub cfg: LinkCfg,
}

impl LinkCfg {
    pub fn into_model(self) -> LinkModel {
        assert!(self.nodes >= 2, "a link needs two nodes");
        LinkModel { cfg: self }
    }
}

impl LinkModel {
    fn channels(&self) -> impl Iterator<Item = (NodeId, NodeId)> {
        let n = self.cfg.nodes;
        (0..n).flat_map(move |i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
    }

    /// Whether nothing more can happen.
    fn quiet(&self, s: &LinkState) -> bool {
        let mut actions = Vec::new();
        self.actions(s, &mut actions);
        actions.is_empty()
    }
}

/// Channel `from -> to` delivered a prefix of 1, 2, ..., in order, once each.
fn fifo_exactly_once(s: &LinkState) -> Result<(), String> {
    for (from, row) in s.delivered.iter().enumerate() {
        for (to, got) in row.iter().enumerate() {
            let prefix: Vec<u8> = (1..=got.len() as u8).collect();
            if *got != prefix {
                return Err(format!(
                    "n{to} delivered {got:?} from n{from}: not 1, 2, ... in order, once each"
                ));
            }
        }
    }
    Ok(())
}

/// Every frame was acknowledged: retained buffers hold memory until their
/// peer's ack, so one left behind at rest is a leak the bound would hit.
fn nothing_retained(s: &LinkState) -> Result<(), String> {
    for (i, row) in s.links.iter().enumerate() {
        for (j, link) in row.iter().enumerate().filter(|(j, _)| *j != i) {
            if link.retained_frames() > 0 {
                return Err(format!(
                    "nothing more can happen, but n{i} still retains {} frame(s) n{j} delivered \
                     (n{j} delivered {}, n{i} knows of {})",
                    link.retained_frames(),
                    s.links[j][i].delivered(),
                    link.acked()
                ));
            }
        }
    }
    Ok(())
}

fn all_delivered(cfg: &LinkCfg, s: &LinkState) -> Result<(), String> {
    for (from, row) in s.delivered.iter().enumerate() {
        for (to, got) in row.iter().enumerate().filter(|(to, _)| *to != from) {
            if got.len() != usize::from(cfg.msgs) {
                return Err(format!(
                    "nothing more can happen, but n{to} delivered {got:?} of n{from}'s {} messages",
                    cfg.msgs
                ));
            }
        }
    }
    Ok(())
}

impl Model for LinkModel {
    type State = LinkState;
    type Action = LinkAction;

    fn init_states(&self) -> Vec<LinkState> {
        let n = self.cfg.nodes;
        let bug = self.cfg.broken.map_or(LinkBug::None, LinkVariant::bug);
        let links = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let mut l = Link::new().with_bug(bug);
                        if i != j {
                            l.resume(0).expect("a fresh link resumes from zero");
                        }
                        l
                    })
                    .collect()
            })
            .collect();
        vec![LinkState {
            links,
            wire: vec![vec![Vec::new(); n]; n],
            delivered: vec![vec![Vec::new(); n]; n],
            broken: vec![vec![false; n]; n],
            faults_left: self.cfg.faults,
            disconnects_left: self.cfg.disconnects,
            lost: 0,
            error: None,
        }]
    }

    fn actions(&self, s: &LinkState, actions: &mut Vec<LinkAction>) {
        if s.error.is_some() {
            return;
        }
        let cfg = &self.cfg;
        for (from, to) in self.channels() {
            let link = &s.links[from][to];
            if link.sent() < u64::from(cfg.msgs) {
                actions.push(LinkAction::Send { from, to });
            }
            let wire = &s.wire[from][to];
            for (k, f) in wire.iter().enumerate() {
                let f = f.clone();
                if k == 0 || (s.faults_left > 0 && cfg.reordering) {
                    let f = f.clone();
                    actions.push(LinkAction::Deliver { from, to, k, f });
                }
                if s.faults_left > 0 && cfg.lossy {
                    let f = f.clone();
                    actions.push(LinkAction::Lose { from, to, k, f });
                }
                if s.faults_left > 0 && cfg.duplicating {
                    actions.push(LinkAction::Duplicate { from, to, k, f });
                }
            }
            if link.is_up() && link.delivered() > link.ack_sent() {
                actions.push(LinkAction::Ack { from, to });
            }
            if link.is_up() && (s.disconnects_left > 0 || s.broken[from][to]) {
                actions.push(LinkAction::Disconnect { from, to });
            }
            if !link.is_up() {
                actions.push(LinkAction::Reconnect { from, to });
            }
        }
    }

    fn next_state(&self, last: &LinkState, action: LinkAction) -> Option<LinkState> {
        let mut s = last.clone();
        match action {
            LinkAction::Send { from, to } => {
                let m = s.links[from][to].sent() as u8 + 1;
                if let Some(f) = s.links[from][to].send(m, 1) {
                    s.wire[from][to].push(f);
                }
            }
            LinkAction::Deliver { from, to, k, .. } => {
                let frame = s.wire[from][to].remove(k);
                if k > 0 {
                    s.faults_left -= 1;
                    s.broken[from][to] = true;
                }
                match s.links[to][from].receive(frame) {
                    Ok(Some(m)) => s.delivered[from][to].push(m),
                    Ok(None) => {}
                    Err(e) => s.error = Some(format!("n{to} refused a frame from n{from}: {e}")),
                }
            }
            LinkAction::Lose { from, to, k, .. } => {
                s.wire[from][to].remove(k);
                s.faults_left -= 1;
                s.lost += 1;
                s.broken[from][to] = true;
            }
            LinkAction::Duplicate { from, to, k, .. } => {
                let f = s.wire[from][to][k].clone();
                s.wire[from][to].push(f);
                s.faults_left -= 1;
            }
            LinkAction::Ack { from, to } => {
                let f = s.links[from][to].ack_frame().expect("an ack is owed");
                s.wire[from][to].push(f);
            }
            LinkAction::Disconnect { from, to } => {
                if s.broken[from][to] {
                    s.broken[from][to] = false;
                } else {
                    s.disconnects_left -= 1;
                }
                s.lost += s.wire[from][to].len() as u8;
                s.wire[from][to].clear();
                s.links[from][to].disconnect();
            }
            LinkAction::Reconnect { from, to } => {
                let delivered = s.links[to][from].resume_point();
                match s.links[from][to].resume(delivered) {
                    Ok(frames) => s.wire[from][to].extend(frames),
                    Err(e) => s.error = Some(format!("n{from} refused n{to}'s resume: {e}")),
                }
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(FIFO, |_, s| fifo_exactly_once(s).is_ok()),
            Property::always(ERRORS, |_, s: &LinkState| s.error.is_none()),
            // Sound with or without cycles: judged in every state where nothing
            // more can happen, which every finite path reaches (the budgets
            // bound sends, faults and disconnects; acks and resends are bounded
            // by what was sent).
            Property::always(QUIET, |m: &Self, s: &LinkState| {
                !m.quiet(s) || all_delivered(&m.cfg, s).is_ok()
            }),
            Property::always(RETAINED, |m: &Self, s: &LinkState| {
                !m.quiet(s) || nothing_retained(s).is_ok()
            }),
            // Non-vacuity: frames really were lost, and still all arrived.
            Property::sometimes("all delivered after a loss", |m: &Self, s: &LinkState| {
                s.lost > 0 && m.quiet(s) && all_delivered(&m.cfg, s).is_ok()
            }),
        ]
    }
}

impl Explained for LinkModel {
    fn why(&self, property: &'static str, s: &LinkState) -> Option<String> {
        match property {
            FIFO => fifo_exactly_once(s).err(),
            ERRORS => s.error.clone(),
            QUIET => all_delivered(&self.cfg, s).err(),
            RETAINED => nothing_retained(s).err(),
            _ => None,
        }
    }

    fn describe(&self, action: &LinkAction) -> String {
        crate::display::link_action(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Checker;

    fn states(cfg: LinkCfg) -> usize {
        let checker = cfg.into_model().checker().spawn_bfs().join();
        checker.assert_properties();
        checker.unique_state_count()
    }

    fn caught(v: LinkVariant) -> usize {
        let cfg = LinkCfg {
            broken: Some(v),
            ..LinkCfg::default()
        };
        let checker = cfg.into_model().checker().spawn_bfs().join();
        let path = checker
            .discovery(v.caught_by())
            .unwrap_or_else(|| panic!("{v:?} not caught by {}", v.caught_by()));
        let why = checker.model().why(v.caught_by(), path.last_state());
        assert!(why.is_some(), "the explanation must agree: {path}");
        checker.unique_state_count()
    }

    #[test]
    fn the_link_is_fifo_exactly_once_and_recovers() {
        assert_eq!(states(LinkCfg::default()), 54_105);
    }

    #[test]
    fn each_broken_link_is_caught() {
        assert_eq!(caught(LinkVariant::NoDedup), 73_018);
        assert_eq!(caught(LinkVariant::NoResend), 49_021);
        assert_eq!(caught(LinkVariant::ResumeOffByOne), 48_891);
        assert_eq!(caught(LinkVariant::StaleAck), 51_984);
    }
}
