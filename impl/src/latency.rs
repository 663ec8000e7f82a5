//! How long this node's writes take, as Redis's `INFO latencystats` reports
//! its commands': from a run of writes reaching the event loop to each write's
//! reply. The spec replies once the write is delivered here in the cluster's
//! order, so under fifo and causal this is little more than the wait for the
//! batch's flush, and under the total orders it adds a round trip to the
//! sequencer or to every peer: on a loaded machine, most of a write's time,
//! and what bounds the write rate of a fixed number of clients.
//!
//! An HDR histogram (Tene's HdrHistogram, the one Redis uses for the same
//! report): fixed memory whatever the load, values from 1 µs to an hour at two
//! significant digits. `CONFIG RESETSTAT` empties it, so a benchmark can read
//! one run's percentiles.

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use tokio::time::Instant;

/// The largest latency told apart (microseconds); longer ones count as this.
const HIGHEST_US: u64 = 3_600_000_000;

/// The percentiles INFO reports, as Redis's default
/// `latency-tracking-info-percentiles`.
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)];

/// Write latencies since the node started or the last `CONFIG RESETSTAT`.
pub struct WriteLatency {
    hist: Histogram<u64>,
}

impl Default for WriteLatency {
    fn default() -> Self {
        WriteLatency {
            hist: Histogram::new_with_bounds(1, HIGHEST_US, 2).expect("valid histogram bounds"),
        }
    }
}

impl WriteLatency {
    /// One write, received at `since` and answered at `now` (a write answered
    /// within the microsecond counts as 1 µs).
    pub fn record(&mut self, since: Instant, now: Instant) {
        let us = now.saturating_duration_since(since).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(us);
    }

    /// Forgets every write recorded so far.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// Writes recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// `count=N,p50=U,p99=U,p99.9=U,max=U` in microseconds (each within 1%):
    /// INFO's `write_latency_usec`. With nothing recorded, `count=0` alone.
    pub fn info(&self) -> String {
        let mut s = format!("count={}", self.count());
        if self.count() > 0 {
            for (name, q) in PERCENTILES {
                let _ = write!(s, ",{name}={}", self.hist.value_at_quantile(q));
            }
            let _ = write!(s, ",max={}", self.hist.max());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn after(us: u64) -> (Instant, Instant) {
        let t = Instant::now();
        (t, t + Duration::from_micros(us))
    }

    /// A field of `info()`'s text.
    fn field(info: &str, name: &str) -> u64 {
        info.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn percentiles_are_of_the_writes_recorded() {
        let mut l = WriteLatency::default();
        assert_eq!(l.info(), "count=0");
        // 1..=1000 µs: the median is 500, the 99th 990, the largest 1000.
        for us in 1..=1000 {
            let (since, now) = after(us);
            l.record(since, now);
        }
        let info = l.info();
        assert_eq!(field(&info, "count"), 1000);
        // Two significant digits: each value within 1% of the exact one.
        for (name, exact) in [("p50", 500), ("p99", 990), ("p99.9", 999), ("max", 1000)] {
            let got = field(&info, name);
            assert!(
                got.abs_diff(exact) * 100 <= exact,
                "{name}={got}, want {exact}: {info}"
            );
        }
    }

    #[test]
    fn a_reset_forgets_and_extremes_still_count() {
        let mut l = WriteLatency::default();
        let (since, now) = after(0);
        l.record(since, now);
        // Answered "before" it arrived (clocks never do that; saturates at 1 µs).
        l.record(now, since);
        // Longer than the histogram tells apart: counted at its ceiling.
        l.record(since, since + Duration::from_secs(2 * 3600));
        let info = l.info();
        assert_eq!(field(&info, "count"), 3);
        assert_eq!(field(&info, "p50"), 1);
        assert!(field(&info, "max") >= HIGHEST_US, "{info}");
        l.reset();
        assert_eq!(l.info(), "count=0");
    }
}
