//! The event loop's side of peer connections: which connection to each peer
//! is current, the resume handshake's answers, and carrying the spec's link
//! decisions out on them.
//!
//! Connections come and go ([`crate::peer`] re-dials forever); the spec's
//! link layer (`gsmo_spec::link`) keeps each directed channel reliable and
//! FIFO across them. This file only translates: an outgoing connection up is
//! `LinkUp { delivered }` (and the frames the spec resends go on it), one
//! down is `LinkDown`, an inbound one is `InboundUp` / `LinkDown`. Every
//! connection has a generation number, so a late event from a replaced
//! connection changes nothing.
//!
//! Two decisions are the runtime's own, because they are about this process
//! and not the protocol: a full writer queue closes its connection (memory
//! stays bounded; the link's retained buffer and the resume refill it), and a
//! peer that has delivered more of our frames than we ever sent proves this
//! node restarted with empty state, so it exits rather than serve it.

use crate::event::{loud, Admitted, LinkEvent};
use crate::frame::PeerFrame;
use crate::runtime::{describe, Runtime};
use gsmo_spec::link::{Frame, LinkError};
use gsmo_spec::node::{Input as SpecInput, LinkFrame, PeerError};
use gsmo_spec::refusal::Verdict;
use gsmo_spec::NodeId;
use std::fmt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// The most of a refusal's reason kept (characters): the peer's own words.
const MAX_REFUSAL_TEXT: usize = 200;

/// One direction's connection, as `INFO` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ConnState {
    /// Never connected yet.
    #[default]
    Connecting,
    Up,
    /// Was up, broke (the reason); being re-dialed or awaited.
    Down(String),
}

/// `text` as an INFO value: on one line and free of the `,` separator.
pub(crate) fn info_text(text: &str) -> String {
    text.replace([',', '\r', '\n'], ";")
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnState::Connecting => f.write_str("connecting"),
            ConnState::Up => f.write_str("up"),
            ConnState::Down(r) => write!(f, "down({})", info_text(r)),
        }
    }
}

/// Both connections with one peer.
#[derive(Debug, Default)]
pub struct PeerConn {
    pub out: ConnState,
    /// The current outgoing connection's generation and writer queue.
    out_gen: u64,
    queue: Option<mpsc::Sender<PeerFrame>>,
    /// Frames the current connection's resume resends (its first frames), and
    /// frames handed to its writer so far: what [`PeerConn::queued_behind_resend`]
    /// needs to tell the resend from what queues behind it.
    resend: usize,
    enqueued: usize,
    /// Frames for `queue` held until the event loop's turn ends
    /// ([`Runtime::end_turn`]); dropped with the connection they were meant for.
    /// Bounded by what one turn sends: at most a resume's resend of the link's
    /// retained frames (`--link-buffer`), and the writer queue's own bound
    /// (`--peer-queue`) applies to what follows the resend when they are
    /// handed over.
    corked: Vec<PeerFrame>,
    pub inbound: ConnState,
    /// The current inbound connection's generation; dropping `stop` closes it.
    in_gen: u64,
    stop: Option<oneshot::Sender<()>>,
    /// Outgoing / inbound connections that came up (the first included).
    pub out_ups: u64,
    pub in_ups: u64,
    /// Connections this node closed because the writer queue was full.
    pub queue_full_closes: u64,
    /// Dial attempts that failed since the last success.
    pub dial_failures: u64,
    pub last_dial_error: String,
    /// Resume handshakes refused because the peer's resume point did not fit.
    pub refused_resumes: u64,
    /// Handshakes the node at the peer's address refused since the last success.
    pub refusals: u64,
}

impl PeerConn {
    /// The outgoing connection changes (a new one, or none): frames held for
    /// the old one are dropped, as frames in its queue are. The link retains
    /// them, and a resume resends them in order on the next connection.
    fn set_queue(&mut self, queue: Option<mpsc::Sender<PeerFrame>>) {
        self.queue = queue;
        self.corked.clear();
        self.resend = 0;
        self.enqueued = 0;
    }

    /// Frames waiting in the current writer queue.
    pub fn queued(&self) -> usize {
        self.queue
            .as_ref()
            .map_or(0, |q| q.max_capacity() - q.capacity())
    }

