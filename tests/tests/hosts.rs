//! Three "hosts": each node in its own network namespace with its own address
//! (a veth pair into a test bridge) and its own data dir, peers authenticated
//! with a cluster secret. Nothing is shared but the network: snapshots under
//! TRANSFER load complete in every node's dir, verify over the three dirs, and
//! a restore (each node from its own dir) of a cut with messages in flight
//! loses none of them.
//!
//! Needs root and `ip netns` (CI has both); otherwise the test says SKIPPED
//! loudly and passes. The namespaces and the bridge are removed on drop, also
//! when an assertion fails.

use gsmo_node::snapshot::cli::DataDirs;
use gsmo_node::snapshot::{SnapshotStore, Status};
use gsmo_spec::multicast::Mode;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_tests::{expect_restored, gsmo, money, open_accounts, try_run, Host, Launch};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const ACCOUNTS: usize = 6;
const OPENING: i64 = 1000;
const TRANSFERS: usize = 80;
const SNAPSHOTS: usize = 3;

/// `ip` with `args`; Err with what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    try_run("ip", args)
}

/// The namespaces, veths and bridge of one test; deleted on drop.
struct Hosts {
    bridge: String,
    namespaces: Vec<String>,
    hosts: Vec<Host>,
}

impl Hosts {
    /// One namespace per node on a /24 of their own (random, so parallel runs
    /// on one machine do not collide), bridged with the test's namespace.
    fn create(n: usize) -> Result<Hosts, String> {
        let tag = std::process::id() % 100_000;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let (a, b) = (100 + nanos % 100, (nanos / 100) % 250);
        let mut hosts = Hosts {
            bridge: format!("gs{tag}b"),
            namespaces: Vec::new(),
            hosts: Vec::new(),
        };
        let br = hosts.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.{a}.{b}.254/24"), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..n {
            let ns = format!("gsmo-{tag}-{nanos}-{i}");
            ip(&["netns", "add", &ns])?;
            hosts.namespaces.push(ns.clone());
            let (outside, inside) = (format!("gs{tag}h{i}"), format!("gs{tag}n{i}"));
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", &br, "up"])?;
            let addr = format!("10.{a}.{b}.{}", i + 1);
            let inns = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            inns(&["addr", "add", &format!("{addr}/24"), "dev", &inside])?;
            inns(&["link", "set", &inside, "up"])?;
            inns(&["link", "set", "lo", "up"])?;
            hosts.hosts.push(Host {
                ip: addr,
                wrap: vec!["ip".into(), "netns".into(), "exec".into(), ns],
            });
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the other end.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// The hosts, or `None` after saying loudly why this machine cannot have them.
fn hosts_or_skip() -> Option<Hosts> {
    if !gsmo_tests::is_root() {
        eprintln!("SKIPPED: network namespaces need root (CI runs as root)");
        return None;
    }
    match Hosts::create(NODES) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("SKIPPED: cannot create network namespaces here: {e}");
            None
        }
    }
}

