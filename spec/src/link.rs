//! A resumable reliable FIFO link: the channel Chandy-Lamport and the multicast
//! algorithms assume, kept alive across any number of TCP connections.
//!
//! TCP is FIFO and reliable *within* one connection; when a connection breaks
//! (a NAT timeout, a restarted switch, `ss -K`), whatever was in its buffers is
//! gone, and which frames the peer got is unknown. This layer makes the
//! directed channel outlive its connections, as JGroups' NAKACK2/UNICAST3 do
//! with sequence numbers and retransmission tables, and as Redis PSYNC resumes a
//! replica from its replication offset out of a bounded backlog. The model's
//! counterpart is stateright's `ordered_reliable_link`.
//!
//! Rules, per peer (one [`Link`] holds both directions):
//! * **Send**: every frame gets the next sequence number of its channel and is
//!   *retained* until acknowledged; it goes on the wire only while the outgoing
//!   connection is up.
//! * **Receive**: the frame numbered `delivered + 1` is delivered; a lower
//!   number is a duplicate and dropped; a higher one means frames were lost on
//!   the way (never on one TCP connection, but on the model's lossy network) and
//!   is dropped too: the gap is refilled by the next resume.
//! * **Acknowledge** cumulatively: every data frame carries the sender's
//!   `delivered` count of the reverse channel (piggy-backed); when nothing
//!   flows back, an [`Frame::Ack`] is owed ([`Link::ack_frame`]). A sender
//!   whose retained bytes pass its threshold marks its data frames `ack_now`
//!   (as QUIC's ACK_FREQUENCY lets a sender ask), and the receiver acks at
//!   once ([`Link::take_ack_due`]): the sender, not the receiver, knows how
//!   full its buffer is.
//! * **Resume**: a new outgoing connection starts with the peer telling how far
//!   it delivered ([`Link::resume`]); everything retained above that is resent,
//!   in order. A peer that claims more than was ever sent, or less than it had
//!   already acknowledged, is from another epoch (a restarted node): refused.
//!   While acks are held ([`Link::hold_acks`]), the resume point told is where
//!   the hold began, so a reconnect does not let the hold go.
//! * **Bound**: the retained bytes are the backpressure signal. The link never
//!   drops a frame to stay under its bound; the replica refuses new client writes
//!   while a link is full ([`Link::is_full`]).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What travels on one connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Frame<M> {
    /// The `seq`-th message of this directed channel (1-based), acknowledging
    /// the reverse channel through `ack`; `ack_now` asks for an immediate ack.
    Data {
        seq: u64,
        ack: u64,
        body: M,
        ack_now: bool,
    },
    /// Acknowledges the reverse channel through `ack`.
    Ack { ack: u64 },
}

impl<M> Frame<M> {
    /// The reverse channel's cumulative acknowledgement carried by this frame.
    pub fn ack(&self) -> u64 {
        match self {
            Frame::Data { ack, .. } | Frame::Ack { ack } => *ack,
        }
    }
}

/// A deliberately broken link, for the model checker to catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkBug {
    /// The correct protocol.
    #[default]
    None,
    /// Delivers every data frame it receives, duplicates and gaps included.
    NoDedup,
    /// Does not resend retained frames on resume: frames lost with a connection stay lost.
    NoResend,
    /// Resumes one frame too late: the first frame the peer is missing is skipped.
    ResumeOffByOne,
    /// No link layer at all: frames go out only once and every arrival is delivered.
    Bypass,
    /// Trusts that an acknowledgement put on a connection arrived, though the
    /// connection died with it: the peer keeps our acknowledged frames for good.
    StaleAck,
    /// Lets held acknowledgements go without sending the ack owed
    /// ([`Link::hold_acks`]): a peer refusing writes for want of it waits
    /// for a frame or a tick that may never come.
    SilentRelease,
    /// Tells a reconnecting peer its true resume point though acks are held
    /// ([`Link::resume_point`]): every reconnect lets the hold go by up to a
    /// buffer, so the holder's memory grows without bound.
    LeakyResume,
}

