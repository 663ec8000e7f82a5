//! The `gsmo` binary's command line: help that teaches, and configuration
//! errors that say what is wrong instead of starting a broken node.
//!
//! (Having an integration test here also makes `cargo test --workspace` build
//! the `gsmo` binary that the cluster tests in `tests/` start.)

use std::process::Command;

fn gsmo(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gsmo"))
        .args(args)
        .output()
        .expect("run gsmo");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn help_shows_examples_modes_and_commands() {
    let (ok, top) = gsmo(&["--help"]);
    assert!(ok, "{top}");
    for want in [
        "gsmo cluster --nodes 3",
        "redis-cli -p 6380",
        "total-isis",
        "causal",
        "gsmo snapshot verify",
        "gsmo trace check",
        "--restore latest",
    ] {
        assert!(top.contains(want), "top-level help lacks `{want}`:\n{top}");
    }
    let (ok, node) = gsmo(&["node", "--help"]);
    assert!(ok, "{node}");
    for want in [
        "TRANSFER from to amount",
        "GSMO.HISTORY",
        "SNAPSHOT",
        "regex",
        "--client-port",
        "--restore",
        "--delay",
        "--trace",
        "--snapshot-timeout",
    ] {
        assert!(node.contains(want), "node help lacks `{want}`:\n{node}");
    }
}

#[test]
fn bad_configuration_is_refused_with_a_reason() {
    let (ok, text) = gsmo(&["node", "--id", "3", "--cluster", "3"]);
    assert!(!ok);
    assert!(
        text.contains("node id 3 is out of range for a cluster of 3"),
        "{text}"
    );

    let (ok, text) = gsmo(&["node", "--id", "0", "--cluster", "3", "--mode", "eventual"]);
    assert!(!ok);
    assert!(
        text.contains("expected fifo, causal, total-sequencer or total-isis"),
        "{text}"
    );

    let (ok, text) = gsmo(&["node", "--id", "0", "--cluster", "localhost"]);
    assert!(!ok);
    assert!(text.contains("expected HOST:PORT"), "{text}");

    let (ok, text) = gsmo(&["node", "--id", "0", "--cluster", "3", "--delay", "9-1"]);
    assert!(!ok);
    assert!(text.contains("expected MS or MIN-MAX"), "{text}");

    let (ok, text) = gsmo(&["node", "--id", "0", "--cluster", "3", "--restore", "0-1"]);
    assert!(!ok);
    assert!(text.contains("--restore needs --data-dir"), "{text}");

    let (ok, text) = gsmo(&["cluster", "--snapshot-every", "5"]);
    assert!(!ok);
    assert!(text.contains("without --data-dir"), "{text}");
}

#[test]
fn the_launcher_refuses_what_its_nodes_would_before_starting_any() {
    let missing = std::env::temp_dir().join("gsmo-no-such-dir-for-restore");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["--client-base", "65535"],
            "client port 65535 + 2 nodes runs past port 65535",
        ),
        (
            &["--peer-base", "65535"],
            "peer port 65535 + 2 nodes runs past port 65535",
        ),
        (
            &["--snapshot-timeout", "0"],
            "--snapshot-timeout must be a positive",
        ),
        (
            &["--snapshot-keep", "0"],
            "--snapshot-keep must be at least 1",
        ),
        (
            &["--max-snapshots", "0"],
            "--max-snapshots must be at least 1",
        ),
        (&["--cluster-id", ""], "the cluster id is empty"),
        (
            &["--restore", "latest", "--data-dir", missing],
            "does not exist",
        ),
        (
            &["--requirepass-file", missing],
            "cannot read the password file",
        ),
        (
            &["--cluster-secret-file", missing],
            "cannot read the cluster secret file",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["cluster", "--nodes", "2"];
        all.extend_from_slice(args);
        let (ok, text) = gsmo(&all);
        assert!(!ok, "{args:?} started: {text}");
        assert!(text.contains(want), "{args:?}: expected `{want}`:\n{text}");
        assert!(
            !text.contains("gsmo cluster: 2 nodes"),
            "{args:?} started nodes: {text}"
        );
    }
    let (ok, text) = gsmo(&["node", "--id", "0", "--cluster", "members.txt"]);
    assert!(
        !ok && text.contains("cluster file members.txt does not exist"),
        "{text}"
    );
    let (ok, text) = gsmo(&["node", "--id", "0", "--cluster", "2", "--cluster-id", ""]);
    assert!(!ok && text.contains("the cluster id is empty"), "{text}");
}

