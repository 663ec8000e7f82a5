//! Hostile and broken input on both ports closes only the offending
//! connection: the node keeps serving, its peer channels stay up and nothing
//! written is lost. And a peer that really dies is reported, not hidden.

use gsmo_node::frame::{self, MAX_HANDSHAKE_FRAME};
use gsmo_node::handshake::{Answer, Hello, PROTOCOL_VERSION};
use gsmo_spec::multicast::Mode;
use gsmo_tests::{check_ordering, TestCluster};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Long enough for any honest reaction; a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(10);

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent.
/// Panics if it is still open after [`PATIENCE`].
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "connection still open after {PATIENCE:?} ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// Sends `bytes` to a client port and returns everything up to the close.
fn client_garbage(port: u16, bytes: &[u8]) -> String {
    let mut s = connect(&format!("127.0.0.1:{port}"));
    s.write_all(bytes).unwrap();
    String::from_utf8_lossy(&read_until_closed(&mut s)).into_owned()
}

async fn set(con: &mut redis::aio::MultiplexedConnection, k: &str, v: &str) {
    let (): () = redis::cmd("SET")
        .arg(k)
        .arg(v)
        .query_async(con)
        .await
        .unwrap();
}

async fn get(con: &mut redis::aio::MultiplexedConnection, k: &str) -> Option<String> {
    redis::cmd("GET").arg(k).query_async(con).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_port_closes_only_the_offending_connection() {
    let cluster = TestCluster::start(3, Mode::TotalIsis);
    let port = cluster.client_port(0);
    let mut healthy = cluster.connect(0).await;
    set(&mut healthy, "before", "1").await;

    // Garbage in the RESP array form: Redis's answer, then the connection closes.
    let reply = client_garbage(port, b"*zz\r\n\x00\xffgarbage");
    assert_eq!(reply, "-ERR Protocol error: invalid multibulk length\r\n");
    // Huge length prefixes are refused on sight, without waiting for the body.
    let reply = client_garbage(port, b"*1\r\n$99999999999\r\n");
    assert_eq!(reply, "-ERR Protocol error: invalid bulk length\r\n");
    let reply = client_garbage(port, b"*4294967296\r\n");
    assert_eq!(reply, "-ERR Protocol error: invalid multibulk length\r\n");
    // Half a request, then the client goes away: nothing is executed, nothing answered.
    let mut s = connect(&format!("127.0.0.1:{port}"));
    s.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nval")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut s), b"");
    // Binary junk without a RESP marker is an unknown inline command, as in Redis:
    // an error reply, and the connection keeps working.
    let mut s = connect(&format!("127.0.0.1:{port}"));
    s.write_all(b"\x00\x01\xfe\r\nPING\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let reply = String::from_utf8_lossy(&read_until_closed(&mut s)).into_owned();
    assert!(reply.starts_with("-ERR unknown command"), "{reply}");
    assert!(reply.ends_with("+PONG\r\n"), "{reply}");

    // The node kept serving, on the old connection and new ones, and lost nothing.
    set(&mut healthy, "after", "2").await;
    assert_eq!(get(&mut healthy, "before").await.as_deref(), Some("1"));
    assert_eq!(get(&mut healthy, "half").await, None);
    let mut other = cluster.connect(2).await;
    set(&mut other, "from-n2", "3").await;
    let logs = cluster.quiesce().await;
    check_ordering(Mode::TotalIsis, &logs).unwrap();
    cluster.convergence(&logs).await.unwrap();
    let store = cluster.dump(1).await;
    assert_eq!(store.len(), 3, "{store:?}");
}

/// A length-prefixed handshake frame.
fn hello_frame(hello: &Hello) -> Vec<u8> {
    let body = frame::encode(hello).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Offers `hello` to a peer port; returns the node's refusal reason.
fn refused(addr: &str, hello: &Hello) -> String {
    let mut s = connect(addr);
    s.write_all(&hello_frame(hello)).unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.len() > 4, "no answer to {hello:?}");
    let len = u32::from_be_bytes(got[..4].try_into().unwrap()) as usize;
    assert!(len <= MAX_HANDSHAKE_FRAME && got.len() == 4 + len);
    match frame::decode::<Answer>(&got[4..]).unwrap() {
        Answer::Refused(reason) => reason,
        other => panic!("{hello:?} was answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_strangers_and_loses_nothing() {
    let mode = Mode::TotalIsis;
    let cluster = TestCluster::start(3, mode);
    let mut n1 = cluster.connect(1).await;
    set(&mut n1, "before", "1").await;
    let addr = cluster.nodes[0].peer_addr.clone();

    // Not a gsmo peer at all: an HTTP request's bytes read as a ~1.2 GB length prefix.
    let mut s = connect(&addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_until_closed(&mut s), b"");
    // A huge length prefix, refused before any body is buffered.
    let mut s = connect(&addr);
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    assert_eq!(read_until_closed(&mut s), b"");
    // Half a frame, then the stranger hangs up.
    let mut s = connect(&addr);
    s.write_all(&[0, 0, 0, 40, 1, 2, 3, 4]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut s), b"");
    // A well-formed frame that is not a handshake.
    let mut s = connect(&addr);
    s.write_all(&[0, 0, 0, 3, 0xde, 0xad, 0xbe]).unwrap();
    let answer = read_until_closed(&mut s);
    assert!(
        matches!(
            frame::decode::<Answer>(&answer[4..]),
            Ok(Answer::Refused(_))
        ),
        "{answer:?}"
    );

    // Well-formed handshakes that do not fit this cluster are refused with the reason.
    let good = Hello::new(&cluster.cluster_id, mode, 3, 1, 0);
    let cases = [
        (
            Hello {
                cluster_id: "wrong".into(),
                ..good.clone()
            },
            "cluster id `wrong`",
        ),
        (
            Hello {
                mode: Mode::Fifo,
                ..good.clone()
            },
            "ordering mode fifo",
        ),
        (
            Hello {
                version: PROTOCOL_VERSION + 1,
                ..good.clone()
            },
            "protocol version",
        ),
        (
            Hello {
                cluster_size: 4,
                ..good.clone()
            },
            "cluster size 4",
        ),
        (
            Hello {
                to: 2,
                ..good.clone()
            },
            "addressed to node 2",
        ),
        (
            Hello {
                magic: *b"HTTP",
                ..good.clone()
            },
            "bad magic",
        ),
        // (A well-formed hello from a member replaces its connection: peer
        // authentication, not this check, keeps impostors out.)
    ];
    for (hello, reason) in cases {
        let got = refused(&addr, &hello);
        assert!(got.contains(reason), "expected `{reason}`, got `{got}`");
    }
    // A second node 1 that proves itself (this cluster has no secret) is an
    // authenticated reconnect: it replaces node 1's connection and is told
    // where to resume, and the real node 1 then re-dials and resumes in turn.
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(stream, frame::codec(MAX_HANDSHAKE_FRAME));
    gsmo_node::handshake::offer(&mut framed, &good)
        .await
        .expect("an authenticated reconnect is admitted");
    drop(framed);

    // Every real channel comes back up, nothing was dropped, and the cluster works.
    let deadline = Instant::now() + PATIENCE;
    for i in 0..3 {
        loop {
            let info = cluster.info(i).await;
            if info["peers_connected"] == "2" {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for i in 0..3 {
        let mut con = cluster.connect(i).await;
        set(&mut con, &format!("after-{i}"), "x").await;
    }
    let logs = cluster.quiesce().await;
    check_ordering(mode, &logs).unwrap();
    cluster.convergence(&logs).await.unwrap();
    assert_eq!(cluster.dump(0).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_peer_is_reported_and_its_frames_retained() {
    let mut cluster = TestCluster::start(3, Mode::Fifo);
    let mut n0 = cluster.connect(0).await;
    set(&mut n0, "a", "1").await;
    cluster.quiesce().await;

    cluster.kill(2);
    let deadline = Instant::now() + PATIENCE;
    for i in 0..2 {
        loop {
            let info = cluster.info(i).await;
            let n2 = &info["peer_n2"];
            if n2.contains("out=down(") && n2.contains("in=down(") && n2.contains("unreachable=1") {
                assert_eq!(info["peers_connected"], "1", "node {i}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} never reported n2 lost: {n2}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.nodes[i].output_containing(
            &[
                &format!("channel n{i}->n2 down"),
                &format!("channel n2->n{i} down"),
            ],
            Duration::from_secs(10),
        );
    }
    // FIFO delivery needs no other node: node 0 keeps serving, and its link
    // to n2 keeps the write for a resume.
    set(&mut n0, "b", "2").await;
    assert_eq!(get(&mut n0, "b").await.as_deref(), Some("2"));
    let info = cluster.info(0).await;
    let retained: u64 = info["peer_n2"]
        .split(',')
        .find_map(|kv| kv.strip_prefix("retained_frames="))
        .and_then(|v| v.parse().ok())
        .expect("peer_n2 shows retained_frames");
    assert!(retained >= 1, "the write for n2 is kept: {info:?}");
}
