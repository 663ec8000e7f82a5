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
