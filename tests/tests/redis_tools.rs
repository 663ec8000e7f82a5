//! Stock Redis tools against a gsmo cluster: `redis-cli` for the commands and
//! `redis-benchmark -t set,get -n 10000 -r 1000` in every ordering mode, with
//! no error and no warning, and the replicas equal afterwards.
//!
//! The tools come from Debian's `redis-tools` (`.ci/run` installs it); without
//! them these tests fail with that instruction rather than skip.

use gsmo_spec::multicast::Mode;
use gsmo_spec::properties;
use gsmo_tests::{have_tool, run_bounded, run_bounded_with_input, TestCluster, COMMAND_DEADLINE};
use std::process::Command;
use std::time::{Duration, Instant};

fn require(tool: &str) {
    assert!(
        have_tool(tool),
        "`{tool}` is not installed: apt-get install redis-tools (.ci/run does this)"
    );
}

/// Runs `redis-cli -p PORT args...`; returns trimmed stdout, panicking on failure.
fn cli(port: u16, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args),
        COMMAND_DEADLINE,
    );
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn redis_cli_speaks_to_every_node() {
    require("redis-cli");
    let cluster = TestCluster::start(3, Mode::TotalIsis);
    let p = |i| cluster.client_port(i);
    assert_eq!(cli(p(0), &["PING"]), "PONG");
    assert_eq!(cli(p(0), &["SET", "greeting", "hello world"]), "OK");
    // The write was delivered at node 0 before its reply; other nodes get it shortly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(p(2), &["GET", "greeting"]) != "hello world" {
        assert!(Instant::now() < deadline, "node 2 never saw the write");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cli(p(1), &["MSET", "alice", "100", "bob", "0"]), "OK");
    assert_eq!(cli(p(1), &["TRANSFER", "alice", "bob", "30"]), "OK");
    assert_eq!(cli(p(1), &["GET", "bob"]), "30");
    assert_eq!(
        cli(p(1), &["TRANSFER", "bob", "alice", "31"]),
        "ERR insufficient funds"
    );
    assert_eq!(cli(p(1), &["INCRBY", "bob", "12"]), "42");
    assert_eq!(cli(p(1), &["DEL", "bob", "nobody"]), "1");
    let id = cli(p(2), &["SNAPSHOT"]);
    assert!(id.starts_with("2-"), "snapshot id {id}");
    let info = cli(p(2), &["INFO"]);
    for want in [
        "mode:total-isis",
        "node_id:2",
        "peers_connected:2",
        "holdback_depth:",
        "snapshots_started:1",
    ] {
        assert!(info.contains(want), "INFO lacks {want}:\n{info}");
    }
    assert_eq!(
        cli(p(0), &["CONFIG", "GET", "appendonly"]),
        "appendonly\nno"
    );
    assert!(cli(p(0), &["NOSUCH", "x"]).starts_with("ERR unknown command 'NOSUCH'"));
    assert_eq!(
        cli(p(0), &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    // The connection survives errors: several commands on one redis-cli session.
    let out = run_bounded_with_input(
        Command::new("redis-cli").args(["-p", &p(0).to_string()]),
        b"BOGUS\nPING\nGET greeting\n",
        COMMAND_DEADLINE,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        vec![
            "ERR unknown command 'BOGUS', with args beginning with: ",
            "PONG",
            "hello world"
        ],
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_clean_in_every_mode() {
    require("redis-benchmark");
    for mode in Mode::ALL {
        let cluster = TestCluster::start(3, mode);
        let started = Instant::now();
        let out = run_bounded(
            Command::new("redis-benchmark")
                .args(["-p", &cluster.client_port(0).to_string()])
                .args(["-t", "set,get", "-n", "10000", "-r", "1000", "-q"]),
            COMMAND_DEADLINE,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {out:?}");
        // -q prints progress with carriage returns; the summary lines follow the last one.
        let summary: Vec<&str> = stdout
            .split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .collect();
        assert!(
            summary.iter().any(|l| l.starts_with("SET:"))
                && summary.iter().any(|l| l.starts_with("GET:")),
            "{mode}: no SET/GET summary in {stdout}"
        );
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains("ERR") && !text.contains("WARN") && !text.contains("rror"),
                "{mode}: redis-benchmark reported a problem:\n{stdout}\n{stderr}"
            );
        }
        eprintln!("{mode}: {} ({:?})", summary.join(" | "), started.elapsed());

        let logs = cluster.quiesce().await;
        // Causal order is judged in ordering.rs: the spec's `causal_order` keeps each
        // message's whole causal past, quadratic in a 30 000-event history.
        let verdict = properties::integrity(&logs)
            .and_then(|()| properties::fifo_order(&logs))
            .and_then(|()| match mode.is_total() {
                true => properties::total_order(&logs),
                false => Ok(()),
            });
        verdict.unwrap_or_else(|v| panic!("{mode}: {v}"));
        cluster
            .convergence(&logs)
            .await
            .unwrap_or_else(|v| panic!("{mode}: {v}"));
        let keys = cluster.dump(2).await.len();
        assert!(
            (900..=1000).contains(&keys),
            "{mode}: node 2 holds {keys} keys after 10000 SETs over 1000 random keys"
        );
    }
}
