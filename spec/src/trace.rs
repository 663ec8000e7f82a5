//! Trace conformance: a real node records every input it fed its spec
//! [`Node`] and every output it got back; this module replays those inputs
//! through a fresh spec node and confirms that each step is one the spec (and
//! so the checked model) takes, then that the channels between the recorded
//! nodes behaved as the model's FIFO network does, and that the model's
//! properties hold on the combined history.

use crate::link::Frame;
use crate::multicast::Mode;
use crate::node::{Input, Limits, Node, Output, Part, PeerMsg};
use crate::properties::{self, Event, Violation};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How a traced node started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    Fresh {
        node: NodeId,
        n: usize,
        mode: Mode,
        limits: Limits,
    },
    /// From a snapshot part; the first step's outputs are what restoring produced.
    Restored { part: Box<Part>, limits: Limits },
}

/// One step: the input fed to the spec node and the outputs it returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub input: Option<Input>,
    pub outputs: Vec<Output>,
}

/// A node's whole trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub start: Start,
    pub steps: Vec<Step>,
}

impl Trace {
    pub fn node(&self) -> NodeId {
        match &self.start {
            Start::Fresh { node, .. } => *node,
            Start::Restored { part, .. } => part.node,
        }
    }

    /// The size of the cluster the trace's header records.
    pub fn cluster_size(&self) -> usize {
        match &self.start {
            Start::Fresh { n, .. } => *n,
            Start::Restored { part, .. } => part.channels.len(),
        }
    }

    /// The node's multicast history (for the ordering predicates).
    pub fn events(&self) -> Vec<Event> {
        self.steps
            .iter()
            .flat_map(|s| &s.outputs)
            .filter_map(|o| match o {
                Output::Multicast { id } => Some(Event::Send(*id)),
                Output::Delivered { id, .. } => Some(Event::Deliver(*id)),
                _ => None,
            })
            .collect()
    }
}

fn violation(property: &'static str, detail: String) -> Violation {
    Violation { property, detail }
}

/// Replays one trace through the spec; returns the node it ends in.
pub fn replay(trace: &Trace) -> Result<Node, Violation> {
    let me = trace.node();
    let (mut node, mut steps) = match &trace.start {
        Start::Fresh {
            node,
            n,
            mode,
            limits,
        } => (
            Node::new(*node, *n, *mode).with_limits(*limits),
            trace.steps.iter(),
        ),
        Start::Restored { part, limits } => {
            let (node, outputs) =
                Node::restore(part).map_err(|e| violation("conformance", e.to_string()))?;
            let node = node.with_limits(*limits);
            let mut steps = trace.steps.iter();
            match steps.next() {
                Some(Step {
                    input: None,
                    outputs: recorded,
                }) if *recorded == outputs => {}
                _ => {
                    return Err(violation(
                        "conformance",
                        format!("node {me}: restore step differs from the spec's"),
                    ))
                }
            }
            (node, steps)
        }
    };
    for (k, step) in steps.by_ref().enumerate() {
        let Some(input) = step.input.clone() else {
            return Err(violation(
                "conformance",
                format!("node {me}: step {k} has no input"),
            ));
        };
        let outputs = node.handle(input).map_err(|e| {
            violation(
                "conformance",
                format!("node {me}: step {k}: the spec refuses the input: {e}"),
            )
        })?;
        if outputs != step.outputs {
            return Err(violation(
                "conformance",
                format!(
                    "node {me}: step {k}: the runtime recorded {:?}, the spec produces {:?}",
                    step.outputs, outputs
                ),
            ));
        }
    }
    Ok(node)
}

/// The data frames `trace` put on the channel to `to`, by link sequence
/// number (a resend repeats a number; it must repeat the message too).
fn sent_to(trace: &Trace, to: NodeId) -> Result<BTreeMap<u64, &PeerMsg>, Violation> {
    let mut sent = BTreeMap::new();
    for o in trace.steps.iter().flat_map(|s| &s.outputs) {
        if let Output::Send {
            to: t,
            frame: Frame::Data { seq, body, .. },
        } = o
        {
            if *t == to && *sent.entry(*seq).or_insert(body) != body {
                return Err(violation(
                    "fifo channel",
                    format!(
                        "channel {}->{to}: frame {seq} resent with another message",
                        trace.node()
                    ),
                ));
            }
        }
    }
    Ok(sent)
}

/// The data frames `trace` took from the channel from `from`, in arrival order.
fn received_from(trace: &Trace, from: NodeId) -> Vec<(u64, &PeerMsg)> {
    trace
        .steps
        .iter()
        .filter_map(|s| match &s.input {
            Some(Input::Peer {
                from: f,
                frame: Frame::Data { seq, body, .. },
            }) if *f == from => Some((*seq, body)),
            _ => None,
        })
        .collect()
}

/// Summary of a successful conformance check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conformance {
    pub steps: usize,
    pub messages: usize,
    pub deliveries: usize,
}

