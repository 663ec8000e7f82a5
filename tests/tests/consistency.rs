//! What Redis clients see, checked with the spec's Wing-Gong/Lowe checker
//! (`gsmo_spec::consistency`) against the documented consistency level of
//! the total-order modes: writes are replied to after local delivery in the
//! total order, reads are local. So
//! * clients of one node see a linearizable store (that node's replica moves
//!   through one sequence of states; a write takes effect between its call
//!   and its reply, a read at its call), and
//! * clients spread over nodes see a sequentially consistent one (every
//!   replica applies the same sequence; a client's own operations stay in its
//!   program order), which per-key checking confirms as a necessary condition.
//!
//! Histories are recorded with one monotonic clock for all clients.

use gsmo_spec::consistency::{check_per_key, Call, ClientOp, Order};
use gsmo_spec::kv::Reply;
use gsmo_spec::multicast::Mode;
use gsmo_tests::TestCluster;
use std::sync::Mutex;
use std::time::Instant;

const CLIENTS: usize = 6;
const OPS: usize = 80;
const KEYS: u64 = 3;

fn reply_of(r: redis::RedisResult<redis::Value>) -> Reply {
    match r {
        Ok(redis::Value::Okay) => Reply::Ok,
        Ok(redis::Value::Nil) => Reply::Bulk(None),
        Ok(redis::Value::BulkString(b)) => Reply::Bulk(Some(b)),
        Ok(redis::Value::Int(n)) => Reply::Int(n),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// One client's random mix of SET, GET, DEL and INCRBY on a few keys.
async fn client(
    cluster: &TestCluster,
    node: usize,
    id: usize,
    clock: Instant,
    history: &Mutex<Vec<ClientOp>>,
) {
    let mut con = cluster.connect(node).await;
    let mut x = (gsmo_tests::seed() ^ (id as u64 + 1)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..OPS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("reg:{}", x % KEYS).into_bytes();
        let (call, mut cmd) = match (x >> 8) % 8 {
            0..=2 => (Call::Get, redis::cmd("GET")),
            3..=4 => {
                // Integers, so INCRBY applies to whatever a SET left.
                let v = (id * 1000 + i).to_string().into_bytes();
                let mut c = redis::cmd("SET");
                c.arg(&key).arg(&v);
                (Call::Set(v), c)
            }
            5 => (Call::Del, redis::cmd("DEL")),
            _ => {
                let d = 1 + (x >> 20) as i64 % 5;
                let mut c = redis::cmd("INCRBY");
                c.arg(&key).arg(d);
                (Call::IncrBy(d), c)
            }
        };
        if matches!(call, Call::Get | Call::Del) {
            cmd.arg(&key);
        }
        let invoke = clock.elapsed().as_nanos() as u64;
        let reply = reply_of(cmd.query_async(&mut con).await);
        let ret = clock.elapsed().as_nanos() as u64;
        history.lock().unwrap().push(ClientOp {
            client: id,
            key,
            call,
            reply,
            invoke,
            ret,
        });
    }
}

async fn record(mode: Mode, node_of: impl Fn(usize) -> usize) -> Vec<ClientOp> {
    let cluster = TestCluster::start(3, mode);
    let clock = Instant::now();
    let history = Mutex::new(Vec::new());
    let clients = (0..CLIENTS).map(|c| client(&cluster, node_of(c), c, clock, &history));
    futures::future::join_all(clients).await;
    history.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_one_node_see_a_linearizable_store() {
    for mode in [Mode::TotalIsis, Mode::TotalSequencer] {
        let h = record(mode, |_| 1).await;
        assert_eq!(h.len(), CLIENTS * OPS);
        match check_per_key(&h, Order::RealTime) {
            Ok(n) => assert_eq!(n, CLIENTS * OPS, "{mode}"),
            Err(v) => panic!("{mode}: clients of node 1 saw a non-linearizable history: {v}"),
        }
        // The same history with one read doctored is caught: the check can fail.
        let mut bad = h.clone();
        let read = bad
            .iter_mut()
            .find(|op| op.call == Call::Get)
            .expect("the mix has reads");
        read.reply = Reply::Bulk(Some(b"never written".to_vec()));
        assert!(check_per_key(&bad, Order::RealTime).is_err(), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_across_nodes_see_a_sequentially_consistent_store() {
    for mode in [Mode::TotalIsis, Mode::TotalSequencer] {
        let h = record(mode, |c| c % 3).await;
        match check_per_key(&h, Order::Program) {
            Ok(n) => assert_eq!(n, CLIENTS * OPS, "{mode}"),
            Err(v) => panic!("{mode}: not sequentially consistent: {v}"),
        }
    }
}
