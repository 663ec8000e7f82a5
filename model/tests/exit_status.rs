//! `check`'s exit status, from the outside: scripts and CI act on it, so a
//! search cut short must not look like a proof.

use std::process::Command;

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_check"))
        .args(args)
        .output()
        .expect("run check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_complete_search_passes_and_a_bounded_one_is_incomplete() {
    let (code, out) = check(&["causal"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("PASS"), "{out}");

    let (code, out) = check(&["causal", "--depth", "3"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("INCOMPLETE") && !out.contains("PASS"), "{out}");
}

#[test]
fn a_caught_broken_variant_exits_1() {
    let (code, out) = check(&["causal", "--broken", "fifo-only"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("caught"), "{out}");
}

/// The default search is depth first and still prints the shortest
/// counterexample, the one a breadth-first search prints; `--dfs` alone
/// prints the longer one it happened on.
#[test]
fn the_default_search_prints_the_shortest_counterexample() {
    let steps = |search: &[&str]| {
        let mut args = vec!["causal", "--broken", "fifo-only", "--threads", "1"];
        args.extend(search);
        let (code, out) = check(&args);
        assert_eq!(code, Some(1), "{out}");
        let line = out
            .lines()
            .find(|l| l.contains("counterexample to always \"causal order\""))
            .unwrap_or_else(|| panic!("no counterexample: {out}"));
        let n = line.rsplit(", ").next().and_then(|t| t.split(' ').next());
        n.and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no step count in {line:?}"))
    };
    let shortest = steps(&[]);
    assert_eq!(shortest, steps(&["--bfs"]));
    assert!(steps(&["--dfs"]) > shortest, "--dfs found the shortest too");
}
