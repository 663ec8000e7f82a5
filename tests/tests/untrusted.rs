//! Untrusted networks and clients, on real processes: impostor peers are
//! refused and take nothing, clients must AUTH when a password is set, and
//! hostile clients (huge pipelined replies, idle connections by the hundred)
//! are cut off or turned away while everyone else keeps being served.

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use gsmo_node::frame::{self, codec, MAX_HANDSHAKE_FRAME};
use gsmo_node::handshake::{self, Answer, Finish, Hello};
use gsmo_node::secret::{Secret, CLUSTER_SECRET_ENV};
use gsmo_spec::multicast::Mode;
use gsmo_tests::{check_ordering, gsmo_bin, have_tool, is_running, Launch, TestCluster};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Framed;

/// Long enough for any honest reaction; a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(20);
const SECRET: &str = "correct horse battery staple";

/// Records everything written through it: a wiretap on the dialer's side.
struct Tap<S> {
    inner: S,
    written: Arc<Mutex<Vec<u8>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn peer_conn(
    addr: &str,
) -> Framed<tokio::net::TcpStream, tokio_util::codec::LengthDelimitedCodec> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    Framed::new(s, codec(MAX_HANDSHAKE_FRAME))
}

async fn next_answer(
    f: &mut Framed<tokio::net::TcpStream, tokio_util::codec::LengthDelimitedCodec>,
) -> Answer {
    let body = tokio::time::timeout(PATIENCE, f.next())
        .await
        .expect("an answer in time")
        .expect("an answer before the node hung up")
        .unwrap();
    frame::decode::<Answer>(&body).unwrap()
}

/// Plays a dialer that ignores the node's proof and answers the challenge with
/// a proof made with `key`; returns the node's verdict.
async fn impostor(addr: &str, hello: &Hello, key: Option<&Secret>) -> Answer {
    let mut f = peer_conn(addr).await;
    let hello = Hello {
        nonce: gsmo_node::secret::random_bytes(),
        ..hello.clone()
    };
    f.send(frame::encode(&hello).unwrap()).await.unwrap();
    let Answer::Challenge { nonce, .. } = next_answer(&mut f).await else {
        panic!("expected a challenge");
    };
    let proof = handshake::dialer_proof(key, &hello, &nonce).unwrap();
    f.send(frame::encode(&Finish::Proof(proof)).unwrap())
        .await
        .unwrap();
    next_answer(&mut f).await
}

