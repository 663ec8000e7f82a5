//! Storage faults injected for real into one node's own data dir: a full
//! tmpfs (ENOSPC), a read-only remount (EROFS), a lowered RLIMIT_NOFILE
//! (EMFILE), and kill -9 while the part is being written. Each time the
//! snapshot aborts at every node with the reason (`gsmo snapshot take`, INFO,
//! an ABORTED record naming the node and the error), no part of it stays on
//! any disk, and the next snapshot completes. And an old snapshot whose
//! directory cannot be removed (EBUSY) is reported by retention, not claimed
//! deleted. And a part write that hangs (a FIFO) times the snapshot out while
//! the node serves.
//!
//! Mounts and prlimit on another process need root (CI runs as root); without
//! it those tests say SKIPPED loudly and pass.

use gsmo_node::snapshot::{SnapshotStore, Status};
use gsmo_spec::multicast::Mode;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_tests::{gsmo, try_run, unique, Launch, TestCluster};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// The node whose disk fails.
const FAULTY: usize = 2;

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts with `args` onto `dir`, or says loudly why not.
fn mount_or_skip(args: &[&str], dir: &Path) -> Option<Mount> {
    if !gsmo_tests::is_root() {
        eprintln!("SKIPPED: mounting needs root (CI runs as root)");
        return None;
    }
    let mut all = args.to_vec();
    let d = dir.display().to_string();
    all.push(&d);
    match try_run("mount", &all) {
        Ok(()) => Some(Mount(dir.to_path_buf())),
        Err(e) => {
            eprintln!("SKIPPED: cannot mount here: {e}");
            None
        }
    }
}

