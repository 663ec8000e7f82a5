//! Model paths replayed on the real event loops: each kv broken variant
//! that lives in spec/ has its counterexample saved (`check kv --broken B
//! --save-path`), replayed, and reproduced on the real nodes; random paths of
//! the correct kv model (seeded by GSMO_SEED) replay and agree at every step.
//! With broken connections too (`--disconnects`, and `no-link-layer`).

use gsmo_model::faults::Faults;
use gsmo_model::kv::{KvBug, KvCfg};
use gsmo_model::replay::{kv_path, save};
use gsmo_sim::replay::{load, replay, Replayed};
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::Input;
use gsmo_spec::path::SpecPath;

/// Saves `path` to a file and replays what `sim --replay` would read back.
fn round_trip(path: &SpecPath) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.path");
    save(path, &file).unwrap();
    let back = load(&file).unwrap();
    // The broken flags are left out of the serialized nodes and set again.
    for i in 0..path.nodes.len() {
        assert!(
            back.start(i) == path.nodes[i],
            "n{i} starts as in the model"
        );
    }
    assert_eq!(back.steps.len(), path.steps.len());
    replay(&back)
}

fn counterexample(cfg: KvCfg, bug: KvBug) -> (SpecPath, Replayed) {
    let mode = cfg.mode;
    let cfg = KvCfg {
        broken: Some(bug),
        ..cfg
    };
    let path = kv_path(cfg, &format!("{mode} {bug:?}"), Some(bug.caught_by()), 0);
    assert!(!path.steps.is_empty());
    let r = round_trip(&path);
    assert_eq!(
        r.mismatch, None,
        "{mode} {bug:?}: the real code left the path"
    );
    assert_eq!(r.steps, path.steps.len(), "every step driven");
    (path, r)
}

#[test]
fn each_spec_variant_counterexample_fails_the_same_property_on_the_real_nodes() {
    for (mode, bug) in [
        (Mode::Fifo, KvBug::DeliveryOrder),
        (Mode::Causal, KvBug::DeliveryOrder),
        (Mode::TotalSequencer, KvBug::NoWait),
        (Mode::TotalIsis, KvBug::NoTieBreak),
        (Mode::TotalSequencer, KvBug::DebitOnly),
        // Judged on the parts the real nodes wrote to their data dirs.
        (Mode::TotalSequencer, KvBug::NoChannelRecording),
        (Mode::Fifo, KvBug::Reordering),
    ] {
        let (_, r) = counterexample(KvCfg::new(mode), bug);
        assert!(
            r.violates(bug.caught_by()),
            "{mode} {bug:?}: the real nodes must violate {}, found {:?}",
            bug.caught_by(),
            r.violations
        );
    }
}

/// `kv --mode total-sequencer --msgs 1 --disconnects 1`: the default sweep's
/// kv over broken connections.
fn with_disconnects() -> KvCfg {
    KvCfg {
        writes: 1,
        faults: Faults {
            disconnects: 1,
            ..Faults::default()
        },
        ..KvCfg::new(Mode::TotalSequencer)
    }
}

fn disconnects(path: &SpecPath) -> usize {
    path.steps
        .iter()
        .filter(|s| {
            matches!(
                s.input,
                Input::LinkDown {
                    outgoing: false,
                    ..
                }
            )
        })
        .count()
}

#[test]
fn the_link_layer_variant_loses_writes_on_the_real_nodes_too() {
    let (path, r) = counterexample(with_disconnects(), KvBug::NoLinkLayer);
    assert!(disconnects(&path) > 0, "the path breaks a connection");
    assert!(r.violates("all delivered"), "{:?}", r.violations);
}

#[test]
fn random_paths_of_correct_kv_models_replay_and_agree() {
    let first = std::env::var("GSMO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..1 << 40));
    eprintln!("random paths from GSMO_SEED={first}");
    let mut broke = 0;
    for seed in first..first + 3 {
        for mode in [
            Mode::Fifo,
            Mode::Causal,
            Mode::TotalSequencer,
            Mode::TotalIsis,
        ] {
            let path = kv_path(KvCfg::new(mode), &mode.to_string(), None, seed);
            let r = round_trip(&path);
            let rerun =
                format!("rerun: GSMO_SEED={seed} cargo test -p gsmo-sim --release --test replay");
            assert_eq!(r.mismatch, None, "{mode}, seed {seed}; {rerun}");
            assert_eq!(r.steps, path.steps.len(), "{mode}, seed {seed}; {rerun}");
            assert!(
                r.violations.is_empty(),
                "{mode}, seed {seed}: {:?}; {rerun}",
                r.violations
            );
        }
        let path = kv_path(with_disconnects(), "disconnects", None, seed);
        let r = round_trip(&path);
        let rerun =
            format!("rerun: GSMO_SEED={seed} cargo test -p gsmo-sim --release --test replay");
        assert_eq!(r.mismatch, None, "with disconnects, seed {seed}; {rerun}");
        assert!(
            r.violations.is_empty(),
            "with disconnects, seed {seed}: {:?}; {rerun}",
            r.violations
        );
        broke += disconnects(&path);
    }
    assert!(
        broke > 0,
        "some random path broke a connection (GSMO_SEED={first})"
    );
}

#[test]
fn the_replay_names_the_step_where_the_real_code_differs() {
    // The no-wait counterexample on nodes without the broken flag: the real
    // (correct) sequencer waits for the order, so the first early reply differs.
    let cfg = KvCfg {
        broken: Some(KvBug::NoWait),
        ..KvCfg::new(Mode::TotalSequencer)
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.path");
    save(&kv_path(cfg, "no-wait", Some("total order"), 0), &file).unwrap();
    let mut path = load(&file).unwrap();
    path.knobs = Default::default();
    let r = replay(&path);
    let m = r.mismatch.expect("the correct node leaves the broken path");
    assert!(m.starts_with("step "), "{m}");
    assert!(m.contains("replied"), "{m}");
    // A path whose model output was altered: the real code disagrees there.
    let mut path = kv_path(KvCfg::new(Mode::Fifo), "fifo", None, 1);
    let k = path
        .steps
        .iter()
        .position(|s| !s.outputs.is_empty())
        .expect("some step does something");
    path.steps[k].outputs.clear();
    let m = replay(&path).mismatch.expect("the altered step differs");
    assert!(m.starts_with(&format!("step {k} ")), "{m}");
}
