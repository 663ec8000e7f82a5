//! Byte for byte what redis-server answers: one script of commands (every
//! family, replies of every type, nulls, errors as Redis words them) sent over
//! raw TCP to a real `redis-server` and to a gsmo node, first in RESP2 and
//! then after `HELLO 3` in RESP3, and each reply compared as bytes. The
//! script avoids what is allowed to differ: sets and KEYS of more than one
//! member (no order is promised), expiry (refused by gsmo, on purpose), INFO and HELLO's
//! server details.
//!
//! redis-server comes from Debian's `redis-server` (`scripts/test` installs
//! it); without it this test fails with that instruction rather than skip.

use gsmo_spec::multicast::Mode;
use gsmo_tests::{free_ports, have_tool, TestCluster, REPLY_DEADLINE, START_DEADLINE};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The script: one command a line, words split on spaces.
const SCRIPT: &[&str] = &[
    "PING",
    "ECHO hello",
    "SET k v",
    "GET k",
    "GET nope",
    "SET k w NX",
    "SET k w XX GET",
    "SET k",
    "GETSET k x",
    "SETNX k y",
    "SETNX k2 y",
    "MSET a 1 b 2",
    "MGET a nope b",
    "MSETNX a 9 c 3",
    "APPEND k yz",
    "STRLEN k",
    "INCR n",
    "INCRBY n 10",
    "DECR n",
    "DECRBY n 5",
    "INCR k",
    "GETDEL n",
    "EXISTS k k nope",
    "TYPE k",
    "TYPE nope",
    "RENAME k k3",
    "RENAME nope k4",
    "KEYS k3*",
    "DEL a nope",
    "UNLINK b",
    "TTL k3",
    "TTL nope",
    "DBSIZE",
    "LPUSH l a b",
    "RPUSH l c",
    "LRANGE l 0 -1",
    "LRANGE l 5 9",
    "LLEN l",
    "LPOP l 0",
    "LPOP nope 0",
    "LPOP l -1",
    "LPOP l",
    "RPOP l 2",
    "LPOP l",
    "LPOP nope 2",
    "SADD s x",
    "SADD s x",
    "SMEMBERS s",
    "SISMEMBER s x",
    "SISMEMBER s q",
    "SCARD s",
    "SPOP s 0",
    "SPOP nope 0",
    "SPOP s 1",
    "SPOP s",
    "HSET h f1 1 f2 2",
    "HGET h f1",
    "HGET h nope",
    "HGETALL h",
    "HGETALL nope",
    "HLEN h",
    "HDEL h f1 nope",
    "ZADD z 1 a 2.5 b 0 c",
    "ZCARD z",
    "ZSCORE z b",
    "ZSCORE z nope",
    "ZRANGE z 0 -1",
    "ZRANGE z 0 -1 WITHSCORES",
    "ZRANGE z 0 -1 NOSUCH",
    "ZPOPMIN z 0",
    "ZPOPMIN nope 0",
    "ZPOPMIN z",
    "ZPOPMIN z 1",
    "ZPOPMIN nope",
    // Members that read as numbers stay strings in RESP3: only scores are doubles.
    "ZADD zn 1 10 2 2.5",
    "ZRANGE zn 0 -1 WITHSCORES",
    "ZPOPMIN zn",
    "ZPOPMIN zn 1",
    "LPUSH h x",
    "HGETALL l2",
    "GET h",
    "ZADD z x a",
    "ZADD zf 0x10 a 0x1.8p1 b 1e-310 c",
    "ZSCORE zf a",
    "ZRANGE zf 1 2 WITHSCORES",
    "ZADD zf 1e-999 d",
    "ZADD zf 0x1p-1080 d",
    "ZADD zf 1e400 d",
    "SELECT 0",
    "CLIENT SETNAME wire",
    "CLIENT GETNAME",
    "NOSUCHCOMMAND x y",
    // Redis shows at most 128 characters of arguments: this cuts the second.
    "NOSUCHCOMMAND aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbb c",
    "FLUSHALL",
    "DBSIZE",
];

/// A redis-server on a free port, killed on drop.
struct RedisServer(Child, u16);

impl RedisServer {
    fn start() -> Self {
        assert!(
            have_tool("redis-server"),
            "`redis-server` is not installed: apt-get install redis-server (scripts/test does this)"
        );
        let port = free_ports(1)[0];
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + START_DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server never listened on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        RedisServer(child, port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One connection that sends a command and reads exactly its reply.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    resp3: bool,
}

impl Conn {
    fn open(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(REPLY_DEADLINE)).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            resp3: false,
        }
    }

    /// The reply's bytes; panics if none comes within [`REPLY_DEADLINE`].
    fn call(&mut self, line: &str) -> Vec<u8> {
        let words: Vec<&str> = line.split(' ').collect();
        let mut req = format!("*{}\r\n", words.len()).into_bytes();
        for w in &words {
            req.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
        self.stream.write_all(&req).unwrap();
        loop {
            let complete = if self.resp3 {
                redis_protocol::resp3::decode::complete::decode(&self.buf).map(|f| f.map(|f| f.1))
            } else {
                redis_protocol::resp2::decode::decode(&self.buf).map(|f| f.map(|f| f.1))
            };
            if let Some(len) = complete.unwrap_or_else(|e| panic!("{line}: undecodable reply: {e}"))
            {
                return self.buf.drain(..len).collect();
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("{line}: no reply: {e}"));
            assert!(n > 0, "{line}: connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn run_script(redis: &mut Conn, gsmo: &mut Conn, protocol: &str) -> Vec<String> {
    let mut differences = Vec::new();
    for line in SCRIPT {
        let (want, got) = (redis.call(line), gsmo.call(line));
        if want != got {
            differences.push(format!(
                "{protocol} {line}\n  redis-server: {}\n  gsmo:         {}",
                want.escape_ascii(),
                got.escape_ascii()
            ));
        }
    }
    differences
}

#[test]
fn every_reply_is_the_bytes_redis_server_sends_in_resp2_and_resp3() {
    let server = RedisServer::start();
    let cluster = TestCluster::start(3, Mode::TotalIsis);
    let mut redis = Conn::open(server.1);
    let mut gsmo = Conn::open(cluster.client_port(0));
    let mut differences = run_script(&mut redis, &mut gsmo, "RESP2");
    for c in [&mut redis, &mut gsmo] {
        c.resp3 = true; // HELLO 3 answers in RESP3 already
        let hello = c.call("HELLO 3");
        assert!(
            hello.starts_with(b"%"),
            "HELLO 3 answers a map: {}",
            hello.escape_ascii()
        );
    }
    differences.extend(run_script(&mut redis, &mut gsmo, "RESP3"));
    assert!(
        differences.is_empty(),
        "{} replies differ from redis-server's:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
