//! Stock Redis tools against a gsmo cluster: `redis-cli` for the commands
//! (and `--pipe` for bulk loading), `redis-benchmark -t set,get` and the
//! default suite (strings, lists, sets, hashes, sorted sets) in every ordering
//! mode, with no error and no warning, and the replicas equal afterwards.
//!
//! The tools come from Debian's `redis-tools` (`scripts/test` installs it);
//! without them these tests fail with that instruction rather than skip.

use gsmo_spec::multicast::Mode;
use gsmo_spec::properties;
use gsmo_tests::{have_tool, run_bounded, run_bounded_with_input, TestCluster, COMMAND_DEADLINE};
use std::process::Command;
use std::time::{Duration, Instant};

fn require(tool: &str) {
    assert!(
        have_tool(tool),
        "`{tool}` is not installed: apt-get install redis-tools (scripts/test does this)"
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
    // In total order the DEL is node 2's last delivery: then it holds
    // greeting and alice only.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(p(2), &["EXISTS", "bob"]) != "0" {
        assert!(Instant::now() < deadline, "node 2 never saw the DEL");
        std::thread::sleep(Duration::from_millis(10));
    }
    let id = cli(p(2), &["SNAPSHOT"]);
    assert!(id.starts_with("2-"), "snapshot id {id}");
    let info = cli(p(2), &["INFO"]);
    // Whole lines: `snapshots_started:1` must not pass for `...:18446744073709551615`.
    let has = |info: &str, want: &str| info.lines().any(|l| l.trim() == want);
    for want in [
        "mode:total-isis",
        "node_id:2",
        "peers_connected:2",
        "snapshots_started:1",
    ] {
        assert!(has(&info, want), "INFO lacks {want}:\n{info}");
    }
    assert!(info.contains("\nholdback_depth:"), "{info}");
    // Without a data dir the part is only counted, off the event loop: its
    // key and value bytes, "greeting" + "hello world" and "alice" + "70".
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = cli(p(2), &["INFO"]);
        if has(&info, "snapshots_completed:1") {
            assert!(
                has(&info, "last_snapshot_state_bytes:26"),
                "node 2's part counts 26 bytes:\n{info}"
            );
            // Recorded once, and counted, not stored: there is no data dir.
            for want in [
                "snapshots_recorded:1",
                "snapshots_stored:0",
                "snapshot_store_errors:0",
            ] {
                assert!(has(&info, want), "INFO lacks {want}:\n{info}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the snapshot never completed:\n{info}"
        );
        std::thread::sleep(Duration::from_millis(10));
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

/// `INFO latencystats` at `port`: `write_latency_usec`'s fields.
fn write_latency(port: u16) -> std::collections::BTreeMap<String, u64> {
    let info = cli(port, &["INFO", "latencystats"]);
    let line = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("write_latency_usec:"))
        .unwrap_or_else(|| panic!("no write_latency_usec in {info}"));
    line.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("field=value");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

/// `INFO latencystats` reports how long writes wait for their place in the
/// order. Under the sequencer, with every peer frame held 25 ms, a write at
/// node 1 takes a round trip to node 0 (two held frames: at least 50 ms); node
/// 0 numbers its own writes and answers them at once. Reads are not counted,
/// and `CONFIG RESETSTAT` starts one node's count over.
#[test]
fn info_latencystats_shows_the_wait_for_the_order() {
    require("redis-cli");
    let cluster = TestCluster::start_with(3, Mode::TotalSequencer, &["--delay", "25"]);
    let p = |i| cluster.client_port(i);
    assert_eq!(write_latency(p(1))["count"], 0);
    for i in 0..5 {
        let key = format!("k{i}");
        assert_eq!(cli(p(1), &["SET", &key, "remote"]), "OK");
        assert_eq!(cli(p(0), &["SET", &key, "local"]), "OK");
        assert_eq!(cli(p(0), &["GET", &key]), "local");
    }
    let remote = write_latency(p(1));
    assert_eq!(remote["count"], 5, "{remote:?}");
    assert!(
        remote["p50"] >= 50_000,
        "a round trip of held frames: {remote:?}"
    );
    let local = write_latency(p(0));
    assert_eq!(local["count"], 5, "the GETs are not counted: {local:?}");
    assert!(local["p50"] < 25_000, "no frame to wait for: {local:?}");
    assert_eq!(cli(p(1), &["CONFIG", "RESETSTAT"]), "OK");
    assert_eq!(write_latency(p(1))["count"], 0);
    assert_eq!(write_latency(p(0))["count"], 5);
}

/// `INFO stats`: the event loop's turns and their busy time, as Redis 7.2
/// names them. Each of 100 SETs, one redis-cli sending the next once the last
/// is answered, wakes the loop at least once, the loop spends time in them,
/// and `CONFIG RESETSTAT` starts both over (what turns follow it, ticks and
/// peers' acknowledgements, are far fewer than 100 in the moment it takes).
#[test]
fn info_stats_counts_the_event_loops_turns() {
    require("redis-cli");
    let cluster = TestCluster::start(2, Mode::Fifo);
    let port = cluster.client_port(0);
    let stats = || {
        let info = cli(port, &["INFO", "stats"]);
        assert!(info.starts_with("# Stats"), "{info}");
        let field = |k: &str| -> u64 {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(k)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("no {k} in {info}"))
                .parse()
                .expect("a number")
        };
        (field("eventloop_cycles"), field("eventloop_duration_sum"))
    };
    let (before, _) = stats();
    let sets: String = (0..100).map(|i| format!("SET k{i} v\n")).collect();
    let out = run_bounded_with_input(
        Command::new("redis-cli").args(["-p", &port.to_string()]),
        sets.as_bytes(),
        COMMAND_DEADLINE,
    );
    let oks = String::from_utf8_lossy(&out.stdout).matches("OK").count();
    assert_eq!(oks, 100, "{out:?}");
    let (after, busy) = stats();
    assert!(after >= before + 100, "{before} turns, then {after}");
    assert!(busy > 0, "{after} turns took no time");
    assert_eq!(cli(port, &["CONFIG", "RESETSTAT"]), "OK");
    let (reset, _) = stats();
    assert!(
        reset < 100,
        "{reset} turns counted after the reset ({after} before)"
    );
}

/// `INFO memory`: a node turns transparent huge pages off for its process
/// unless `--transparent-huge-pages system` keeps the kernel's setting, and
/// says which; the kernel's own view (`THP_enabled` in `/proc/PID/status`,
/// where the kernel has huge pages) must agree.
#[test]
fn info_memory_shows_huge_pages_off_unless_kept() {
    require("redis-cli");
    let cluster = gsmo_tests::Launch::new(2, Mode::Fifo)
        .node_args(1, &["--transparent-huge-pages", "system"])
        .start();
    for (i, want) in [(0, "off"), (1, "system")] {
        let info = cli(cluster.client_port(i), &["INFO", "memory"]);
        assert!(info.starts_with("# Memory"), "node {i}: {info}");
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(k)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("node {i}: no {k} in {info}"))
                .to_string()
        };
        assert_eq!(field("transparent_huge_pages"), want, "node {i}");
        let rss: u64 = field("used_memory_rss").parse().unwrap();
        assert!(rss > 1 << 20, "node {i}: {rss} bytes resident");
        let status = std::fs::read_to_string(format!("/proc/{}/status", cluster.pid(i))).unwrap();
        if let Some(enabled) = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")) {
            let enabled = enabled.trim() == "1";
            assert_eq!(enabled, want == "system", "node {i}: THP_enabled {enabled}");
        }
    }
}

