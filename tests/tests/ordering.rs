//! Each ordering mode on a real 3-node cluster: concurrent Redis clients on
//! every node, then the per-node delivery histories are judged by the spec's
//! own predicates (integrity, FIFO, causal, total order, all delivered) and
//! the replicas by its convergence predicate, exactly as the model checker
//! judges its simulated runs.
//!
//! Each mode runs twice: on plain localhost TCP, and under injected faults
//! (every channel delays each frame by a random 0-15 ms, which interleaves
//! senders in many orders without reordering any one channel, and node 2
//! runs a slow event loop) with every node recording its trace. The traces
//! are then replayed through the spec (`gsmo trace check`): every step the
//! real node took must be the step the spec takes, every channel must have
//! behaved as the model's reliable FIFO network, and the mode's properties
//! must hold on the replayed histories.

use gsmo_spec::multicast::Mode;
use gsmo_tests::{check_ordering, gsmo, Launch, TestCluster};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const CLIENTS_PER_NODE: usize = 2;
const ROUNDS: usize = 60;
const ACCOUNTS: [&str; 3] = ["acct:a", "acct:b", "acct:c"];
const OPENING_BALANCE: i64 = 1000;

/// One client's work: contended SETs, counter increments, MSETs, transfers,
/// a pipelined burst, reads; client 0 starts a snapshot midway.
async fn client(cluster: &TestCluster, node: usize, c: usize) -> usize {
    let mut con = cluster.connect(node).await;
    let mut increments = 0;
    for r in 0..ROUNDS {
        let (): () = redis::cmd("SET")
            .arg(format!("shared:{}", r % 4))
            .arg(format!("n{node}c{c}r{r}"))
            .query_async(&mut con)
            .await
            .expect("SET");
        let reply: redis::Value = redis::cmd("INCRBY")
            .arg("counter")
            .arg(1)
            .query_async(&mut con)
            .await
            .expect("INCRBY");
        // Every mode answers the new value, as Redis does (under fifo/causal
        // the origin resolves the increment, so the value is the origin's view).
        assert!(matches!(reply, redis::Value::Int(n) if n > 0), "{reply:?}");
        increments += 1;
        let (): () = redis::cmd("MSET")
            .arg(format!("own:{node}:{c}"))
            .arg(r)
            .arg("last-mset")
            .arg(format!("{node}/{c}/{r}"))
            .query_async(&mut con)
            .await
            .expect("MSET");
        // A transfer is either applied (+OK) or refused for funds (under
        // fifo/causal the origin judges funds from what it has seen so far);
        // any other answer is a bug.
        let from = ACCOUNTS[(node + r) % 3];
        let to = ACCOUNTS[(node + r + 1 + c) % 3];
        let reply: redis::RedisResult<redis::Value> = redis::cmd("TRANSFER")
            .arg(from)
            .arg(to)
            .arg(1 + (r % 7) as i64)
            .query_async(&mut con)
            .await;
        match reply {
            Ok(redis::Value::Okay) => {}
            Err(e) if e.to_string().contains("insufficient funds") => {}
            other => panic!("TRANSFER answered {other:?}"),
        }
        if r % 10 == 5 {
            let mut pipe = redis::pipe();
            for k in 0..8 {
                pipe.cmd("SET")
                    .arg(format!("piped:{node}:{c}:{k}"))
                    .arg(r)
                    .ignore();
            }
            pipe.cmd("GET").arg(format!("piped:{node}:{c}:7"));
            let (v,): (String,) = pipe.query_async(&mut con).await.expect("pipeline");
            assert_eq!(
                v,
                r.to_string(),
                "a write is visible at its own node once replied"
            );
        }
        if c == 0 && node == 0 && r == ROUNDS / 2 {
            let id: String = redis::cmd("SNAPSHOT")
                .query_async(&mut con)
                .await
                .expect("SNAPSHOT");
            assert!(id.starts_with("0-"), "snapshot id {id}");
        }
    }
    increments
}