/// The peer's resume point does not fit this channel's history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkError {
    /// The peer acknowledges (or claims to have delivered) frames never sent.
    AheadOfSent { claimed: u64, sent: u64 },
    /// The peer claims to have delivered fewer frames than it acknowledged before:
    /// it lost its state (restarted), so the channel cannot be resumed.
    BehindAck { claimed: u64, acked: u64 },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::AheadOfSent { claimed, sent } => write!(
                f,
                "peer claims delivery through frame {claimed} but only {sent} were sent (another epoch?)"
            ),
            LinkError::BehindAck { claimed, acked } => write!(
                f,
                "peer resumes from frame {claimed} after acknowledging {acked}: it lost its state (restarted?)"
            ),
        }
    }
}

impl std::error::Error for LinkError {}

/// Both directions of the link with one peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link<M> {
    /// Sequence number of the last frame handed to this link.
    sent: u64,
    /// The peer has delivered our frames through here.
    acked: u64,
    /// Frames `acked+1 ..= sent`, with their sizes. Shared by copies of the
    /// link until one changes it: a model checker copies a replica at every
    /// step, and most steps neither send on a link nor trim it.
    retained: Arc<VecDeque<(u64, M, u64)>>,
    retained_bytes: u64,
    /// Whether our outgoing connection is up (frames go on the wire).
    out_up: bool,
    /// We delivered the peer's frames through here.
    delivered: u64,
    /// The last acknowledgement we put on the wire.
    ack_sent: u64,
    /// Retained bytes from which our data frames ask for an immediate ack
    /// (configuration: the same for the link's whole life).
    ack_wanted_at: u64,
    /// A frame just received asked for an immediate ack; taken by the
    /// replica in the same step, so always false between steps.
    ack_due: bool,
    /// Acknowledgements held back (flow control, decided by the replica:
    /// `Node`'s relay rule), with what was delivered when the hold began.
    /// While set, data frames carry the last ack sent, no ack frame goes, and
    /// a resume is told the hold's start, so the peer's retained frames pile up.
    held_at: Option<u64>,
    bug: LinkBug,
}

impl<M: Clone> Default for Link<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Clone> Link<M> {
    /// A link whose connections are not up yet.
    pub fn new() -> Self {
        Link {
            sent: 0,
            acked: 0,
            retained: Arc::default(),
            retained_bytes: 0,
            out_up: false,
            delivered: 0,
            ack_sent: 0,
            ack_wanted_at: u64::MAX,
            ack_due: false,
            held_at: None,
            bug: LinkBug::None,
        }
    }

    /// The same link with a deliberate bug.
    pub fn with_bug(mut self, bug: LinkBug) -> Self {
        self.bug = bug;
        self
    }

    /// Holds acknowledgements back, or lets them go again. Letting go returns
    /// the ack owed, to go out at once: the peer may be refusing writes for
    /// want of it, and then it sends nothing that would ask for it, so
    /// waiting for the next frame or tick would leave it refusing for nothing.
    pub fn hold_acks(&mut self, hold: bool) -> Option<Frame<M>> {
        match (self.held_at, hold) {
            (None, true) => {
                self.held_at = Some(self.delivered);
                None
            }
            (Some(_), false) => {
                self.held_at = None;
                (self.bug != LinkBug::SilentRelease)
                    .then(|| self.ack_frame())
                    .flatten()
            }
            _ => None,
        }
    }

    /// Whether acknowledgements are held back ([`Link::hold_acks`]).
    pub fn acks_held(&self) -> bool {
        self.held_at.is_some()
    }

    /// While acks are held, how many of the peer's frames were delivered when
    /// the hold began: the most the peer may learn of until it ends.
    pub fn held_at(&self) -> Option<u64> {
        self.held_at
    }

    /// How far we delivered the peer's frames, as a resume handshake tells
    /// the peer. Under a hold it is where the hold began: the true count would
    /// acknowledge what the hold keeps unacknowledged, and every reconnect
    /// would let the peer take a buffer more. Frames above it come again and
    /// are dropped as duplicates. Never below the peer's `acked`: no ack
    /// beyond the hold's start goes while it lasts.
    pub fn resume_point(&self) -> u64 {
        match self.held_at {
            Some(at) if self.bug != LinkBug::LeakyResume => at,
            _ => self.delivered,
        }
    }

