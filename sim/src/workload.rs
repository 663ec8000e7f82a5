//! The simulated clients: Redis workers, and the chaos client that injects
//! faults while they run and then waits for the cluster to settle and reads
//! every node's history, store and trace state through the front door.

use crate::client::{to_reply, Redis};
use crate::judge::Collected;
use crate::net::Registry;
use crate::{Opts, Shared, CLIENT_PORT};
use gsmo_spec::consistency::{Call, ClientOp};
use gsmo_spec::kv::Reply;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::sleep;

/// Accounts of the bank (`TRANSFER`), each opened with this balance.
pub const ACCOUNTS: usize = 4;
pub const OPENING: i64 = 100;
/// How long the cluster has to settle once the workload is done.
const SETTLE: Duration = Duration::from_secs(60);

fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

fn salt(o: &Opts, who: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(o.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ who)
}

/// Worker `c`: connects to node `c % nodes`; worker 0 opens the accounts
/// first (acknowledged, so delivered before any transfer is issued), then
/// every worker issues `ops` random SET / INCR / GET / TRANSFER.
pub async fn client(o: Opts, c: usize, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    let mut rng = salt(&o, c as u64 + 1);
    let mut r = Redis::connect(&format!("n{}", c % o.nodes), CLIENT_PORT).await?;
    if c == 0 {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for a in 0..ACCOUNTS {
            args.push(format!("acct:{a}").into_bytes());
            args.push(OPENING.to_string().into_bytes());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = to_reply(&r.call(&args).await?);
        if reply != Reply::Ok {
            shared.borrow_mut().errors.push(format!("MSET: {reply:?}"));
        }
        shared.borrow_mut().opened = true;
    }
    while !shared.borrow().opened {
        sleep(Duration::from_millis(5)).await;
    }
    for i in 0..o.ops {
        sleep(Duration::from_millis(rng.u64(0..30))).await;
        let value = format!("{c}.{i}").into_bytes();
        let (key, call): (Vec<u8>, Call) = match rng.u8(0..10) {
            0..=2 => (format!("k{}", rng.u8(0..3)).into_bytes(), Call::Set(value)),
            3..=4 => (format!("ctr{}", rng.u8(0..2)).into_bytes(), Call::IncrBy(1)),
            5..=6 => {
                let key = match rng.bool() {
                    true => format!("k{}", rng.u8(0..3)),
                    false => format!("ctr{}", rng.u8(0..2)),
                };
                (key.into_bytes(), Call::Get)
            }
            _ => {
                let (a, b) = (rng.usize(0..ACCOUNTS), rng.usize(0..ACCOUNTS));
                let amount = rng.u8(1..60).to_string();
                let (a, b) = (format!("acct:{a}"), format!("acct:{b}"));
                let args: [&[u8]; 4] = [b"TRANSFER", a.as_bytes(), b.as_bytes(), amount.as_bytes()];
                let reply = to_reply(&r.call(&args).await?);
                let refused = Reply::Error(gsmo_spec::kv::INSUFFICIENT_FUNDS.into());
                if matches!(&reply, Reply::Error(_)) && reply != refused {
                    let mut s = shared.borrow_mut();
                    s.errors.push(format!("client {c}: TRANSFER: {reply:?}"));
                }
                continue;
            }
        };
        let invoke = now_us();
        let frame = match &call {
            Call::Set(v) => r.call(&[b"SET", &key, v]).await?,
            Call::IncrBy(_) => r.call(&[b"INCR", &key]).await?,
            Call::Get => r.call(&[b"GET", &key]).await?,
            Call::Del => unreachable!("not issued"),
        };
        let ret = now_us();
        let reply = to_reply(&frame);
        let mut s = shared.borrow_mut();
        if let Reply::Error(e) = &reply {
            s.errors.push(format!(
                "client {c}: {} {}: {e}",
                op_name(&call),
                String::from_utf8_lossy(&key)
            ));
        }
        if matches!(call, Call::IncrBy(_)) && matches!(reply, Reply::Int(_)) {
            *s.incrs.entry(key.clone()).or_default() += 1;
        }
        s.ops.push(ClientOp {
            client: c,
            key,
            call,
            reply,
            invoke,
            ret,
        });
    }
    shared.borrow_mut().workers_done += 1;
    Ok(())
}

fn op_name(c: &Call) -> &'static str {
    match c {
        Call::Get => "GET",
        Call::Set(_) => "SET",
        Call::Del => "DEL",
        Call::IncrBy(_) => "INCR",
    }
}