#[test]
fn snapshot_and_trace_commands_explain_themselves() {
    let (ok, text) = gsmo(&["snapshot", "verify", "--help"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("consistent") && text.contains("--bank-prefix"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, text) = gsmo(&["snapshot", "list", "--data-dir", d]);
    assert!(ok && text.contains("no snapshots"), "{text}");
    let (ok, text) = gsmo(&["snapshot", "show", "latest", "--data-dir", d]);
    assert!(!ok && text.contains("no complete snapshot"), "{text}");
    let (ok, text) = gsmo(&["snapshot", "verify", "0-1", "--data-dir", d]);
    assert!(!ok && text.contains("no snapshot 0-1"), "{text}");
    // Over several dirs, the error names every dir it looked in.
    let other = tempfile::tempdir().unwrap();
    let e = other.path().to_str().unwrap();
    let both = |cmd: &[&str]| gsmo(&[cmd, &["--data-dir", d, "--data-dir", e]].concat());
    let (ok, text) = both(&["snapshot", "show", "latest"]);
    let want = format!("no complete snapshot in {d}, {e}");
    assert!(!ok && text.contains(&want), "{text}");
    let (ok, text) = both(&["snapshot", "verify", "0-1"]);
    let want = format!("no snapshot 0-1 in {d}, {e}");
    assert!(!ok && text.contains(&want), "{text}");
    // A list over several dirs heads each dir's part with its name; over one, no head.
    let (ok, text) = both(&["snapshot", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    let want = [format!("{d}:"), format!("no snapshots in {d}/snapshots")];
    assert!(
        ok && lines.starts_with(&want.each_ref().map(|s| s.as_str())),
        "{text}"
    );
    assert!(lines.contains(&format!("{e}:").as_str()), "{text}");
    let (ok, text) = gsmo(&["snapshot", "list", "--data-dir", d]);
    assert!(
        ok && text.trim() == format!("no snapshots in {d}/snapshots"),
        "{text}"
    );
    let missing = dir.path().join("n0.trace");
    let (ok, text) = gsmo(&["trace", "check", missing.to_str().unwrap()]);
    assert!(!ok && text.contains("n0.trace"), "{text}");
}

#[test]
fn trace_check_refuses_an_incomplete_set_of_traces() {
    use gsmo_node::tracefile::TraceWriter;
    use gsmo_spec::multicast::Mode;
    use gsmo_spec::trace::Start;
    let dir = tempfile::tempdir().unwrap();
    let path = |i: usize| dir.path().join(format!("n{i}.trace"));
    for node in 0..3 {
        let start = Start::Fresh {
            node,
            n: 3,
            mode: Mode::TotalSequencer,
            limits: Default::default(),
        };
        let mut w = TraceWriter::create(&path(node), &start).unwrap();
        w.flush().unwrap();
    }
    let arg = |i: usize| path(i).to_str().unwrap().to_string();
    let (ok, text) = gsmo(&["trace", "check", &arg(0), &arg(1), &arg(2)]);
    assert!(ok && text.contains("CONFORMS"), "{text}");
    assert!(!text.contains("cut short"), "{text}");
    // A node killed mid-write leaves a record cut short: said, and ignored.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path(0))
        .unwrap();
    std::io::Write::write_all(&mut f, &[7, 0]).unwrap();
    let (ok, text) = gsmo(&["trace", "check", &arg(0), &arg(1), &arg(2)]);
    assert!(ok && text.contains("CONFORMS"), "{text}");
    // (It once said "(1 bytes": the count is of records, and only the last can be cut.)
    let said = format!("{}: ignoring its last record, cut short", arg(0));
    assert!(text.contains(&said), "{text}");
    assert_eq!(text.matches("cut short").count(), 1, "{text}");
    let (ok, text) = gsmo(&["trace", "check", &arg(0), &arg(1)]);
    assert!(!ok && text.contains("no trace of n2"), "{text}");
    let (ok, text) = gsmo(&["trace", "check", &arg(0)]);
    assert!(!ok && text.contains("no trace of n1, n2"), "{text}");
}