    /// From `bytes` retained on, data frames ask the peer for an immediate ack.
    pub fn set_ack_wanted_at(&mut self, bytes: u64) {
        self.ack_wanted_at = bytes;
    }

    /// Queues `body` (of `size` bytes) and returns the frame to put on the wire
    /// now, if the outgoing connection is up.
    pub fn send(&mut self, body: M, size: u64) -> Option<Frame<M>> {
        self.sent += 1;
        let seq = self.sent;
        if self.bug == LinkBug::Bypass {
            return self.out_up.then(|| self.data(seq, body));
        }
        Arc::make_mut(&mut self.retained).push_back((seq, body.clone(), size));
        self.retained_bytes += size;
        self.out_up.then(|| self.data(seq, body))
    }

    fn data(&mut self, seq: u64, body: M) -> Frame<M> {
        if self.held_at.is_none() {
            self.ack_sent = self.delivered;
        }
        Frame::Data {
            seq,
            ack: self.ack_sent,
            body,
            ack_now: self.retained_bytes >= self.ack_wanted_at,
        }
    }

    /// Takes a frame from the peer; returns the message to deliver, if any.
    pub fn receive(&mut self, frame: Frame<M>) -> Result<Option<M>, LinkError> {
        self.on_ack(frame.ack())?;
        let Frame::Data {
            seq, body, ack_now, ..
        } = frame
        else {
            return Ok(None);
        };
        // A duplicate asks too: the sender still holds it.
        self.ack_due |= ack_now;
        let next = seq == self.delivered + 1;
        if next || matches!(self.bug, LinkBug::NoDedup | LinkBug::Bypass) {
            self.delivered = self.delivered.max(seq);
            Ok(Some(body))
        } else {
            Ok(None)
        }
    }

    fn on_ack(&mut self, ack: u64) -> Result<(), LinkError> {
        if self.bug == LinkBug::Bypass {
            return Ok(());
        }
        if ack > self.sent {
            return Err(LinkError::AheadOfSent {
                claimed: ack,
                sent: self.sent,
            });
        }
        self.acked = self.acked.max(ack);
        while self
            .retained
            .front()
            .is_some_and(|(s, _, _)| *s <= self.acked)
        {
            let retained = Arc::make_mut(&mut self.retained);
            let (_, _, size) = retained.pop_front().expect("checked");
            self.retained_bytes -= size;
        }
        Ok(())
    }

    /// A new outgoing connection is up and the peer has delivered our frames
    /// through `peer_delivered`: returns the frames to resend, in order.
    pub fn resume(&mut self, peer_delivered: u64) -> Result<Vec<Frame<M>>, LinkError> {
        if self.bug != LinkBug::Bypass && peer_delivered < self.acked {
            return Err(LinkError::BehindAck {
                claimed: peer_delivered,
                acked: self.acked,
            });
        }
        self.on_ack(peer_delivered)?;
        self.out_up = true;
        let skip = match self.bug {
            LinkBug::NoResend | LinkBug::Bypass => self.retained.len(),
            LinkBug::ResumeOffByOne => 1,
            LinkBug::None
            | LinkBug::NoDedup
            | LinkBug::StaleAck
            | LinkBug::SilentRelease
            | LinkBug::LeakyResume => 0,
        };
        let resend: Vec<(u64, M)> = self
            .retained
            .iter()
            .skip(skip)
            .map(|(s, m, _)| (*s, m.clone()))
            .collect();
        Ok(resend.into_iter().map(|(s, m)| self.data(s, m)).collect())
    }

    /// The outgoing connection broke: frames wait in the retained buffer.
    pub fn disconnect(&mut self) {
        self.out_up = false;
        if self.bug != LinkBug::StaleAck {
            // Acks on the dead connection may have died with it, and the peer
            // trims its retained buffer only on our acks: owe one again.
            self.ack_sent = 0;
        }
    }

    /// Whether the outgoing connection is up.
    pub fn is_up(&self) -> bool {
        self.out_up
    }

