//! A data dir belongs to one cluster and each node id to one process; a dir
//! that cannot be written is reported at start; `--restore latest` never
//! rolls back silently past a damaged newer snapshot; `verify` refuses a
//! renamed snapshot directory. Real `gsmo` processes, real files.

use gsmo_node::snapshot::{SnapshotStore, Status};
use gsmo_spec::multicast::Mode;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_tests::{gsmo_bin, unique, Launch, TestCluster};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODE: Mode = Mode::TotalSequencer;

/// Starts one `gsmo node` that is expected to refuse to run; returns its
/// output once it exits (failing the test if it keeps running).
fn refused_node(args: &[&str]) -> String {
    let mut child = Command::new(gsmo_bin())
        .args([
            "node",
            "--cluster",
            "127.0.0.1:1,127.0.0.1:2",
            "--mode",
            MODE.name(),
            "--client-port",
            "0",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gsmo node");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(!status.success(), "the node should have refused:\n{text}");
            return text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "node {args:?} still running after 30 s instead of refusing:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn set_keys(cluster: &TestCluster, prefix: &str, n: usize) {
    let mut con = cluster.connect(0).await;
    for i in 0..n {
        let (): () = redis::cmd("SET")
            .arg(format!("{prefix}{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
}

async fn complete_snapshot(cluster: &TestCluster, store: &SnapshotStore) -> SnapshotId {
    let mut con = cluster.connect(1).await;
    let id: String = redis::cmd("SNAPSHOT").query_async(&mut con).await.unwrap();
    let id: SnapshotId = id.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.status(id).unwrap() {
            Status::Complete(_) => return id,
            Status::Aborted(why) => panic!("snapshot {id} aborted: {why}"),
            other => assert!(Instant::now() < deadline, "snapshot {id} still {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_on_one_data_dir_is_refused_naming_the_file() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let cluster_id = unique("owner");
    let first = Launch::new(2, MODE)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir])
        .start();

    // The same cluster id started twice (two clusters left at the default id):
    // node 0's lock is held by the running node 0.
    let out = refused_node(&["--id", "0", "--cluster-id", &cluster_id, "--data-dir", &dir]);
    let lock = data.path().join("node-0.lock").display().to_string();
    assert!(out.contains(&lock), "names the lock file:\n{out}");
    assert!(out.contains("already runs on this data dir"), "{out}");
    let info = first.info(0).await;
    assert!(
        out.contains(&format!("pid {}", info["process_id"])),
        "names the holder's pid {}:\n{out}",
        info["process_id"]
    );

    // Another cluster: refused by the dir's owner file, whatever its node ids.
    let out = refused_node(&["--id", "1", "--cluster-id", "intruder", "--data-dir", &dir]);
    let owner = data.path().join("CLUSTER").display().to_string();
    assert!(out.contains(&owner), "names the CLUSTER file:\n{out}");
    assert!(
        out.contains(&format!("belongs to cluster `{cluster_id}`")),
        "{out}"
    );

    // The first cluster is unharmed and still snapshots into its dir.
    let store = SnapshotStore::open(data.path()).unwrap();
    set_keys(&first, "k", 3).await;
    complete_snapshot(&first, &store).await;
    assert_eq!(first.info(1).await["snapshot_store_errors"], "0");
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_data_dir_is_reported_at_start() {
    let base = tempfile::tempdir().unwrap();
    let ro = base.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    // Root ignores permission bits, so make the file system itself read-only.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&ro)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a read-only tmpfs here (needs root, as in CI)");
        return;
    }
    let _mount = Mount(ro.clone());
    let dir = ro.display().to_string();
    let out = refused_node(&["--id", "0", "--cluster-id", "ro", "--data-dir", &dir]);
    assert!(out.contains(&dir), "names the dir:\n{out}");
    assert!(out.contains("not writable"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        !out.contains("listening"),
        "refused before opening any port:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_newest_manifest_is_refused_and_a_renamed_dir_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let cluster_id = unique("newest");
    let store = SnapshotStore::open(data.path()).unwrap();
    let cluster = Launch::new(2, MODE)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir])
        .start();
    set_keys(&cluster, "old", 4).await;
    let older = complete_snapshot(&cluster, &store).await;
    set_keys(&cluster, "new", 3).await;
    let newer = complete_snapshot(&cluster, &store).await;
    drop(cluster);

    let manifest = store.manifest_path(newer);
    let len = std::fs::metadata(&manifest).unwrap().len() as usize;
    flip_byte(&manifest, len - 2);
    let name = manifest.display().to_string();

    // `latest` refuses, naming the damaged file and the way out.
    let out = refused_node(&[
        "--id",
        "0",
        "--cluster-id",
        &cluster_id,
        "--data-dir",
        &dir,
        "--restore",
        "latest",
    ]);
    assert!(out.contains(&name), "names the damaged manifest:\n{out}");
    assert!(
        out.contains(&format!("newest snapshot {newer} is damaged")),
        "{out}"
    );
    assert!(out.contains("latest-valid"), "{out}");
    let (ok, out) = gsmo_tests::gsmo(&["snapshot", "verify", "latest", "--data-dir", &dir]);
    assert!(
        !ok && out.contains(&name),
        "verify latest refuses too:\n{out}"
    );

    // `latest-valid` skips it out loud, and says what it restores and when it was cut.
    let restored = Launch::new(2, MODE)
        .cluster_id(&cluster_id)
        .args(&["--data-dir", &dir, "--restore", "latest-valid"])
        .start();
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..2 {
        loop {
            let out = restored.nodes[i].output();
            if out.contains(&format!("skipping damaged snapshot {newer}"))
                && out.contains(&format!("restoring snapshot {older}, cut at "))
            {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}:\n{out}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(restored.info(i).await["restored_from"], older.to_string());
        // Writes in flight at the cut are re-injected: poll until they land.
        loop {
            let keys = restored.dump(i).await.len();
            if keys == 4 {
                break;
            }
            assert!(
                keys < 4,
                "node {i} holds {keys} keys: more than the older cut"
            );
            assert!(Instant::now() < deadline, "node {i} holds {keys} of 4 keys");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(restored);

    // A snapshot directory renamed to another id: verify names the file.
    let renamed = SnapshotId {
        initiator: older.initiator,
        seq: older.seq + 100,
    };
    std::fs::rename(store.dir(older), store.dir(renamed)).unwrap();
    let (ok, out) = gsmo_tests::gsmo(&[
        "snapshot",
        "verify",
        &renamed.to_string(),
        "--data-dir",
        &dir,
    ]);
    let moved = store.manifest_path(renamed).display().to_string();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&moved) && out.contains(&format!("holds snapshot {older}")),
        "{out}"
    );
}
