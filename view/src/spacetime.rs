//! Space-time diagrams (Lamport 1978, "Time, Clocks, and the Ordering of
//! Events in a Distributed System"), drawn the way the Chandy-Lamport lecture
//! draws a snapshot: a timeline per node, messages as arrows between events,
//! and each snapshot's cut as a line joining the nodes' record points, with the
//! messages the snapshot recorded in flight (those crossing the cut) marked.
//!
//! Pure: a [`Diagram`] of per-node events and messages in, SVG text out. The
//! model's explorer and `gsmo trace show` build their diagrams with a
//! [`Builder`] and draw them with [`svg`], so both pictures speak one language.
//!
//! Layout: there is no global clock, so an event's row is the least one below
//! its predecessor on the same timeline and below the send of the message it
//! receives (a Lamport clock): every arrow points down, and concurrent events
//! of different nodes may share a row.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What happened at an event; each kind has its own shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A spontaneous step: a client write, a multicast, a transfer (filled circle).
    Local,
    /// A message taken from a channel and handled at once (small dot).
    Receive,
    /// A message received but held back, not (yet) delivered (hollow circle).
    HeldBack,
    /// A delivery to the application, possibly of a message held back earlier (square).
    Deliver,
    /// The node recorded its local state for a snapshot (red bar on the cut).
    Record,
}

/// Where an event is: its node and its index on that node's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At {
    pub node: usize,
    pub event: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub label: String,
    /// A clock to print by the event (e.g. the delivery vector `[1,0,2]`).
    pub clock: Option<String>,
    /// The message this event receives, if any (index into [`Diagram::messages`]).
    pub receives: Option<usize>,
    /// Drawn highlighted: the step the explorer just took.
    pub latest: bool,
    /// The multicast message this event concerns: joins a held-back receipt
    /// to its later delivery.
    pub msg_id: Option<String>,
}

/// A message's role: data, the ordering protocol's bookkeeping, or a snapshot marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgKind {
    Data,
    Control,
    Marker,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: At,
    pub to_node: usize,
    /// The receiving event; `None` while the message is still in flight.
    pub to: Option<usize>,
    pub kind: MsgKind,
    /// What the arrow carries (a few characters: `n0#1`, `M 0-1`).
    pub short: String,
    /// The whole message, in the tooltip.
    pub label: String,
    /// Position on its channel, when the channel numbers its messages.
    pub seq: Option<u64>,
    /// Snapshots that recorded this message as in flight on its channel.
    pub recorded: Vec<String>,
}

/// A snapshot's cut: per node, the index of its record event (if it recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub snapshot: String,
    pub points: Vec<Option<usize>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagram {
    pub title: String,
    /// Timeline names, in column order.
    pub nodes: Vec<String>,
    /// Per node, its events in order.
    pub events: Vec<Vec<Event>>,
    pub messages: Vec<Message>,
    pub cuts: Vec<Cut>,
    /// What the clocks printed by the events mean, for the legend.
    pub clock_legend: Option<String>,
}

/// Builds a [`Diagram`] step by step, matching each receipt to its send.
pub struct Builder {
    d: Diagram,
    /// Per channel (from, to), the messages sent and not yet received, oldest first.
    pending: BTreeMap<(usize, usize), Vec<usize>>,
}

impl Builder {
    pub fn new(title: impl Into<String>, nodes: Vec<String>) -> Self {
        let n = nodes.len();
        Builder {
            d: Diagram {
                title: title.into(),
                nodes,
                events: vec![Vec::new(); n],
                messages: Vec::new(),
                cuts: Vec::new(),
                clock_legend: None,
            },
            pending: BTreeMap::new(),
        }
    }

    /// Appends an event to `node`'s timeline.
    pub fn event(&mut self, node: usize, kind: Kind, label: impl Into<String>) -> At {
        let events = &mut self.d.events[node];
        events.push(Event {
            kind,
            label: label.into(),
            clock: None,
            receives: None,
            latest: false,
            msg_id: None,
        });
        At {
            node,
            event: events.len() - 1,
        }
    }

    pub fn set_clock(&mut self, at: At, clock: impl Into<String>) {
        self.d.events[at.node][at.event].clock = Some(clock.into());
    }

