//! The CPU the spec's state machines spend per request, without any I/O.
//!
//! A node's CPU on a real cluster mixes the kernel's loopback TCP, tokio and the
//! spec, and on a shared 2-core machine `bench/cpu.sh` moves by ±10% between
//! runs of one binary: too coarse to see a change to the spec's own hot path.
//! This drives three [`Node`]s in one thread, joined by in-memory FIFO
//! channels, the way the runtime does (client writes, a flush per batch, every
//! frame delivered), and times each node's `handle` calls alone. A benchmark,
//! not a test; deterministic (keys follow a fixed stride, no randomness).
//!
//! ```text
//! cargo run --release -p gsmo-spec --example cost                 # every mode
//! cargo run --release -p gsmo-spec --example cost -- total-isis 16 # a mode, writes per batch
//! ```
//! A batch is `--max-batch`: the writes multicast as one message (1: each
//! write on its own). Settings from the environment: `WRITES` (default
//! 1000000), `KEYS` (100000, like `redis-benchmark -r 100000`), `VALUE` bytes
//! (3, redis-benchmark's).

use gsmo_spec::kv::Op;
use gsmo_spec::multicast::Mode;
use gsmo_spec::node::{Command, Input, Limits, LinkFrame, Node, Output};
use gsmo_spec::sim::{Cluster, FifoNetwork};
use std::time::{Duration, Instant};

/// The `gsmo` binary's allocator. Under glibc's malloc a `GET` here cost
/// about 1.7 times as much, so its numbers would not be the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

/// A prime: stepping by it visits every one of `KEYS` keys once per `KEYS`
/// requests (unless `KEYS` is a multiple), in an order that defeats the
/// caches as random keys do.
const STRIDE: usize = 7919;

/// The key of request `i`.
fn key(i: usize, keys: usize) -> Vec<u8> {
    format!("key:{:012}", (i * STRIDE) % keys).into_bytes()
}

struct Bench {
    nodes: Vec<Node>,
    net: FifoNetwork<LinkFrame>,
    /// CPU time inside each node's `handle`.
    spent: Vec<Duration>,
}

impl Bench {
    /// Three replicas that multicast `batch` writes at once, as `--max-batch`.
    fn new(mode: Mode, batch: usize) -> Self {
        let n = 3;
        let limits = Limits {
            max_batch: batch as u64,
            ..Limits::default()
        };
        // The simulator's cluster brings every link up as a runtime would.
        let nodes = (0..n)
            .map(|i| Node::new(i, n, mode).with_limits(limits))
            .collect();
        let Cluster { nodes, network, .. } = Cluster::from_nodes(nodes);
        Bench {
            nodes,
            net: network,
            spent: vec![Duration::ZERO; n],
        }
    }

    fn send(&mut self, from: usize, out: Vec<Output>) {
        for o in out {
            if let Output::Send { to, frame } = o {
                self.net.send(from, to, frame);
            }
        }
    }

    /// Delivers every frame in flight, and what those cause, until quiet.
    fn quiesce(&mut self) {
        while let Some((from, to)) = self.net.busy().first().copied() {
            while let Some(frame) = self.net.receive(from, to) {
                let t = Instant::now();
                let out = self.nodes[to]
                    .handle(Input::Peer { from, frame })
                    .expect("a correct peer's frame is accepted");
                self.spent[to] += t.elapsed();
                self.send(to, out);
            }
        }
    }

    /// `writes` SETs to node 0, `batch` per flush, each batch delivered everywhere.
    fn writes(&mut self, writes: usize, batch: usize, keys: usize, value: usize) {
        let mut req = 0;
        while req < writes {
            let ops: Vec<Command> = (req..(req + batch).min(writes))
                .map(|i| {
                    Command::Write(Op::Set {
                        key: key(i, keys),
                        value: vec![b'x'; value],
                    })
                })
                .collect();
            let t = Instant::now();
            let mut out = Vec::new();
            for cmd in ops {
                req += 1;
                out.extend(self.nodes[0].on_client(req as u64, cmd));
            }
            out.extend(self.nodes[0].handle(Input::Flush).expect("a flush"));
            self.spent[0] += t.elapsed();
            self.send(0, out);
            self.quiesce();
        }
    }

    /// `reads` GETs of the keys the writes left, on node 0, asked of
    /// [`Node::read`] as the runtime asks them when it records no trace.
    fn reads(&mut self, reads: usize, keys: usize) -> Duration {
        let cmds: Vec<Command> = (0..reads)
            .map(|i| Command::Get { key: key(i, keys) })
            .collect();
        let t = Instant::now();
        let mut found = 0;
        for cmd in &cmds {
            found += usize::from(self.nodes[0].read(cmd).is_some());
        }
        let spent = t.elapsed();
        assert_eq!(found, reads, "every GET is answered at once");
        spent
    }
}

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let modes: Vec<Mode> = match args.first() {
        Some(m) => vec![m.parse().unwrap_or_else(|e| panic!("{e}"))],
        None => Mode::ALL.to_vec(),
    };
    let batches: Vec<usize> = match args.get(1) {
        Some(b) => vec![b.parse().expect("writes per batch: a number")],
        None => vec![1, 16, 200],
    };
    let (writes, keys, value) = (
        env("WRITES", 1_000_000),
        env("KEYS", 100_000),
        env("VALUE", 3),
    );
    assert!(
        keys > 0 && keys % STRIDE != 0,
        "KEYS={keys}: must be positive and not a multiple of {STRIDE}"
    );
    println!("{writes} SETs to node 0 of 3 ({keys} keys, {value}-byte values), then {writes} GETs");
    println!(
        "{:<16} {:>6} {:>14} {:>14} {:>12}",
        "mode", "batch", "node0 ns/SET", "peer ns/SET", "ns/GET"
    );
    for mode in modes {
        for &batch in &batches {
            let mut b = Bench::new(mode, batch);
            b.writes(writes, batch, keys, value);
            for (i, node) in b.nodes.iter().enumerate() {
                assert_eq!(
                    node.kv().len(),
                    keys.min(writes),
                    "{mode}: node {i} did not apply every write"
                );
            }
            let get = b.reads(writes, keys);
            let peers = (b.spent[1] + b.spent[2]) / 2;
            println!(
                "{:<16} {:>6} {:>14.0} {:>14.0} {:>12.0}",
                mode.to_string(),
                batch,
                ns_per(b.spent[0], writes),
                ns_per(peers, writes),
                ns_per(get, writes)
            );
        }
    }
}