/// Also Nagle's rule for rounds: with every client at node 0, total-isis holds
/// batches for the open round (INFO `nagle_holds`), unless `--nagle off`; no
/// other mode ever holds one. Held or not, the run is judged the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_clean_in_every_mode() {
    require("redis-benchmark");
    let runs = Mode::ALL.map(|mode| (mode, "on"));
    for (mode, nagle) in runs.into_iter().chain([(Mode::TotalIsis, "off")]) {
        let cluster = gsmo_tests::Launch::new(3, mode)
            .args(&["--nagle", nagle])
            .start();
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
        let info = cluster.info(0).await;
        assert_eq!(info["nagle"], nagle, "{mode}");
        let holds: u64 = info["nagle_holds"].parse().unwrap();
        if mode == Mode::TotalIsis && nagle == "on" {
            // At most one hold per turn, and a turn holds at least one write.
            let turns: u64 = info["eventloop_cycles"].parse().unwrap();
            assert!(
                holds > 0 && holds <= turns.min(10_000),
                "{mode}: 50 clients at node 0, {holds} turns of {turns} held a batch: {info:?}"
            );
        } else {
            assert_eq!(holds, 0, "{mode}, nagle {nagle}: {info:?}");
        }
    }
}

/// How long one redis-benchmark or redis-cli run may take before it is killed.
const TOOL_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_default_suite_runs_clean_in_every_mode() {
    require("redis-benchmark");
    for mode in Mode::ALL {
        let cluster = TestCluster::start(3, mode);
        let out = run_bounded(
            Command::new("redis-benchmark")
                .args(["-p", &cluster.client_port(0).to_string()])
                .args(["-n", "1000", "-r", "1000", "-c", "20", "-q"]),
            TOOL_DEADLINE,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {out:?}");
        let summary: Vec<&str> = stdout
            .split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .collect();
        for test in [
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "LPUSH",
            "RPUSH",
            "LPOP",
            "RPOP",
            "SADD",
            "HSET",
            "SPOP",
            "ZADD",
            "ZPOPMIN",
            "LRANGE_100",
            "LRANGE_600",
            "MSET",
        ] {
            assert!(
                summary.iter().any(|l| {
                    let l = l.trim_start();
                    l.starts_with(&format!("{test}:")) || l.starts_with(&format!("{test} ("))
                }),
                "{mode}: no {test} summary in\n{stdout}\n{stderr}"
            );
        }
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains("ERR") && !text.contains("WARN") && !text.contains("rror"),
                "{mode}: redis-benchmark reported a problem:\n{stdout}\n{stderr}"
            );
        }
        eprintln!("{mode}: {}", summary.join(" | "));
        let logs = cluster.quiesce().await;
        properties::integrity(&logs)
            .and_then(|()| match mode.is_total() {
                true => properties::total_order(&logs),
                false => Ok(()),
            })
            .unwrap_or_else(|v| panic!("{mode}: {v}"));
        cluster
            .convergence(&logs)
            .await
            .unwrap_or_else(|v| panic!("{mode}: {v}"));
        if mode.is_total() {
            // 1000 INCRs over 1000 random counters: in a total order none is lost.
            let dump = cluster.dump(1).await;
            let sum: i64 = dump
                .iter()
                .filter(|(k, _)| k.starts_with(b"counter:"))
                .map(|(_, v)| String::from_utf8_lossy(v).parse::<i64>().unwrap())
                .sum();
            assert_eq!(sum, 1000, "{mode}: INCRs lost");
        }
    }
}