    pub fn set_latest(&mut self, at: At) {
        self.d.events[at.node][at.event].latest = true;
    }

    pub fn set_msg_id(&mut self, at: At, id: impl Into<String>) {
        self.d.events[at.node][at.event].msg_id = Some(id.into());
    }

    pub fn set_clock_legend(&mut self, legend: impl Into<String>) {
        self.d.clock_legend = Some(legend.into());
    }

    /// Appends `more` to an event's label.
    pub fn annotate(&mut self, at: At, more: &str) {
        let label = &mut self.d.events[at.node][at.event].label;
        label.push_str(more);
    }

    /// A message sent at event `from` to node `to`.
    pub fn send(
        &mut self,
        from: At,
        to: usize,
        kind: MsgKind,
        short: impl Into<String>,
        label: impl Into<String>,
        seq: Option<u64>,
    ) -> usize {
        self.d.messages.push(Message {
            from,
            to_node: to,
            to: None,
            kind,
            short: short.into(),
            label: label.into(),
            seq,
            recorded: Vec::new(),
        });
        let m = self.d.messages.len() - 1;
        self.pending.entry((from.node, to)).or_default().push(m);
        m
    }

    /// A receipt at `node` of the oldest message in flight from `from` with this
    /// label and channel position (a reordering channel may deliver a later one first).
    /// A receipt whose send is not in the diagram still gets its event.
    pub fn receive(
        &mut self,
        node: usize,
        from: usize,
        label: &str,
        seq: Option<u64>,
        kind: Kind,
        event_label: impl Into<String>,
    ) -> At {
        let at = self.event(node, kind, event_label);
        let pending = self.pending.entry((from, node)).or_default();
        let found = pending.iter().position(|&m| {
            let m = &self.d.messages[m];
            m.label == label && m.seq == seq
        });
        if let Some(k) = found {
            let m = pending.remove(k);
            self.d.messages[m].to = Some(at.event);
            self.d.events[node][at.event].receives = Some(m);
        }
        at
    }

    /// Whether a message with this label and channel position is in flight
    /// from `from` to `node`.
    pub fn in_flight(&self, from: usize, node: usize, label: &str, seq: Option<u64>) -> bool {
        self.pending.get(&(from, node)).is_some_and(|p| {
            p.iter().any(|&m| {
                let m = &self.d.messages[m];
                m.label == label && m.seq == seq
            })
        })
    }

    /// Marks event `at` as `node`'s record point of `snapshot`.
    pub fn record(&mut self, snapshot: &str, at: At) {
        let n = self.d.nodes.len();
        let cut = match self.d.cuts.iter().position(|c| c.snapshot == snapshot) {
            Some(k) => &mut self.d.cuts[k],
            None => {
                self.d.cuts.push(Cut {
                    snapshot: snapshot.to_string(),
                    points: vec![None; n],
                });
                self.d.cuts.last_mut().expect("just pushed")
            }
        };
        cut.points[at.node] = Some(at.event);
    }

    /// Marks the message at position `seq` of channel `from -> to` as recorded
    /// in flight by `snapshot`.
    pub fn mark_recorded(&mut self, from: usize, to: usize, seq: u64, snapshot: &str) {
        if let Some(m) = self.d.messages.iter_mut().find(|m| {
            m.from.node == from
                && m.to_node == to
                && m.seq == Some(seq)
                && m.kind != MsgKind::Marker
        }) {
            if !m.recorded.iter().any(|s| s == snapshot) {
                m.recorded.push(snapshot.to_string());
            }
        }
    }

    pub fn finish(self) -> Diagram {
        self.d
    }
}

/// Rows between a send and its receipt at the least: messages take time, and
/// steeper arrows cross fewer labels.
const TRANSIT: usize = 2;

