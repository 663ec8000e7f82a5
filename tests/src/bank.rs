//! The bank workload the snapshot tests share, and the check that a cluster
//! restored from a snapshot settled on exactly the cut: one copy, so every
//! test that restores judges it the same way (through the spec's own restore).

use crate::TestCluster;
use gsmo_spec::node::Part;
use gsmo_spec::sim::Cluster as SimCluster;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::NodeId;
use std::time::{Duration, Instant};

/// Opens the bank: `acct:0..accounts` each set to `balance`, through node 0.
pub async fn open_accounts(cluster: &TestCluster, accounts: usize, balance: i64) {
    let mut con = cluster.connect(0).await;
    for a in 0..accounts {
        let (): () = redis::cmd("SET")
            .arg(format!("acct:{a}"))
            .arg(balance)
            .query_async(&mut con)
            .await
            .unwrap();
    }
}

/// One client's share of a bank workload: `transfers` TRANSFERs between
/// random accounts `acct:0..accounts` on node `node`, drawn from `seed`
/// (xorshift, so a seed repeats the run); an "insufficient funds" refusal is
/// part of the workload. Counts each finished transfer in `done`, which lets
/// a test spread snapshots over the run.
pub async fn transferrer(
    cluster: &TestCluster,
    node: NodeId,
    seed: u64,
    accounts: usize,
    transfers: usize,
    done: &std::sync::atomic::AtomicUsize,
) {
    let mut con = cluster.connect(node).await;
    let mut x = seed | 1;
    for _ in 0..transfers {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let from = x as usize % accounts;
        let to = (from + 1 + (x >> 8) as usize % (accounts - 1)) % accounts;
        let amount = 1 + (x >> 16) % 50;
        let r: redis::RedisResult<redis::Value> = redis::cmd("TRANSFER")
            .arg(format!("acct:{from}"))
            .arg(format!("acct:{to}"))
            .arg(amount)
            .query_async(&mut con)
            .await;
        match r {
            Ok(redis::Value::Okay) => {}
            Err(e) if e.to_string().contains("insufficient funds") => {}
            other => panic!("TRANSFER answered {other:?}"),
        }
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Starts a snapshot at node `node` and returns its id.
pub async fn snapshot_at(cluster: &TestCluster, node: NodeId) -> SnapshotId {
    let mut con = cluster.connect(node).await;
    let id: String = redis::cmd("SNAPSHOT").query_async(&mut con).await.unwrap();
    id.parse().unwrap()
}

/// Waits (with a deadline) until every node of `restored` has delivered
/// exactly the writes sent before snapshot `id`'s cut, no more and no fewer,
/// holds nothing back, and its store equals the one the spec's own restore of
/// `parts` settles on. Returns that store, keys and values as text bytes.
pub async fn expect_restored(
    restored: &TestCluster,
    parts: &[Part],
    id: SnapshotId,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let sent_before_cut: Vec<u64> = parts.iter().map(|p| p.state.multicast.sent()).collect();
    let mut sim = SimCluster::restore(parts).unwrap();
    sim.quiesce().unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = sim.nodes[0]
        .kv()
        .iter()
        .map(|(k, v)| (k.to_vec(), v.render()))
        .collect();
    let want = sent_before_cut
        .iter()
        .enumerate()
        .map(|(i, d)| format!("n{i}={d}"))
        .collect::<Vec<_>>()
        .join(",");
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..restored.len() {
        loop {
            let info = restored.info(i).await;
            if info["delivered_by_origin"] == want {
                assert_eq!(info["restored_from"], id.to_string());
                assert_eq!(info["holdback_depth"], "0");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} after restore: delivered {} != sent before the cut {want}",
                info["delivered_by_origin"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            restored.dump(i).await,
            expected,
            "node {i} differs from the spec's restore"
        );
    }
    expected
}

/// The money in `store`: the sum of the `acct:*` balances.
pub fn money(store: &[(Vec<u8>, Vec<u8>)]) -> i64 {
    store
        .iter()
        .filter(|(k, _)| k.starts_with(b"acct:"))
        .map(|(_, v)| std::str::from_utf8(v).unwrap().parse::<i64>().unwrap())
        .sum()
}
