//! `sim`: runs the real gsmo nodes under the deterministic simulator, one
//! seed after another, and judges each run with the spec.

use clap::Parser;
use gsmo_node::config::RuntimeBug;
use gsmo_sim::{mode_of, run, Opts, Totals};
use gsmo_spec::multicast::Mode;
use std::time::Instant;

/// Run seeds of the deterministic simulation. Each seed drives latency,
/// per-channel delays, broken connections, held links, snapshot starts, a
/// node crash (one seed in three) and the clients' commands; the same seed
/// gives the same run and the same summary line. After a crash the survivors
/// are judged: every request answered within the write timeout + 1 s, reads
/// served, writes as the mode promises (fifo, causal, and total-sequencer
/// while node 0 lives: served, the sequencer's survivors delivering the same
/// writes; total-sequencer without node 0 and total-isis: CLUSTERDOWN), the
/// orders, conformance, client histories (TIMEOUT = outcome unknown), every
/// snapshot committed or aborted, never both. A failing seed prints the
/// command that reruns it.
#[derive(Parser)]
#[command(name = "sim")]
struct Cli {
    /// Run this many seeds, from --first.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of a sweep.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run exactly this seed (overrides --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Ordering mode; by default a sweep cycles fifo, causal, total-sequencer, total-isis.
    #[arg(long)]
    mode: Option<Mode>,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Redis clients (client c talks to node c mod nodes).
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Commands per client.
    #[arg(long, default_value_t = 25)]
    ops: usize,
    /// Writes a node multicasts as one batch at most; 1 (the default) sends
    /// every write alone. Batched nodes follow Nagle's rule for total-isis
    /// rounds, as `gsmo node` does.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    max_batch: u64,
    /// Commands each client sends back to back before it reads their replies;
    /// 1 (the default) waits for each reply. Deeper pipelines fill batches
    /// and put reads behind the connection's own writes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pipeline: u64,
    /// Each link's buffer in bytes (the node's --link-buffer; default 64 MiB,
    /// which no run fills). Small, writes may be refused (TRYAGAIN) and, under
    /// total-sequencer, node 0 holds its acks back; once the cluster is quiet
    /// every node must take a write again. Needs --crash never: a crashed
    /// peer's link stays full for good.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    link_buffer: Option<u64>,
    /// Every bounded queue of the nodes at N entries (the input queue, each client's
    /// reply queue and read slots, each peer writer's queue), so the paths taken when
    /// one is full run in every seed; the summary counts how often each filled.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    queues: Option<u64>,
    /// No broken connections, held links, snapshots or crashes (latency and delays only).
    #[arg(long)]
    no_faults: bool,
    /// Node crashes: never, one seed in three (seeded), or every seed right
    /// after a snapshot starts, at its initiator (mid-snapshot).
    #[arg(long, value_enum, default_value = "seeded")]
    crash: gsmo_sim::crash::CrashMode,
    /// Test-only: run nodes with a deliberate runtime bug.
    #[arg(long, hide = true, value_enum)]
    bug: Option<RuntimeBug>,
    /// Stop at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
    /// Instead of seeds: drive the real event loops along a path saved by
    /// `check kv|snapshot|abort ... --save-path FILE`, comparing each step with
    /// the model (client requests, frames, snapshots, broken connections,
    /// ticks, crashes, failing disks), then judge the real nodes by the
    /// model's properties. The other models run bare spec links (link) or a
    /// bare multicast (causal, total-*), which the real node runs only inside
    /// a replica: kv paths over those modes (and --disconnects) cover them.
    #[arg(long, value_name = "FILE")]
    replay: Option<std::path::PathBuf>,
}

/// `--replay FILE`: exit 0 if the real code agreed with the model at every
/// step (and, for a counterexample, violated what the model did), else 1.
fn replay(file: &std::path::Path) -> ! {
    let path = match gsmo_sim::replay::load(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let ticks = path
        .steps
        .iter()
        .filter(|s| matches!(s.input, gsmo_spec::node::Input::Tick { .. }))
        .count();
    let refused = path
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.input,
                gsmo_spec::node::Input::Stored { result: Err(_), .. }
            )
        })
        .count();
    println!(
        "replaying {} spec steps of {} ({ticks} ticks, {} crashes, {refused} parts the disk refuses)",
        path.steps.len(),
        path.title,
        path.crashes.len()
    );
    let r = gsmo_sim::replay::replay(&path);
    let mut ok = true;
    if let Some(m) = &r.mismatch {
        println!("MISMATCH at {m}");
        ok = false;
    } else {
        println!(
            "the real nodes agreed with the model at all {} steps",
            r.steps
        );
    }
    for v in &r.violations {
        println!("real nodes violate {v}");
    }
    match &path.violates {
        Some(p) if r.mismatch.is_none() && !r.violates(p) => {
            println!("NOT REPRODUCED: the model's path violates \"{p}\", the real nodes do not");
            ok = false;
        }
        Some(p) if r.mismatch.is_none() => println!("REPRODUCED: \"{p}\" fails on the real nodes"),
        None if !r.violations.is_empty() => ok = false,
        _ => {}
    }
    std::process::exit(if ok { 0 } else { 1 })
}

fn main() {
    let cli = Cli::parse();
    if let Some(file) = &cli.replay {
        replay(file);
    }
    if cli.link_buffer.is_some() && !cli.no_faults && cli.crash != gsmo_sim::crash::CrashMode::Never
    {
        eprintln!(
            "error: --link-buffer needs --crash never (or --no-faults): a crashed peer never \
             acknowledges, so its link stays full and writes stay refused (README: Faults)"
        );
        std::process::exit(2);
    }
    let seeds: Vec<u64> = match cli.seed {
        Some(s) => vec![s],
        None => (cli.first..cli.first + cli.seeds).collect(),
    };
    let started = Instant::now();
    let mut totals = Totals::default();
    for &seed in &seeds {
        let mode = cli.mode.unwrap_or_else(|| mode_of(seed));
        let o = Opts {
            nodes: cli.nodes,
            clients: cli.clients,
            ops: cli.ops,
            faults: !cli.no_faults,
            crash: cli.crash,
            bug: cli.bug,
            max_batch: cli.max_batch,
            pipeline: cli.pipeline as usize,
            link_buffer: cli.link_buffer,
            queues: cli.queues.map(|q| q as usize),
            ..Opts::new(seed, mode)
        };
        let out = run(&o);
        totals.add(&out);
        if !out.violations.is_empty() {
            println!(
                "seed {seed} ({mode}): {} violation(s):",
                out.violations.len()
            );
            for v in &out.violations {
                println!("    {v}");
            }
            println!("  reproduce: {}", o.command());
            if cli.fail_fast {
                break;
            }
        }
        if totals.seeds % 10 == 0 && totals.seeds < seeds.len() as u64 {
            eprintln!(
                "  {}/{} seeds, {} failing, {:.1} s",
                totals.seeds,
                seeds.len(),
                totals.failed,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("{}", totals.line());
    eprintln!(
        "({:.1} s wall, {:.1} seeds/s)",
        started.elapsed().as_secs_f64(),
        totals.seeds as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    if totals.failed > 0 {
        std::process::exit(1);
    }
}