/// Each event's row: one below its predecessor and `TRANSIT` below the send it receives.
/// A receipt whose send cannot be placed first (not a causal history) is
/// placed as if it had no send.
pub fn rows(d: &Diagram) -> Vec<Vec<usize>> {
    let n = d.events.len();
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); n];
    let placed = |rows: &Vec<Vec<usize>>, at: At| rows[at.node].get(at.event).copied();
    loop {
        let mut progress = false;
        for i in 0..n {
            while rows[i].len() < d.events[i].len() {
                let e = &d.events[i][rows[i].len()];
                let after_prev = rows[i].last().map_or(0, |r| r + 1);
                let row = match e.receives.map(|m| d.messages[m].from) {
                    Some(from) => match placed(&rows, from) {
                        Some(r) => after_prev.max(r + TRANSIT),
                        None => break,
                    },
                    None => after_prev,
                };
                rows[i].push(row);
                progress = true;
            }
        }
        if (0..n).all(|i| rows[i].len() == d.events[i].len()) {
            return rows;
        }
        if !progress {
            // Break the deadlock at the blocked event with the lowest row.
            let i = (0..n)
                .filter(|&i| rows[i].len() < d.events[i].len())
                .min_by_key(|&i| rows[i].last().map_or(0, |r| r + 1))
                .expect("some node is blocked");
            let row = rows[i].last().map_or(0, |r| r + 1);
            rows[i].push(row);
        }
    }
}

const COL: f64 = 330.0;
const LEFT: f64 = 50.0;
const TOP: f64 = 64.0;
const ROW: f64 = 28.0;
const LABEL_ROOM: f64 = 300.0;
/// Colours of successive snapshots' cuts.
const CUT_COLOURS: [&str; 4] = ["#d7263d", "#7b2cbf", "#0f7b6c", "#b35c00"];

/// Escapes text for SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to `max` characters, ending in `…` if it was longer.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

const STYLE: &str = "\
.gs-bg{fill:#fff}\
.gs text{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:11px;fill:#222}\
.gs .title{font-size:13px;font-weight:bold}\
.gs .node{font-size:13px;font-weight:bold;text-anchor:middle}\
.gs .timeline{stroke:#444;stroke-width:2}\
.gs .ev{fill:#222}\
.gs .held{fill:#fff;stroke:#e07a00;stroke-width:2}\
.gs .deliver{fill:#1b7f3a}\
.gs .latest{fill:#ffe14d;stroke:#e0b400}\
.gs .clock{fill:#1d5fa8}\
.gs .lbl{paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}\
.gs .msg{stroke-width:1.4;fill:none}\
.gs .data{stroke:#1d5fa8}\
.gs .control{stroke:#888}\
.gs .marker{stroke:#d7263d;stroke-dasharray:6 3}\
.gs .inflight{stroke-dasharray:2 3}\
.gs .recorded{stroke:#f6a800;stroke-width:7;opacity:.55;fill:none}\
.gs .short{font-size:10px;paint-order:stroke;stroke:#fff;stroke-width:3px}\
.gs .cut{fill:none;stroke-width:2.5}\
.gs .partial{stroke-dasharray:8 4}\
.gs .holdline{stroke:#e07a00;stroke-width:2;stroke-dasharray:2 2}\
.gs .legend{font-size:10px;fill:#555}";