    /// An acknowledgement frame, if the peer has not heard of everything we
    /// delivered and the outgoing connection can carry it.
    pub fn ack_frame(&mut self) -> Option<Frame<M>> {
        (self.out_up && self.held_at.is_none() && self.delivered > self.ack_sent).then(|| {
            self.ack_sent = self.delivered;
            Frame::Ack {
                ack: self.delivered,
            }
        })
    }

    /// Whether a frame received in this step asked for an immediate ack
    /// (cleared by asking).
    pub fn take_ack_due(&mut self) -> bool {
        std::mem::take(&mut self.ack_due)
    }

    /// How many of the peer's frames were delivered (outside a hold, what a
    /// resume handshake tells the peer: [`Link::resume_point`]).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The last acknowledgement put on the wire.
    pub fn ack_sent(&self) -> u64 {
        self.ack_sent
    }

    /// How many frames were handed to this link.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The peer's last cumulative acknowledgement.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Frames kept for a resend.
    pub fn retained_frames(&self) -> usize {
        self.retained.len()
    }

    pub fn retained_bytes(&self) -> u64 {
        self.retained_bytes
    }

    /// Whether the retained buffer has reached `limit` bytes.
    pub fn is_full(&self, limit: u64) -> bool {
        self.retained_bytes >= limit
    }
}

/// The hashes a model checker may use to count two fault-free states as one
/// (see [`crate::node::Node::hash_live`]).
///
/// A link's acknowledgement bookkeeping (`acked`, `retained`, `retained_bytes`,
/// `ack_sent`, where a hold began, and the `ack` a data frame carries) is read only by a resume
/// after a disconnect, by the ack owed on a tick, and at three thresholds (an
/// ack every [`ACK_EVERY`](crate::node::ACK_EVERY) deliveries, `ack_now` from
/// `ack_wanted_at` retained bytes, writes refused at the link buffer). In a run with
/// no disconnects and no ticks that stays below the thresholds, nothing reads
/// it, so states that differ only there have the same futures and the same
/// verdicts: it is *dead*, as in Holzmann's dead-variable reduction in SPIN.
impl<M: Hash> Link<M> {
    /// Hashes the link without its acknowledgement bookkeeping.
    pub fn hash_live<H: Hasher>(&self, h: &mut H) {
        // Destructured, so that a new field cannot be left out unawares.
        let Link {
            sent,
            acked: _,
            retained: _,
            retained_bytes: _,
            out_up,
            delivered,
            ack_sent: _,
            ack_wanted_at,
            ack_due,
            held_at,
            bug,
        } = self;
        (
            sent,
            out_up,
            delivered,
            ack_wanted_at,
            ack_due,
            // Where a hold began is read only by a resume.
            held_at.is_some(),
            bug,
        )
            .hash(h);
    }
}

impl<M: Hash> Frame<M> {
    /// Hashes the frame without the acknowledgement it carries.
    pub fn hash_live<H: Hasher>(&self, h: &mut H) {
        match self {
            Frame::Data {
                seq,
                ack: _,
                body,
                ack_now,
            } => (0u8, seq, body, ack_now).hash(h),
            Frame::Ack { ack } => (1u8, ack).hash(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(frames: &[Frame<char>]) -> Vec<char> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Data { body, .. } => Some(*body),
                Frame::Ack { .. } => None,
            })
            .collect()
    }

    /// a -> b: sends three frames, the connection drops after the first arrived.
    fn dropped_after_one(bug: LinkBug) -> (Link<char>, Link<char>, Vec<char>) {
        let mut a: Link<char> = Link::new().with_bug(bug);
        let mut b: Link<char> = Link::new().with_bug(bug);
        a.resume(0).unwrap();
        let f1 = a.send('x', 1).unwrap();
        let _lost = [a.send('y', 1), a.send('z', 1)];
        let mut got = Vec::new();
        got.extend(b.receive(f1).unwrap());
        a.disconnect();
        assert_eq!(a.send('w', 1), None, "nothing goes on a dead connection");
        for f in a.resume(b.delivered()).unwrap() {
            got.extend(b.receive(f).unwrap());
        }
        (a, b, got)
    }

