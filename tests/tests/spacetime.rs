//! A real run as the lecture draws it: a 3-node cluster records its traces
//! (`--trace`) while clients write and a snapshot is taken, and
//! `gsmo trace show --svg` draws them: one timeline per node, the snapshot's
//! cut joining the three record points, and exactly the messages that cross
//! the cut (sent before their sender recorded, received after their receiver
//! did) marked as recorded in flight, which is what Chandy-Lamport records.
//!
//! Every channel delays frames by a random 0-15 ms (seeded by `GSMO_SEED`, or
//! at random; printed), so writes are in flight around the cut.
//!
//! The same kind of run is also drawn the other way the README offers: the
//! launcher's `--log-format shiviz` log, checked as ShiViz reads it.

use gsmo_spec::multicast::Mode;
use gsmo_tests::{gsmo, read_to_end, read_until, seed, Launch, Launcher};
use gsmo_view::spacetime::MsgKind;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const WRITES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_is_drawn_with_its_cut() {
    let seed = seed();
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
    let in_flight = d.messages.iter().filter(|m| !m.recorded.is_empty()).count();
    let said = format!("{in_flight} messages recorded in flight");
    assert!(out.contains(&said), "{said}: {out}");
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

/// One line of a ShiViz log: host, vector clock, event.
struct Line {
    host: usize,
    clock: BTreeMap<usize, u64>,
    event: String,
}

/// Parses `n0 {"n0":3,"n1":1} event` the way [`gsmo_node::shiviz::REGEX`]
/// does: a host without spaces, a clock up to its first `}`, the rest.
fn parse_shiviz(line: &str) -> Line {
    fn bad<T>(line: &str) -> T {
        panic!("not a ShiViz line: {line:?}")
    }
    let node = |name: &str| -> usize {
        let id = name.strip_prefix('n').and_then(|i| i.parse().ok());
        id.unwrap_or_else(|| bad(line))
    };
    let (host, rest) = line.split_once(' ').unwrap_or_else(|| bad(line));
    let (clock, event) = rest.split_once("} ").unwrap_or_else(|| bad(line));
    let clock = clock.strip_prefix('{').unwrap_or_else(|| bad(line));
    let clock = clock
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (k, v) = e.split_once(':').unwrap_or_else(|| bad(line));
            let v: u64 = v.parse().unwrap_or_else(|_| bad(line));
            (node(k.trim_matches('"')), v)
        })
        .collect();
    assert!(!event.is_empty(), "an event without a name: {line:?}");
    Line {
        host: node(host),
        clock,
        event: event.to_string(),
    }
}

/// `gsmo cluster --log-format shiviz`, as the README runs it: stdout carries
/// only event lines (the banner moves to stderr), every line parses with the
/// regex `gsmo node --help` prints, and the clocks are what ShiViz checks
/// before it draws: each host's own entry counts its events 1, 2, 3, ..., and
/// each receive knows all that its send knew.
#[test]
fn a_real_run_is_logged_for_shiviz() {
    let patience = Duration::from_secs(30);
    let mut launcher = Launcher::spawn(NODES, &["--mode", "causal", "--log-format", "shiviz"]);
    let banner = read_until(&launcher.stderr, "nodes ready", patience);
    assert!(banner[0].starts_with("gsmo cluster: 3 nodes"), "{banner:?}");

    for i in 0..NODES {
        let url = format!("redis://127.0.0.1:{}/", launcher.client_base + i as u16);
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let (): () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    // Each node logs its deliveries as they happen (flushed every turn).
    let deadline = Instant::now() + patience;
    let mut log = Vec::new();
    let mut delivered = [0; NODES];
    while delivered.iter().any(|d| *d < NODES) {
        let line = launcher
            .stdout
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("not every write was delivered everywhere");
        let line = parse_shiviz(&line);
        if line.event.starts_with("deliver ") {
            delivered[line.host] += 1;
        }
        log.push(line);
    }
    let pid = nix::unistd::Pid::from_raw(launcher.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // The rest of the log, up to the launcher's exit.
    log.extend(
        read_to_end(&launcher.stdout, patience)
            .iter()
            .map(|l| parse_shiviz(l)),
    );
    assert!(launcher.wait(patience).success());
    // It stopped its nodes itself (SIGTERM, then waited for each), rather
    // than leaving them to the kernel's signal on its own exit.
    let said = read_to_end(&launcher.stderr, patience);
    for i in 0..NODES {
        let stopped = format!("gsmo cluster: node {i} stopped: exit status: 0");
        assert!(said.contains(&stopped), "{said:#?}");
    }

    let mut events = [0u64; NODES];
    let mut sends: BTreeMap<(usize, String), Vec<&BTreeMap<usize, u64>>> = BTreeMap::new();
    let (mut multicast, mut deliveries) = (BTreeSet::new(), vec![BTreeSet::new(); NODES]);
    for line in &log {
        let h = line.host;
        events[h] += 1;
        assert_eq!(
            line.clock.get(&h),
            Some(&events[h]),
            "n{h}'s own count: {}",
            line.event
        );
        if let Some(rest) = line.event.strip_prefix("send ") {
            sends
                .entry((h, rest.to_string()))
                .or_default()
                .push(&line.clock);
        } else if let Some(id) = line.event.strip_prefix("multicast ") {
            assert!(multicast.insert(id.to_string()), "{id} multicast twice");
        } else if let Some(id) = line.event.strip_prefix("deliver ") {
            assert!(
                deliveries[h].insert(id.to_string()),
                "{id} delivered twice at n{h}"
            );
        }
    }
    let mut received = 0;
    for line in log.iter().filter(|l| l.event.starts_with("recv ")) {
        let (msg, from) = line.event["recv ".len()..].rsplit_once(" from n").unwrap();
        let from: usize = from.parse().unwrap();
        let key = (from, format!("{msg} to n{}", line.host));
        let send = sends.get(&key).and_then(|s| s.first());
        let send = send.unwrap_or_else(|| panic!("n{}: {} was never sent", line.host, line.event));
        for (node, count) in send.iter() {
            assert!(
                line.clock.get(node) >= Some(count),
                "{} forgot its send",
                line.event
            );
        }
        received += 1;
    }
    assert_eq!(
        multicast.len(),
        NODES,
        "one multicast per write: {multicast:?}"
    );
    for (h, ids) in deliveries.iter().enumerate() {
        assert_eq!(ids, &multicast, "n{h} delivered every write");
    }
    // Each write's data reached the two other nodes, at least.
    assert!(received >= NODES * (NODES - 1), "{received} receives");
    eprintln!("{} ShiViz lines, {received} receives", log.len());
}
