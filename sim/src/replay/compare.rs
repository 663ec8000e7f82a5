//! What a real runtime did in one step, in the model's output vocabulary,
//! against what the model's spec did: frames in the writer queues, replies
//! on the clients' channels, sends and deliveries in `GSMO.HISTORY`.

use super::real::Real;
use gsmo_node::event::Response;
use gsmo_spec::batch::Batch;
use gsmo_spec::multicast::Wire;
use gsmo_spec::node::{Input as SpecInput, LinkFrame, Output, RequestId};
use gsmo_spec::properties::Event;
use gsmo_spec::snapshot::{AbortReason, Envelope, PartSummary};
use gsmo_spec::NodeId;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// The frames between the real nodes.
pub(super) struct Net {
    /// Frames the real senders put on each directed channel, not yet delivered.
    pub wires: HashMap<(NodeId, NodeId), VecDeque<LinkFrame>>,
    /// Channels whose receiver dropped the connection (or died) and whose
    /// sender has not noticed yet: what the sender writes there is lost, as
    /// with TCP.
    pub broken: BTreeSet<(NodeId, NodeId)>,
    /// `ledger[i][j]`: every multicast message real node `i` put on channel
    /// `i -> j`, in order: the wire's ground truth, as the bank model keeps it.
    pub ledger: Vec<Vec<Vec<Wire<Batch>>>>,
}

impl Net {
    pub fn new(n: usize) -> Self {
        Net {
            wires: HashMap::new(),
            broken: BTreeSet::new(),
            ledger: vec![vec![Vec::new(); n]; n],
        }
    }

    /// Node `dead`'s process died: what is on the way to it is lost.
    pub fn crash(&mut self, dead: NodeId) {
        for j in 0..self.ledger.len() {
            self.wires.remove(&(j, dead));
            self.broken.insert((j, dead));
        }
    }
}

/// A frame as the protocol sees it: a part's summary is what the disk
/// reported (sizes, checksums), and a failed store's reason is the OS's
/// error text, neither of which the model's disk invents.
pub(super) fn normal(frame: &LinkFrame) -> LinkFrame {
    let mut f = frame.clone();
    if let LinkFrame::Data { body, .. } = &mut f {
        match body {
            Envelope::Stored { part, .. } => *part = summary(part),
            Envelope::Committed { parts, .. } => {
                for p in parts.iter_mut() {
                    *p = summary(p);
                }
            }
            Envelope::Abort {
                reason: AbortReason::StoreFailed { error },
                ..
            } => error.clear(),
            _ => {}
        }
    }
    f
}

fn summary(p: &PartSummary) -> PartSummary {
    PartSummary {
        node: p.node,
        ..PartSummary::default()
    }
}

/// Collects what real node `i` did in the step and compares it with the
/// model's `expected` outputs; the difference, if any, said at `at`.
pub(super) fn step(
    at: &str,
    i: NodeId,
    real: &mut Real,
    net: &mut Net,
    expected: &[Output],
) -> Option<String> {
    // The step was one turn of the real event loop: what it sent leaves now.
    real.rt.end_turn();
    let n = real.queues.len();
    let mut sent: BTreeMap<NodeId, Vec<LinkFrame>> = BTreeMap::new();
    for j in (0..n).filter(|&j| j != i) {
        let q = real.queues[j].as_mut().expect("connected");
        while let Ok(f) = q.try_recv() {
            if let LinkFrame::Data {
                body: Envelope::Msg { body, .. },
                ..
            } = &f.frame
            {
                net.ledger[i][j].push(body.clone());
            }
            sent.entry(j).or_default().push(f.frame.clone());
            if !net.broken.contains(&(i, j)) {
                net.wires.entry((i, j)).or_default().push_back(f.frame);
            }
        }
    }
    let mut replies: BTreeSet<(RequestId, String)> = BTreeSet::new();
    real.waiting.retain_mut(|(req, rx)| match rx.try_recv() {
        Ok(answers) => {
            // A run of one request: its one answer.
            replies.extend(answers.iter().map(|r| (*req, format!("{r:?}"))));
            false
        }
        Err(_) => true,
    });
    let events = real.history();
    let new_events: Vec<Event> = events[real.seen..].to_vec();
    real.seen = events.len();
    // What the model's spec did.
    let mut want_sent: BTreeMap<NodeId, Vec<LinkFrame>> = BTreeMap::new();
    let mut want_replies = BTreeSet::new();
    let mut want_events = Vec::new();
    for o in expected {
        match o {
            Output::Send { to, frame } => want_sent.entry(*to).or_default().push(frame.clone()),
            Output::Reply { req, reply } => {
                // The reply a real client receives for the model's reply.
                let real = Response::Kv(reply.clone());
                want_replies.insert((*req, format!("{real:?}")));
            }
            Output::Multicast { id } => want_events.push(Event::Send(*id)),
            Output::Delivered { id, .. } => want_events.push(Event::Deliver(*id)),
            _ => {}
        }
    }
    let norm = |m: &BTreeMap<NodeId, Vec<LinkFrame>>| -> BTreeMap<NodeId, Vec<LinkFrame>> {
        m.iter()
            .map(|(j, fs)| (*j, fs.iter().map(normal).collect()))
            .collect()
    };
    if norm(&sent) != norm(&want_sent) {
        Some(format!(
            "{at}: the real n{i} sent {}, the model {}",
            show_sent(&sent),
            show_sent(&want_sent)
        ))
    } else if replies != want_replies {
        Some(format!(
            "{at}: the real n{i} replied {replies:?}, the model {want_replies:?}"
        ))
    } else if new_events != want_events {
        Some(format!(
            "{at}: the real n{i} recorded {new_events:?}, the model {want_events:?}"
        ))
    } else {
        None
    }
}

pub(super) fn describe(input: &SpecInput) -> String {
    match input {
        SpecInput::Client { req, cmd } => format!("client request {req}: {cmd:?}"),
        SpecInput::Peer { from, frame } => format!("{} from n{from}", show_frame(frame)),
        other => format!("{other:?}"),
    }
}

pub(super) fn show_frame(f: &LinkFrame) -> String {
    match f {
        LinkFrame::Data { seq, body, .. } => {
            format!("frame {seq} ({})", gsmo_node::runtime::describe(body))
        }
        LinkFrame::Ack { ack } => format!("ack {ack}"),
    }
}

fn show_sent(m: &BTreeMap<NodeId, Vec<LinkFrame>>) -> String {
    if m.is_empty() {
        return "nothing".into();
    }
    m.iter()
        .map(|(j, fs)| {
            let fs: Vec<String> = fs.iter().map(show_frame).collect();
            format!("to n{j} [{}]", fs.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
