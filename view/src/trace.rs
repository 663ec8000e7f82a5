//! A replica's steps (the [`Input`] it was fed, the [`Output`]s it returned)
//! as events of a space-time diagram: the same steps a real node records with
//! `--trace` and the K/V model's replicas take, so `gsmo trace show` and the
//! explorer draw a run alike.
//!
//! A write is a step on its origin's timeline; a peer message is a receipt,
//! hollow while the ordering layer holds it back and square once delivered; a
//! record point starts the snapshot's markers; a completed part marks the
//! messages it recorded in flight. Each event carries the node's delivery
//! vector after it (for causal multicast, its vector clock). Reads change
//! nothing and are left out.

use crate::spacetime::{At, Builder, Diagram, Kind, MsgKind};
use crate::text;
use gsmo_spec::link::Frame;
use gsmo_spec::multicast::MsgId;
use gsmo_spec::node::{Command, Input, Output, PeerMsg};
use gsmo_spec::snapshot::Envelope;
use gsmo_spec::trace::{Start, Trace};

/// What the delivery vectors printed by the events mean.
pub const CLOCK_LEGEND: &str =
    "[a,b,…] by an event: writes the node has delivered from n0, n1, … (causal: its vector clock)";

/// Draws replicas' steps one at a time.
pub struct Drawer {
    b: Builder,
    /// Per node, writes delivered from each origin so far.
    delivered: Vec<Vec<u64>>,
}

/// A peer message's arrow: its kind, short label, full label and channel position.
fn arrow(msg: &PeerMsg) -> (MsgKind, String, String, Option<u64>) {
    match msg {
        Envelope::Marker { id } => (
            MsgKind::Marker,
            format!("M {id}"),
            text::peer_msg(msg),
            None,
        ),
        Envelope::Abort { id, .. } => (
            MsgKind::Control,
            format!("abort {id}"),
            text::peer_msg(msg),
            None,
        ),
        Envelope::Stored { id, .. } => (
            MsgKind::Control,
            format!("stored {id}"),
            text::peer_msg(msg),
            None,
        ),
        Envelope::Committed { id, .. } => (
            MsgKind::Control,
            format!("commit {id}"),
            text::peer_msg(msg),
            None,
        ),
        Envelope::Msg { seq, body } => {
            let kind = if text::is_data(body) {
                MsgKind::Data
            } else {
                MsgKind::Control
            };
            (
                kind,
                text::wire_short(body),
                text::peer_msg(msg),
                Some(*seq),
            )
        }
    }
}

impl Drawer {
    /// A diagram of `n` replicas, `n0` … `n{n-1}`.
    pub fn new(title: impl Into<String>, n: usize) -> Self {
        let mut b = Builder::new(title, (0..n).map(|i| format!("n{i}")).collect());
        b.set_clock_legend(CLOCK_LEGEND);
        Drawer {
            b,
            delivered: vec![vec![0; n]; n],
        }
    }

    fn clock(&self, node: usize) -> String {
        text::vector(&self.delivered[node])
    }

    fn event(&mut self, node: usize, kind: Kind, label: String) -> At {
        let at = self.b.event(node, kind, label);
        let c = self.clock(node);
        self.b.set_clock(at, c);
        at
    }

    /// How `node`'s trace starts; a restored node's timeline opens with its restore.
    pub fn start(&mut self, node: usize, start: &Start) -> Option<At> {
        match start {
            Start::Fresh { .. } => None,
            Start::Restored { part, .. } => {
                let d = part.state.multicast.delivered();
                if d.len() == self.delivered[node].len() {
                    self.delivered[node] = d.to_vec();
                }
                Some(self.event(node, Kind::Local, format!("restored from {}", part.id)))
            }
        }
    }