/// Refuses a set of traces that is not one per node of the cluster their
/// headers record: with a node missing, channels and orders cannot be judged
/// (a lost message and an unread trace look alike), so saying CONFORMS would lie.
fn complete(traces: &[Trace]) -> Result<(), Violation> {
    let Some(first) = traces.first() else {
        return Err(violation("complete traces", "no traces given".into()));
    };
    let n = first.cluster_size();
    if let Some(t) = traces.iter().find(|t| t.cluster_size() != n) {
        return Err(violation(
            "complete traces",
            format!(
                "node {}'s trace records a {n}-node cluster but node {}'s a {}-node one: \
                 the traces are not from one run",
                first.node(),
                t.node(),
                t.cluster_size()
            ),
        ));
    }
    let seen: Vec<NodeId> = traces.iter().map(Trace::node).collect();
    let missing: Vec<String> = (0..n)
        .filter(|i| !seen.contains(i))
        .map(|i| format!("n{i}"))
        .collect();
    if !missing.is_empty() {
        return Err(violation(
            "complete traces",
            format!(
                "the traces record a {n}-node cluster, but there is no trace of {} \
                 (given: {}): pass all {n}, in node order",
                missing.join(", "),
                seen.iter()
                    .map(|i| format!("n{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if traces.len() != n {
        return Err(violation(
            "complete traces",
            format!(
                "{} traces for a {n}-node cluster: some node's trace was given twice",
                traces.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a whole cluster's traces (one per node, same epoch, all of them:
/// an incomplete set is refused, naming the nodes missing): every step
/// replays exactly; every channel delivered a prefix of what was sent, in
/// order, with nothing invented (the model's reliable FIFO network); and the
/// ordering properties of `mode` hold on the combined history. Pass
/// `quiescent` when the cluster had settled, to also require every channel
/// drained and every message delivered everywhere.
pub fn check_cluster(
    traces: &[Trace],
    mode: Mode,
    quiescent: bool,
) -> Result<Conformance, Violation> {
    complete(traces)?;
    for (i, t) in traces.iter().enumerate() {
        if t.node() != i {
            return Err(violation(
                "conformance",
                format!("trace {i} is node {}'s", t.node()),
            ));
        }
        replay(t)?;
    }
    let mut messages = 0;
    for (i, ti) in traces.iter().enumerate() {
        for (j, tj) in traces.iter().enumerate().filter(|(j, _)| *j != i) {
            // The link layer may resend and the receiver drops duplicates, so
            // the channel is judged by sequence number: everything received was
            // sent under that number, and at quiescence every number arrived.
            let sent = sent_to(ti, j)?;
            let got = received_from(tj, i);
            if let Some((seq, _)) = got.iter().find(|(seq, m)| sent.get(seq) != Some(m)) {
                return Err(violation(
                    "fifo channel",
                    format!("channel {i}->{j}: node {j} received frame {seq}, which node {i} did not send as such"),
                ));
            }
            let arrived: BTreeSet<u64> = got.iter().map(|(seq, _)| *seq).collect();
            if quiescent && sent.keys().any(|seq| !arrived.contains(seq)) {
                return Err(violation(
                    "fifo channel",
                    format!(
                        "channel {i}->{j}: {} sent, {} received at quiescence",
                        sent.len(),
                        arrived.len()
                    ),
                ));
            }
            messages += arrived.len();
        }
    }
    let logs: Vec<Vec<Event>> = traces.iter().map(Trace::events).collect();
    properties::promised_orders(mode, &logs)?;
    if quiescent {
        properties::all_delivered(&logs)?;
    }
    Ok(Conformance {
        steps: traces.iter().map(|t| t.steps.len()).sum(),
        messages,
        deliveries: logs
            .iter()
            .flatten()
            .filter(|e| matches!(e, Event::Deliver(_)))
            .count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Op;
    use crate::node::Command;
    use crate::snapshot::Envelope;

    /// Drives a 3-node cluster by hand, recording traces the way a runtime would.
    fn traced_run(mode: Mode) -> Vec<Trace> {
        let n = 3;
        let mut nodes: Vec<Node> = (0..n).map(|i| Node::new(i, n, mode)).collect();
        let mut traces: Vec<Trace> = (0..n)
            .map(|node| Trace {
                start: Start::Fresh {
                    node,
                    n,
                    mode,
                    limits: Limits::default(),
                },
                steps: Vec::new(),
            })
            .collect();
        let mut net = crate::sim::FifoNetwork::new();
        let mut feed = |i: usize,
                        input: Input,
                        nodes: &mut Vec<Node>,
                        net: &mut crate::sim::FifoNetwork<_>| {
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
        // Every connection comes up, as a runtime reports it.
        for i in 0..n {
            for peer in (0..n).filter(|&j| j != i) {
                feed(
                    i,
                    Input::LinkUp { peer, delivered: 0 },
                    &mut nodes,
                    &mut net,
                );
                feed(i, Input::InboundUp { peer }, &mut nodes, &mut net);
            }
        }
        for (i, k) in [(0, "a"), (1, "b"), (2, "a")] {
            let cmd = Command::Write(Op::Set {
                key: k.into(),
                value: vec![i as u8],
            });
            feed(
                i,
                Input::Client { req: i as u64, cmd },
                &mut nodes,
                &mut net,
            );
        }
        feed(1, Input::StartSnapshot, &mut nodes, &mut net);
        while let Some(&(from, to)) = net.busy().last() {
            let frame = net.receive(from, to).unwrap();
            feed(to, Input::Peer { from, frame }, &mut nodes, &mut net);
        }
        traces
    }

    #[test]
    fn a_faithful_trace_conforms_in_every_mode() {
        for mode in Mode::ALL {
            let traces = traced_run(mode);
            let c = check_cluster(&traces, mode, true).unwrap_or_else(|v| panic!("{mode}: {v}"));
            assert_eq!(c.deliveries, 9, "{mode}: 3 writes delivered at 3 nodes");
            // 6 markers, plus per write: fifo/causal 2 copies; the sequencer
            // 2 numbers out (the data with each but the sender's), and n1's
            // and n2's one submission each; ISIS 2 proposals out, 2 back, 2
            // finals.
            let writes = match mode {
                Mode::Fifo | Mode::Causal => 3 * 2,
                Mode::TotalSequencer => 3 * 2 + 2,
                Mode::TotalIsis => 3 * 6,
            };
            assert_eq!(c.messages, 6 + writes, "{mode}: messages that arrived");
        }
    }

    #[test]
    fn tampered_traces_are_caught() {
        let mode = Mode::TotalIsis;
        // A runtime that reports a different reply than the spec computes.
        let mut t = traced_run(mode);
        let step = t[0]
            .steps
            .iter_mut()
            .find(|s| s.outputs.iter().any(|o| matches!(o, Output::Reply { .. })))
            .unwrap();
        for o in &mut step.outputs {
            if let Output::Reply { reply, .. } = o {
                *reply = crate::kv::Reply::Error("made up".into());
            }
        }
        assert_eq!(
            check_cluster(&t, mode, true).unwrap_err().property,
            "conformance"
        );

        // A channel that reorders: swap two consecutive inputs from the same peer.
        let mut t = traced_run(mode);
        let idx: Vec<usize> = t[2]
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(
                    &s.input,
                    Some(Input::Peer {
                        from: 0,
                        frame: Frame::Data {
                            body: Envelope::Msg { .. },
                            ..
                        }
                    })
                )
            })
            .map(|(k, _)| k)
            .collect();
        t[2].steps.swap(idx[0], idx[1]);
        assert!(check_cluster(&t, mode, true).is_err());

        // A channel that loses a message at quiescence.
        let mut t = traced_run(mode);
        let last = t[1].steps.len() - 1;
        t[1].steps.truncate(last);
        assert!(check_cluster(&t, mode, true).is_err());
    }

    #[test]
    fn a_restored_trace_starts_with_the_restores_own_outputs() {
        let t = traced_run(Mode::TotalSequencer);
        let part = t[1]
            .steps
            .iter()
            .flat_map(|s| &s.outputs)
            .find_map(|o| match o {
                Output::SnapshotComplete(part) => Some(part.clone()),
                _ => None,
            })
            .expect("n1's snapshot completes");
        let (_, outputs) = Node::restore(&part).unwrap();
        let restored = |outputs: Vec<Output>| Trace {
            start: Start::Restored {
                part: part.clone(),
                limits: Limits::default(),
            },
            steps: vec![Step {
                input: None,
                outputs,
            }],
        };
        assert!(replay(&restored(outputs.clone())).is_ok());
        // A runtime that reports a restore the spec would not make.
        let mut other = outputs;
        other.push(Output::DropPart { id: part.id });
        let v = replay(&restored(other)).unwrap_err();
        assert!(v.detail.contains("restore step differs"), "{v}");
        let mut no_restore_step = restored(Vec::new());
        no_restore_step.steps.clear();
        assert!(replay(&no_restore_step).is_err());
    }

    #[test]
    fn an_incomplete_set_of_traces_is_refused_by_name() {
        let mode = Mode::TotalSequencer;
        let t = traced_run(mode);
        let v = check_cluster(&t[..2], mode, false).unwrap_err();
        assert_eq!(v.property, "complete traces");
        assert!(
            v.detail.contains("3-node") && v.detail.contains("no trace of n2"),
            "{v}"
        );
        let v = check_cluster(&t[..1], mode, false).unwrap_err();
        assert!(v.detail.contains("no trace of n1, n2"), "{v}");
        let v = check_cluster(&[t[0].clone(), t[2].clone()], mode, false).unwrap_err();
        assert!(v.detail.contains("no trace of n1"), "{v}");
        let mut twice = t.clone();
        twice.push(t[2].clone());
        assert_eq!(
            check_cluster(&twice, mode, false).unwrap_err().property,
            "complete traces"
        );
        assert!(check_cluster(&[], mode, false).is_err());
    }
}