async fn run(mode: Mode, faults: bool) {
    let started = Instant::now();
    let traces = tempfile::tempdir().unwrap();
    let trace_path = |i: usize| traces.path().join(format!("n{i}.trace"));
    let mut launch = Launch::new(NODES, mode);
    let seed = gsmo_tests::seed().to_string();
    if faults {
        let pattern = traces.path().join("n{id}.trace");
        launch = launch
            .args(&["--delay", "0-15", "--seed", &seed])
            .args(&["--trace".to_string(), pattern.display().to_string()])
            .node_args(2, &["--slow", "2"]);
        eprintln!("{mode}: fault seed {seed} (GSMO_SEED)");
    }
    let cluster = launch.start();
    if faults {
        // Each node says which seed its delays draw from, and how to rerun them.
        let told = format!("fault seed {seed} (rerun with --seed {seed})");
        for node in &cluster.nodes {
            node.output_containing(&[&told], Duration::from_secs(10));
        }
    }
    {
        let mut con = cluster.connect(0).await;
        for a in ACCOUNTS {
            let (): () = redis::cmd("SET")
                .arg(a)
                .arg(OPENING_BALANCE)
                .query_async(&mut con)
                .await
                .unwrap();
        }
    }
    let mut work = Vec::new();
    for node in 0..NODES {
        for c in 0..CLIENTS_PER_NODE {
            work.push(client(&cluster, node, c));
        }
    }
    let increments: usize = futures::future::join_all(work).await.into_iter().sum();

    let logs = cluster.quiesce().await;
    let writes = logs[0]
        .iter()
        .filter(|e| matches!(e, gsmo_spec::properties::Event::Deliver(_)))
        .count();
    assert!(
        writes >= NODES * CLIENTS_PER_NODE * ROUNDS * 4,
        "only {writes} writes delivered"
    );
    if let Err(v) = check_ordering(mode, &logs) {
        panic!("{mode}: {v}\n{}", cluster.all_output());
    }
    if let Err(v) = cluster.convergence(&logs).await {
        panic!("{mode}: {v}\n{}", cluster.all_output());
    }

    let store = cluster.dump(0).await;
    let get = |k: &str| {
        store
            .iter()
            .find(|(key, _)| key == k.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    if mode.is_total() {
        // Applied in one order everywhere: no increment is lost, no money is made or destroyed.
        assert_eq!(
            get("counter"),
            Some(increments.to_string()),
            "{mode}: counter"
        );
        let total: i64 = ACCOUNTS
            .iter()
            .map(|a| get(a).unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(total, OPENING_BALANCE * 3, "{mode}: money conserved");
    }
    for node in 0..NODES {
        for c in 0..CLIENTS_PER_NODE {
            assert_eq!(
                get(&format!("own:{node}:{c}")),
                Some((ROUNDS - 1).to_string()),
                "{mode}: each client's own key holds its last write"
            );
        }
    }

    // The snapshot started midway completes at every node once the markers are through.
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..NODES {
        loop {
            let info = cluster.info(i).await;
            if info["snapshots_completed"] == "1" {
                assert_eq!(info["last_snapshot"], "0-1");
                assert_eq!(info["holdback_depth"], "0");
                assert_eq!(info["peers_connected"], "2");
                // The pipelined bursts' writes arrive together and travel in
                // batches: fewer multicasts than writes.
                let count = |f: &str| info[f].parse::<u64>().unwrap();
                assert!(
                    count("multicasts_sent") < count("writes_multicast"),
                    "node {i}: no batch carried two writes: {info:?}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} never completed the snapshot: {info:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if faults {
        // Conformance: the real run, replayed through the spec. Nothing is in
        // flight any more (all delivered, the snapshot complete everywhere).
        let paths: Vec<_> = (0..NODES).map(trace_path).collect();
        let loaded = gsmo_node::tracecheck::load_traces(&paths).unwrap();
        match gsmo_spec::trace::check_cluster(&loaded, mode, true) {
            Ok(c) => assert!(
                c.deliveries >= NODES * writes && c.messages > 0,
                "{mode}: the traces saw too little: {c:?}"
            ),
            Err(v) => panic!("{mode}: the real cluster left the spec: {v}"),
        }
        let mut args = vec!["trace".to_string(), "check".into(), "--quiescent".into()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let (ok, out) = gsmo(&args);
        assert!(ok && out.contains("CONFORMS"), "{out}");
    }
    eprintln!(
        "{mode}{}: {writes} writes judged in {:?}",
        if faults { " under faults" } else { "" },
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_cluster_keeps_fifo_order_and_converges() {
    run(Mode::Fifo, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_cluster_keeps_fifo_order_under_delay_and_conforms() {
    run(Mode::Fifo, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causal_cluster_keeps_causal_order_and_converges() {
    run(Mode::Causal, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causal_cluster_keeps_causal_order_under_delay_and_conforms() {
    run(Mode::Causal, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequencer_cluster_keeps_total_order_and_converges() {
    run(Mode::TotalSequencer, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequencer_cluster_keeps_total_order_under_delay_and_conforms() {
    run(Mode::TotalSequencer, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isis_cluster_keeps_total_order_and_converges() {
    run(Mode::TotalIsis, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isis_cluster_keeps_total_order_under_delay_and_conforms() {
    run(Mode::TotalIsis, true).await;
}
