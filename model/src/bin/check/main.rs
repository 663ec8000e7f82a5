//! `check`: model-check the gsmo protocols, built from the very transition
//! functions and predicates the real cluster runs.

/// Every explored state is allocated and freed; mimalloc does that about a
/// third faster than glibc's malloc (bench/check.sh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use gsmo_model::explore::{Explorer, Presented};
use gsmo_model::verdict::{check, Outcome, Search, Strategy, Verdict};
use stateright::Model;
use std::fmt::Debug;
use std::hash::Hash;
use std::process::ExitCode;

mod cli;
mod help;
mod jobs;
mod report;

use cli::*;
use report::*;

/// mimalloc v3's `mi_option_purge_delay` (its `mimalloc.h`), which
/// libmimalloc-sys does not name.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the memory a search frees for the search to use again. mimalloc
/// hands freed memory back to the kernel a second after it is freed (its purge
/// delay), and a search frees hundreds of megabytes at a time: every visited
/// set it outgrows, every part it finishes. Memory handed back comes again as
/// pages the kernel zeroes on first touch (more under a VM, whose host backs
/// each page anew): keeping it took the 3-account bank's search from 7.5-10 s
/// of system time to 3.5-4.4 s, and raised the peak by what was freed at
/// once (1.3 GB to 1.55-1.78 GB). A long-running `check explore` keeps its
/// peak too. `MIMALLOC_PURGE_DELAY` in the environment still decides, if set.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads atomically
        // whenever it purges; any thread may set one at any time.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
    }
}

/// Whether a search's memory is better on small pages than on huge ones.
/// A breadth-first search holds its frontier, a gigabyte of states written
/// once and read once in order, where huge pages save little on the TLB and a
/// huge page faults in slowly (on this project's VM about ten times slower a
/// byte: `docs/performance.md`). The depth-first searches keep their huge
/// pages: they look up states at random in large tables (the sleep search's
/// visited set, stateright's, the replica-step memo), where huge pages pay.
fn small_pages(search: &Search) -> bool {
    search.strategy == Strategy::Bfs
}

/// Turns the kernel's transparent huge pages off for this process during a
/// breadth-first search, and on again for any other ([`small_pages`]): the
/// causal BFS went from 2.6-8.8 s of system time to 1.0-2.9 s. Only where
/// the kernel can; elsewhere, a no-op.
fn pages_for(search: &Search) {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(small_pages(search));
    #[cfg(not(target_os = "linux"))]
    let _ = search;
}

fn run(job: &Job) -> Verdict {
    println!("== {}", job.title);
    if job.compare {
        let plain = Search {
            symmetry: false,
            por: false,
            sleep: false,
            ..job.search.clone()
        };
        let (with, without) = (verdict(job, &job.search), verdict(job, &plain));
        let reduction = if job.search.symmetry {
            "symmetry"
        } else {
            "partial-order reduction"
        };
        println!(
            "   {reduction}: {} unique states with, {} without ({:.1}x fewer; {:.2} s vs {:.2} s)",
            thousands(with.unique_states),
            thousands(without.unique_states),
            without.unique_states as f64 / with.unique_states.max(1) as f64,
            with.elapsed.as_secs_f64(),
            without.elapsed.as_secs_f64()
        );
        return with;
    }
    verdict(job, &job.search)
}

fn verdict(job: &Job, search: &Search) -> Verdict {
    pages_for(search);
    match &job.model {
        AnyModel::Causal(c) => check(c.clone().into_model(), search),
        AnyModel::Total(c) => check(c.clone().into_model(), search),
        AnyModel::Snapshot(c) if search.por => check(c.clone().into_reduced_model(), search),
        AnyModel::Snapshot(c) => check(c.clone().into_model(), search),
        AnyModel::Kv(c) => check(c.clone().into_model(), search),
        AnyModel::Link(c) => check(c.clone().into_model(), search),
        AnyModel::Abort(c) => check(c.clone().into_model(), search),
        AnyModel::Refusal(c) => check(c.clone().into_model(), search),
    }
}

fn explore<M>(model: M, addr: &str, threads: usize)
where
    M: Presented + Send + Sync + 'static,
    M::State: Clone + Debug + Hash + PartialEq + Send + Sync + 'static,
    M::Action: Clone + Debug + PartialEq + Send + Sync + 'static,
{
    // stateright's server panics on a busy address; say so plainly instead.
    if let Err(e) = std::net::TcpListener::bind(addr) {
        eprintln!("error: cannot listen on {addr}: {e}");
        std::process::exit(2);
    }
    println!("Explorer at http://{addr}/ (Ctrl-C to stop)");
    let _ = Explorer::new(model).checker().threads(threads).serve(addr);
}