    /// One step of `node`: `input` (`None`: the outputs of its restore, which
    /// hang off `restored`) and the outputs the spec node returned. Returns the
    /// events it drew.
    pub fn step(
        &mut self,
        node: usize,
        input: Option<&Input>,
        outputs: &[Output],
        restored: Option<At>,
    ) -> Vec<At> {
        let delivered_now = |id: MsgId| {
            outputs
                .iter()
                .any(|o| matches!(o, Output::Delivered { id: d, .. } if *d == id))
        };
        let mut made = Vec::new();
        // The event this step's sends leave from, and the id it concerns.
        let mut anchor: Option<(At, Option<MsgId>)> = None;
        match input {
            None => anchor = restored.map(|at| (at, None)),
            Some(Input::Client {
                cmd: Command::Write(op),
                ..
            }) => {
                let id = outputs.iter().find_map(|o| match o {
                    Output::Multicast { id } => Some(*id),
                    _ => None,
                });
                let answered = outputs.iter().any(|o| matches!(o, Output::Reply { .. }));
                let label = match id {
                    Some(id) => format!("{id} {}", text::op(op)),
                    None if answered => format!("{} (refused)", text::op(op)),
                    None => format!("{} (batched)", text::op(op)),
                };
                let at = self.event(node, Kind::Local, label);
                anchor = Some((at, id));
            }
            Some(Input::Client {
                cmd: Command::Get { .. },
                ..
            })
            | Some(Input::Client {
                cmd: Command::Read(_),
                ..
            })
            | Some(Input::SkipSnapshotIds { .. })
            | Some(Input::Peer {
                frame: Frame::Ack { .. },
                ..
            }) => return made,
            // Connections and time: only what they make the node send is drawn.
            Some(Input::LinkUp { .. })
            | Some(Input::InboundUp { .. })
            | Some(Input::LinkDown { .. })
            | Some(Input::Tick { .. })
            | Some(Input::StartSnapshot) => {}
            Some(Input::Flush) => {
                let ids: Vec<MsgId> = outputs
                    .iter()
                    .filter_map(|o| match o {
                        Output::Multicast { id } => Some(*id),
                        _ => None,
                    })
                    .collect();
                let Some(&first) = ids.first() else {
                    return made;
                };
                let names: Vec<String> = ids.iter().map(MsgId::to_string).collect();
                let at = self.event(node, Kind::Local, format!("multicasts {}", names.join(" ")));
                anchor = Some((at, Some(first)));
            }
            Some(Input::Stored { id, result }) => {
                let label = match result {
                    Ok(_) => format!("stored {id}"),
                    Err(e) => format!("storing {id} failed: {e}"),
                };
                let at = self.event(node, Kind::Local, label);
                anchor = Some((at, None));
            }
            Some(Input::Peer {
                from,
                frame: Frame::Data { body: msg, .. },
            }) => {
                let (kind, label, seq) = match msg {
                    Envelope::Marker { id } => {
                        (Kind::Receive, format!("marker {id} from n{from}"), None)
                    }
                    Envelope::Abort { .. }
                    | Envelope::Stored { .. }
                    | Envelope::Committed { .. } => (Kind::Receive, text::peer_msg(msg), None),
                    Envelope::Msg { seq, body } => match text::data_id(body) {
                        Some(id) if delivered_now(id) => (Kind::Deliver, String::new(), Some(*seq)),
                        Some(id) => (Kind::HeldBack, format!("held {id}"), Some(*seq)),
                        None => (
                            Kind::Receive,
                            format!("recv {}", text::wire(body, |_| String::new())),
                            Some(*seq),
                        ),
                    },
                };
                let full = text::peer_msg(msg);
                // A receipt delivered at once is labelled by its delivery below.
                let at = self.b.receive(node, *from, &full, seq, kind, label);
                let c = self.clock(node);
                self.b.set_clock(at, c);
                let id = match msg {
                    Envelope::Msg { body, .. } => text::data_id(body),
                    _ => None,
                };
                if let Some(id) = id {
                    self.b.set_msg_id(at, id.to_string());
                }
                anchor = Some((at, id));
            }
            Some(Input::AbortSnapshot { id }) => {
                let at = self.event(node, Kind::Local, format!("aborts {id}"));
                anchor = Some((at, None));
            }
        }
        if let Some((at, _)) = anchor {
            made.push(at);
        }
        let mut record: Option<At> = None;
        for o in outputs {
            match o {
                Output::SnapshotRecorded { id } => {
                    let at = self.event(node, Kind::Record, format!("records {id}"));
                    self.b.record(&id.to_string(), at);
                    record = Some(at);
                    made.push(at);
                    anchor.get_or_insert((at, None));
                }
                Output::Send {
                    frame: Frame::Ack { .. },
                    ..
                } => {}
                Output::Send {
                    to,
                    frame: Frame::Data { body: msg, .. },
                } => {
                    let from = match (msg, record, anchor) {
                        (Envelope::Marker { .. }, Some(r), _) => r,
                        (_, _, Some((a, _))) => a,
                        _ => {
                            let at = self.event(node, Kind::Local, "sends".into());
                            made.push(at);
                            anchor = Some((at, None));
                            at
                        }
                    };
                    let (kind, short, label, seq) = arrow(msg);
                    self.b.send(from, *to, kind, short, label, seq);
                }
                Output::Delivered { id, write, .. } => {
                    if let Some(k) = self.delivered[node].get_mut(id.origin) {
                        *k += 1;
                    }
                    let label = format!("deliver {id} {}", text::write(write));
                    match anchor {
                        // The write or receipt this step is about, delivered at once.
                        Some((at, Some(a))) if a == *id => {
                            let c = self.clock(node);
                            self.b.set_clock(at, c);
                            if input.is_some_and(|i| matches!(i, Input::Peer { .. })) {
                                self.b.annotate(at, &label);
                            }
                        }
                        _ => {
                            let at = self.event(node, Kind::Deliver, label);
                            self.b.set_msg_id(at, id.to_string());
                            made.push(at);
                        }
                    }
                }
                Output::SnapshotComplete(part) => {
                    let snapshot = part.id.to_string();
                    for (from, msgs) in part.channels.iter().enumerate() {
                        for (seq, _) in msgs {
                            self.b.mark_recorded(from, node, *seq, &snapshot);
                        }
                    }
                    let note = match part.channel_messages() {
                        0 => format!("; {snapshot} done"),
                        k => format!("; {snapshot} done, {k} in flight"),
                    };
                    if let Some(&at) = made.last() {
                        self.b.annotate(at, &note);
                    }
                }
                Output::SnapshotCommitted { id, .. } => {
                    if let Some(&at) = made.last() {
                        self.b.annotate(at, &format!("; {id} committed"));
                    }
                }
                Output::SnapshotAborted { id, .. } => {
                    if let Some(&at) = made.last() {
                        self.b.annotate(at, &format!("; {id} aborted"));
                    }
                }
                Output::Multicast { .. } | Output::Reply { .. } | Output::DropPart { .. } => {}
            }
        }
        made
    }

