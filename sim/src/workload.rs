//! The simulated clients: Redis workers, and the chaos client that injects
//! faults (a crash among them) while they run and then waits for the cluster
//! to settle and reads every live node's history, store and trace state
//! through the front door.

use crate::client::{info_field, to_reply, Redis};
use crate::crash;
use crate::judge::Collected;
use crate::net::Registry;
use crate::{Batching, Opts, Shared, CLIENT_PORT};
use gsmo_spec::consistency::{Call, ClientOp};
use gsmo_spec::kv::Reply;
use redis_protocol::resp2::types::BytesFrame;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::sleep;

/// Accounts of the bank (`TRANSFER`), each opened with this balance.
pub const ACCOUNTS: usize = 4;
pub const OPENING: i64 = 100;
/// How long the cluster has to settle once the workload is done.
const SETTLE: Duration = Duration::from_secs(60);

pub(crate) fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

pub(crate) fn salt(o: &Opts, who: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(o.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ who)
}

/// An error reply a worker got; whether a crash explains it is the judge's call.
#[derive(Clone, Debug)]
pub struct ErrorReply {
    pub client: usize,
    /// The command and key, e.g. `SET k1`.
    pub what: String,
    pub text: String,
    /// Simulated microseconds when the reply came.
    pub at_us: u64,
    pub write: bool,
}

/// One request with the promised bound on its reply: `Ok(None)` if the
/// node crashed first (the request's outcome is unknown), `Err` if the node
/// failed otherwise or did not answer in time.
pub(crate) async fn bounded(
    r: &mut Redis,
    args: &[&[u8]],
    node: usize,
    shared: &RefCell<Shared>,
) -> std::io::Result<Option<BytesFrame>> {
    let what = || String::from_utf8_lossy(&args.join(&b' ')).into_owned();
    within(r.call(args), what, node, shared).await
}

/// `io` within the promised bound on a reply, as [`bounded`] judges it;
/// `what` names the request if it was not answered in time.
async fn within<T>(
    io: impl std::future::Future<Output = std::io::Result<T>>,
    what: impl FnOnce() -> String,
    node: usize,
    shared: &RefCell<Shared>,
) -> std::io::Result<Option<T>> {
    let bound = crash::reply_bound();
    match tokio::time::timeout(bound, io).await {
        Ok(Ok(t)) => Ok(Some(t)),
        Ok(Err(_)) if shared.borrow().is_down(node) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) if shared.borrow().is_down(node) => Ok(None),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "n{node} did not answer {} within {} ms",
                what(),
                bound.as_millis()
            ),
        )),
    }
}

/// Worker `c`: connects to node `c % nodes`; worker 0 opens the accounts
/// first (acknowledged, so delivered before any transfer is issued), then
/// every worker issues `ops` random SET / INCR / GET / TRANSFER, in
/// pipelines of `pipeline` commands. A worker whose node crashed records its
/// requests in flight as of unknown outcome and stops; one whose node does
/// not answer in time reports it and stops.
pub async fn client(o: Opts, c: usize, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    let result = work(&o, c, &shared).await;
    let mut s = shared.borrow_mut();
    if let Err(e) = result {
        s.failures.push(format!("client {c}: {e}"));
        s.opened = true;
    }
    s.workers_done += 1;
    Ok(())
}

/// One command a worker sends, and what the judge checks of its reply.
struct Command {
    args: Vec<Vec<u8>>,
    /// The operation whose reply the histories check; `None` for a TRANSFER,
    /// judged by the money every store conserves.
    op: Option<ClientOp>,
}

impl Command {
    /// The command and key, e.g. `SET k1`, for an error reply.
    fn what(&self) -> String {
        let key = match &self.op {
            Some(op) => vec![op_name(&op.call).as_bytes(), &op.key[..]],
            None => self.args[..3].iter().map(Vec::as_slice).collect(),
        };
        String::from_utf8_lossy(&key.join(&b' ')).into_owned()
    }
}

/// Worker `c`'s `i`th command, drawn from `rng`.
fn draw(rng: &mut fastrand::Rng, c: usize, i: usize) -> Command {
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
            let args = [
                "TRANSFER".into(),
                format!("acct:{a}"),
                format!("acct:{b}"),
                amount,
            ];
            return Command {
                args: args.map(String::into_bytes).to_vec(),
                op: None,
            };
        }
    };
    let args = match &call {
        Call::Set(v) => vec![b"SET".to_vec(), key.clone(), v.clone()],
        Call::IncrBy(_) => vec![b"INCR".to_vec(), key.clone()],
        Call::Get => vec![b"GET".to_vec(), key.clone()],
        Call::Del => unreachable!("not issued"),
    };
    let op = ClientOp {
        client: c,
        key,
        call,
        reply: Reply::Bulk(None),
        invoke: 0,
        ret: 0,
    };
    Command { args, op: Some(op) }
}

