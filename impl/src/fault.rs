//! Fault injection: delayed channels, broken connections, a slow event loop.
//!
//! A delayed channel holds each outgoing frame for a random time before the
//! writer sees it. Release times never decrease along one channel
//! (`release = max(previous release, enqueue time + delay)`), so a channel
//! stays FIFO exactly as TCP is, while frames of *different* channels overtake
//! each other freely: the interleavings the ordering and snapshot algorithms
//! must cope with, on real sockets.

use crate::config::{DelayRange, RuntimeBug};
use crate::event::Input;
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
    /// `--bug reorder-delay-line`: release times may decrease.
    reorders: bool,
}

impl Schedule {
    /// `seed` should differ per channel so channels draw different delays.
    pub fn new(range: DelayRange, seed: u64) -> Self {
        Schedule {
            range,
            rng: fastrand::Rng::with_seed(seed),
            last: None,
            reorders: false,
        }
    }

    /// The same schedule with a deliberate runtime bug, if it is one of the delay line's.
    pub fn with_bug(mut self, bug: Option<RuntimeBug>) -> Self {
        self.reorders = bug == Some(RuntimeBug::ReorderDelayLine);
        self
    }

    /// When a frame enqueued at `now` may leave.
    pub fn release(&mut self, now: Instant) -> Instant {
        let ms = self.rng.u64(self.range.min_ms..=self.range.max_ms);
        let at = now + Duration::from_millis(ms);
        let at = match self.last {
            Some(last) if !self.reorders => at.max(last),
            _ => at,
        };
        self.last = Some(at);
        at
    }
}

/// Seed for channel `from -> to` under the node's fault seed.
pub fn channel_seed(seed: u64, from: usize, to: usize) -> u64 {
    seed ^ ((from as u64) << 32 | to as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The `--fault-disconnect-every` injector: at random intervals (uniform in
/// `0..=2*every`, so `every` on average) it asks the event loop to break one
/// peer connection, chosen by the random `pick` it sends along. Seeded, so a
/// run's faults can be replayed with the same `--seed`.
pub async fn disconnect_faults(every: Duration, seed: u64, inputs: mpsc::Sender<Input>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let max = (every.as_millis() as u64).saturating_mul(2).max(1);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.u64(0..=max))).await;
        if inputs
            .send(Input::FaultDisconnect { pick: rng.u64(..) })
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each channel draws its own delays: with one seed for all, every
    /// channel would hold its n-th frame alike, and the frames of different
    /// channels would overtake each other far less than TCP lets them.
    #[test]
    fn every_channel_and_every_seed_draws_its_own_delays() {
        let mut seeds = std::collections::BTreeSet::new();
        for seed in [0, 1, 42] {
            for from in 0..4 {
                for to in 0..4 {
                    seeds.insert(channel_seed(seed, from, to));
                }
            }
        }
        assert_eq!(seeds.len(), 3 * 16, "a seed shared by two channels or runs");
    }

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
}
