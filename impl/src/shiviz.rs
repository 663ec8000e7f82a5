//! ShiViz event log: one line per event, `n0 {"n0":3,"n1":1} deliver n1#1`.
//!
//! The vector clock here exists only for the diagram: the runtime ticks it per
//! logged event, stamps it on outgoing peer frames and merges it on receipt, as
//! ShiViz requires (each host's own entry starts at 1 and grows by exactly 1 per
//! logged event). The ordering protocols never see it.
//!
//! To view a run: `gsmo cluster --nodes 3 --log-format shiviz > run.log`, drive
//! some writes, stop the cluster, open <https://bestchai.bitbucket.io/shiviz/>,
//! choose "Try out ShiViz with your own logs", paste `run.log` and use the regex
//! [`REGEX`] (leave the delimiter empty).

use gsmo_spec::clock::VectorClock;
use gsmo_spec::NodeId;
use std::io::Write;

/// The log-parsing regex to paste into ShiViz.
pub const REGEX: &str = r"(?<host>\S+) (?<clock>\{[^}]*\}) (?<event>.*)";

/// One node's ShiViz log.
pub struct ShivizLog {
    me: NodeId,
    clock: VectorClock,
    out: Box<dyn Write + Send>,
}

impl ShivizLog {
    pub fn new(me: NodeId, n: usize, out: Box<dyn Write + Send>) -> Self {
        ShivizLog {
            me,
            clock: VectorClock::new(n),
            out,
        }
    }

    /// Logs a local event (a multicast, a delivery, a snapshot step).
    pub fn local(&mut self, event: std::fmt::Arguments<'_>) {
        self.clock.tick(self.me);
        self.line(event);
    }

    /// Logs a send; returns the clock to stamp on the message.
    pub fn send(&mut self, event: std::fmt::Arguments<'_>) -> Vec<u64> {
        self.local(event);
        self.clock.entries().to_vec()
    }

    /// Logs a receive: merge what the sender knew, then tick.
    pub fn receive(&mut self, sender_clock: Option<&[u64]>, event: std::fmt::Arguments<'_>) {
        if let Some(c) = sender_clock {
            // A clock longer than the cluster comes from a confused peer; keep our width.
            let c = &c[..c.len().min(self.clock.len())];
            self.clock.merge(&VectorClock::from_entries(c.to_vec()));
        }
        self.local(event);
    }

    /// Pushes buffered lines out; the runtime calls this after each batch of inputs.
    pub fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::warn!("cannot write the ShiViz log: {e}");
        }
    }

    fn line(&mut self, event: std::fmt::Arguments<'_>) {
        if let Err(e) = writeln!(self.out, "n{} {} {}", self.me, self.clock, event) {
            tracing::warn!("cannot write the ShiViz log: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn own_entry_counts_events_and_receives_merge() {
        let (sa, sb) = (Sink::default(), Sink::default());
        let mut a = ShivizLog::new(0, 2, Box::new(sa.clone()));
        let mut b = ShivizLog::new(1, 2, Box::new(sb.clone()));
        a.local(format_args!("multicast n0#1"));
        let stamp = a.send(format_args!("send to n1"));
        b.local(format_args!("multicast n1#1"));
        b.receive(Some(&stamp), format_args!("recv from n0"));
        let a = String::from_utf8(sa.0.lock().unwrap().clone()).unwrap();
        let b = String::from_utf8(sb.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            a,
            "n0 {\"n0\":1} multicast n0#1\nn0 {\"n0\":2} send to n1\n"
        );
        assert_eq!(
            b,
            "n1 {\"n1\":1} multicast n1#1\nn1 {\"n0\":2,\"n1\":2} recv from n0\n"
        );
    }
}