async fn work(o: &Opts, c: usize, shared: &RefCell<Shared>) -> std::io::Result<()> {
    let mut rng = salt(o, c as u64 + 1);
    let node = c % o.nodes;
    let mut r = Redis::connect(&format!("n{node}"), CLIENT_PORT).await?;
    if c == 0 {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for a in 0..ACCOUNTS {
            args.push(format!("acct:{a}").into_bytes());
            args.push(OPENING.to_string().into_bytes());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = to_reply(&r.call(&args).await?);
        if reply != Reply::Ok {
            shared
                .borrow_mut()
                .failures
                .push(format!("MSET: {reply:?}"));
        }
        shared.borrow_mut().opened = true;
    }
    while !shared.borrow().opened {
        sleep(Duration::from_millis(5)).await;
    }
    let mut invoked = 0;
    let mut i = 0;
    while i < o.ops {
        sleep(Duration::from_millis(rng.u64(0..30))).await;
        let mut pipeline: Vec<Command> = (i..o.ops.min(i + o.pipeline))
            .map(|i| draw(&mut rng, c, i))
            .collect();
        i += pipeline.len();
        // The commands leave one after another: each is invoked at least a
        // microsecond after the one before, so the histories' program order
        // (by invocation) is the order they were sent in.
        for op in pipeline.iter_mut().filter_map(|cmd| cmd.op.as_mut()) {
            invoked = now_us().max(invoked + 1);
            op.invoke = invoked;
        }
        let args: Vec<Vec<&[u8]>> = pipeline
            .iter()
            .map(|cmd| cmd.args.iter().map(Vec::as_slice).collect())
            .collect();
        let what = || pipeline[0].what();
        let sent = within(r.send(args.iter().map(Vec::as_slice)), what, node, shared).await?;
        let mut replies = Vec::with_capacity(pipeline.len());
        if sent.is_some() {
            // Each reply within the bound of the one before: a read waits for
            // the connection's earlier writes, and a write behind a read is
            // dispatched once the read is answered.
            for cmd in &pipeline {
                match within(r.recv(), || cmd.what(), node, shared).await? {
                    Some(frame) => replies.push((frame, now_us())),
                    None => break,
                }
            }
        }
        let answered = replies.len();
        let mut s = shared.borrow_mut();
        for (cmd, (frame, ret)) in pipeline.iter_mut().zip(replies) {
            let reply = to_reply(&frame);
            if let Reply::Error(text) = &reply {
                let refused = cmd.op.is_none() && *text == gsmo_spec::kv::INSUFFICIENT_FUNDS;
                if !refused {
                    let write = cmd.op.as_ref().is_none_or(|op| op.call != Call::Get);
                    s.errors.push(ErrorReply {
                        client: c,
                        what: cmd.what(),
                        text: text.clone(),
                        at_us: ret,
                        write,
                    });
                }
            }
            if let Some(mut op) = cmd.op.take() {
                op.reply = reply;
                op.ret = ret;
                s.ops.push(op);
            }
        }
        if answered < pipeline.len() {
            // In flight when the node crashed: they may have reached the others.
            let now = now_us();
            for mut op in pipeline.into_iter().skip(answered).filter_map(|cmd| cmd.op) {
                op.ret = now;
                s.unknown.push(op);
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Polls every node until all report no snapshot in progress and the same
/// store digest twice in a row (after a crash: each its own digest unchanged
/// for 1.2 s), within [`SETTLE`]; whether they did, and what they said last.
async fn quiesce(conns: &mut [Redis], crashed: bool) -> std::io::Result<(bool, Vec<String>)> {
    let need = if crashed { 4 } else { 1 };
    let deadline = turmoil::sim_elapsed().unwrap_or_default() + SETTLE;
    let mut last: Option<Vec<String>> = None;
    let mut streak = 0;
    while turmoil::sim_elapsed().unwrap_or_default() < deadline {
        let mut seen = Vec::new();
        for r in conns.iter_mut() {
            let digest = r.text(&[b"GSMO.DIGEST"]).await?;
            let busy = in_progress(&r.text(&[b"INFO", b"snapshots"]).await?);
            seen.push(format!("{digest} busy={busy}"));
        }
        let idle = seen.iter().all(|s| s.ends_with("busy="));
        let agreed = crashed || seen.iter().all(|s| *s == seen[0]);
        streak = match idle && agreed && last.as_ref() == Some(&seen) {
            true => streak + 1,
            false => 0,
        };
        if streak >= need {
            return Ok((true, seen));
        }
        last = Some(seen);
        sleep(Duration::from_millis(300)).await;
    }
    Ok((false, last.unwrap_or_default()))
}

/// `INFO snapshots`' list of the snapshots in progress.
pub(crate) fn in_progress(info: &str) -> String {
    info_field(info, "snapshots_in_progress")
        .unwrap_or("")
        .to_string()
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
/// nodes for a while (a partition that heals), starts snapshots (the crash
/// is [`crash::crasher`]'s). Then lets the cluster settle and collects what
/// the judge needs.
pub async fn chaos(o: Opts, registry: Registry, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    let mut rng = salt(&o, 0);
    let node = |i: usize| format!("n{i}");
    while o.faults && shared.borrow().workers_done < o.clients {
        sleep(Duration::from_millis(rng.u64(20..300))).await;
        let live: Vec<usize> = (0..o.nodes)
            .filter(|&i| !shared.borrow().is_down(i))
            .collect();
        let done = match rng.u8(0..10) {
            0..=3 => registry.break_one(rng.u64(..)),
            4..=6 if live.len() > 1 => {
                let a = rng.usize(0..live.len());
                let b = (a + 1 + rng.usize(0..live.len() - 1)) % live.len();
                let (a, b) = (node(live[a]), node(live[b]));
                turmoil::hold(a.clone(), b.clone());
                sleep(Duration::from_millis(rng.u64(50..800))).await;
                turmoil::release(a, b);
                true
            }
            _ => {
                let at = live[rng.usize(0..live.len())];
                // Bounded: the node may crash while asked, and a crashed
                // host, cut off, never answers nor closes.
                let asked = async {
                    let mut r = Redis::connect(&node(at), CLIENT_PORT).await?;
                    r.call(&[b"SNAPSHOT"]).await
                };
                match tokio::time::timeout(crash::reply_bound(), asked).await {
                    Ok(Ok(BytesFrame::BulkString(_))) => true,
                    // The node's bound on snapshots in progress, met when
                    // starts come faster than snapshots end (a crashed
                    // peer's wait out their timeout): no fault injected.
                    Ok(Ok(BytesFrame::Error(e)))
                        if e.starts_with(gsmo_spec::node::SNAPSHOT_REFUSED) =>
                    {
                        false
                    }
                    _ if shared.borrow().is_down(at) => false,
                    Ok(Ok(other)) => {
                        return Err(format!("n{at} answered SNAPSHOT with {other:?}").into())
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        return Err(format!(
                            "n{at} did not answer SNAPSHOT within {} ms",
                            crash::reply_bound().as_millis()
                        )
                        .into())
                    }
                }
            }
        };
        shared.borrow_mut().faults += u64::from(done);
    }
    let crashes = crash::plan(&o).is_some();
    while shared.borrow().workers_done < o.clients || (crashes && shared.borrow().crashed.is_none())
    {
        sleep(Duration::from_millis(10)).await;
    }
    let end = settle(&o, &shared).await?;
    shared.borrow_mut().end = Some(end);
    Ok(())
}

/// Probes the survivors of a crash once it is unreachable to them; then
/// polls every live node until all report no snapshot in progress and the
/// same store digest twice in a row (without a crash), or each its own digest
/// unchanged for 1.2 s (after one: survivors need not agree); with a small
/// link buffer and no crash, writes once at every node and waits again; then
/// reads their histories and stores.
async fn settle(o: &Opts, shared: &RefCell<Shared>) -> std::io::Result<Collected> {
    let crashed = shared.borrow().crashed;
    let nodes: Vec<usize> = (0..o.nodes)
        .filter(|&i| !shared.borrow().is_down(i))
        .collect();
    let mut conns = Vec::new();
    for i in &nodes {
        conns.push(Redis::connect(&format!("n{i}"), CLIENT_PORT).await?);
    }
    let mut probes = Vec::new();
    if let Some((_, at)) = crashed {
        sleep(Duration::from_micros(
            crash::unreachable_by(at).saturating_sub(now_us()),
        ))
        .await;
        for (r, &i) in conns.iter_mut().zip(&nodes) {
            probes.push(crash::probe(r, i, shared).await?);
        }
    }
    let (mut quiet, mut last) = quiesce(&mut conns, crashed.is_some()).await?;
    // Flow control refuses writes for a while, never for good: quiet, every
    // node takes a write (`properties::writes_flow`, on the real loops).
    let mut flow = Vec::new();
    if quiet && crashed.is_none() && o.link_buffer.is_some() {
        for (r, &i) in conns.iter_mut().zip(&nodes) {
            let key = format!("flow:n{i}");
            let set: [&[u8]; 3] = [b"SET", key.as_bytes(), b"1"];
            flow.push((i, to_reply(&r.call(&set).await?)));
        }
        (quiet, last) = quiesce(&mut conns, false).await?;
    }
    let mut end = Collected {
        quiet,
        last_seen: last,
        nodes,
        probes,
        flow,
        ..Collected::default()
    };
    for r in &mut conns {
        end.histories.push(r.strings(&[b"GSMO.HISTORY"]).await?);
        end.dumps.push(r.strings(&[b"GSMO.DUMP"]).await?);
        let info = r.text(&[b"INFO"]).await?;
        end.reconnects += crate::client::peer_sum(&info, "reconnects_out");
        end.batching.add(&Batching::from_info(&info));
        end.squeeze.add(&crate::squeeze::Squeeze::from_info(&info));
    }
    Ok(end)
}
