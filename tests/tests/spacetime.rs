//! A real run as the lecture draws it: a 3-node cluster records its traces
//! (`--trace`) while clients write and a snapshot is taken, and
//! `gsmo trace show --svg` draws them: one timeline per node, the snapshot's
//! cut joining the three record points, and exactly the messages that cross
//! the cut (sent before their sender recorded, received after their receiver
//! did) marked as recorded in flight, which is what Chandy-Lamport records.
//!
//! Every channel delays frames by a random 0-15 ms (seeded by `GSMO_SEED`, or
//! at random; printed), so writes are in flight around the cut.

use gsmo_spec::multicast::Mode;
use gsmo_tests::{gsmo, Launch};
use gsmo_view::spacetime::MsgKind;
use std::time::{Duration, Instant};

const NODES: usize = 3;
const WRITES: usize = 4;

fn seed() -> u64 {
    std::env::var("GSMO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_is_drawn_with_its_cut() {
    let seed = seed();
    eprintln!("GSMO_SEED={seed} (rerun with this to repeat the channel delays)");
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("n{id}.trace");
    let cluster = Launch::new(NODES, Mode::Causal)
        .args(&["--delay", "0-15", "--seed", &seed.to_string()])
        .args(&["--trace".to_string(), pattern.display().to_string()])
        .start();

    // Every node writes while node 1 starts a snapshot.
    let mut work = Vec::new();
    for node in 0..NODES {
        let mut con = cluster.connect(node).await;
        work.push(tokio::spawn(async move {
            for k in 0..WRITES {
                let (): () = redis::cmd("SET")
                    .arg(format!("k{node}"))
                    .arg(format!("v{k}"))
                    .query_async(&mut con)
                    .await
                    .expect("SET");
            }
        }));
    }
    let mut con = cluster.connect(1).await;
    let id: String = redis::cmd("SNAPSHOT").query_async(&mut con).await.unwrap();
    assert_eq!(id, "1-1");
    for w in work {
        w.await.unwrap();
    }
    cluster.quiesce().await;
    // The snapshot commits everywhere once the markers and the stored parts'
    // acknowledgements are through: the commit is its last message (waiting
    // for the parts alone left the commit on the wire while traces were read).
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..NODES {
        while cluster.info(i).await["snapshots_committed"] != "1" {
            assert!(Instant::now() < deadline, "node {i} never committed 1-1");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Reading a node's state flushed its trace; the traces are a run the spec takes.
    let paths: Vec<String> = (0..NODES)
        .map(|i| dir.path().join(format!("n{i}.trace")).display().to_string())
        .collect();
    let mut args = vec!["trace".to_string(), "check".into(), "--quiescent".into()];
    args.extend(paths.iter().cloned());
    let (ok, out) = gsmo(&args);
    assert!(ok && out.contains("CONFORMS"), "{out}");

    let svg_path = dir.path().join("run.svg");
    let mut args = vec!["trace".to_string(), "show".into()];
    args.extend(paths.iter().cloned());
    args.extend(["--svg".to_string(), svg_path.display().to_string()]);
    let (ok, out) = gsmo(&args);
    assert!(ok && out.contains("1 snapshot cuts"), "{out}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(svg.matches("class='timeline'").count(), NODES, "{svg}");
    for i in 0..NODES {
        assert!(
            svg.contains(&format!("class='timeline' data-node='n{i}'")),
            "{svg}"
        );
        assert!(
            svg.contains(&format!("SET k{i}=v{}", WRITES - 1)),
            "values as text: {svg}"
        );
    }
    assert!(
        svg.contains("<polyline class='cut' data-snapshot='1-1'"),
        "a complete cut through all three record points: {svg}"
    );

    // The picture's recorded messages are exactly those crossing the cut.
    let traces =
        gsmo_node::tracecheck::load_traces(&paths.iter().map(Into::into).collect::<Vec<_>>())
            .unwrap();
    let d = gsmo_view::trace::diagram(&traces, "run", None);
    let cut: Vec<usize> = d.cuts[0].points.iter().map(|p| p.unwrap()).collect();
    let mut recorded = 0;
    for m in d.messages.iter().filter(|m| m.kind != MsgKind::Marker) {
        let to = m.to.expect("quiescent: every message received");
        let crosses = m.from.event < cut[m.from.node] && to > cut[m.to_node];
        assert_eq!(crosses, !m.recorded.is_empty(), "{}", m.label);
        recorded += m.recorded.len();
    }
    eprintln!(
        "{} events, {} messages, {recorded} recorded in flight",
        d.events.iter().map(Vec::len).sum::<usize>(),
        d.messages.len()
    );
}