fn refusal(a: Answer) -> String {
    match a {
        Answer::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostor_peers_are_refused_and_the_real_node_joins() {
    let mode = Mode::TotalIsis;
    let mut cluster = Launch::new(3, mode)
        .env(CLUSTER_SECRET_ENV, SECRET)
        .hold(1)
        .start();
    let addr = cluster.peers[0].clone();
    // Node 2 is not running: every impostor below claims its slot at node 0.
    let as_n2 = Hello::new(&cluster.cluster_id, mode, 3, 2, 0);

    // Wrong secret, no secret: refused after the challenge.
    let wrong = Secret::new("guess");
    for key in [Some(&wrong), None] {
        let why = refusal(impostor(&addr, &as_n2, key).await);
        assert!(why.contains("authentication failed"), "{why}");
    }
    // The library's own dialer without the secret stops at the node's proof.
    let mut f = peer_conn(&addr).await;
    let err = handshake::offer(&mut f, &as_n2).await.unwrap_err();
    assert!(
        matches!(err, handshake::HandshakeError::PeerUnauthenticated),
        "{err}"
    );

    // A genuine node 2 handshake, recorded on the wire (here against a stand-in
    // acceptor with the real secret), then replayed byte for byte to node 0.
    let secret = Some(Arc::new(Secret::new(SECRET)));
    let (a, b) = tokio::io::duplex(4096);
    let written = Arc::new(Mutex::new(Vec::new()));
    let mut dialer = Framed::new(
        Tap {
            inner: a,
            written: written.clone(),
        },
        codec(MAX_HANDSHAKE_FRAME),
    );
    let mut stand_in = Framed::new(b, codec(MAX_HANDSHAKE_FRAME));
    let ours = Hello::new(&cluster.cluster_id, mode, 3, 2, 0).with_secret(secret.clone());
    let genuine = as_n2.clone().with_secret(secret);
    let (offered, accepted) = tokio::join!(
        handshake::offer(&mut dialer, &genuine),
        handshake::accept(&mut stand_in, &ours, |_| async { Ok((0, ())) })
    );
    offered.unwrap();
    accepted.unwrap();
    let captured = written.lock().unwrap().clone();
    let mut replay = TcpStream::connect(&addr).unwrap();
    replay.set_read_timeout(Some(PATIENCE)).unwrap();
    replay.write_all(&captured).unwrap();
    let mut got = Vec::new();
    let _ = replay.read_to_end(&mut got);
    let mut codec = codec(MAX_HANDSHAKE_FRAME);
    let mut buf = BytesMut::from(&got[..]);
    let mut answers = Vec::new();
    while let Ok(Some(body)) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf) {
        answers.push(frame::decode::<Answer>(&body).unwrap());
    }
    assert!(
        matches!(answers.first(), Some(Answer::Challenge { .. })),
        "{answers:?}"
    );
    let why = refusal(answers.pop().unwrap());
    assert!(why.contains("authentication failed"), "{why}");

    cluster.nodes[0].output_containing(&["authentication failed"], PATIENCE);
    // Node 0 counts the four handshakes it refused (the library dialer's
    // ended when it refused node 0's proof); node 1 saw none.
    let mut con = cluster.connect(0).await;
    poll_info(&mut con, "refused handshakes not counted", |i| {
        field(i, "peer_handshake_failures") == 4
    })
    .await;
    assert_eq!(cluster.info(1).await["peer_handshake_failures"], "0");
    // Without node 2 the cluster is not whole: node 0 has not announced
    // itself ready (the harness waits for that line once node 2 starts).
    let out = cluster.nodes[0].output();
    assert!(!out.contains("gsmo node 0 ready"), "{out}");
    // No impostor took node 2's slot: the real node joins, and the cluster is whole.
    cluster.start_held();
    for i in 0..3 {
        let info = cluster.info(i).await;
        assert_eq!(info["peers_connected"], "2", "node {i}: {info:?}");
    }
    // The real node's handshake is not a failure.
    assert_eq!(cluster.info(0).await["peer_handshake_failures"], "4");
    for i in 0..3 {
        set_own_key(&cluster, i).await;
    }
    let logs = cluster.quiesce().await;
    check_ordering(mode, &logs).unwrap();
    cluster.convergence(&logs).await.unwrap();
    assert_eq!(
        cluster.dump(0).await.len(),
        3,
        "nothing but the three writes"
    );
}

/// `SET k<i> <i>` at node `i`.
async fn set_own_key(cluster: &TestCluster, i: usize) {
    let mut con = cluster.connect(i).await;
    let () = redis::cmd("SET")
        .arg(format!("k{i}"))
        .arg(i)
        .query_async(&mut con)
        .await
        .unwrap();
}

/// `gsmo node` as node 2 of `cluster` with the secret `secret`, its peers at
/// `peers`; its output goes to `log`.
fn wrong_node(cluster: &TestCluster, peers: &[String], secret: &str, log: &Path) -> Child {
    Command::new(gsmo_bin())
        .args(["node", "--id", "2", "--cluster", &peers.join(",")])
        .args(["--mode", "fifo", "--client-port", "0"])
        .args(["--cluster-id", &cluster.cluster_id])
        .env(CLUSTER_SECRET_ENV, secret)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// A refusal is the word of whoever answers at an address: a node with a
/// wrong secret, or any stranger on a dead peer's port. Healthy nodes that
/// have met the cluster keep running, say who refused them and why (INFO,
/// logs) and keep re-dialing; the odd node out, refused by every peer, stops
/// with every reason. (Before `gsmo_spec::refusal`, the first refusal a
/// dialer met stopped it: such a node took the healthy ones down.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_wrong_secret_cannot_stop_the_healthy_ones() {
    let mut cluster = Launch::new(3, Mode::Fifo)
        .env(CLUSTER_SECRET_ENV, SECRET)
        .hold(1)
        .start();
    let logs = tempfile::tempdir().unwrap();
    // On node 2's port, with a wrong secret, dialing nothing (its peers are
    // closed ports): nodes 0 and 1 dial it and are refused.
    let nowhere = ["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
    let peers = [
        nowhere[0].clone(),
        nowhere[1].clone(),
        cluster.peers[2].clone(),
    ];
    let stranger_log = logs.path().join("stranger.log");
    let mut stranger = wrong_node(&cluster, &peers, "guess", &stranger_log);
    for i in 0..2 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let line = cluster.info(i).await["peer_n2"].clone();
            if line.contains("out=refused(the node there cannot prove") {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {line}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(is_running(cluster.pid(i)), "node {i} stopped");
    }
    // Still serving: fifo needs no peer to take a write.
    for i in 0..2 {
        set_own_key(&cluster, i).await;
    }
    stranger.kill().unwrap();
    stranger.wait().unwrap();

    // The same wrong node with the real addresses dials nodes 0 and 1 too:
    // refused by both, it stops and says why; they stay.
    let odd_log = logs.path().join("odd.log");
    let mut odd = wrong_node(&cluster, &cluster.peers, "guess", &odd_log);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = odd.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the odd node never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let said = std::fs::read_to_string(&odd_log).unwrap();
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("every peer refused this node's handshake")
            && said.contains("node 0: ")
            && said.contains("node 1: "),
        "{said}"
    );
    for i in 0..2 {
        assert!(is_running(cluster.pid(i)), "node {i} stopped");
        // Each refused the odd node at least once, and counted it.
        let failures = field(&cluster.info(i).await, "peer_handshake_failures");
        assert!(failures >= 1, "node {i}: {failures}");
    }

    // The real node 2 joins, and the cluster is whole.
    cluster.start_held();
    set_own_key(&cluster, 2).await;
    let logs = cluster.quiesce().await;
    check_ordering(Mode::Fifo, &logs).unwrap();
    cluster.convergence(&logs).await.unwrap();
    assert_eq!(cluster.dump(0).await.len(), 3);
    let line = cluster.info(0).await["peer_n2"].clone();
    assert!(
        line.contains("out=up") && line.contains("refusals=0"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_secret_refuses_peers_off_loopback() {
    let (ok, text) = gsmo_tests::gsmo(&[
        "node",
        "--id",
        "0",
        "--cluster",
        "127.0.0.1:7100,10.9.9.9:7100",
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("10.9.9.9:7100 is not a loopback address")
            && text.contains("--cluster-secret-file"),
        "{text}"
    );
}

/// A node's peak resident memory, from the kernel's high-water mark.
fn peak_rss_mb(pid: u32) -> u64 {
    gsmo_node::pages::status_bytes(&pid.to_string(), "VmHWM").expect("VmHWM in /proc/PID/status")
        >> 20
}

type Info = std::collections::BTreeMap<String, String>;

/// A connection that waits as long as [`PATIENCE`] for replies (the crate's
/// default 500 ms is short for a node busy copying 8 MB replies on a loaded machine).
async fn patient(port: u16) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PATIENCE))
        .set_response_timeout(Some(PATIENCE));
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// INFO over an existing connection (a full node accepts no new one).
async fn info_on(con: &mut redis::aio::MultiplexedConnection) -> Info {
    let text: String = redis::cmd("INFO").query_async(con).await.unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

async fn poll_info(
    con: &mut redis::aio::MultiplexedConnection,
    what: &str,
    done: impl Fn(&Info) -> bool,
) -> Info {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let info = info_on(con).await;
        if done(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "{what}: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn field(info: &Info, k: &str) -> u64 {
    info[k].parse().unwrap()
}

/// Starts `launch` and sends node 0 ten SETs; the cluster lives as long as it is held.
async fn ten_sets(launch: Launch) -> (TestCluster, redis::aio::MultiplexedConnection) {
    let cluster = launch.start();
    let mut con = patient(cluster.client_port(0)).await;
    for i in 0..10 {
        let () = redis::cmd("SET")
            .arg(i)
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    (cluster, con)
}

/// Without `--debug-commands` nobody can read GSMO.HISTORY, so the node
/// keeps none (it cost every write a push, and memory up to the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_debug_commands_keeps_no_history() {
    let (_cluster, mut con) = ten_sets(Launch::new(2, Mode::Fifo).without_debug_commands()).await;
    let refused = redis::cmd("GSMO.HISTORY")
        .query_async::<Vec<String>>(&mut con)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("--debug-commands"),
        "{refused}"
    );
    let info = info_on(&mut con).await;
    assert_eq!(field(&info, "messages_delivered"), 10, "{info:?}");
    assert_eq!(field(&info, "history_recording"), 0, "{info:?}");
    assert_eq!(field(&info, "history_events"), 0, "{info:?}");

    // With them, the same writes are kept: a send and a delivery each.
    let (_cluster, mut con) = ten_sets(Launch::new(2, Mode::Fifo)).await;
    let info = info_on(&mut con).await;
    assert_eq!(field(&info, "history_recording"), 1, "{info:?}");
    assert_eq!(field(&info, "history_events"), 20, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_at_its_output_limit() {
    let cluster = Launch::new(2, Mode::Fifo)
        .args(&["--client-output-buffer-limit", "16mb"])
        .start();
    let mut con = patient(cluster.client_port(0)).await;
    let big = vec![b'x'; 8 << 20];
    let () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query_async(&mut con)
        .await
        .unwrap();

    // 2,000 pipelined `GET big` (16 GB of replies), never read.
    let port = cluster.client_port(0);
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_write_timeout(Some(PATIENCE)).unwrap();
        let req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(2000);
        // The node stops reading and hangs up: the write may fail part way.
        let _ = s.write_all(&req);
        s
    });
    let info = poll_info(&mut con, "the reader was never cut off", |i| {
        field(i, "client_output_buffer_limit_disconnections") >= 1
    })
    .await;
    assert_eq!(info["client_output_buffer_limit"], (16 << 20).to_string());
    drop(writer.join().unwrap());

    // Everyone else is served, the value is intact, and memory stayed bounded.
    let got: Vec<u8> = redis::cmd("GET")
        .arg("big")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(got == big, "GET big came back changed");
    let () = redis::cmd("SET")
        .arg("after")
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    let peak = peak_rss_mb(cluster.nodes[0].pid());
    println!("node 0 peak RSS: {peak} MB (before the limit: about 4.3 GB)");
    assert!(peak < 256, "node 0 peak RSS {peak} MB");
}

/// A pipeline far deeper than the client's read window is still answered
/// whole and in order: the reader waits for slots (INFO counts it). Every node
/// takes the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_deeper_than_the_read_window_is_answered_in_order() {
    let cluster = Launch::new(2, Mode::Fifo)
        .args(&["--client-reads-in-flight", "2"])
        .start();
    let mut con = patient(cluster.client_port(0)).await;
    let mut sets = redis::pipe();
    for i in 0..100 {
        sets.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    let () = sets.query_async(&mut con).await.unwrap();
    let mut gets = redis::pipe();
    for i in 0..100 {
        gets.cmd("GET").arg(format!("k{i}"));
    }
    let got: Vec<u32> = gets.query_async(&mut con).await.unwrap();
    assert_eq!(got, (0..100).collect::<Vec<u32>>());
    let info = info_on(&mut con).await;
    assert_eq!(info["client_reads_in_flight"], "2", "{info:?}");
    assert!(field(&info, "client_read_slot_waits") >= 1, "{info:?}");
    let mut peer = patient(cluster.client_port(1)).await;
    assert_eq!(info_on(&mut peer).await["client_reads_in_flight"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_lock_out_clients_or_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let cluster = Launch::new(2, Mode::TotalIsis)
        .open_files(200)
        .args(&["--data-dir", &data])
        .start();
    let mut worker = patient(cluster.client_port(0)).await;
    let info = cluster.info(0).await;
    assert_eq!(info["open_files_limit"], "200");
    let max = field(&info, "maxclients");
    assert_eq!(max, 200 - 32 - 4 * 2, "{info:?}");

    // 400 idle connections: the node fills up to maxclients and turns the rest away.
    let port = cluster.client_port(0);
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let info = poll_info(&mut worker, "connections not counted", |i| {
        field(i, "connected_clients") == max && field(i, "rejected_connections") >= 400 - max
    })
    .await;
    println!(
        "maxclients {max}, rejected {}",
        info["rejected_connections"]
    );
    let mut late = TcpStream::connect(("127.0.0.1", port)).unwrap();
    late.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let _ = late.read_to_end(&mut answer);
    assert_eq!(answer, b"-ERR max number of clients reached\r\n");

    // Strangers holding the peer port open do not take the peers' descriptors
    // either: it holds 2 x 2 + 8, node 1's channel among them, so 11 of the
    // 100 fit (each for the 5 s handshake timeout; the count is taken well
    // within it) and 89 are turned away at once.
    let strangers: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&cluster.peers[0]).ok())
        .collect();
    assert_eq!(strangers.len(), 100);
    let info = poll_info(&mut worker, "strangers not counted", |i| {
        field(i, "rejected_peer_connections") == 89
    })
    .await;
    assert_eq!(field(&info, "peer_port_maxconnections"), 12, "{info:?}");
    assert!(field(&info, "peer_port_connections") <= 12, "{info:?}");
    // A flood of strangers cannot fill the log: the 1st, 25th, 50th and 75th
    // refusal are warned about, the rest only counted.
    let out = cluster.nodes[0].output_containing(&["refusal 75 here"], PATIENCE);
    let warned = out
        .matches("too many open (peer_port_maxconnections")
        .count();
    assert_eq!(warned, 4, "{out}");

    // The connected client is served, and a snapshot still gets its files.
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut worker)
        .await
        .unwrap();
    let _: String = redis::cmd("SNAPSHOT")
        .query_async(&mut worker)
        .await
        .unwrap();
    let mut n1 = patient(cluster.client_port(1)).await;
    for con in [&mut worker, &mut n1] {
        poll_info(con, "snapshot not stored", |info| {
            field(info, "snapshots_stored") >= 1
        })
        .await;
    }
    let info = info_on(&mut worker).await;
    assert_eq!(info["snapshot_store_errors"], "0", "{info:?}");

    // The strangers that got a place say nothing: each is dropped at the
    // handshake timeout and counted, and its place is free again (node 1's
    // channel keeps one).
    poll_info(&mut worker, "silent strangers not dropped", |i| {
        field(i, "peer_handshake_failures") == 11 && field(i, "peer_port_connections") == 1
    })
    .await;

    // Once the idle ones go, new clients are welcome again.
    drop(idle);
    drop(strangers);
    poll_info(&mut worker, "idle connections not released", |i| {
        field(i, "connected_clients") < max
    })
    .await;
    let mut fresh = cluster.connect(0).await;
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut fresh)
        .await
        .unwrap();
    assert_eq!(v, "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_must_auth_when_a_password_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let pass_file = dir.path().join("password");
    std::fs::write(&pass_file, "s3cret-pass\n").unwrap();
    let cluster = Launch::new(2, Mode::TotalIsis)
        .args(&["--requirepass-file", &pass_file.display().to_string()])
        .start();
    let port = cluster.client_port(0);

    // The redis crate: no password, wrong password, right password.
    let url = |auth: &str| format!("redis://{auth}127.0.0.1:{port}/");
    let mut anon = redis::Client::open(url(""))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let err = redis::cmd("GET")
        .arg("k")
        .query_async::<Option<String>>(&mut anon)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Authentication required"), "{err}");
    let wrong = redis::Client::open(url(":nope@"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    assert!(wrong.is_err(), "a wrong password was accepted");
    let mut con = redis::Client::open(url(":s3cret-pass@"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let info: String = redis::cmd("INFO").query_async(&mut con).await.unwrap();
    assert!(info.contains("auth_required:1"), "{info}");
    assert!(!info.contains("auth_failures:0"), "{info}");

    // Stock redis-cli with -a.
    if have_tool("redis-cli") {
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(["-p", &port.to_string()])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(
            cli(&["-a", "s3cret-pass", "--no-auth-warning", "GET", "k"]),
            "v"
        );
        let denied = cli(&["GET", "k"]);
        assert!(
            denied.contains("NOAUTH Authentication required"),
            "{denied}"
        );
    } else {
        eprintln!("redis-cli not installed: its part of this test was skipped");
    }
}
