//! `gsmo cluster`, the launcher, as a user runs it: it hands its flags to
//! every node, reports each node that dies, gives up once none is left, and
//! takes its nodes along however it ends (SIGTERM: it stops them itself, see
//! `spacetime.rs`; SIGKILL: the kernel's parent-death signal does).

use gsmo_tests::{is_running, parse_info, read_to_end, read_until, Launcher};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

/// Node `i`'s INFO, through the launcher's client port for it.
async fn info(launcher: &Launcher, i: u16) -> BTreeMap<String, String> {
    let url = format!("redis://127.0.0.1:{}/", launcher.client_base + i);
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    parse_info(
        &redis::cmd("INFO")
            .query_async::<String>(&mut con)
            .await
            .unwrap(),
    )
}

/// A number from INFO.
fn number(info: &BTreeMap<String, String>, name: &str) -> u64 {
    let value = info
        .get(name)
        .unwrap_or_else(|| panic!("no {name}: {info:?}"));
    value.parse().unwrap()
}

/// The launcher hands its client limits (and its huge-pages and Nagle policies) to every
/// node it starts, and a launcher killed with SIGKILL (no chance to clean up)
/// still takes them along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_killed_with_sigkill_takes_its_nodes_along() {
    let mut launcher = Launcher::spawn(
        2,
        &[
            "--mode",
            "fifo",
            "--client-reads-in-flight",
            "3",
            "--client-reply-queue",
            "7",
            "--input-queue",
            "100",
            "--client-output-buffer-limit",
            "1mb",
            "--transparent-huge-pages",
            "system",
            "--nagle",
            "off",
        ],
    );
    read_until(&launcher.stdout, "all 2 nodes ready", PATIENCE);
    let mut pids = Vec::new();
    for i in 0..2 {
        let info = info(&launcher, i).await;
        for (key, limit) in [
            ("client_reads_in_flight", "3"),
            ("client_reply_queue", "7"),
            ("input_queue", "100"),
            ("client_output_buffer_limit", "1048576"),
            ("transparent_huge_pages", "system"),
            ("nagle", "off"),
        ] {
            assert_eq!(info.get(key).map(String::as_str), Some(limit), "node {i}");
        }
        // The INFO request itself was queued: the peak counts it, within the bound.
        let peak = number(&info, "input_queue_peak");
        assert!((1..=100).contains(&peak), "node {i}: {info:?}");
        let pid = number(&info, "process_id") as u32;
        assert!(is_running(pid));
        pids.push(pid);
    }
    launcher.child.kill().unwrap(); // SIGKILL: the launcher cannot clean up
    launcher.wait(PATIENCE);
    let deadline = Instant::now() + PATIENCE;
    while pids.iter().any(|p| is_running(*p)) {
        assert!(
            Instant::now() < deadline,
            "nodes {pids:?} outlived their launcher"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node that dies is reported by number with how it died, the others keep
/// serving, and once the last has died the launcher exits with an error
/// rather than waiting for Ctrl-C over an empty cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_reports_each_node_that_dies_and_exits_when_none_is_left() {
    let mut launcher = Launcher::spawn(2, &["--mode", "fifo"]);
    read_until(&launcher.stdout, "all 2 nodes ready", PATIENCE);
    let pids = [
        number(&info(&launcher, 0).await, "process_id"),
        number(&info(&launcher, 1).await, "process_id"),
    ];
    let kill = |pid: u64| {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    };
    kill(pids[1]);
    read_until(
        &launcher.stderr,
        "gsmo cluster: node 1 exited: signal: 9 (SIGKILL)",
        PATIENCE,
    );
    assert!(launcher.child.try_wait().unwrap().is_none(), "one is left");
    assert_eq!(number(&info(&launcher, 0).await, "process_id"), pids[0]);
    kill(pids[0]);
    let status = launcher.wait(PATIENCE);
    assert!(!status.success(), "{status}");
    let said = read_to_end(&launcher.stderr, PATIENCE);
    for want in [
        "gsmo cluster: node 0 exited: signal: 9 (SIGKILL)",
        "every node exited",
    ] {
        assert!(said.iter().any(|l| l.contains(want)), "{want}: {said:#?}");
    }
}