#[test]
fn redis_cli_pipe_loads_in_bulk_and_new_commands_answer() {
    require("redis-cli");
    let cluster = TestCluster::start(3, Mode::TotalSequencer);
    let p = |i| cluster.client_port(i);
    let mut input = String::new();
    for i in 0..500 {
        input.push_str(&format!(
            "SET k{i} {i}\r\nRPUSH list {i}\r\nSADD set m{i}\r\n"
        ));
    }
    input.push_str("HSET h f1 v1 f2 v2\r\nZADD z 2 b 1 a\r\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("load.txt");
    std::fs::write(&file, input).unwrap();
    let out = run_bounded(
        Command::new("sh").arg("-c").arg(format!(
            "redis-cli -p {} --pipe < {}",
            p(0),
            file.display()
        )),
        TOOL_DEADLINE,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("errors: 0, replies: 1502"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cli(p(2), &["LLEN", "list"]) != "500" {
        assert!(Instant::now() < deadline, "node 2 never saw the whole load");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cli(p(2), &["DBSIZE"]), "504"); // k0..k499, list, set, h, z
    assert_eq!(cli(p(2), &["SCARD", "set"]), "500");
    assert_eq!(cli(p(2), &["LRANGE", "list", "0", "2"]), "0\n1\n2");
    assert_eq!(
        cli(p(2), &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        "a\n1\nb\n2"
    );
    assert_eq!(cli(p(2), &["HGETALL", "h"]), "f1\nv1\nf2\nv2");
    assert_eq!(cli(p(2), &["TYPE", "list"]), "list");
    assert_eq!(
        cli(p(2), &["GET", "list"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(cli(p(1), &["SET", "a b", "c", "NX"]), "OK");
    assert_eq!(cli(p(1), &["SET", "a b", "d", "NX"]), "");
    assert!(cli(p(1), &["SET", "x", "y", "EX", "10"]).contains("does not expire keys"));
    assert!(cli(p(1), &["HELLO", "3"]).contains("proto 3"));
    assert_eq!(
        cli(p(1), &["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    // redis-cli -3 speaks RESP3 from its first command on: a map prints as
    // key-value lines (RESP2's flat array as one item a line, above).
    assert_eq!(cli(p(2), &["-3", "HGETALL", "h"]), "f1 v1\nf2 v2");
    let count: usize = cli(p(0), &["COMMAND", "COUNT"]).parse().unwrap();
    assert!(count >= 60, "{count}");
    assert!(cli(p(0), &["INFO", "cluster"]).starts_with("# Cluster"));
    // Inline quoting, as redis-cli users type it into telnet.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'SET \"q w\" \"e r\"\\r\\nGET \"q w\"\\r\\n' | redis-cli -p {}",
            p(0)
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK\ne r");
}