/// Polls until `id` is complete in `store` (each node writes the manifest into
/// its own dir once the commit reaches it).
async fn complete_in(store: &SnapshotStore, id: SnapshotId) -> gsmo_node::snapshot::Manifest {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.status(id).unwrap() {
            Status::Complete(m) => return m,
            Status::Aborted(why) => panic!("snapshot {id} aborted: {why}"),
            other => assert!(
                Instant::now() < deadline,
                "snapshot {id} in {}: {other}",
                store.root().display()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_with_their_own_disks_snapshot_verify_and_restore() {
    let Some(hosts) = hosts_or_skip() else {
        return;
    };
    let mode = Mode::TotalIsis;
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..NODES)
        .map(|i| base.path().join(format!("n{i}")))
        .collect();
    let secret = base.path().join("secret");
    std::fs::write(&secret, "three hosts, one secret").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let node_dir = base.path().join("n{id}").display().to_string();
    let secret_file = secret.display().to_string();
    let launch = |extra: &[&str]| {
        Launch::new(NODES, mode)
            .cluster_id("hosts")
            .hosts(hosts.hosts.clone())
            .args(&[
                "--data-dir",
                &node_dir,
                "--cluster-secret-file",
                &secret_file,
                "--snapshot-keep",
                "10",
            ])
            .args(extra)
    };
    let cluster = launch(&["--delay", "0-5"]).start();
    let total = OPENING * ACCOUNTS as i64;
    open_accounts(&cluster, ACCOUNTS, OPENING).await;

    let done = AtomicUsize::new(0);
    let all = NODES * 2 * TRANSFERS;
    let mut clients = Vec::new();
    for node in 0..NODES {
        for c in 0..2 {
            let seed = gsmo_tests::seed() ^ (node * 7 + c * 13 + 1) as u64;
            clients.push(gsmo_tests::transferrer(
                &cluster, node, seed, ACCOUNTS, TRANSFERS, &done,
            ));
        }
    }
    let snapshotter = async {
        let mut ids = Vec::new();
        for k in 0..SNAPSHOTS {
            while done.load(Ordering::Relaxed) < (k + 1) * all / (SNAPSHOTS + 1) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ids.push(gsmo_tests::snapshot_at(&cluster, k % NODES).await);
        }
        ids
    };
    let (_, ids) = futures::join!(futures::future::join_all(clients), snapshotter);
    assert_eq!(done.load(Ordering::Relaxed), all);

    let stores: Vec<SnapshotStore> = dirs
        .iter()
        .map(|d| SnapshotStore::open(d).unwrap())
        .collect();
    let dir_args: Vec<String> = dirs
        .iter()
        .flat_map(|d| ["--data-dir".to_string(), d.display().to_string()])
        .collect();
    let mut best: Option<(u64, SnapshotId)> = None;
    for &id in &ids {
        for (i, store) in stores.iter().enumerate() {
            let m = complete_in(store, id).await;
            // Each dir holds its own node's part and nobody else's.
            assert_eq!(
                store.parts_present(id),
                vec![i],
                "{}",
                store.root().display()
            );
            if i == 0 {
                let in_flight = m.parts.iter().map(|p| p.channel_messages).sum::<u64>();
                eprintln!("snapshot {id}: {in_flight} channel messages recorded");
                if best.is_none_or(|(n, _)| in_flight >= n) {
                    best = Some((in_flight, id));
                }
            }
        }
        let mut args = vec!["snapshot".to_string(), "verify".into(), id.to_string()];
        args.extend(dir_args.iter().cloned());
        args.extend(["--bank-prefix".into(), "acct:".into()]);
        args.extend(["--bank-total".into(), total.to_string()]);
        let (ok, out) = gsmo(&args);
        assert!(ok, "snapshot {id} failed verification:\n{out}");
        for check in ["conservation", "exact channel state", "consistent cut"] {
            assert!(
                out.lines().any(|l| l.contains("PASS") && l.contains(check)),
                "`{check}` not passed for {id}:\n{out}"
            );
        }
        // One node's dir alone cannot verify: the other parts are elsewhere.
        let (ok, out) = gsmo(&[
            "snapshot",
            "verify",
            &id.to_string(),
            "--data-dir",
            &dirs[0].display().to_string(),
        ]);
        assert!(!ok && out.contains("part-1.gsmo"), "{out}");
    }
    for i in 0..NODES {
        assert_eq!(cluster.info(i).await["snapshots_aborted"], "0");
    }
    drop(cluster);

    // Restore the cut with the most messages in flight, each node from its own dir.
    let (in_flight, id) = best.unwrap();
    assert!(in_flight > 0, "no snapshot recorded a message in flight");
    let restored = launch(&["--restore", &id.to_string()]).start();
    for i in 0..NODES {
        // What it restores and when it was cut, and then that its store is rebuilt.
        restored.nodes[i].output_containing(
            &[
                &format!("restoring snapshot {id}, cut at "),
                &format!("restored snapshot {id} ("),
            ],
            Duration::from_secs(10),
        );
    }
    let data_dirs = DataDirs::open(&dirs).unwrap();
    let (manifest, _) = data_dirs.manifest(id).unwrap();
    let parts: Vec<_> = data_dirs
        .load(&manifest)
        .unwrap()
        .into_iter()
        .map(|p| p.part)
        .collect();
    let expected = expect_restored(&restored, &parts, id).await;
    assert_eq!(
        money(&expected),
        total,
        "money conserved through snapshot and restore"
    );
}
