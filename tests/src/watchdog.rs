//! A per-cluster time limit. `cargo test` has none, so a test waiting on
//! something that never comes (a request the node never answers on a
//! connection with no reply deadline, a poll with none) would hang the suite:
//! CI would be cut off at its own limit without naming the test. The watchdog
//! kills a test cluster's nodes once it has lived [`limit`]; whatever the test
//! waits on then fails (a closed connection, an exited node), and the test
//! fails by name, with the watchdog's reason in its output.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one test cluster may live: `$GSMO_TEST_WATCHDOG_SECS`, default
/// 600 s. The slowest test in the suite runs for well under a minute; a
/// mutation run sets it lower to turn hangs into failures quickly.
pub fn limit() -> Duration {
    let secs = std::env::var("GSMO_TEST_WATCHDOG_SECS")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .unwrap_or_else(|e| panic!("GSMO_TEST_WATCHDOG_SECS={s:?}: {e}"))
        })
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// Watches one cluster's node processes; dropping it stops the watch.
pub struct Watchdog {
    /// The nodes still to kill. A pid is taken out *before* its child is
    /// reaped: only then may the system reuse it, so the watchdog never
    /// signals a stranger.
    pids: Arc<Mutex<Vec<u32>>>,
    /// Dropped with the cluster, which wakes the thread to end the watch.
    _stop: mpsc::Sender<()>,
}

impl Watchdog {
    /// Starts the watch for the test running on this thread (cargo's harness
    /// names a test's thread after the test).
    pub fn start(limit: Duration) -> Watchdog {
        let pids: Arc<Mutex<Vec<u32>>> = Arc::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let test = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        let watched = pids.clone();
        std::thread::spawn(move || {
            if stopped.recv_timeout(limit) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            let pids = watched.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "watchdog: {test} still has its cluster after {limit:?}; killing its {} \
                 node(s) so it fails instead of hanging (GSMO_TEST_WATCHDOG_SECS)",
                pids.len()
            );
            for &pid in pids.iter() {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
        Watchdog { pids, _stop: stop }
    }

    /// Adds a started node.
    pub fn watch(&self, pid: u32) {
        self.lock().push(pid);
    }

    /// Takes a node out of the watch; call it before reaping the child.
    pub fn forget(&self, pid: u32) {
        self.lock().retain(|&p| p != pid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner())
    }
}
