use super::*;
use gsmo_model::adapter::Channels;
use gsmo_model::kv::KvBug;
use gsmo_model::verdict::Strategy;
use gsmo_spec::multicast::Mode;

fn job(argv: &[&str]) -> Result<Job, String> {
    let cli =
        Cli::try_parse_from(std::iter::once(&"check").chain(argv)).map_err(|e| e.to_string())?;
    match cli.command {
        Some(Command::Model(m)) => m.job(),
        _ => Err("not a model".into()),
    }
}

#[test]
fn the_default_sweep_is_every_model_unbroken() {
    let jobs = defaults();
    assert_eq!(jobs.len(), 20);
    assert!(jobs.iter().all(|j| j.promises.is_none()));
    let kv_modes: Vec<Mode> = jobs
        .iter()
        .filter_map(|j| match &j.model {
            AnyModel::Kv(c) if !c.faults.any() => Some(c.mode),
            _ => None,
        })
        .collect();
    assert_eq!(kv_modes[..4], Mode::ALL);
    // The features whose bugs need them: concurrent snapshots, overdrafts,
    // and three nodes for a causal chain.
    let snapshot = jobs.iter().find_map(|j| match &j.model {
        AnyModel::Snapshot(c) => Some(c.clone()),
        _ => None,
    });
    assert!(snapshot.is_some_and(|c| c.snapshots >= 2 && c.transfers >= 1));
    // A bound on snapshots in progress below the snapshots started: a refusal.
    assert!(jobs.iter().any(|j| matches!(
        &j.model,
        AnyModel::Snapshot(c) if c.max_snapshots.is_some_and(|m| m < c.snapshots as u64)
    )));
    assert!(jobs.iter().any(|j| matches!(
        &j.model,
        AnyModel::Kv(c) if c.mode == Mode::Causal && c.nodes >= 3
    )));
    assert!(jobs.iter().any(|j| matches!(
        &j.model,
        AnyModel::Causal(c) if c.nodes >= 3
    )));
    // Links small enough to fill, where the sequencer holds acks back.
    assert!(jobs.iter().any(|j| matches!(
        &j.model,
        AnyModel::Kv(c) if c.mode == Mode::TotalSequencer
            && c.nodes >= 3
            && c.faults.link_buffer.is_some()
    )));
    // ... and a connection broken during the hold.
    assert!(jobs.iter().any(|j| matches!(
        &j.model,
        AnyModel::Kv(c) if c.mode == Mode::TotalSequencer
            && c.faults.disconnects >= 1
            && c.faults.link_buffer.is_some()
    )));
    // Batches of two, in a total mode and under last-writer-wins.
    for total in [true, false] {
        assert!(jobs.iter().any(|j| matches!(
            &j.model,
            AnyModel::Kv(c) if c.batch >= 2 && c.mode.is_total() == total
        )));
    }
}

#[test]
fn model_arguments_reach_the_configuration() {
    let j = job(&[
        "kv",
        "--mode",
        "total-isis",
        "--nodes",
        "3",
        "--msgs",
        "1",
        "--broken",
        "no-tie-break",
        "--dfs",
        "--threads",
        "1",
    ])
    .unwrap();
    assert_eq!(j.promises, Some("total order"));
    assert_eq!(j.search.strategy, Strategy::Dfs);
    assert_eq!(j.search.threads, 1);
    let AnyModel::Kv(c) = j.model else {
        panic!("kv")
    };
    assert_eq!(
        (c.mode, c.nodes, c.writes, c.broken),
        (Mode::TotalIsis, 3, 1, Some(KvBug::NoTieBreak))
    );
    assert!(
        j.title.contains("must violate \"total order\""),
        "{}",
        j.title
    );

    let j = job(&["kv", "--link-buffer", "64", "--broken", "silent-release"]).unwrap();
    assert_eq!(j.promises, Some("writes flow when quiet"));
    let argv = [
        "kv",
        "--link-buffer",
        "1",
        "--disconnects",
        "1",
        "--broken",
        "leaky-resume",
    ];
    assert_eq!(job(&argv).unwrap().promises, Some("held acks stay held"));
    assert!(j.title.contains("link buffers of 64 bytes"), "{}", j.title);
    let AnyModel::Kv(c) = j.model else {
        panic!("kv")
    };
    assert_eq!(c.faults.link_buffer, Some(64));
    assert!(
        job(&["kv", "--link-buffer", "0"]).is_err(),
        "a buffer holds a byte"
    );

    let j = job(&[
        "causal",
        "--nodes",
        "3",
        "--msgs",
        "2",
        "--network",
        "unordered",
        "--simulation",
        "7",
        "--depth",
        "9",
    ])
    .unwrap();
    assert_eq!(j.search.strategy, Strategy::Simulation(7));
    assert_eq!(j.search.depth, Some(9));
    let AnyModel::Causal(c) = j.model else {
        panic!("causal")
    };
    assert_eq!((c.nodes, c.msgs, c.channels), (3, 2, Channels::Unordered));
}