/// Draws `d` as a standalone SVG document.
pub fn svg(d: &Diagram) -> String {
    let rows = rows(d);
    let n = d.nodes.len();
    let last_row = rows.iter().flatten().copied().max();
    let in_flight = d.messages.iter().any(|m| m.to.is_none());
    // One spare row for arrows still in flight, then the legend.
    let body_rows = last_row.map_or(0, |r| r + 1) + usize::from(in_flight) + 1;
    let x = |i: usize| LEFT + COL * i as f64 + 20.0;
    let y = |row: usize| TOP + ROW * row as f64 + ROW / 2.0;
    let bottom = y(body_rows) - ROW / 2.0;
    // Wide enough for the legend, however few the nodes.
    let width = (LEFT + COL * n.saturating_sub(1) as f64 + LABEL_ROOM + 40.0).max(760.0);
    let height = bottom + 64.0;
    let at = |a: At| (x(a.node), y(rows[a.node][a.event]));
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns='http://www.w3.org/2000/svg' class='gs' width='{width:.0}' height='{height:.0}' \
         viewBox='0 0 {width:.0} {height:.0}'><style>{STYLE}</style>\
         <defs>{}</defs>\
         <rect class='gs-bg' width='100%' height='100%'/>\
         <text class='title' x='10' y='18'>{}</text>",
        ["data", "control", "marker"]
            .iter()
            .zip(["#1d5fa8", "#888", "#d7263d"])
            .map(|(k, c)| format!(
                "<marker id='gs-arrow-{k}' markerWidth='10' markerHeight='8' refX='9' refY='4' \
                 orient='auto' markerUnits='userSpaceOnUse'><polygon points='0 0, 10 4, 0 8' fill='{c}'/></marker>"
            ))
            .collect::<String>(),
        escape(&d.title)
    );
    // Timelines.
    for (i, name) in d.nodes.iter().enumerate() {
        let _ = write!(
            s,
            "<text class='node' x='{:.0}' y='{:.0}'>{}</text>\
             <line class='timeline' data-node='{}' x1='{:.0}' y1='{:.0}' x2='{:.0}' y2='{:.0}'/>",
            x(i),
            TOP - 18.0,
            escape(name),
            escape(name),
            x(i),
            TOP - 10.0,
            x(i),
            bottom
        );
    }
    // Recorded messages first, under their arrows.
    let end_of = |m: &Message| match m.to {
        Some(e) => at(At {
            node: m.to_node,
            event: e,
        }),
        None => (x(m.to_node), bottom - ROW / 2.0),
    };
    for m in d.messages.iter().filter(|m| !m.recorded.is_empty()) {
        let ((x1, y1), (x2, y2)) = (at(m.from), end_of(m));
        let _ = write!(
            s,
            "<line class='recorded' x1='{x1:.0}' y1='{y1:.0}' x2='{x2:.0}' y2='{y2:.0}'>\
             <title>recorded in flight by {}</title></line>",
            escape(&m.recorded.join(", "))
        );
    }
    // Cuts: a line through the record points, beyond the outer timelines.
    for (k, cut) in d.cuts.iter().enumerate() {
        let colour = CUT_COLOURS[k % CUT_COLOURS.len()];
        let points: Vec<(f64, f64)> = cut
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| at(At { node: i, event: e })))
            .collect();
        let complete = cut.points.iter().all(Option::is_some);
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            continue;
        };
        let mut line = vec![(first.0 - 30.0, first.1)];
        line.extend(&points);
        line.push((last.0 + 30.0, last.1));
        let path: Vec<String> = line.iter().map(|(a, b)| format!("{a:.0},{b:.0}")).collect();
        let _ = write!(
            s,
            "<polyline class='cut{}' data-snapshot='{}' stroke='{colour}' points='{}'/>\
             <text x='{:.0}' y='{:.0}' fill='{colour}' style='fill:{colour};font-weight:bold'>cut {}{}</text>",
            if complete { "" } else { " partial" },
            escape(&cut.snapshot),
            path.join(" "),
            first.0 - 48.0,
            first.1 - 6.0,
            escape(&cut.snapshot),
            if complete { "" } else { " (recording)" }
        );
    }
    // Messages.
    for m in &d.messages {
        let ((x1, y1), (x2, y2)) = (at(m.from), end_of(m));
        let kind = match m.kind {
            MsgKind::Data => "data",
            MsgKind::Control => "control",
            MsgKind::Marker => "marker",
        };
        // Stop short of the receiving event's shape.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (x2s, y2s) = (x2 - dx / len * 6.0, y2 - dy / len * 6.0);
        let _ = write!(
            s,
            "<g><title>{}</title><line class='msg {kind}{}' x1='{x1:.0}' y1='{y1:.0}' x2='{x2s:.0}' \
             y2='{y2s:.0}' marker-end='url(#gs-arrow-{kind})'/>",
            escape(&m.label),
            if m.to.is_none() { " inflight" } else { "" }
        );
        // The short label just left of the arrow's right end: the gap there is
        // clear of the event labels, which run right from each timeline.
        let t = if dx.abs() < 1.0 {
            0.5
        } else {
            ((x1.max(x2) - 45.0 - x1) / dx).clamp(0.0, 1.0)
        };
        let (lx, ly) = (x1 + dx * t, y1 + dy * t);
        let _ = write!(
            s,
            "<text class='short' x='{:.0}' y='{:.0}' text-anchor='middle'>{}{}</text></g>",
            lx,
            ly - 3.0,
            escape(&clip(&m.short, 22)),
            if m.to.is_none() { " (in flight)" } else { "" }
        );
    }
    // Events, with a dotted bracket from a held-back receipt to its delivery.
    for (i, events) in d.events.iter().enumerate() {
        let mut held: BTreeMap<String, f64> = BTreeMap::new();
        for (k, e) in events.iter().enumerate() {
            let (cx, cy) = at(At { node: i, event: k });
            if let (Kind::HeldBack, Some(id)) = (e.kind, &e.msg_id) {
                held.insert(id.clone(), cy);
            }
            if let (Kind::Deliver, Some(id)) = (e.kind, &e.msg_id) {
                if let Some(from_y) = held.remove(id) {
                    let _ = write!(
                        s,
                        "<line class='holdline' x1='{:.0}' y1='{from_y:.0}' x2='{:.0}' y2='{cy:.0}'/>",
                        cx - 9.0,
                        cx - 9.0
                    );
                }
            }
            if e.latest {
                let _ = write!(
                    s,
                    "<circle class='latest' cx='{cx:.0}' cy='{cy:.0}' r='10'/>"
                );
            }
            let _ = match e.kind {
                Kind::Local => write!(s, "<circle class='ev' cx='{cx:.0}' cy='{cy:.0}' r='5'/>"),
                Kind::Receive => write!(s, "<circle class='ev' cx='{cx:.0}' cy='{cy:.0}' r='3'/>"),
                Kind::HeldBack => write!(s, "<circle class='held' cx='{cx:.0}' cy='{cy:.0}' r='5'/>"),
                Kind::Deliver => write!(
                    s,
                    "<rect class='deliver' x='{:.0}' y='{:.0}' width='9' height='9'/>",
                    cx - 4.5,
                    cy - 4.5
                ),
                Kind::Record => write!(
                    s,
                    "<rect class='record' x='{:.0}' y='{:.0}' width='16' height='5' fill='#d7263d'/>",
                    cx - 8.0,
                    cy - 2.5
                ),
            };
            let room = if i + 1 == n { 36 } else { 34 };
            let _ = write!(
                s,
                "<text class='lbl' x='{:.0}' y='{:.0}'><title>{}</title>{}",
                cx + 11.0,
                cy + 4.0,
                escape(&e.label),
                escape(&clip(&e.label, room))
            );
            if let Some(c) = &e.clock {
                let _ = write!(s, "<tspan class='clock'> {}</tspan>", escape(c));
            }
            s.push_str("</text>");
        }
    }
    // Legend.
    let ly = bottom + 22.0;
    let _ = write!(
        s,
        "<g class='legend-row'>\
         <circle class='ev' cx='14' cy='{ly:.0}' r='5'/><text class='legend' x='24' y='{:.0}'>step</text>\
         <circle class='held' cx='66' cy='{ly:.0}' r='5'/><text class='legend' x='76' y='{:.0}'>held back</text>\
         <rect class='deliver' x='146' y='{:.0}' width='9' height='9'/><text class='legend' x='160' y='{:.0}'>delivered</text>\
         <rect x='226' y='{:.0}' width='16' height='5' fill='#d7263d'/><text class='legend' x='248' y='{:.0}'>record point</text>\
         <line class='msg data' x1='330' y1='{ly:.0}' x2='360' y2='{ly:.0}'/><text class='legend' x='366' y='{:.0}'>data</text>\
         <line class='msg control' x1='400' y1='{ly:.0}' x2='430' y2='{ly:.0}'/><text class='legend' x='436' y='{:.0}'>ordering</text>\
         <line class='msg marker' x1='494' y1='{ly:.0}' x2='524' y2='{ly:.0}'/><text class='legend' x='530' y='{:.0}'>marker</text>\
         <line class='recorded' x1='580' y1='{ly:.0}' x2='610' y2='{ly:.0}'/><text class='legend' x='616' y='{:.0}'>recorded in flight</text>\
         <text class='legend clock' x='10' y='{:.0}'>{}</text></g>",
        ly + 4.0,
        ly + 4.0,
        ly - 4.5,
        ly + 4.0,
        ly - 2.5,
        ly + 4.0,
        ly + 4.0,
        ly + 4.0,
        ly + 4.0,
        ly + 4.0,
        ly + 22.0,
        escape(d.clock_legend.as_deref().unwrap_or("")),
    );
    s.push_str("</svg>");
    s
}