    /// Marks an event as the latest step (the explorer's current step).
    pub fn set_latest(&mut self, at: At) {
        self.b.set_latest(at);
    }

    pub fn finish(self) -> Diagram {
        self.b.finish()
    }
}

/// A whole cluster's traces (any order; each names its node) as one diagram.
/// `max_steps` keeps the first steps of each trace, for long runs.
pub fn diagram(traces: &[Trace], title: &str, max_steps: Option<usize>) -> Diagram {
    let n = traces
        .iter()
        .map(|t| match &t.start {
            Start::Fresh { n, .. } => *n,
            Start::Restored { part, .. } => part.channels.len(),
        })
        .chain(traces.iter().map(|t| t.node() + 1))
        .max()
        .unwrap_or(0);
    let mut d = Drawer::new(title, n);
    let mut cursors: Vec<(
        usize,
        std::slice::Iter<'_, gsmo_spec::trace::Step>,
        Option<At>,
    )> = traces
        .iter()
        .map(|t| {
            let restored = d.start(t.node(), &t.start);
            let steps = &t.steps[..max_steps.unwrap_or(usize::MAX).min(t.steps.len())];
            (t.node(), steps.iter(), restored)
        })
        .collect();
    // Feed the traces in a causal order: a receipt waits for its send (the
    // traces of a run without one, e.g. cut short by `max_steps`, still draw).
    loop {
        let mut progress = false;
        let mut left = false;
        for (node, steps, restored) in cursors.iter_mut() {
            while let Some(step) = steps.as_slice().first() {
                if let Some(Input::Peer {
                    from,
                    frame: Frame::Data { body: msg, .. },
                }) = &step.input
                {
                    let seq = match msg {
                        Envelope::Msg { seq, .. } => Some(*seq),
                        _ => None,
                    };
                    if !d.b.in_flight(*from, *node, &text::peer_msg(msg), seq) {
                        left = true;
                        break;
                    }
                }
                steps.next();
                progress = true;
                d.step(*node, step.input.as_ref(), &step.outputs, *restored);
            }
        }
        if !left {
            break;
        }
        if !progress {
            // No send for some receipt: draw the first such one without its arrow.
            if let Some((node, steps, restored)) = cursors
                .iter_mut()
                .find(|(_, s, _)| !s.as_slice().is_empty())
            {
                let step = steps.next().expect("not empty");
                d.step(*node, step.input.as_ref(), &step.outputs, *restored);
            }
        }
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spacetime::svg;
    use gsmo_spec::kv::Op;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::node::Node;
    use gsmo_spec::sim::FifoNetwork;
    use gsmo_spec::trace::Step;

    /// Three replicas: two writes, a snapshot from n1 while they are in flight.
    fn traces(mode: Mode) -> Vec<Trace> {
        let n = 3;
        let mut nodes: Vec<Node> = (0..n).map(|i| Node::new(i, n, mode).connected()).collect();
        let mut traces: Vec<Trace> = (0..n)
            .map(|node| Trace {
                start: Start::Fresh {
                    node,
                    n,
                    mode,
                    limits: nodes[node].limits(),
                },
                steps: Vec::new(),
            })
            .collect();
        let mut net = FifoNetwork::new();
        let mut feed = |i: usize, input: Input, nodes: &mut Vec<Node>, net: &mut FifoNetwork<_>| {
            let outputs = nodes[i].handle(input.clone()).unwrap();
            for o in &outputs {
                if let Output::Send { to, frame } = o {
                    net.send(i, *to, frame.clone());
                }
            }
            traces[i].steps.push(Step {
                input: Some(input),
                outputs,
            });
        };
        for i in [0, 2] {
            let cmd = Command::Write(Op::Set {
                key: b"x".to_vec(),
                value: format!("{i}.1").into_bytes(),
            });
            feed(i, Input::Client { req: 1, cmd }, &mut nodes, &mut net);
        }
        feed(1, Input::StartSnapshot, &mut nodes, &mut net);
        while let Some(&(from, to)) = net.busy().first() {
            let frame = net.receive(from, to).unwrap();
            feed(to, Input::Peer { from, frame }, &mut nodes, &mut net);
        }
        traces
    }

    #[test]
    fn a_run_with_a_snapshot_draws_three_timelines_and_its_cut() {
        for mode in Mode::ALL {
            let d = diagram(&traces(mode), "test", None);
            assert_eq!(d.nodes.len(), 3);
            assert_eq!(d.cuts.len(), 1, "{mode}");
            assert!(
                d.cuts[0].points.iter().all(Option::is_some),
                "{mode}: every node recorded"
            );
            assert!(
                d.messages.iter().all(|m| m.to.is_some()),
                "{mode}: every message received"
            );
            let markers = d
                .messages
                .iter()
                .filter(|m| m.kind == MsgKind::Marker)
                .count();
            assert_eq!(markers, 6, "{mode}");
            for events in &d.events {
                // Every node ends having delivered both writes (n0's and n2's).
                let last = events.last().unwrap();
                assert_eq!(last.clock.as_deref(), Some("[1,0,1]"), "{mode}: {last:?}");
            }
            let s = svg(&d);
            assert_eq!(s.matches("class='timeline'").count(), 3);
            assert!(s.contains("class='cut' data-snapshot='1-1'"));
            assert!(s.contains("SET x=0.1"), "{mode}: values shown as text");
        }
    }

    #[test]
    fn messages_in_flight_at_the_cut_are_the_recorded_ones() {
        // Chandy-Lamport: a snapshot records exactly the messages sent before
        // their sender's record point and received after their receiver's.
        for mode in Mode::ALL {
            let d = diagram(&traces(mode), "test", None);
            let cut = &d.cuts[0].points;
            let mut recorded = 0;
            for m in d.messages.iter().filter(|m| m.kind != MsgKind::Marker) {
                let crosses = m.from.event < cut[m.from.node].unwrap()
                    && m.to.unwrap() > cut[m.to_node].unwrap();
                assert_eq!(crosses, !m.recorded.is_empty(), "{mode}: {}", m.label);
                recorded += m.recorded.len();
            }
            assert!(
                recorded > 0,
                "{mode}: the writes were in flight at n1's record point"
            );
        }
    }

    #[test]
    fn isis_holds_data_back_until_agreement() {
        let d = diagram(&traces(Mode::TotalIsis), "test", None);
        assert!(d.events.iter().flatten().any(|e| e.kind == Kind::HeldBack));
        assert!(d.messages.iter().any(|m| m.kind == MsgKind::Control));
    }
}