#[test]
fn nonsense_is_refused() {
    assert!(job(&["kv", "--mode", "causal", "--broken", "no-wait"]).is_err());
    assert!(job(&["total-isis", "--broken", "no-wait"]).is_err());
    assert!(job(&["causal", "--bfs", "--dfs"]).is_err());
    assert!(job(&["kv", "--mode", "paxos"]).is_err());
}

#[test]
fn symmetry_only_where_sound_and_with_dfs() {
    let j = job(&["causal", "--symmetry"]).expect("causal is symmetric");
    assert!(j.search.symmetry && j.search.strategy == Strategy::Dfs && !j.compare);
    assert!(job(&["causal", "--symmetry", "--compare"]).is_ok_and(|j| j.compare));
    assert!(job(&["causal", "--symmetry", "--bfs"]).is_err());
    assert!(job(&["causal", "--compare"]).is_err());
    for model in [
        "snapshot",
        "total-sequencer",
        "total-isis",
        "kv",
        "link",
        "abort",
    ] {
        assert!(job(&[model, "--symmetry"]).is_err(), "{model}");
    }
}

#[test]
fn partial_order_reduction_only_for_the_bank_on_fifo_channels() {
    let j = quiet(job(&["snapshot", "--por", "--compare"]).expect("the bank is reduced"));
    assert!(j.search.por && j.compare);
    let v = run(&j);
    assert_eq!((v.judge(None), v.unique_states), (Outcome::Pass, 1198));
    let j = quiet(job(&["snapshot", "--por", "--broken", "debit-only"]).unwrap());
    assert_eq!(run(&j).judge(j.promises), Outcome::Caught);
    for argv in [
        &["snapshot", "--por", "--network", "unordered"][..],
        &["snapshot", "--por", "--network", "lossy"],
        &["snapshot", "--por", "--broken", "reordering"],
        &["kv", "--por"],
        &["causal", "--por"],
        &["total-isis", "--por"],
        &["abort", "--por"],
        &["snapshot", "--compare"],
    ] {
        assert!(job(argv).is_err(), "{argv:?}");
    }
}