    /// Frames in the writer queue behind the resume's resend, which
    /// `--peer-queue` bounds. The resend goes first and whole: it is the
    /// link's retained frames, bounded by `--link-buffer`, and a bound on it
    /// would close each new connection after its first `--peer-queue` frames,
    /// so a long partition healed by one reconnect a queue's worth at a time
    /// (7-8 closes and reconnects to resend 28 k frames after a peer's 5 s
    /// stop under `redis-benchmark`; now 1).
    /// The writer takes frames in order, so the resend's frames still queued
    /// are those it has not yet written.
    pub fn queued_behind_resend(&self) -> usize {
        let queued = self.queued();
        let written = self.enqueued.saturating_sub(queued);
        queued - self.resend.saturating_sub(written).min(queued)
    }
}

impl Runtime {
    pub(crate) fn peer_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.cfg.cluster_size()).filter(move |&j| j != self.cfg.id)
    }

    pub(crate) fn peers_up(&self) -> usize {
        self.peer_ids()
            .filter(|&j| {
                self.peers[j].out == ConnState::Up && self.peers[j].inbound == ConnState::Up
            })
            .count()
    }

    pub(crate) fn on_link(&mut self, event: LinkEvent) {
        let me = self.cfg.id;
        match event {
            LinkEvent::OutUp {
                peer,
                gen,
                delivered,
                queue,
            } => {
                self.refusals.met(peer);
                let p = &mut self.peers[peer];
                p.out_gen = gen;
                p.refusals = 0;
                p.set_queue(Some(queue));
                match self.feed(SpecInput::LinkUp { peer, delivered }) {
                    Ok(()) => {
                        let p = &mut self.peers[peer];
                        p.out = ConnState::Up;
                        p.out_ups += 1;
                        p.dial_failures = 0;
                        let resend = self.node.link(peer).sent() - delivered;
                        p.resend = usize::try_from(resend).unwrap_or(usize::MAX);
                        if p.out_ups == 1 {
                            info!(peer, "channel n{me}->n{peer} up");
                        } else {
                            info!(
                                peer,
                                "channel n{me}->n{peer} reconnected (#{gen}): n{peer} delivered \
                                 {delivered} frames, resending {resend}"
                            );
                        }
                        self.check_ready();
                    }
                    Err(PeerError::Link {
                        error: error @ LinkError::AheadOfSent { .. },
                        ..
                    }) => {
                        self.fatal = Some(format!(
                            "node {peer} refuses to resume: {error}. This node restarted with an \
                             empty state while the cluster kept running; restart the whole \
                             cluster, or restore every node from one snapshot (--restore)"
                        ));
                    }
                    Err(e) => {
                        let p = &mut self.peers[peer];
                        p.set_queue(None);
                        p.refused_resumes += 1;
                        p.out = ConnState::Down(format!("resume refused: {e}"));
                        warn!(peer, "refusing the connection n{me}->n{peer}: {e}");
                    }
                }
            }
            LinkEvent::OutDown { peer, gen, reason } => {
                let p = &mut self.peers[peer];
                if gen == p.out_gen && p.out == ConnState::Up {
                    warn!(peer, "channel n{me}->n{peer} down: {reason}; re-dialing");
                    self.close_out(peer, reason);
                }
            }
            LinkEvent::InHello { peer, answer } => self.admit(peer, answer),
            LinkEvent::InDown { peer, gen, reason } => {
                let p = &mut self.peers[peer];
                if gen == p.in_gen && p.inbound == ConnState::Up {
                    warn!(peer, "channel n{peer}->n{me} down: {reason}");
                    self.close_in(peer, reason);
                }
            }
            LinkEvent::Refused { peer, reason } => {
                // Whoever answered wrote it, a stranger perhaps: INFO and the
                // log get a bounded line of it.
                let reason: String = reason.chars().take(MAX_REFUSAL_TEXT).collect();
                let p = &mut self.peers[peer];
                p.refusals += 1;
                let n = p.refusals;
                let why_stay = if self.refusals.has_met() {
                    "this node has met the cluster, so the fault is there"
                } else {
                    "another peer may yet accept this node"
                };
                match self.refusals.refused(peer, reason.clone()) {
                    Verdict::GiveUp(why) => self.fatal = Some(why),
                    Verdict::Retry if loud(n) => warn!(
                        peer,
                        "node {peer} refused this node's handshake: {reason} (attempt {n}; \
                         {why_stay}: retrying)"
                    ),
                    Verdict::Retry => debug!(peer, "node {peer} refused again: {reason}"),
                }
            }
            LinkEvent::DialFailed { peer, reason } => {
                let p = &mut self.peers[peer];
                p.dial_failures += 1;
                if loud(p.dial_failures) {
                    info!(
                        peer,
                        "waiting for node {peer}: {reason} (attempt {}, retrying)", p.dial_failures
                    );
                } else {
                    debug!(peer, "dial attempt failed: {reason}");
                }
                p.last_dial_error = reason;
            }
        }
    }

    /// A newer inbound connection from `peer` replaces any older one: answer
    /// with its generation and the resume point.
    fn admit(&mut self, peer: NodeId, answer: oneshot::Sender<Admitted>) {
        let (stop, stopped) = oneshot::channel();
        let p = &mut self.peers[peer];
        let gen = p.in_gen + 1;
        let admitted = Admitted {
            gen,
            delivered: self.node.link(peer).resume_point(),
            stop: stopped,
        };
        if answer.send(admitted).is_err() {
            return; // the connection died during the handshake
        }
        self.refusals.met(peer);
        let p = &mut self.peers[peer];
        p.in_gen = gen;
        if p.stop.replace(stop).is_some() {
            debug!(peer, "a newer connection from n{peer} replaces the old one");
        }
        p.inbound = ConnState::Up;
        p.in_ups += 1;
        if p.in_ups == 1 {
            info!(peer, "channel n{peer}->n{} up", self.cfg.id);
        }
        self.feed(SpecInput::InboundUp { peer })
            .expect("a member's connection is always accepted");
        self.check_ready();
    }

    /// Our outgoing connection to `peer` is gone: the link keeps its frames.
    fn close_out(&mut self, peer: NodeId, reason: String) {
        let p = &mut self.peers[peer];
        p.set_queue(None);
        p.out = ConnState::Down(reason);
        self.feed(SpecInput::LinkDown {
            peer,
            outgoing: true,
        })
        .expect("a member's connection is always accepted");
    }

    /// The inbound connection from `peer` is gone (or this node closes it).
    fn close_in(&mut self, peer: NodeId, reason: String) {
        let p = &mut self.peers[peer];
        p.stop = None;
        p.inbound = ConnState::Down(reason);
        self.feed(SpecInput::LinkDown {
            peer,
            outgoing: false,
        })
        .expect("a member's connection is always accepted");
    }

    pub(crate) fn on_peer(&mut self, from: NodeId, gen: u64, frame: PeerFrame) {
        if gen != self.peers[from].in_gen || self.peers[from].inbound != ConnState::Up {
            return; // from a replaced connection: the link would drop it anyway
        }
        if let (Some(s), Frame::Data { body, .. }) = (&mut self.shiviz, &frame.frame) {
            s.receive(
                frame.clock.as_deref(),
                format_args!("recv {} from n{from}", describe(body)),
            );
        }
        if let Err(e) = self.feed(SpecInput::Peer {
            from,
            frame: frame.frame,
        }) {
            let me = self.cfg.id;
            error!(
                peer = from,
                "closing the connection n{from}->n{me}: node {from} sent what a correct peer \
                 never sends: {e}"
            );
            self.close_in(from, format!("protocol error: {e}"));
        }
    }

    /// Puts a frame on the current connection to `to`, if there is one. The
    /// link retains it until acknowledged, so a frame that finds no
    /// connection is resent on the next resume. The frame waits for the end
    /// of the event loop's turn ([`Runtime::end_turn`]).
    pub(crate) fn send_peer(&mut self, to: NodeId, frame: LinkFrame) {
        if self.peers[to].queue.is_none() {
            return;
        }
        let clock = match (&mut self.shiviz, &frame) {
            (Some(s), Frame::Data { body, .. }) => {
                Some(s.send(format_args!("send {} to n{to}", describe(body))))
            }
            _ => None,
        };
        self.peers[to].corked.push(PeerFrame { clock, frame });
    }

    /// The event loop's turn is over: the frames it sent peers go to the
    /// writers. Whoever drives [`Runtime::handle`] calls this after each turn
    /// ([`Runtime::run`] after each input and its flush; the replay after each
    /// step).
    ///
    /// Why hold them: a turn yields once before it multicasts its batch
    /// (`Runtime::run`), and a writer woken before that yield wrote what it
    /// had alone: under total-isis the agreement on one batch went in one
    /// `writev` and the next batch's data in another, two wake-ups of the
    /// peer. Held to the end of the turn, everything a turn sends a peer
    /// leaves in one `writev` (node 0's `writev`s per write at `-P 1`: 0.22 ->
    /// 0.18). The delay is the turn itself, no timer; the spec allows any
    /// delay on a channel, so nothing the model checks changes.
    pub fn end_turn(&mut self) {
        // Closing a full writer's connection (`enqueue`) feeds the spec, which
        // may send other peers more: repeat until nothing is held. It ends: a
        // peer without a connection is sent nothing, and each close is one less.
        while let Some(to) = self.peers.iter().position(|p| !p.corked.is_empty()) {
            for frame in std::mem::take(&mut self.peers[to].corked) {
                if self.peers[to].queue.is_none() {
                    break; // just closed: the link resends the rest on resume
                }
                self.enqueue(to, frame);
            }
        }
    }

    /// Puts a frame in `to`'s writer queue; a queue holding `--peer-queue`
    /// frames behind the resume's resend ([`PeerConn::queued_behind_resend`])
    /// is full, and a full queue closes the connection.
    fn enqueue(&mut self, to: NodeId, frame: PeerFrame) {
        let p = &self.peers[to];
        let Some(queue) = &p.queue else {
            return;
        };
        let resending = p.enqueued < p.resend;
        let sent = if !resending && p.queued_behind_resend() >= self.cfg.peer_queue {
            Err(mpsc::error::TrySendError::Full(frame))
        } else {
            queue.try_send(frame)
        };
        match sent {
            Ok(()) => self.peers[to].enqueued += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let bound = self.cfg.peer_queue;
                self.peers[to].queue_full_closes += 1;
                let n = self.peers[to].queue_full_closes;
                if loud(n) {
                    warn!(
                        peer = to,
                        "writer queue to n{to} full ({bound} frames, --peer-queue): closing the \
                         connection; the link resends its frames on resume (close {n} for a \
                         full queue; INFO peer_n{to} queue_full_closes)"
                    );
                } else {
                    debug!(
                        peer = to,
                        "writer queue to n{to} full: closing the connection"
                    );
                }
                self.close_out(to, format!("writer queue full ({bound} frames)"));
            }
            // The writer is gone; its OutDown is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => self.peers[to].set_queue(None),
        }
    }

    /// `--fault-disconnect-every`: breaks one connection that is up, chosen by `pick`.
    pub(crate) fn fault_disconnect(&mut self, pick: u64) {
        let up: Vec<(NodeId, bool)> = self
            .peer_ids()
            .flat_map(|j| [(j, true), (j, false)])
            .filter(|&(j, out)| {
                let state = if out {
                    &self.peers[j].out
                } else {
                    &self.peers[j].inbound
                };
                *state == ConnState::Up
            })
            .collect();
        if up.is_empty() {
            return;
        }
        let (peer, outgoing) = up[(pick % up.len() as u64) as usize];
        self.fault_disconnects += 1;
        let me = self.cfg.id;
        let reason = "broken by --fault-disconnect-every".to_string();
        if outgoing {
            info!(peer, "fault: breaking the connection n{me}->n{peer}");
            self.close_out(peer, reason);
        } else {
            info!(peer, "fault: breaking the connection n{peer}->n{me}");
            self.close_in(peer, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::event::{ClientRequest, Input};
    use crate::shiviz::ShivizLog;
    use gsmo_spec::kv::Op;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::Command;

    /// Node 0 of two, fifo, no connection up yet.
    fn node0() -> Runtime {
        node0_logging(None)
    }

    fn node0_logging(shiviz: Option<ShivizLog>) -> Runtime {
        let peers = vec!["127.0.0.1:7100".into(), "127.0.0.1:7101".into()];
        let cfg = NodeConfig::new(0, peers, Mode::Fifo).expect("a valid cluster");
        Runtime::fresh_for_test(cfg, shiviz, None)
    }

    /// Outgoing connection `gen` to node 1 comes up; its writer queue, which
    /// the runtime bounds (`--peer-queue`), as `peer::run_outgoing`'s.
    fn connect(rt: &mut Runtime, gen: u64) -> mpsc::Receiver<PeerFrame> {
        let (queue, rx) = mpsc::channel(tokio::sync::Semaphore::MAX_PERMITS);
        let up = LinkEvent::OutUp {
            peer: 1,
            gen,
            delivered: 0,
            queue,
        };
        rt.handle(Input::Link(up));
        rx
    }

    /// A SET, multicast at once (a batch of one).
    fn set(rt: &mut Runtime) {
        let cmd = Command::Write(Op::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        });
        let reply = oneshot::channel().0;
        rt.handle(Input::Client {
            reqs: vec![ClientRequest::Kv(cmd)],
            reply,
        });
    }

    fn drain(rx: &mut mpsc::Receiver<PeerFrame>) -> Vec<LinkFrame> {
        std::iter::from_fn(|| rx.try_recv().ok().map(|f| f.frame)).collect()
    }

    /// Node 1's inbound connection comes up (its handshake); its generation.
    fn admit(rt: &mut Runtime) -> Admitted {
        let (answer, mut admitted) = oneshot::channel();
        rt.handle(Input::Link(LinkEvent::InHello { peer: 1, answer }));
        admitted.try_recv().expect("admitted")
    }

    /// Connection `gen` with node 1, ours (`outgoing`) or its, ended.
    fn ended(outgoing: bool, gen: u64) -> Input {
        let reason = "test".to_string();
        Input::Link(match outgoing {
            true => LinkEvent::OutDown {
                peer: 1,
                gen,
                reason,
            },
            false => LinkEvent::InDown {
                peer: 1,
                gen,
                reason,
            },
        })
    }

    /// INFO's `peer_n1` field `field`.
    fn peer_field(rt: &Runtime, field: &str) -> String {
        let info = rt.info();
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix("peer_n1:"))
            .expect("a peer_n1 line");
        line.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
            .unwrap_or_else(|| panic!("no {field} in {line}"))
            .to_string()
    }

    /// A connection's end is news only for the connection it names: the
    /// handshake of a new inbound connection may overtake the old one's end,
    /// which must then not take the new one down (nor tell the spec so,
    /// which would count towards declaring the peer unreachable).
    #[tokio::test]
    async fn the_end_of_a_replaced_connection_leaves_its_successor_up() {
        let mut rt = node0();
        let first = admit(&mut rt);
        let second = admit(&mut rt);
        assert_eq!((first.gen, second.gen), (1, 2));
        rt.handle(ended(false, 1));
        assert_eq!(peer_field(&rt, "in"), "up", "the old one's end");
        rt.handle(ended(false, 2));
        assert!(peer_field(&rt, "in").starts_with("down"));
        assert_eq!(peer_field(&rt, "reconnects_in"), "1");

        let _old = connect(&mut rt, 1);
        rt.handle(ended(true, 1));
        assert!(peer_field(&rt, "out").starts_with("down"));
        let _new = connect(&mut rt, 2);
        rt.handle(ended(true, 1));
        assert_eq!(peer_field(&rt, "out"), "up", "a late end of the old one");
        assert_eq!(peer_field(&rt, "reconnects_out"), "1");
    }

    /// `--fault-disconnect-every` breaks a connection that is up, the one
    /// its pick names (out before in, peer by peer), and counts it; with none
    /// up there is nothing to break and nothing to count.
    #[tokio::test]
    async fn an_injected_disconnect_breaks_the_picked_connection() {
        let mut rt = node0();
        let _out = connect(&mut rt, 1);
        let _in = admit(&mut rt);
        let fault = |pick| Input::FaultDisconnect { pick };
        let injected = |rt: &Runtime| {
            rt.info()
                .lines()
                .find_map(|l| l.strip_prefix("fault_disconnects:"))
                .expect("a fault_disconnects line")
                .to_string()
        };
        rt.handle(fault(3)); // 3 % 2: the second of (out, in)
        assert_eq!(peer_field(&rt, "out"), "up");
        assert!(peer_field(&rt, "in").starts_with("down(broken by"));
        assert_eq!(injected(&rt), "1");
        rt.handle(fault(7)); // only out is left up
        assert!(peer_field(&rt, "out").starts_with("down(broken by"));
        assert_eq!(injected(&rt), "2");
        rt.handle(fault(0));
        assert_eq!(injected(&rt), "2", "nothing was up to break");
    }

    /// A peer that resumes from before what it acknowledged lost its state:
    /// the connection is refused and counted, and the node keeps running.
    #[tokio::test]
    async fn a_resume_behind_an_ack_is_refused_and_counted() {
        let mut rt = node0();
        let _out = connect(&mut rt, 1);
        set(&mut rt);
        rt.end_turn();
        let admitted = admit(&mut rt);
        let ack = PeerFrame {
            clock: None,
            frame: Frame::Ack { ack: 1 },
        };
        rt.handle(Input::Peer {
            from: 1,
            gen: admitted.gen,
            frame: ack,
        });
        rt.handle(ended(true, 1));
        let _again = connect(&mut rt, 2); // resumes from 0, after acking 1
        assert!(peer_field(&rt, "out").starts_with("down(resume refused"));
        assert_eq!(peer_field(&rt, "refused_resumes"), "1");
        assert!(rt.fatal.is_none(), "one connection refused, not the node");
    }

    #[tokio::test]
    async fn frames_wait_for_the_end_of_the_turn() {
        let mut rt = node0();
        let mut rx = connect(&mut rt, 1);
        rt.end_turn();
        set(&mut rt);
        set(&mut rt);
        assert!(drain(&mut rx).is_empty(), "sent before the turn ended");
        rt.end_turn();
        let seqs: Vec<u64> = drain(&mut rx)
            .iter()
            .map(|f| match f {
                Frame::Data { seq, .. } => *seq,
                other => panic!("not data: {other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1, 2], "both, in order");
    }

    /// Frames held for a connection that closed in the same turn are not sent
    /// on its successor: the link resends them from the resume point, so
    /// sending them as well would duplicate them.
    #[tokio::test]
    async fn frames_held_for_a_closed_connection_are_dropped_with_it() {
        let mut rt = node0();
        let mut old = connect(&mut rt, 1);
        rt.end_turn();
        set(&mut rt);
        rt.handle(ended(true, 1));
        let mut new = connect(&mut rt, 2);
        rt.end_turn();
        assert!(
            drain(&mut old).is_empty(),
            "nothing on the closed connection"
        );
        let resent = drain(&mut new);
        assert_eq!(resent.len(), 1, "the write once, resent: {resent:?}");
        assert!(
            matches!(resent[0], Frame::Data { seq: 1, .. }),
            "{resent:?}"
        );
    }

    /// Under `--log-format shiviz` a data frame carries its sender's clock,
    /// stamped at the send, so the receiver's log can merge it.
    #[tokio::test]
    async fn a_logged_send_stamps_the_senders_clock() {
        let mut rt = node0_logging(Some(ShivizLog::new(0, 2, Box::new(std::io::sink()))));
        let mut rx = connect(&mut rt, 1);
        set(&mut rt);
        rt.end_turn();
        let frame = rx.try_recv().expect("the write's frame");
        let clock = frame
            .clock
            .clone()
            .unwrap_or_else(|| panic!("no clock: {:?}", frame.frame));
        assert_eq!(clock.len(), 2, "one entry per node: {clock:?}");
        assert!(clock[0] > 0 && clock[1] == 0, "{clock:?}");
    }

    /// A turn that sends more than the writer queue holds closes the
    /// connection at the end of the turn: the queue keeps what fit, the rest
    /// is dropped (the link resends it on the resume), and INFO counts it.
    #[tokio::test]
    async fn a_turn_that_overfills_the_writer_queue_closes_its_connection() {
        let mut rt = node0();
        rt.cfg.peer_queue = 2;
        let mut rx = connect(&mut rt, 1);
        rt.end_turn();
        for _ in 0..3 {
            set(&mut rt);
        }
        rt.end_turn();
        let kept: Vec<LinkFrame> = drain(&mut rx);
        assert_eq!(kept.len(), 2, "what fit: {kept:?}");
        let p = &rt.peers[1];
        assert_eq!(p.queue_full_closes, 1);
        assert!(
            matches!(&p.out, ConnState::Down(r) if r.contains("writer queue full")),
            "{:?}",
            p.out
        );
        assert!(p.queue.is_none() && p.corked.is_empty());
    }

    /// A resume's resend goes to the writer whole, however many frames the
    /// link retained: `--peer-queue` bounds only what queues behind it, and
    /// counts the resend's frames out as the writer takes them.
    #[tokio::test]
    async fn a_resend_rides_above_the_writer_queue_bound() {
        let mut rt = node0();
        rt.cfg.peer_queue = 2;
        let mut first = connect(&mut rt, 1);
        rt.end_turn();
        for _ in 0..2 {
            set(&mut rt);
            rt.end_turn();
        }
        assert_eq!(drain(&mut first).len(), 2);
        rt.handle(ended(true, 1));
        for _ in 0..3 {
            set(&mut rt); // retained, no connection: resent on the resume
        }
        let mut rx = connect(&mut rt, 2); // node 1 delivered none: 5 to resend
        rt.end_turn();
        assert_eq!(rt.peers[1].queued(), 5, "the whole resend");
        assert_eq!(rt.peers[1].queued_behind_resend(), 0);
        for _ in 0..2 {
            set(&mut rt);
            rt.end_turn();
        }
        assert_eq!(rt.peers[1].queued_behind_resend(), 2);
        assert_eq!(peer_field(&rt, "out"), "up", "two behind the resend fit");
        // The writer takes the resend and one more: one left behind it.
        for _ in 0..6 {
            rx.try_recv().expect("queued");
        }
        assert_eq!(rt.peers[1].queued_behind_resend(), 1);
        set(&mut rt);
        rt.end_turn();
        assert_eq!(peer_field(&rt, "out"), "up");
        set(&mut rt);
        rt.end_turn();
        assert!(
            peer_field(&rt, "out").starts_with("down"),
            "a third behind it"
        );
        assert_eq!(rt.peers[1].queue_full_closes, 1);
    }

    fn refused(rt: &mut Runtime, reason: &str) {
        let reason = reason.to_string();
        rt.handle(Input::Link(LinkEvent::Refused { peer: 1, reason }));
    }

    /// A node that met its peer (here: the peer dialed it) keeps running
    /// when the peer refuses it later, and shows the refusal until a
    /// handshake succeeds; a node that met nobody stops once every peer
    /// (here the only one) refused it.
    #[test]
    fn a_refusal_stops_only_a_node_that_met_no_peer() {
        let mut rt = node0();
        admit(&mut rt);
        refused(&mut rt, "cluster id differs");
        refused(&mut rt, "cluster id differs");
        assert_eq!(rt.fatal, None);
        assert_eq!(peer_field(&rt, "out"), "refused(cluster id differs)");
        assert_eq!(peer_field(&rt, "refusals"), "2");
        let _rx = connect(&mut rt, 1);
        assert_eq!(peer_field(&rt, "out"), "up");
        assert_eq!(peer_field(&rt, "refusals"), "0");

        refused(&mut rt, &"x".repeat(10_000));
        assert_eq!(
            peer_field(&rt, "out").len(),
            "refused()".len() + MAX_REFUSAL_TEXT
        );

        let mut alone = node0();
        refused(&mut alone, "wrong secret");
        let why = alone.fatal.expect("refused by its only peer");
        assert!(why.contains("node 1: wrong secret"), "{why}");
    }
}
