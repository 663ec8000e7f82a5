//! A second real client library beside the `redis` crate: redis-py runs
//! `tests/py/redis_py_commands.py` (every command family, Redis-worded errors,
//! pipelines) against a 3-node cluster, reading on a second node to see the
//! writes converge, over redis-py's default protocol (RESP3 since redis-py 8)
//! and over RESP2. `scripts/test` installs redis-py; without it this test
//! fails with that instruction rather than skip.

use gsmo_spec::multicast::Mode;
use gsmo_tests::{run_bounded, TestCluster};
use std::process::Command;
use std::time::Duration;

#[test]
fn redis_py_exercises_every_command_family_and_pipelines() {
    let have = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "python3 with redis-py is needed: scripts/test installs it (pip install redis)"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/redis_py_commands.py");
    let cluster = TestCluster::start(3, Mode::TotalIsis);
    // redis-py's default protocol (RESP3 from redis-py 8 on), then RESP2.
    for protocol in [None, Some("2")] {
        let out = run_bounded(
            Command::new("python3").arg(script).args(
                [
                    Some(cluster.client_port(0).to_string()),
                    Some(cluster.client_port(1).to_string()),
                    protocol.map(String::from),
                ]
                .into_iter()
                .flatten(),
            ),
            Duration::from_secs(120),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "redis-py (protocol {protocol:?}) failed:\n{text}"
        );
        assert!(text.contains("all commands and pipelines ok"), "{text}");
        if let Some(p) = protocol {
            assert!(text.contains(&format!("over RESP{p}")), "{text}");
        }
    }
}