#[test]
fn save_path_writes_the_variants_counterexample() {
    assert!(job(&["link", "--save-path", "p"]).is_err(), "no link paths");
    let dir = std::env::temp_dir().join(format!("gsmo-save-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p.path");
    let j = job(&[
        "kv",
        "--mode",
        "fifo",
        "--broken",
        "delivery-order",
        "--save-path",
        "p",
    ])
    .unwrap();
    save_path(&j, &file, None).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(gsmo_spec::path::MAGIC));
    let (path, _): (gsmo_spec::path::SpecPath, usize) = bincode::serde::decode_from_slice(
        &bytes[gsmo_spec::path::MAGIC.len()..],
        bincode::config::standard(),
    )
    .unwrap();
    assert_eq!(path.violates.as_deref(), Some("convergence"));
    assert_eq!(path.nodes.len(), 2);
    assert!(!path.steps.is_empty());
    // The bank and the abort model save theirs too.
    for argv in [
        &["snapshot", "--broken", "debit-only", "--save-path", "p"][..],
        &["abort", "--save-path", "p"][..],
    ] {
        let j = job(argv).unwrap();
        save_path(&j, &file, None).unwrap();
        let back = std::fs::read(&file).unwrap();
        assert!(back.starts_with(gsmo_spec::path::MAGIC), "{argv:?}");
    }
    // A path chosen in the explorer: its URL's action indices.
    let j = job(&["kv", "--save-path", "p", "--explorer-path", "0/0/0"]).unwrap();
    save_path(&j, &file, Some("http://127.0.0.1:3000/#/steps/0/0/0")).unwrap();
    let back = std::fs::read(&file).unwrap();
    let (path, _): (gsmo_spec::path::SpecPath, usize) = bincode::serde::decode_from_slice(
        &back[gsmo_spec::path::MAGIC.len()..],
        bincode::config::standard(),
    )
    .unwrap();
    assert_eq!((path.violates, path.seed), (None, None));
    assert!(!path.steps.is_empty());
    let err = save_path(&j, &file, Some("0/77")).unwrap_err();
    assert!(err.contains("action 77 of"), "{err}");
    assert!(
        job(&["kv", "--explorer-path", "0/1"]).is_err(),
        "needs --save-path"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn explore_takes_its_address_before_or_after_the_model() {
    for argv in [
        ["check", "explore", "snapshot", "--addr", "127.0.0.1:3999"],
        ["check", "explore", "--addr", "127.0.0.1:3999", "snapshot"],
    ] {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Command::Explore { addr, model }) = cli.command else {
            panic!("explore")
        };
        assert_eq!(addr, "127.0.0.1:3999");
        assert!(matches!(model.job().unwrap().model, AnyModel::Snapshot(_)));
    }
}

fn quiet(mut j: Job) -> Job {
    j.search.progress = false;
    j
}

#[test]
fn a_variant_is_caught_only_by_the_property_it_promises() {
    let j = quiet(job(&["snapshot", "--broken", "debit-only"]).unwrap());
    assert_eq!(j.promises, Some("conservation"));
    let v = run(&j);
    assert_eq!(v.judge(j.promises), Outcome::Caught);
    assert_eq!(print_verdict(&j, &v), Outcome::Caught);
    // The same run judged against a promise it does not keep: other
    // properties failed, but the promised one held, so it is NOT caught.
    assert!(v.failures().next().is_some());
    assert_eq!(v.judge(Some("consistent cut")), Outcome::NotCaught);
    let liar = Job {
        promises: Some("consistent cut"),
        ..j
    };
    assert_eq!(print_verdict(&liar, &v), Outcome::NotCaught);
}

#[test]
fn a_missing_example_fails_the_run() {
    // Balances so large that no transfer ever overdraws: the funds check's
    // refusing side never runs, and the sweep must say so.
    let j = quiet(job(&["snapshot", "--balance", "5"]).unwrap());
    let v = run(&j);
    assert!(v.failures().next().is_none());
    assert_eq!(v.vacuous(), vec!["overdraft refused"]);
    assert_eq!(v.judge(None), Outcome::Fail);
    let j = quiet(job(&["snapshot"]).unwrap());
    assert_eq!(run(&j).judge(None), Outcome::Pass);
}

#[test]
fn the_default_sweep_passes_with_every_example_found() {
    // What `check` with no arguments runs, judged as it judges: no
    // counterexample, no missing example. bench/mutants.sh relies on it.
    for j in defaults().into_iter().map(quiet) {
        let v = run(&j);
        assert!(v.complete, "{}", j.title);
        assert_eq!(
            v.judge(None),
            Outcome::Pass,
            "{}: failures {:?}, vacuous {:?}",
            j.title,
            v.failures().map(|f| f.property).collect::<Vec<_>>(),
            v.vacuous()
        );
    }
}

#[test]
fn a_timeout_ends_a_search_on_one_thread() {
    // Spaces of millions of states, which one stateright 0.31 worker would
    // search to the end whatever --timeout said (21 minutes for the first).
    for argv in [
        "kv --mode total-isis --nodes 3 --msgs 1 --dfs --threads 1 --timeout 1",
        "snapshot --nodes 3 --bfs --threads 1 --timeout 1",
    ] {
        let j = quiet(job(&argv.split(' ').collect::<Vec<_>>()).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run(&j));
        });
        let v = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("check {argv}: still searching 2 minutes later"));
        assert!(!v.complete, "check {argv}");
        assert!(v.unique_states > 100, "check {argv}: {}", v.unique_states);
        assert_eq!(v.judge(None), Outcome::Pass, "check {argv}");
    }
}

/// The option `check` sets is mimalloc's purge delay: it reads as that
/// option's default in mimalloc v3 (1,000 ms) before, and as "never" after.
#[test]
fn check_keeps_the_memory_a_search_frees() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reads one of mimalloc's options.
    let get = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    assert_eq!(get(), 1000);
    keep_freed_memory();
    assert_eq!(get(), -1);
}

/// The default search is depth first, shortening a counterexample by
/// breadth-first re-runs; `--dfs` leaves it as found, `--bfs` searches
/// breadth first throughout; symmetry and sleep sets search depth first.
#[test]
fn the_default_search_is_depth_first_with_shortest_counterexamples() {
    let search = |argv: &str| job(&argv.split(' ').collect::<Vec<_>>()).unwrap().search;
    let plan = |argv: &str| {
        let s = search(argv);
        (s.strategy, s.shortest)
    };
    assert_eq!(plan("causal"), (Strategy::Dfs, true));
    assert_eq!(plan("causal --dfs"), (Strategy::Dfs, false));
    assert_eq!(plan("causal --bfs"), (Strategy::Bfs, true));
    assert_eq!(plan("causal --symmetry"), (Strategy::Dfs, true));
    assert_eq!(plan("snapshot --por --sleep"), (Strategy::Dfs, true));
    assert_eq!(plan("kv --simulation 3").0, Strategy::Simulation(3));
    assert!(job(&["causal", "--bfs", "--symmetry"]).is_err());
}

/// Only a breadth-first search gives up huge pages: the depth-first ones,
/// with sleep sets or without, and simulations keep them.
#[test]
fn only_a_breadth_first_search_runs_on_small_pages() {
    let strategy = |argv: &str| job(&argv.split(' ').collect::<Vec<_>>()).unwrap().search;
    assert!(small_pages(&strategy("causal --bfs")));
    assert!(small_pages(&strategy("kv --bfs")));
    for argv in [
        "causal",
        "causal --dfs",
        "causal --symmetry",
        "snapshot --por --sleep",
        "kv --simulation 3",
    ] {
        assert!(!small_pages(&strategy(argv)), "{argv}");
    }
}