/// While the workers run: breaks peer connections, holds links between two
/// nodes for a while (a partition that heals), starts snapshots. Then lets
/// the cluster settle and collects what the judge needs.
pub async fn chaos(o: Opts, registry: Registry, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    let mut rng = salt(&o, 0);
    let node = |i: usize| format!("n{i}");
    while o.faults && shared.borrow().workers_done < o.clients {
        sleep(Duration::from_millis(rng.u64(20..300))).await;
        let done = match rng.u8(0..10) {
            0..=3 => registry.break_one(rng.u64(..)),
            4..=6 if o.nodes > 1 => {
                let a = rng.usize(0..o.nodes);
                let b = (a + 1 + rng.usize(0..o.nodes - 1)) % o.nodes;
                turmoil::hold(node(a), node(b));
                sleep(Duration::from_millis(rng.u64(50..800))).await;
                turmoil::release(node(a), node(b));
                true
            }
            _ => {
                let mut r = Redis::connect(&node(rng.usize(0..o.nodes)), CLIENT_PORT).await?;
                r.text(&[b"SNAPSHOT"]).await.is_ok()
            }
        };
        shared.borrow_mut().faults += u64::from(done);
    }
    while shared.borrow().workers_done < o.clients {
        sleep(Duration::from_millis(10)).await;
    }
    let end = settle(&o).await?;
    shared.borrow_mut().end = Some(end);
    Ok(())
}

/// Polls every node until all report the same store digest and no snapshot
/// in progress, twice in a row; then reads their histories and stores.
async fn settle(o: &Opts) -> std::io::Result<Collected> {
    let mut conns = Vec::new();
    for i in 0..o.nodes {
        conns.push(Redis::connect(&format!("n{i}"), CLIENT_PORT).await?);
    }
    let deadline = turmoil::sim_elapsed().unwrap_or_default() + SETTLE;
    let mut last: Option<Vec<String>> = None;
    let mut quiet = false;
    while turmoil::sim_elapsed().unwrap_or_default() < deadline {
        let mut seen = Vec::new();
        for r in &mut conns {
            let digest = r.text(&[b"GSMO.DIGEST"]).await?;
            let info = r.text(&[b"INFO", b"snapshots"]).await?;
            let busy = info
                .lines()
                .find_map(|l| l.strip_prefix("snapshots_in_progress:"))
                .unwrap_or("")
                .trim()
                .to_string();
            seen.push(format!("{digest} busy={busy}"));
        }
        let agreed = seen.iter().all(|s| *s == seen[0] && s.ends_with("busy="));
        if agreed && last.as_ref() == Some(&seen) {
            quiet = true;
            break;
        }
        last = Some(seen);
        sleep(Duration::from_millis(300)).await;
    }
    let mut end = Collected {
        quiet,
        last_seen: last.unwrap_or_default(),
        ..Collected::default()
    };
    for r in &mut conns {
        end.histories.push(r.strings(&[b"GSMO.HISTORY"]).await?);
        end.dumps.push(r.strings(&[b"GSMO.DUMP"]).await?);
        let info = r.text(&[b"INFO"]).await?;
        end.reconnects += info
            .split(',')
            .filter_map(|f| f.strip_prefix("reconnects_out="))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(end)
}
