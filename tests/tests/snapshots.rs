//! Chandy-Lamport snapshots on a real cluster: taken under load, stored,
//! verified with the spec's predicates, restored into a fresh cluster; a
//! snapshot that cannot finish aborts cleanly; a damaged file is refused; a
//! start beyond `--max-snapshots` is refused until one ends.

use gsmo_node::snapshot::{SnapshotStore, Status};
use gsmo_spec::multicast::Mode;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_tests::{expect_restored, gsmo, money, open_accounts, unique, Launch};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 6;
const OPENING: i64 = 1000;
const CLIENTS_PER_NODE: usize = 2;
const TRANSFERS: usize = 120;
const SNAPSHOTS: usize = 4;

fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as u64
}

/// The parts of complete snapshot `id` in `store`.
fn parts_of(store: &SnapshotStore, id: SnapshotId) -> Vec<gsmo_spec::node::Part> {
    let (_, parts) = store.load(id).unwrap();
    parts.into_iter().map(|p| p.part).collect()
}

/// Polls the store until `id` is complete or aborted (a node cannot announce
/// "the last part is on disk" to a test, so bounded polling is the honest wait).
async fn settled(store: &SnapshotStore, id: SnapshotId) -> Status {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = store.status(id).expect("status");
        if !matches!(status, Status::Incomplete { .. } | Status::Missing) {
            return status;
        }
        assert!(Instant::now() < deadline, "snapshot {id} still {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_under_transfer_load_verify_and_restore() {
    let mode = Mode::TotalIsis;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let cluster_id = unique("snap");
    let total = OPENING * ACCOUNTS as i64;
    let began = unix_ms();
    let cluster = Launch::new(3, mode)
        .cluster_id(&cluster_id)
        .args(&[
            "--data-dir",
            &dir,
            "--delay",
            "0-5",
            "--snapshot-keep",
            "10",
        ])
        .start();
    open_accounts(&cluster, ACCOUNTS, OPENING).await;

    // Transfers from every node; snapshots from different nodes while they run.
    let done = AtomicUsize::new(0);
    let all = 3 * CLIENTS_PER_NODE * TRANSFERS;
    let mut clients = Vec::new();
    for node in 0..3 {
        for c in 0..CLIENTS_PER_NODE {
            clients.push(gsmo_tests::transferrer(
                &cluster,
                node,
                gsmo_tests::seed() ^ (node * 7 + c * 13 + 1) as u64,
                ACCOUNTS,
                TRANSFERS,
                &done,
            ));
        }
    }
    let snapshotter = async {
        let mut ids = Vec::new();
        for k in 0..SNAPSHOTS {
            // Spread over the run: wait for the workload to reach the next mark.
            while done.load(Ordering::Relaxed) < (k + 1) * all / (SNAPSHOTS + 1) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ids.push(gsmo_tests::snapshot_at(&cluster, k % 3).await);
        }
        // Two more at once, from two nodes: concurrent ids must not interfere.
        let (a, b) = futures::join!(
            gsmo_tests::snapshot_at(&cluster, 1),
            gsmo_tests::snapshot_at(&cluster, 2)
        );
        ids.extend([a, b]);
        ids
    };
    let (_, ids) = futures::join!(futures::future::join_all(clients), snapshotter);
    assert!(
        done.load(Ordering::Relaxed) == all,
        "every client finished its transfers"
    );

    let store = SnapshotStore::open(data.path()).unwrap();
    let mut best: Option<(usize, SnapshotId)> = None;
    for &id in &ids {
        let Status::Complete(m) = settled(&store, id).await else {
            panic!("snapshot {id} did not complete:\n{}", cluster.all_output());
        };
        let in_flight: u64 = m.parts.iter().map(|p| p.channel_messages).sum();
        // Each part says when its node recorded it, by the wall clock.
        for p in store.load(id).unwrap().1 {
            let at = p.recorded_unix_ms;
            assert!(
                (began..=unix_ms()).contains(&at),
                "{id} part {}: recorded at {at}, the run began at {began}",
                p.part.node
            );
        }
        eprintln!("snapshot {id}: {in_flight} channel messages recorded");
        if best.is_none_or(|(n, _)| in_flight as usize >= n) {
            best = Some((in_flight as usize, id));
        }
        let (ok, out) = gsmo(&[
            "snapshot",
            "verify",
            &id.to_string(),
            "--data-dir",
            &dir,
            "--bank-prefix",
            "acct:",
            "--bank-total",
            &total.to_string(),
        ]);
        assert!(ok, "snapshot {id} failed verification:\n{out}");
        for check in [
            "conservation",
            "exact channel state",
            "consistent cut",
            "restores to one state",
        ] {
            assert!(
                out.lines().any(|l| l.contains("PASS") && l.contains(check)),
                "`{check}` not passed for {id}:\n{out}"
            );
        }
    }
    let info = cluster.info(0).await;
    assert_eq!(info["snapshots_aborted"], "0", "{info:?}");
    drop(cluster);

    // Restore the snapshot with the most in-flight messages into a fresh cluster.
    let (in_flight, id) = best.unwrap();
    // With 0-5 ms channel delays under load, cuts catch messages in flight;
    // restoring one proves the re-injected channel state is not lost.
    assert!(in_flight > 0, "no snapshot recorded a message in flight");
    let restored = Launch::new(3, mode)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir, "--restore", &id.to_string()])
        .start();
    let expected = expect_restored(&restored, &parts_of(&store, id), id).await;
    assert_eq!(
        money(&expected),
        total,
        "money conserved through snapshot and restore"
    );

    // The restored cluster keeps working, and a node from another epoch is refused.
    let mut con = restored.connect(1).await;
    let v: i64 = redis::cmd("INCRBY")
        .arg("after-restore")
        .arg(5)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_cluster_restarts_from_its_last_periodic_snapshot() {
    let mode = Mode::TotalSequencer;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let cluster_id = unique("crash");
    let mut cluster = Launch::new(3, mode)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir, "--delay", "0-3", "--snapshot-keep", "2"])
        .node_args(0, &["--snapshot-every", "0.2"])
        .start();
    let store = SnapshotStore::open(data.path()).unwrap();
    let complete = |store: &SnapshotStore| {
        store
            .list()
            .unwrap()
            .into_iter()
            .filter(|id| matches!(store.status(*id), Ok(Status::Complete(_))))
            .count()
    };
    // Writes keep flowing while periodic snapshots complete underneath.
    let mut cons = Vec::new();
    for i in 0..3 {
        cons.push(cluster.connect(i).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0u64;
    let started = |info: std::collections::BTreeMap<String, String>| {
        info["snapshots_started"].parse::<u64>().unwrap()
    };
    while started(cluster.info(0).await) < 4 || complete(&store) < 2 {
        for (i, con) in cons.iter_mut().enumerate() {
            let (): () = redis::cmd("SET")
                .arg(format!("n{i}"))
                .arg(round)
                .query_async(con)
                .await
                .unwrap();
        }
        round += 1;
        assert!(
            Instant::now() < deadline,
            "periodic snapshots did not complete"
        );
    }
    // Each node runs retention right after it writes a manifest, so a reader
    // can catch keep+1 complete snapshots for that moment; what must hold is
    // that retention brings it back (a broken retention only ever grows).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = complete(&store);
        if n <= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention keeps the last 2, but {n} complete snapshots stayed for 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let remembered: usize = cluster.info(0).await["snapshot_outcomes_remembered"]
        .parse()
        .unwrap();
    assert!(
        (2..=gsmo_spec::snapshot::REMEMBERED_PER_INITIATOR).contains(&remembered),
        "n0 remembers the verdicts of its snapshots: {remembered}"
    );
    // Crash a node mid-workload: the cluster is stuck without it (total order
    // needs every member), so the operator restarts the cluster from the last
    // complete snapshot.
    cluster.kill(1);
    drop(cons);
    drop(cluster);
    let latest = store.latest_complete().unwrap();
    let restored = Launch::new(3, mode)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir, "--restore", "latest"])
        .start();
    let state = expect_restored(&restored, &parts_of(&store, latest), latest).await;
    assert_eq!(
        state.len(),
        3,
        "every node's key was written before the cut"
    );
    eprintln!("restarted from {latest} after {round} write rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_aborts_the_snapshot_and_the_rest_keep_serving() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let mut cluster = Launch::new(3, Mode::Causal)
        .args(&["--data-dir", &dir, "--snapshot-timeout", "1"])
        .start();
    cluster.kill(2);
    let id = gsmo_tests::snapshot_at(&cluster, 0).await;
    let store = SnapshotStore::open(data.path()).unwrap();
    match settled(&store, id).await {
        Status::Aborted(why) => assert!(
            why.contains("n2") && (why.contains("unreachable") || why.contains("timed out")),
            "abort reason names the missing node: {why}"
        ),
        other => panic!("snapshot {id} should abort, is {other}"),
    }
    // No part lingers, no manifest, and verify/restore refuse it by name. The
    // two survivors share this data dir and each writes the ABORTED record
    // (through a temporary file and a rename), so the other's may still be on
    // its way when the first has settled the status: wait for the dir to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leftovers: Vec<_> = std::fs::read_dir(store.dir(id))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f != "ABORTED")
            .collect();
        if leftovers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "half-written files left: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, out) = gsmo(&["snapshot", "verify", &id.to_string(), "--data-dir", &dir]);
    assert!(!ok && out.contains("aborted"), "{out}");

    // Both survivors report it and keep serving writes and reads.
    for i in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = cluster.info(i).await;
            if info["snapshots_aborted"] == "1" {
                assert!(info["last_snapshot_status"].contains("aborted"), "{info:?}");
                assert_eq!(info["snapshots_completed"], "0");
                assert_eq!(info["snapshots_in_progress"], "");
                assert!(info["peer_n2"].contains("out=down("), "{info:?}");
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut con = cluster.connect(0).await;
    let (): () = redis::cmd("SET")
        .arg("still")
        .arg("here")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut con1 = cluster.connect(1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Option<String> = redis::cmd("GET")
            .arg("still")
            .query_async(&mut con1)
            .await
            .unwrap();
        if v.as_deref() == Some("here") {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 never applied the write");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        store.latest_complete().is_err(),
        "no partial snapshot is reported as complete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_stuck_behind_a_slow_node_times_out() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    // Node 2 handles a batch of inputs every 1.5 s; the others give up after 0.5 s.
    let cluster = Launch::new(3, Mode::Causal)
        .args(&["--data-dir", &dir, "--snapshot-timeout", "0.5"])
        .node_args(2, &["--slow", "1500"])
        .start();
    let id = gsmo_tests::snapshot_at(&cluster, 0).await;
    let store = SnapshotStore::open(data.path()).unwrap();
    match settled(&store, id).await {
        Status::Aborted(why) => assert!(
            why.contains("timed out after 0.5 s") && why.contains("n2"),
            "the reason names the timeout and the node it waited for: {why}"
        ),
        other => panic!("snapshot {id} should time out, is {other}"),
    }
    // Each node times out on its own clock; the file may be from node 1. Node 0 reports too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = cluster.info(0).await;
        assert_eq!(
            info["snapshot_timeout_s"], "0.5",
            "INFO gives the flag's value"
        );
        if info["snapshots_aborted"] == "1" {
            assert!(
                info["last_snapshot_status"].contains("timed out"),
                "{info:?}"
            );
            assert_eq!(info["snapshots_in_progress"], "");
            break;
        }
        assert!(Instant::now() < deadline, "node 0 never aborted: {info:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // `gsmo snapshot take` waits on the dir and reports the abort ...
    let port = cluster.client_port(0).to_string();
    let take = |dir: &str| {
        let args = ["snapshot", "take", "--port", &port, "--data-dir", dir];
        gsmo(&[&args[..], &["--wait", "1"]].concat())
    };
    let (ok, out) = take(&dir);
    assert!(
        !ok && out.contains("ABORTED") && out.contains("timed out"),
        "{out}"
    );
    // ... and in a dir the cluster does not write to, its wait runs out and says so.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, out) = take(&elsewhere.path().display().to_string());
    assert!(!ok && out.contains("not complete after 1s"), "{out}");
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_snapshot_file_is_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let cluster_id = unique("corrupt");
    let cluster = Launch::new(3, Mode::TotalSequencer)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir])
        .start();
    let mut con = cluster.connect(1).await;
    for i in 0..20 {
        let (): () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let id = gsmo_tests::snapshot_at(&cluster, 1).await;
    let store = SnapshotStore::open(data.path()).unwrap();
    assert!(matches!(settled(&store, id).await, Status::Complete(_)));
    drop(cluster);
    let (ok, out) = gsmo(&["snapshot", "verify", &id.to_string(), "--data-dir", &dir]);
    assert!(ok, "{out}");

    let part = store.part_path(id, 2);
    let len = std::fs::metadata(&part).unwrap().len();
    flip_byte(&part, len - 3);
    let name = part.display().to_string();
    let (ok, out) = gsmo(&["snapshot", "verify", &id.to_string(), "--data-dir", &dir]);
    assert!(
        !ok && out.contains(&name) && out.contains("checksum"),
        "{out}"
    );
    let (ok, out) = gsmo(&["snapshot", "show", &id.to_string(), "--data-dir", &dir]);
    assert!(!ok && out.contains(&name), "{out}");
    // Every node refuses to start from it, naming the file, before opening any port.
    let (ok, out) = gsmo(&[
        "node",
        "--id",
        "0",
        "--cluster",
        "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
        "--mode",
        "total-sequencer",
        "--cluster-id",
        &cluster_id,
        "--data-dir",
        &dir,
        "--restore",
        &id.to_string(),
    ]);
    assert!(
        !ok && out.contains(&name) && out.contains("corrupted"),
        "{out}"
    );

    // A truncated file is named too.
    flip_byte(&part, len - 3); // undo
    let f = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
    f.set_len(len / 2).unwrap();
    let (ok, out) = gsmo(&["snapshot", "verify", &id.to_string(), "--data-dir", &dir]);
    assert!(!ok && out.contains(&name), "{out}");
}

/// A node refuses `SNAPSHOT` while `--max-snapshots` are in progress there,
/// naming them, counts the refusal in INFO, and starts again once one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_beyond_the_bound_is_refused_until_one_ends() {
    let cluster = Launch::new(2, Mode::Causal)
        .args(&["--max-snapshots", "1"])
        .start();
    // Node 1 stopped: node 0's snapshot waits for its marker.
    cluster.signal(1, "STOP");
    let mut con = cluster.connect(0).await;
    let first: String = redis::cmd("SNAPSHOT").query_async(&mut con).await.unwrap();
    let refused: redis::RedisResult<String> = redis::cmd("SNAPSHOT").query_async(&mut con).await;
    let err = refused.unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "snapshot refused: 1 in progress here ({first}), the limit is 1"
        )),
        "{err}"
    );
    let info = cluster.info(0).await;
    assert_eq!(info["max_snapshots"], "1");
    assert_eq!(info["snapshots_refused"], "1");
    assert_eq!(info["snapshots_started"], "1");
    assert_eq!(info["snapshots_in_progress"], first);
    cluster.signal(1, "CONT");
    // Until `first` ends.
    cluster
        .info_until(0, Duration::from_secs(30), |info| {
            info["snapshots_in_progress"].is_empty()
        })
        .await;
    let next: String = redis::cmd("SNAPSHOT").query_async(&mut con).await.unwrap();
    assert_ne!(next, first);
    assert_eq!(cluster.info(0).await["snapshots_started"], "2");
}
