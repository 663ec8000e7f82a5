//! Backpressure: every link retains what its peer has not acknowledged, up
//! to [`Limits::link_buffer_bytes`]. While one is full, new writes are refused
//! (`TRYAGAIN`) rather than queued without bound or dropped, and under the
//! sequencer, whose members' writes fill *its* links, the sequencer holds its
//! acks so that the members' links fill and refuse in turn. The properties
//! `writes_flow` and `acks_stay_held` ([`crate::properties`]) judge these rules
//! in the model. Snapshots are bounded too: a replica taking part in
//! [`Limits::max_snapshots`] refuses to start another
//! ([`Node::snapshot_refusal`]; `snapshots_bounded` judges it).
//!
//! [`Limits::link_buffer_bytes`]: super::Limits::link_buffer_bytes
//! [`Limits::max_snapshots`]: super::Limits::max_snapshots

use super::{secs, Node, Output};
use crate::multicast::sequencer::SEQUENCER;
use crate::multicast::Mode;
use crate::properties::{FullLink, LeakedHold};

/// How a refused snapshot start begins (a Redis error code, then words), so
/// that a client can tell it from other errors.
pub const SNAPSHOT_REFUSED: &str = "TRYAGAIN snapshot refused";

impl Node {
    /// Why a new write cannot be taken now, if it cannot: a needed peer is
    /// unreachable, or a link's retained buffer is full.
    pub fn write_refusal(&self) -> Option<String> {
        let mode = self.mode();
        let needs = mode.needs(self.me, self.n);
        if let Some((j, down_for)) = needs
            .iter()
            .find_map(|&j| Some((j, self.unreachable_for(j)?)))
        {
            let who = if needs.len() == 1 {
                format!("node {j}")
            } else {
                "every node".to_string()
            };
            return Some(format!(
                "CLUSTERDOWN write refused: n{j} unreachable for {} s and {mode} needs {who} to order writes; reads still work",
                secs(down_for)
            ));
        }
        // The unflushed batch counts as sent: it joins every link when it goes.
        self.full_link(self.outbox.bytes()).map(|f| {
            let (j, limit) = (f.peer, f.limit);
            // A member cannot see past the sequencer, whose ack hold may be
            // for another member (`Node::hold_relayed_acks`): say so.
            let why = if mode == Mode::TotalSequencer && j == SEQUENCER {
                format!("n{j}, or a member it relays to, is slow or unreachable")
            } else if let Some(down_for) = self.unreachable_for(j) {
                // Known dead for now: "slow" would mislead. Its frames wait
                // for it, and so do writes, until it is back.
                format!(
                    "n{j} has been unreachable for {} s; writes wait for it to come back",
                    secs(down_for)
                )
            } else {
                format!("n{j} is slow or unreachable")
            };
            format!(
                "TRYAGAIN link to n{j} holds {} unacknowledged bytes (limit {limit}): {why}; retry later",
                f.retained
            )
        })
    }

    /// Why this replica cannot start a snapshot now, if it cannot: it takes
    /// part in [`Limits::max_snapshots`](super::Limits::max_snapshots)
    /// already, its own or its peers'. Each costs a copy of the state as it
    /// changes, the channels' recordings and a write of the whole store, so
    /// a start beyond the bound is refused, not queued (a client looping
    /// `SNAPSHOT` grew a node from 34 MB to 2.1 GB, and timed most of them
    /// out). Taking part in a peer's snapshot is never refused: its
    /// initiator would wait out its timeout for nothing. So a replica starts
    /// at most the bound itself, and takes part in at most `n` times it.
    pub fn snapshot_refusal(&self) -> Option<String> {
        // Counted first: the ids are listed only for a refusal (the node and
        // the model ask at every start).
        let busy = self.recorder.in_progress().count();
        let limit = self.limits.max_snapshots;
        (busy as u64 >= limit).then(|| {
            let ids: Vec<String> = self.recorder.in_progress().map(|id| id.to_string()).collect();
            format!(
                "{SNAPSHOT_REFUSED}: {busy} in progress here ({}), the limit is {limit}; retry when one ends",
                ids.join(", ")
            )
        })
    }

    /// The first link whose retained bytes, with `joining` more about to join
    /// every link, reach the buffer's limit: while there is one, writes are
    /// refused, and the sequencer holds its acks (`Node::hold_relayed_acks`).
    pub fn full_link(&self, joining: u64) -> Option<FullLink> {
        let limit = self.limits.link_buffer_bytes;
        (0..self.n)
            .filter(|&j| j != self.me)
            .map(|j| FullLink {
                node: self.me,
                peer: j,
                retained: self.links[j].retained_bytes() + joining,
                limit,
            })
            .find(|f| f.retained >= limit)
    }

    /// Where this replica holds its acks to `peer` and `peer` knows of more
    /// deliveries than the hold began with: the hold let go without ending
    /// ([`properties::acks_stay_held`](crate::properties::acks_stay_held)).
    pub fn leaked_hold(&self, peer: &Node) -> Option<LeakedHold> {
        let held_at = self.links[peer.me].held_at()?;
        let acked = peer.links[self.me].acked();
        (acked > held_at).then_some(LeakedHold {
            node: self.me,
            peer: peer.me,
            held_at,
            acked,
        })
    }

    /// Flow control for what the sequencer relays. A member's write goes to
    /// the sequencer alone, which sends it on to every member: a slow or
    /// stopped member's link fills at the sequencer, not at the writer, so the
    /// writer's own bound ([`Node::write_refusal`]) never sees it. So while
    /// any of the sequencer's links retains its buffer's worth, the sequencer
    /// acknowledges no member's frames: the members' links to it fill in turn,
    /// and their writes are refused (`TRYAGAIN`) as the sequencer's own are.
    /// Its memory stays within a buffer per link plus what the members had in
    /// flight. Only the sequencer holds acks, and a member always acks it, so
    /// no two nodes wait on each other's. Letting go sends each member the
    /// ack it was owed at once: a member refusing writes sends nothing that
    /// would ask for it.
    pub(super) fn hold_relayed_acks(&mut self, out: &mut Vec<Output>) {
        if self.mode() != Mode::TotalSequencer || self.me != SEQUENCER {
            return;
        }
        let full = self.full_link(0).is_some();
        for j in (0..self.n).filter(|&j| j != self.me) {
            if let Some(frame) = self.links[j].hold_acks(full) {
                out.push(Output::Send { to: j, frame });
            }
        }
    }
}
