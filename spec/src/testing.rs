//! Seeds for randomised tests (feature `testing`, for dev-dependencies only).
//!
//! House rule: every randomised run takes its seed from `GSMO_SEED` (random
//! by default) and prints it, so any failure reruns exactly. This is the one
//! place that rule is written; proptest blocks take [`proptest_config`].

use proptest::test_runner::{Config, RngSeed};

/// `$GSMO_SEED` if set (a bad value is a hard error: a rerun must be exact),
/// else random; printed under `label` with how to rerun.
pub fn seed(label: &str) -> u64 {
    let seed = match std::env::var("GSMO_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GSMO_SEED={s:?} is not a number")),
        Err(_) => random(),
    };
    eprintln!("{label}: GSMO_SEED={seed} (rerun with GSMO_SEED={seed})");
    seed
}

/// A proptest configuration of `cases` cases whose generator is seeded by
/// [`seed`]. Failures are shrunk and printed by proptest as always (and kept
/// in a `*.proptest-regressions` file beside the test, replayed first).
pub fn proptest_config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed("proptest")),
        ..Config::default()
    }
}

/// A random seed without a dependency: std's per-process hasher keys.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}
