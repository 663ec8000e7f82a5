//! Fault injection: delayed channels and a slow event loop.
//!
//! A delayed channel holds each outgoing frame for a random time before the
//! writer sees it. Release times never decrease along one channel
//! (`release = max(previous release, enqueue time + delay)`), so a channel
//! stays FIFO exactly as TCP is, while frames of *different* channels overtake
//! each other freely: the interleavings the ordering and snapshot algorithms
//! must cope with, on real sockets.

use crate::config::DelayRange;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The release schedule of one delayed channel; pure, so it is testable
/// without a clock.
#[derive(Debug)]
pub struct Schedule {
    range: DelayRange,
    rng: fastrand::Rng,
    last: Option<Instant>,
}

impl Schedule {
    /// `seed` should differ per channel so channels draw different delays.
    pub fn new(range: DelayRange, seed: u64) -> Self {
        Schedule {
            range,
            rng: fastrand::Rng::with_seed(seed),
            last: None,
        }
    }

    /// When a frame enqueued at `now` may leave.
    pub fn release(&mut self, now: Instant) -> Instant {
        let ms = self.rng.u64(self.range.min_ms..=self.range.max_ms);
        let at = now + Duration::from_millis(ms);
        let at = self.last.map_or(at, |last| at.max(last));
        self.last = Some(at);
        at
    }
}

/// Seed for channel `from -> to` under the node's fault seed.
pub fn channel_seed(seed: u64, from: usize, to: usize) -> u64 {
    seed ^ ((from as u64) << 32 | to as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Puts a delay line in front of `out`: returns the sender to use instead.
/// The line ends (and drops `out`) when the returned sender is dropped and
/// everything queued has been released.
pub fn delay_line<T: Send + 'static>(
    mut schedule: Schedule,
    out: mpsc::UnboundedSender<T>,
) -> mpsc::UnboundedSender<T> {
    let (tx, mut rx) = mpsc::unbounded_channel::<T>();
    tokio::spawn(async move {
        let mut held: VecDeque<(Instant, T)> = VecDeque::new();
        let mut open = true;
        while open || !held.is_empty() {
            let head = held.front().map(|(at, _)| *at);
            tokio::select! {
                next = rx.recv(), if open => match next {
                    Some(item) => {
                        let at = schedule.release(Instant::now());
                        held.push_back((at, item));
                    }
                    None => open = false,
                },
                _ = sleep_until(head), if head.is_some() => {
                    let now = Instant::now();
                    while held.front().is_some_and(|(at, _)| *at <= now) {
                        let (_, item) = held.pop_front().expect("front checked");
                        if out.send(item).is_err() {
                            return; // the writer is gone; so is the channel
                        }
                    }
                }
            }
        }
    });
    tx
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_stay_in_order_and_in_range() {
        let range = DelayRange {
            min_ms: 0,
            max_ms: 50,
        };
        let mut s = Schedule::new(range, 7);
        let t0 = Instant::now();
        let mut prev = t0;
        let mut spread = std::collections::BTreeSet::new();
        // Frames a few ms apart: a long draw holds back the short draws after it.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 3);
            let at = s.release(now);
            assert!(at >= prev, "frame {i} would overtake its predecessor");
            assert!(
                at <= now + Duration::from_millis(50),
                "frame {i} over the range"
            );
            spread.insert(at.duration_since(now).as_millis());
            prev = at;
        }
        assert!(spread.len() > 10, "delays do not vary: {spread:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_line_delivers_everything_in_order() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let range = DelayRange {
            min_ms: 1,
            max_ms: 30,
        };
        let tx = delay_line(Schedule::new(range, 3), out);
        for i in 0..200 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            got.push(i);
        }
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }
}