/// Per-node data dirs `base/n<i>` (created), and their stores.
fn node_dirs(base: &Path) -> Vec<PathBuf> {
    (0..NODES)
        .map(|i| {
            let d = base.join(format!("n{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect()
}

fn launch(base: &Path) -> Launch {
    launch_timeouts(base, ["3"; NODES])
}

/// [`launch`], with node `i`'s `--snapshot-timeout` `secs[i]`.
fn launch_timeouts(base: &Path, secs: [&str; NODES]) -> Launch {
    let dir = base.join("n{id}").display().to_string();
    let launch = Launch::new(NODES, Mode::Causal)
        .cluster_id(&unique("disk"))
        .args(&["--data-dir", &dir]);
    (0..NODES).fold(launch, |l, i| {
        l.node_args(i, &["--snapshot-timeout", secs[i]])
    })
}

/// Writes `n` keys of `size` bytes through node 0 and waits until every node holds them.
async fn load(cluster: &TestCluster, n: usize, size: usize) {
    let mut con = cluster.connect(0).await;
    let value = vec![b'v'; size];
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut cmd = redis::cmd("MSET");
        for i in chunk {
            cmd.arg(format!("key:{i:08}")).arg(&value[..]);
        }
        let (): () = cmd.query_async(&mut con).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..NODES {
        let mut con = cluster.connect(i).await;
        loop {
            let keys: usize = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
            if keys >= n {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} holds {keys} of {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `gsmo snapshot take` at node 0, waiting on node 0's dir: the id and what it printed.
fn take(cluster: &TestCluster, dir: &Path) -> (bool, SnapshotId, String) {
    let (ok, out) = gsmo(&[
        "snapshot",
        "take",
        "--port",
        &cluster.client_port(0).to_string(),
        "--data-dir",
        &dir.display().to_string(),
        "--wait",
        "30",
    ]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("snapshot ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot id in:\n{out}"));
    (ok, id, out)
}

/// Files of snapshot `id` in `dir` other than the ABORTED record.
fn leftovers(dir: &Path, id: SnapshotId) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("snapshots").join(id.to_string())) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "ABORTED")
        .collect()
}

/// The abort is reported by `take`, recorded (naming node and error) in every
/// healthy node's dir, reported by every node's INFO, and leaves no file.
async fn aborted_everywhere(
    cluster: &TestCluster,
    dirs: &[PathBuf],
    id: SnapshotId,
    take_out: &str,
    error: &str,
) {
    assert!(
        take_out.contains(&format!("snapshot {id} ABORTED: node {FAULTY}"))
            && take_out.contains(error),
        "`gsmo snapshot take` names the node and the error:\n{take_out}"
    );
    for (i, dir) in dirs.iter().enumerate() {
        // A part whose write was under way at the abort is dropped once written.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !leftovers(dir, id).is_empty() {
            assert!(
                Instant::now() < deadline,
                "node {i}'s dir: {:?}",
                leftovers(dir, id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i == FAULTY {
            continue; // its disk is what failed: the record may not fit there
        }
        match SnapshotStore::open(dir).unwrap().status(id).unwrap() {
            Status::Aborted(why) => assert!(
                why.starts_with(&format!("node {FAULTY}: its part could not be stored"))
                    && why.contains(error),
                "node {i}'s ABORTED record: {why}"
            ),
            other => panic!("snapshot {id} in node {i}'s dir: {other}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..NODES {
        loop {
            let info = cluster.info(i).await;
            let status = &info["last_snapshot_status"];
            if info["snapshots_aborted"] == "1" {
                assert!(
                    status.contains(&format!("{id} aborted by n{FAULTY}"))
                        && status.contains(error),
                    "node {i}: {status}"
                );
                assert_eq!(info["snapshots_in_progress"], "", "node {i}");
                assert_eq!(info["snapshots_committed"], "0", "node {i}");
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The fault is gone: the next snapshot completes in every dir, and
/// retention there removes what was left of the aborted one (its record), in
/// the faulty node's dir too: a record its disk refused is written again
/// before that node's next part, so nothing unexplained stays behind.
/// `failed_here`: how many part writes node FAULTY's process saw fail.
async fn next_completes(
    cluster: &TestCluster,
    dirs: &[PathBuf],
    aborted: SnapshotId,
    failed_here: u64,
) {
    let (ok, id, out) = take(cluster, &dirs[0]);
    assert!(
        ok && out.contains("COMPLETE"),
        "{out}\n{}",
        cluster.all_output()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, dir) in dirs.iter().enumerate() {
        let store = SnapshotStore::open(dir).unwrap();
        loop {
            let done = matches!(store.status(id).unwrap(), Status::Complete(_));
            let swept = !store.dir(aborted).exists();
            if done && swept {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i}: snapshot {id} {}, aborted {aborted} still there: {}",
                store.status(id).unwrap(),
                !swept
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.parts_present(id), vec![i]);
        let info = cluster.info(i).await;
        assert_eq!(info["snapshot_aborts_unrecorded"], "0", "node {i}");
        // The manifest is written after the commit is counted.
        assert_eq!(info["snapshots_committed"], "1", "node {i}");
        if i == FAULTY {
            // Its failed part was counted and its next one stored; the
            // healthy nodes' first part may have landed before or after the
            // abort, so only the faulty node's counts are exact.
            let errors = failed_here.to_string();
            assert_eq!(info["snapshot_store_errors"], errors, "node {i}");
            assert_eq!(info["snapshots_stored"], "1", "node {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_aborts_the_snapshot_everywhere() {
    let base = tempfile::tempdir().unwrap();
    let dirs = node_dirs(base.path());
    // 512 KiB for node 2; its part of ~900 KB does not fit.
    let Some(_mount) = mount_or_skip(&["-t", "tmpfs", "-o", "size=512k", "tmpfs"], &dirs[FAULTY])
    else {
        return;
    };
    let cluster = launch(base.path()).start();
    load(&cluster, 4000, 200).await;
    let (ok, id, out) = take(&cluster, &dirs[0]);
    assert!(!ok, "{out}");
    aborted_everywhere(&cluster, &dirs, id, &out, "No space left on device").await;
    let d = dirs[FAULTY].display().to_string();
    try_run("mount", &["-o", "remount,size=16m", &d]).unwrap();
    next_completes(&cluster, &dirs, id, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_gone_read_only_aborts_the_snapshot_everywhere() {
    let base = tempfile::tempdir().unwrap();
    let dirs = node_dirs(base.path());
    // Root ignores permission bits: a bind mount of node 2's snapshots dir
    // onto itself, remounted read-only once the node runs (a start on a
    // read-only dir is refused; the dir itself holds the node's open lock
    // file, and a mount with a file open for writing cannot turn read-only).
    let snapshots = dirs[FAULTY].join("snapshots");
    std::fs::create_dir(&snapshots).unwrap();
    let d = snapshots.display().to_string();
    let Some(_mount) = mount_or_skip(&["--bind", &d], &snapshots) else {
        return;
    };
    let cluster = launch(base.path()).start();
    load(&cluster, 50, 10).await;
    try_run("mount", &["-o", "remount,bind,ro", &d]).unwrap();
    let (ok, id, out) = take(&cluster, &dirs[0]);
    assert!(!ok, "{out}");
    aborted_everywhere(&cluster, &dirs, id, &out, "Read-only file system").await;
    // Its own ABORTED record was refused too, and is kept for a retry (INFO).
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.info(FAULTY).await["snapshot_aborts_unrecorded"] != "1" {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            cluster.info(FAULTY).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    try_run("mount", &["-o", "remount,bind,rw", &d]).unwrap();
    next_completes(&cluster, &dirs, id, 1).await;
}

/// Retention that cannot delete an old snapshot (its directory is a mount
/// point: EBUSY, which root meets too) says so in that node's log and INFO,
/// and claims no deletion; the new snapshot is complete regardless, and the
/// healthy nodes delete their copies of the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_that_cannot_delete_says_so() {
    let base = tempfile::tempdir().unwrap();
    let dirs = node_dirs(base.path());
    let cluster = launch(base.path()).args(&["--snapshot-keep", "1"]).start();
    load(&cluster, 50, 10).await;
    let (ok, first, out) = take(&cluster, &dirs[0]);
    assert!(ok && out.contains("COMPLETE"), "{out}");
    let store = SnapshotStore::open(&dirs[FAULTY]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The manifest is written after the commit: wait for it before mounting.
    while !matches!(store.status(first).unwrap(), Status::Complete(_)) {
        assert!(
            Instant::now() < deadline,
            "{}",
            store.status(first).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old = store.dir(first);
    let Some(_mount) = mount_or_skip(&["--bind", &old.display().to_string()], &old) else {
        return;
    };
    let (ok, second, out) = take(&cluster, &dirs[0]);
    assert!(ok && out.contains("COMPLETE"), "{out}");
    let deleted = format!("retention: deleted snapshot {first}");
    for i in (0..NODES).filter(|i| *i != FAULTY) {
        cluster.nodes[i].output_containing(&[&deleted], Duration::from_secs(10));
        let info = cluster.info(i).await;
        assert_eq!(info["snapshots_deleted"], "1", "node {i}");
        assert_eq!(info["snapshot_retention_errors"], "0", "node {i}");
    }
    let failed = format!("retention after {second}");
    let log = cluster.nodes[FAULTY].output_containing(&[&failed], Duration::from_secs(10));
    assert!(log.contains("Device or resource busy"), "{log}");
    assert!(!log.contains(&deleted), "{log}");
    // The warning is logged after the count is taken: INFO has it by now.
    let info = cluster.info(FAULTY).await;
    assert_eq!(info["snapshot_retention_errors"], "1");
    assert_eq!(info["snapshots_deleted"], "0");
    assert_eq!(info["snapshot_manifest_errors"], "0");
    assert!(matches!(store.status(second).unwrap(), Status::Complete(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_open_files_aborts_the_snapshot_everywhere() {
    if !gsmo_tests::is_root() {
        eprintln!("SKIPPED: prlimit on another process needs root (CI runs as root)");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let dirs = node_dirs(base.path());
    let cluster = launch(base.path()).start();
    load(&cluster, 50, 10).await;
    let pid = cluster.pid(FAULTY).to_string();
    // Only the soft limit: raising a hard one back needs CAP_SYS_RESOURCE.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let (soft, hard) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (v[0].to_string(), v[1].to_string())
        })
        .unwrap();
    // Descriptors 0-2 are taken: node 2 can open nothing more.
    try_run("prlimit", &["--pid", &pid, &format!("--nofile=3:{hard}")]).unwrap();
    let (ok, id, out) = take(&cluster, &dirs[0]);
    try_run(
        "prlimit",
        &["--pid", &pid, &format!("--nofile={soft}:{hard}")],
    )
    .unwrap();
    assert!(!ok, "{out}");
    aborted_everywhere(&cluster, &dirs, id, &out, "Too many open files").await;
    next_completes(&cluster, &dirs, id, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_writing_the_part_aborts_and_the_restart_cleans_up() {
    let base = tempfile::tempdir().unwrap();
    let dirs = node_dirs(base.path());
    let launch = launch(base.path()).args(&["--unreachable-after", "1"]);
    let mut cluster = launch.start();
    load(&cluster, 20, 10).await;
    let (ok, first, out) = take(&cluster, &dirs[0]);
    assert!(ok, "{out}");
    // ~20 MB per part: writing and fsyncing it takes long enough to be caught.
    load(&cluster, 20_000, 1000).await;
    let store = SnapshotStore::open(&dirs[FAULTY]).unwrap();
    let temp = format!(".part-{FAULTY}.gsmo.tmp-");
    let mut torn = None;
    for _attempt in 0..5 {
        let mut con = cluster.connect(0).await;
        let id: String = redis::cmd("SNAPSHOT").query_async(&mut con).await.unwrap();
        let id: SnapshotId = id.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        // Busy polling on purpose: the write is the window, a few ms wide.
        while Instant::now() < deadline && !store.part_path(id, FAULTY).exists() {
            let writing = std::fs::read_dir(store.dir(id)).is_ok_and(|es| {
                es.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&temp))
            });
            if writing {
                cluster.kill(FAULTY);
                torn = Some(id);
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if torn.is_some() {
            break;
        }
        eprintln!("snapshot {id}: node {FAULTY} finished writing before the kill; again");
    }
    let id = torn.expect("never caught node 2 writing its part in 5 snapshots");
    assert!(
        !leftovers(&dirs[FAULTY], id).is_empty(),
        "the kill tore a write"
    );

    // The survivors abort it (node 2 unreachable) and delete their parts.
    for (i, dir) in dirs.iter().enumerate().take(NODES - 1) {
        let store = SnapshotStore::open(dir).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match store.status(id).unwrap() {
                Status::Aborted(why) => {
                    assert!(why.contains(&format!("n{FAULTY}")), "{why}");
                    break;
                }
                other => assert!(Instant::now() < deadline, "node {i}: {id} {other}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !leftovers(dir, id).is_empty() {
            assert!(Instant::now() < deadline, "{:?}", leftovers(dir, id));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(cluster);

    // The operator restarts the cluster from its last complete snapshot; node 2
    // finds its torn write, removes it and records the abort in its own dir.
    let restarted = launch.args(&["--restore", "latest"]).start();
    let out = restarted.nodes[FAULTY].output();
    assert!(out.contains("died while writing its part"), "{out}");
    assert_eq!(leftovers(&dirs[FAULTY], id), Vec::<String>::new());
    match store.status(id).unwrap() {
        Status::Aborted(why) => assert!(why.starts_with("node 2: interrupted"), "{why}"),
        other => panic!("{id} in node 2's dir: {other}"),
    }
    assert!(first.seq < id.seq);
    // A new process: its counters start again, and its part was stored.
    next_completes(&restarted, &dirs, id, 0).await;
}

/// A disk that hangs rather than fails (an NFS server gone): node 2's part
/// write blocks, here in the open of a FIFO standing at its temp file's path.
/// `gsmo snapshot take` shows the part that was written, then the timeout;
/// the node keeps serving throughout (disk work is off its event loop); once
/// the write returns, with an error (a FIFO cannot seek), the node logs it and
/// drops the part, and the next snapshot completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_write_that_hangs_times_the_snapshot_out() {
    let base = tempfile::tempdir().unwrap();
    let dirs = node_dirs(base.path());
    // Node 0, the initiator, gives up first, so the reason is its own:
    // whose part it waits for.
    let cluster = launch_timeouts(base.path(), ["3", "30", "30"]).start();
    load(&cluster, 50, 10).await;
    // A fresh cluster's first snapshot from node 0 is 0-1 (checked below).
    let id: SnapshotId = "0-1".parse().unwrap();
    let store = SnapshotStore::open(&dirs[FAULTY]).unwrap();
    std::fs::create_dir_all(store.dir(id)).unwrap();
    let temp = format!(".part-{FAULTY}.gsmo.tmp-{}", cluster.pid(FAULTY));
    let fifo = store.dir(id).join(temp);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // The abort removes the temp file's name; this second one keeps the FIFO.
    let kept = base.path().join("kept.fifo");
    std::fs::hard_link(&fifo, &kept).unwrap();

    let (ok, taken, out) = take(&cluster, &dirs[0]);
    assert_eq!(taken, id, "{out}");
    let progress = format!("snapshot {id}: 1 part(s) written: [0]");
    let aborted =
        format!("snapshot {id} ABORTED: node 0: timed out after 3 s waiting for n{FAULTY}");
    let (shown, ended) = (out.find(&progress), out.find(&aborted));
    assert!(
        !ok && shown.is_some() && shown < ended,
        "`take` shows node 0's part, then the timeout:\n{out}"
    );
    // Its write still hangs, and the node serves and knows the outcome.
    let mut con = cluster.connect(FAULTY).await;
    let (): () = redis::cmd("SET")
        .arg("during")
        .arg("hang")
        .query_async(&mut con)
        .await
        .unwrap();
    // Node 0's abort reaches node 2 about when `take` reads node 0's record.
    let info = cluster
        .info_until(FAULTY, Duration::from_secs(10), |info| {
            info["snapshots_in_progress"].is_empty()
        })
        .await;
    assert_eq!(info["snapshots_stored"], "0");
    assert_eq!(info["snapshot_writes_pending"], "1", "the hang shows");
    assert!(
        info["last_snapshot_status"].contains(&format!("{id} aborted")),
        "{info:?}"
    );

    // The disk comes back: the open returns, and the write fails (a part
    // is written with seeks, which a FIFO refuses). Reading to the end
    // waits for the writer to close.
    std::thread::spawn(move || std::fs::read(&kept).unwrap())
        .join()
        .unwrap();
    let log = cluster.nodes[FAULTY].output_containing(
        &[&format!(
            "part of aborted snapshot {id} failed after the abort, dropping it"
        )],
        Duration::from_secs(10),
    );
    assert!(log.contains("Illegal seek"), "the error is named:\n{log}");
    // Logged after the count is taken: INFO has it by now.
    assert_eq!(cluster.info(FAULTY).await["snapshot_writes_pending"], "0");
    next_completes(&cluster, &dirs, id, 0).await;
}