/// The default sweep: every model at its default configuration, and the
/// smallest configurations that show the features the defaults leave out.
fn defaults() -> Vec<Job> {
    const ARGVS: [&str; 20] = [
        "causal",
        "total-sequencer",
        "total-isis",
        "snapshot",
        // One snapshot in progress at a replica at most: a second start refused.
        "snapshot --max-snapshots 1",
        "kv --mode fifo",
        "kv --mode causal",
        "kv --mode total-sequencer",
        "kv --mode total-isis",
        "kv --mode causal --nodes 3 --msgs 1 --snapshots 0",
        "link",
        "kv --mode total-sequencer --msgs 1 --disconnects 1",
        // Links of one byte: writes refused, the sequencer's acks held and let go.
        "kv --mode total-sequencer --nodes 3 --msgs 1 --snapshots 0 --link-buffer 1",
        // ... and a reconnect during the hold, which must not let it go.
        "kv --mode total-sequencer --msgs 1 --snapshots 0 --disconnects 1 --link-buffer 1",
        "abort",
        "abort --msgs 1 --snapshots 0 --no-store-failures",
        "refusal",
        // Batches of 1 and 2 writes: a replica may flush after each write or after two.
        "kv --mode total-sequencer --batch 2 --snapshots 0",
        "kv --mode total-isis --batch 2 --snapshots 0",
        "kv --mode causal --batch 2 --msgs 3 --snapshots 0",
    ];
    ARGVS
        .iter()
        .map(|argv| {
            let cli = Cli::parse_from(std::iter::once("check").chain(argv.split_whitespace()));
            match cli.command {
                Some(Command::Model(m)) => m.job().expect("defaults are valid"),
                _ => unreachable!("a model subcommand"),
            }
        })
        .collect()
}

/// `check kv|snapshot|abort --save-path FILE`: writes the job's path for
/// `sim --replay` (the models whose actors are whole spec replicas).
fn save_path(job: &Job, file: &std::path::Path, explorer: Option<&str>) -> Result<(), String> {
    use gsmo_model::replay::{abort_path, explorer_indices, kv_path, snapshot_path, Walk};
    let seed = gsmo_model::replay::seed();
    let (title, promises) = (&job.title, job.promises);
    let chosen = explorer.map(explorer_indices).transpose()?;
    let walk = match &chosen {
        Some(indices) => Walk::Explorer(indices),
        None => Walk::of(promises, seed),
    };
    let path = match &job.model {
        AnyModel::Kv(cfg) => kv_path(cfg.clone(), title, walk),
        AnyModel::Snapshot(cfg) => snapshot_path(cfg.clone(), title, walk),
        AnyModel::Abort(cfg) => abort_path(cfg.clone(), title, walk),
        _ => return Err("--save-path saves kv, snapshot and abort paths only".into()),
    }?;
    if let Walk::Random(seed) = walk {
        println!("random path: GSMO_SEED={seed}");
    }
    gsmo_model::replay::save(&path, file)?;
    println!(
        "saved a path of {} spec steps to {}",
        path.steps.len(),
        file.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let save = match &cli.command {
        Some(Command::Model(ModelCmd::Kv(a))) => a.path.save(),
        Some(Command::Model(ModelCmd::Snapshot(a))) => a.path.save(),
        Some(Command::Model(ModelCmd::Abort(a))) => a.path.save(),
        _ => None,
    };
    let jobs = match cli.command {
        None => defaults(),
        Some(Command::Model(m)) => match m.job() {
            Ok(job) => vec![job],
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        Some(Command::Explore { addr, model }) => {
            let job = match model.job() {
                Ok(job) if job.search.symmetry || job.search.por => {
                    eprintln!("error: the explorer shows every state: --symmetry and --por reduce check runs only");
                    return ExitCode::from(2);
                }
                Ok(job) => job,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let t = job.search.threads;
            match job.model {
                AnyModel::Causal(c) => explore(c.into_model(), &addr, t),
                AnyModel::Total(c) => explore(c.into_model(), &addr, t),
                AnyModel::Snapshot(c) => explore(c.into_model(), &addr, t),
                AnyModel::Kv(c) => explore(c.into_model(), &addr, t),
                AnyModel::Link(c) => explore(c.into_model(), &addr, t),
                AnyModel::Abort(c) => explore(c.into_model(), &addr, t),
                AnyModel::Refusal(c) => explore(c.into_model(), &addr, t),
            }
            return ExitCode::SUCCESS;
        }
    };
    if let Some((file, explorer)) = save {
        if let Err(e) = save_path(&jobs[0], &file, explorer.as_deref()) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let mut summary = Vec::new();
    for job in &jobs {
        let v = run(job);
        let outcome = print_verdict(job, &v);
        summary.push((job.title.clone(), v, outcome));
        println!();
    }
    if summary.len() > 1 {
        println!(
            "{:<72} {:>12} {:>9} {:>12}  verdict",
            "model", "unique", "seconds", "states/s"
        );
        for (title, v, outcome) in &summary {
            let short: String = title.chars().take(72).collect();
            println!(
                "{short:<72} {:>12} {:>9.2} {:>12.0}  {}",
                thousands(v.unique_states),
                v.elapsed.as_secs_f64(),
                v.states_per_second(),
                match outcome {
                    Outcome::Pass if !v.complete => "INCOMPLETE",
                    Outcome::Pass => "PASS",
                    Outcome::Fail => "FAIL",
                    Outcome::Caught => "CAUGHT",
                    Outcome::NotCaught => "NOT CAUGHT",
                }
            );
        }
    }
    exit_status(summary.iter().map(|(_, v, o)| (*o, v.complete)))
}

/// 3 if a broken variant was not caught, else 1 if anything failed or was
/// caught, else 4 if a search stopped short (a partial search is not a
/// pass), else 0 (see EXIT STATUS).
fn exit_status(outcomes: impl Iterator<Item = (Outcome, bool)>) -> ExitCode {
    let outcomes: Vec<(Outcome, bool)> = outcomes.collect();
    if outcomes.iter().any(|(o, _)| *o == Outcome::NotCaught) {
        ExitCode::from(3)
    } else if outcomes.iter().any(|(o, _)| *o != Outcome::Pass) {
        ExitCode::from(1)
    } else if outcomes.iter().any(|(_, complete)| !complete) {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests;