    #[test]
    fn resume_resends_exactly_what_the_peer_missed() {
        let (a, b, got) = dropped_after_one(LinkBug::None);
        assert_eq!(got, vec!['x', 'y', 'z', 'w']);
        assert_eq!(b.delivered(), 4);
        // Acks from b (piggy-backed on b's own frames, or an idle ack) free the buffer.
        assert_eq!(a.retained_frames(), 3, "y, z, w await b's ack");
    }

    /// Two fresh links with their outgoing connections up.
    fn connected() -> (Link<char>, Link<char>) {
        let (mut a, mut b) = (Link::new(), Link::new());
        a.resume(0).unwrap();
        b.resume(0).unwrap();
        (a, b)
    }

    fn live(link: &Link<char>) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        link.hash_live(&mut h);
        h.finish()
    }

    /// What a link sends, delivers and whether it is connected is live; which
    /// acks it has had (and so what it retains) is not.
    #[test]
    fn a_links_live_hash_leaves_out_exactly_its_acknowledgements() {
        let (mut a, mut b) = connected();
        b.receive(a.send('x', 10).unwrap()).unwrap();
        let unacked = a.clone();
        a.receive(b.ack_frame().unwrap()).unwrap();
        assert_ne!(
            (a.acked(), a.retained_bytes()),
            (unacked.acked(), unacked.retained_bytes())
        );
        assert_eq!(live(&a), live(&unacked));
        let mut sent = a.clone();
        sent.send('y', 1);
        let mut delivered = a.clone();
        delivered.receive(b.send('q', 1).unwrap()).unwrap();
        let mut down = a.clone();
        down.disconnect();
        for other in [&sent, &delivered, &down] {
            assert_ne!(live(other), live(&a), "{other:?}");
        }
    }

    #[test]
    fn acks_free_the_buffer_and_duplicates_are_dropped() {
        let (mut a, mut b) = connected();
        let f = a.send('x', 10).unwrap();
        assert_eq!(a.retained_bytes(), 10);
        assert!(a.is_full(10) && !a.is_full(11));
        assert_eq!(b.receive(f.clone()).unwrap(), Some('x'));
        assert_eq!(b.receive(f).unwrap(), None, "a duplicate is dropped");
        let ack = b.ack_frame().expect("an ack is owed");
        assert_eq!(b.ack_frame(), None, "owed once");
        a.receive(ack).unwrap();
        assert_eq!((a.retained_frames(), a.retained_bytes()), (0, 0));
        // Piggy-backed: b's data frame carries its delivered count.
        b.receive(a.send('y', 1).unwrap()).unwrap();
        let back = b.send('q', 1).unwrap();
        assert_eq!(back.ack(), 2);
        a.receive(back).unwrap();
        assert_eq!(a.retained_frames(), 0);
    }

    /// Held acks: no ack frame, and data frames carry the last ack sent, so
    /// the peer keeps its frames; let go, the next ack carries them all.
    #[test]
    fn held_acks_leave_the_peer_its_frames_until_let_go() {
        let (mut a, mut b) = connected();
        b.receive(a.send('x', 10).unwrap()).unwrap();
        b.hold_acks(true);
        assert_eq!(b.ack_frame(), None, "held");
        let back = b.send('q', 1).unwrap();
        assert_eq!(back.ack(), 0, "a data frame carries the old ack");
        a.receive(back).unwrap();
        assert_eq!(a.retained_bytes(), 10);
        b.receive(a.send('y', 5).unwrap()).unwrap();
        assert_eq!(b.hold_acks(true), None, "still held");
        let owed = b.hold_acks(false).expect("owed at once when let go");
        assert_eq!(b.ack_frame(), None, "and only once");
        a.receive(owed).unwrap();
        assert_eq!((a.retained_frames(), a.retained_bytes()), (0, 0));
        // Not held, an ack waits for its threshold as ever: no ack per call.
        b.receive(a.send('z', 1).unwrap()).unwrap();
        assert_eq!(b.hold_acks(false), None, "nothing was held");
    }

    /// The broken variant lets go silently: the ack waits for a later frame.
    #[test]
    fn a_silent_release_owes_the_ack_without_sending_it() {
        let (mut a, b) = connected();
        let mut b = b.with_bug(LinkBug::SilentRelease);
        b.hold_acks(true);
        b.receive(a.send('x', 10).unwrap()).unwrap();
        assert_eq!(b.hold_acks(false), None);
        assert!(b.ack_frame().is_some(), "still owed");
    }

    /// A reconnect under a hold is told where the hold began, so the peer
    /// keeps what the hold keeps; the frames above come again as duplicates.
    /// Told the true count (the broken variant), each reconnect would free the
    /// peer a buffer more.
    #[test]
    fn a_reconnect_does_not_let_a_hold_go() {
        for (bug, kept) in [(LinkBug::None, 5), (LinkBug::LeakyResume, 0)] {
            let (mut a, b) = connected();
            let mut b = b.with_bug(bug);
            b.receive(a.send('x', 10).unwrap()).unwrap();
            b.hold_acks(true);
            assert_eq!(b.held_at(), Some(1));
            b.receive(a.send('y', 5).unwrap()).unwrap();
            a.disconnect();
            assert_eq!(b.delivered(), 2);
            let resent = a.resume(b.resume_point()).unwrap();
            assert_eq!(a.retained_bytes(), kept, "{bug:?}");
            for f in resent {
                assert_eq!(b.receive(f).unwrap(), None, "a duplicate");
            }
            assert_eq!(b.delivered(), 2);
            assert_eq!(b.ack_frame(), None, "{bug:?}: still held");
            if bug == LinkBug::None {
                let owed = b.hold_acks(false).expect("owed when let go");
                a.receive(owed).unwrap();
                assert_eq!(a.retained_bytes(), 0);
                assert_eq!(b.resume_point(), 2, "no hold: the true count");
            }
        }
    }

    #[test]
    fn a_gap_is_refilled_by_the_next_resume() {
        let mut a: Link<char> = Link::new();
        let mut b: Link<char> = Link::new();
        a.resume(0).unwrap();
        let _lost = a.send('x', 1);
        let f2 = a.send('y', 1).unwrap();
        assert_eq!(b.receive(f2).unwrap(), None, "frame 2 before frame 1 waits");
        let got: Vec<char> = a
            .resume(b.delivered())
            .unwrap()
            .into_iter()
            .filter_map(|f| b.receive(f).unwrap())
            .collect();
        assert_eq!(got, vec!['x', 'y']);
    }

    #[test]
    fn a_peer_from_another_epoch_is_refused() {
        let mut a: Link<char> = Link::new();
        a.resume(0).unwrap();
        a.send('x', 1);
        assert_eq!(
            a.resume(5),
            Err(LinkError::AheadOfSent {
                claimed: 5,
                sent: 1
            })
        );
        a.receive(Frame::Ack { ack: 1 }).unwrap();
        assert_eq!(
            a.resume(0),
            Err(LinkError::BehindAck {
                claimed: 0,
                acked: 1
            })
        );
    }

    #[test]
    fn each_broken_variant_breaks_the_channel() {
        let (_, _, got) = dropped_after_one(LinkBug::NoResend);
        assert_eq!(got, vec!['x'], "y, z, w lost");
        let (_, _, got) = dropped_after_one(LinkBug::ResumeOffByOne);
        assert_eq!(
            got,
            vec!['x'],
            "y is skipped, so z and w arrive after a gap"
        );
        let mut a: Link<char> = Link::new().with_bug(LinkBug::NoDedup);
        let mut b: Link<char> = Link::new().with_bug(LinkBug::NoDedup);
        a.resume(0).unwrap();
        let f = a.send('x', 1).unwrap();
        let twice: Vec<char> = [f.clone(), f]
            .into_iter()
            .filter_map(|f| b.receive(f).unwrap())
            .collect();
        assert_eq!(twice, vec!['x', 'x']);
        assert_eq!(bodies(&a.resume(0).unwrap()), vec!['x']);
    }
}
