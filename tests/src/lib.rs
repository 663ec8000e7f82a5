//! Real-cluster test harness: `gsmo node` processes on real sockets, driven by
//! the `redis` crate and judged by `gsmo_spec::properties`, the same predicates
//! the model checker evaluates.
//!
//! [`TestCluster::start`] picks free ports, starts one process per node, and
//! waits for each node's `ready` line (all peer channels up) with a deadline;
//! no sleeps stand in for synchronisation. Processes are killed on drop.
//!
//! The `gsmo` binary under test is the one these tests were compiled with:
//! once per test process, [`gsmo_bin`] runs `cargo test --workspace --no-run`
//! (which builds `gsmo`) in the test's own profile and target directory (a
//! no-op when it is fresh), so `cargo test -p gsmo-tests` alone never tests a stale binary.
//! `$GSMO_BIN` overrides it.
//!
//! Every external command has a deadline ([`run_bounded`]): one that hangs is
//! killed and the test fails saying which command and what it printed. Every
//! cluster has one too ([`watchdog`]): a test that hangs has its nodes killed.
//! Randomised tests take their seed from [`seed`] (`GSMO_SEED`, printed).
//!
//! One module a job: `process` (the binary under test, commands under
//! deadlines, `/proc`), `ports`, `cluster` (a [`TestCluster`] of node
//! processes), `launcher` (`gsmo cluster` as a user runs it), [`bank`] (the
//! TRANSFER workload) and [`watchdog`].

pub mod bank;
pub mod watchdog;
pub use bank::{expect_restored, money, open_accounts, snapshot_at, transferrer};

mod cluster;
mod launcher;
mod ports;
mod process;
pub use cluster::*;
pub use launcher::*;
pub use ports::*;
pub use process::*;

use std::sync::OnceLock;

/// A name no other test process shares (cluster ids, interfaces, dirs).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The seed for a randomised test ([`gsmo_spec::testing::seed`]), chosen
/// and printed once per process, so every failure reproduces.
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| gsmo_spec::testing::seed("gsmo-tests"))
}

/// The seed of randomised test `test` ([`gsmo_spec::testing::seed`]).
pub fn test_seed(test: &str) -> u64 {
    gsmo_spec::testing::seed(test)
}

/// Randomness that is not a test's input (ports, ids): need not reproduce.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}
