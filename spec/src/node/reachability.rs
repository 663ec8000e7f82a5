//! Connections and time: when a peer counts as unreachable, what a tick
//! does (snapshot and write timeouts, idle acks), and what a connection
//! coming up or going down changes. A peer is reachable while both of its
//! connections are up; one down since [`Limits::unreachable_after_ms`] ago is
//! unreachable, which aborts snapshots waiting on it and, if the mode needs
//! it, refuses writes ([`Node::write_refusal`]).
//!
//! [`Limits::unreachable_after_ms`]: super::Limits::unreachable_after_ms

use super::{secs, Node, Output, PeerError};
use crate::kv::Reply;
use crate::multicast::MsgId;
use crate::NodeId;

impl Node {
    /// Since when `peer` has not been connected both ways, if it is not.
    pub fn down_since(&self, peer: NodeId) -> Option<u64> {
        self.down_since[peer]
    }

    /// Whether `peer` has been disconnected for longer than the limit allows
    /// (never this replica itself, which has no connection to itself).
    pub fn is_unreachable(&self, peer: NodeId) -> bool {
        self.unreachable_for(peer).is_some()
    }

    /// How long `peer` has been disconnected, in milliseconds, if that is
    /// long enough to count it unreachable ([`Node::is_unreachable`]).
    pub(super) fn unreachable_for(&self, peer: NodeId) -> Option<u64> {
        let down_for = self.now.saturating_sub(self.down_since[peer]?);
        (peer != self.me && down_for >= self.limits.unreachable_after_ms).then_some(down_for)
    }

    /// The outgoing connection to `peer` is up again, and `peer` has
    /// delivered `delivered` of this link's frames: resend the rest.
    pub(super) fn on_link_up(
        &mut self,
        peer: NodeId,
        delivered: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), PeerError> {
        let frames = self.links[peer]
            .resume(delivered)
            .map_err(|error| PeerError::Link { peer, error })?;
        out.extend(
            frames
                .into_iter()
                .map(|frame| Output::Send { to: peer, frame }),
        );
        self.update_reachability(peer);
        self.hold_relayed_acks(out);
        // An ack lost with the old connection is owed again
        // ([`Link::disconnect`]). It goes now, unless a resent frame
        // carried it: the peer may be refusing writes for want of it,
        // and the next tick is a tenth of a second away.
        out.extend(
            self.links[peer]
                .ack_frame()
                .map(|frame| Output::Send { to: peer, frame }),
        );
        Ok(())
    }

    /// The connection `peer` dialed to this replica is up.
    pub(super) fn on_inbound_up(&mut self, peer: NodeId) {
        self.inbound_up[peer] = true;
        self.update_reachability(peer);
    }

    /// A connection with `peer` broke: the one this replica dialed
    /// (`outgoing`), whose link keeps its frames for a resume, or `peer`'s.
    pub(super) fn on_link_down(&mut self, peer: NodeId, outgoing: bool) {
        if outgoing {
            self.links[peer].disconnect();
        } else {
            self.inbound_up[peer] = false;
        }
        self.update_reachability(peer);
    }

    fn update_reachability(&mut self, peer: NodeId) {
        let up = self.links[peer].is_up() && self.inbound_up[peer];
        match (up, self.down_since[peer]) {
            (true, _) => self.down_since[peer] = None,
            (false, None) => self.down_since[peer] = Some(self.now),
            (false, Some(_)) => {}
        }
    }

    /// Time passes: unreachable peers, snapshot timeouts, write timeouts, idle acks.
    pub(super) fn on_tick(&mut self, now: u64, out: &mut Vec<Output>) {
        self.now = self.now.max(now);
        let unreachable: Vec<NodeId> = (0..self.n).filter(|&j| self.is_unreachable(j)).collect();
        for peer in unreachable {
            let effects = self.recorder.on_unreachable(peer);
            self.carry_out_snapshot(effects, out);
        }
        let effects = self.recorder.on_tick(self.now);
        self.carry_out_snapshot(effects, out);
        if let Some(cutoff) = self.now.checked_sub(self.limits.write_timeout_ms) {
            for (seq, p) in self.pending.take_issued_by(cutoff) {
                let id = MsgId {
                    origin: self.me,
                    seq,
                };
                let reply = Reply::Error(format!(
                    "TIMEOUT write {id} not delivered in {} s: {}; it may still be applied",
                    secs(self.limits.write_timeout_ms),
                    self.waiting_for()
                ));
                out.push(Output::Reply { req: p.req, reply });
            }
        }
        for peer in 0..self.n {
            if let Some(frame) = self.links[peer].ack_frame() {
                out.push(Output::Send { to: peer, frame });
            }
        }
    }

    /// What an undelivered write waits for, in words.
    fn waiting_for(&self) -> String {
        let down: Vec<String> = self
            .mode()
            .needs(self.me, self.n)
            .into_iter()
            .filter_map(|j| {
                self.down_since[j].map(|t| {
                    format!(
                        "n{j}, disconnected for {} s",
                        secs(self.now.saturating_sub(t))
                    )
                })
            })
            .collect();
        if down.is_empty() {
            format!(
                "waiting for the {} order (no needed peer is down)",
                self.mode()
            )
        } else {
            format!("waiting for {}", down.join(", "))
        }
    }
}