/// `svg(d)` in a page of its own, for `--html`.
pub fn html(d: &Diagram) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>{}</title></head>\
         <body style='margin:0;background:#fff'><div style='display:flow-root'>{}</div></body></html>\n",
        escape(&d.title),
        svg(d)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes: n0 writes and sends to n1, which holds it back, then both
    /// record snapshot 0-1 while a second message is in flight across the cut.
    fn lecture() -> Diagram {
        let mut b = Builder::new("test", vec!["n0".into(), "n1".into()]);
        let w = b.event(0, Kind::Local, "n0#1 SET x=1");
        b.send(w, 1, MsgKind::Data, "n0#1", "data n0#1 SET x=1", Some(1));
        let w2 = b.event(0, Kind::Local, "n0#2 SET x=2");
        b.send(w2, 1, MsgKind::Data, "n0#2", "data n0#2 SET x=2", Some(2));
        let r = b.event(0, Kind::Record, "records 0-1");
        b.record("0-1", r);
        b.send(r, 1, MsgKind::Marker, "M 0-1", "marker 0-1", None);
        let h = b.receive(
            1,
            0,
            "data n0#1 SET x=1",
            Some(1),
            Kind::HeldBack,
            "held n0#1",
        );
        b.set_clock(h, "[0,0]");
        b.set_msg_id(h, "n0#1");
        b.event(1, Kind::Record, "records 0-1 <&>");
        b.record("0-1", At { node: 1, event: 1 });
        let d = b.event(1, Kind::Deliver, "deliver n0#1 x=1");
        b.set_msg_id(d, "n0#1");
        b.receive(
            1,
            0,
            "data n0#2 SET x=2",
            Some(2),
            Kind::Receive,
            "recv n0#2",
        );
        b.mark_recorded(0, 1, 2, "0-1");
        b.finish()
    }

    #[test]
    fn rows_respect_causality() {
        let d = lecture();
        let rows = rows(&d);
        assert_eq!(rows[0], vec![0, 1, 2]);
        // n1's first receipt is TRANSIT rows below n0's first send.
        assert_eq!(rows[1], vec![2, 3, 4, 5]);
        for m in d.messages.iter().filter(|m| m.to.is_some()) {
            assert!(rows[m.to_node][m.to.unwrap()] > rows[m.from.node][m.from.event]);
        }
    }

    #[test]
    fn the_picture_has_timelines_a_cut_and_the_recorded_message() {
        let d = lecture();
        let svg = svg(&d);
        assert_eq!(svg.matches("class='timeline'").count(), 2);
        assert!(svg.contains("class='cut' data-snapshot='0-1'"), "{svg}");
        assert_eq!(
            svg.matches("class='recorded'").count(),
            2,
            "one message, one legend entry"
        );
        assert!(svg.contains("class='held'"));
        assert!(
            svg.contains("class='holdline'"),
            "held-back receipt joined to its delivery"
        );
        // The marker is still in flight.
        assert!(svg.contains("msg marker inflight"));
        assert!(svg.contains("records 0-1 &lt;&amp;&gt;"));
        assert!(!svg.contains("<&>"));
    }

    #[test]
    fn a_cut_not_yet_complete_is_drawn_as_recording() {
        let mut b = Builder::new("t", vec!["n0".into(), "n1".into()]);
        let r = b.event(0, Kind::Record, "records 0-1");
        b.record("0-1", r);
        let svg = svg(&b.finish());
        assert!(svg.contains("class='cut partial'"));
        assert!(svg.contains("(recording)"));
    }

    #[test]
    fn a_receipt_without_its_send_is_still_drawn() {
        let mut b = Builder::new("t", vec!["n0".into(), "n1".into()]);
        let at = b.receive(1, 0, "data n0#9", Some(9), Kind::Receive, "recv n0#9");
        let d = b.finish();
        assert_eq!(d.events[1][at.event].receives, None);
        assert_eq!(rows(&d), vec![vec![], vec![0]]);
    }
}
