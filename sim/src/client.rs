//! A Redis client over a simulated connection: RESP2 frames with
//! `redis-protocol` (the `redis` crate wants tokio's own sockets).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use gsmo_spec::kv::Reply;
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use std::io;
use tokio_util::codec::Framed;

pub struct Redis {
    framed: Framed<turmoil::net::TcpStream, Resp2>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Redis {
    pub async fn connect(host: &str, port: u16) -> io::Result<Redis> {
        let s = turmoil::net::TcpStream::connect((host, port)).await?;
        Ok(Redis {
            framed: Framed::new(s, Resp2::default()),
        })
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> io::Result<BytesFrame> {
        self.send([args]).await?;
        self.recv().await
    }

    /// Sends commands back to back, without waiting for replies (a pipeline).
    pub async fn send<'a>(
        &mut self,
        commands: impl IntoIterator<Item = &'a [&'a [u8]]>,
    ) -> io::Result<()> {
        for args in commands {
            let req = BytesFrame::Array(
                args.iter()
                    .map(|a| BytesFrame::BulkString(Bytes::copy_from_slice(a)))
                    .collect(),
            );
            self.framed.feed(req).await.map_err(io_err)?;
        }
        SinkExt::<BytesFrame>::flush(&mut self.framed)
            .await
            .map_err(io_err)
    }

    /// Waits for the next reply.
    pub async fn recv(&mut self) -> io::Result<BytesFrame> {
        match self.framed.next().await {
            Some(r) => r.map_err(io_err),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the node closed the connection",
            )),
        }
    }

    /// A reply as one bulk string's text (INFO, GSMO.DIGEST).
    pub async fn text(&mut self, args: &[&[u8]]) -> io::Result<String> {
        match self.call(args).await? {
            BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => {
                Ok(String::from_utf8_lossy(&b).into_owned())
            }
            other => Err(io_err(format!("unexpected reply {other:?}"))),
        }
    }

    /// A reply that is an array of bulk strings (GSMO.HISTORY, GSMO.DUMP).
    pub async fn strings(&mut self, args: &[&[u8]]) -> io::Result<Vec<Vec<u8>>> {
        match self.call(args).await? {
            BytesFrame::Array(items) => items
                .into_iter()
                .map(|f| match f {
                    BytesFrame::BulkString(b) => Ok(b.to_vec()),
                    other => Err(io_err(format!("unexpected item {other:?}"))),
                })
                .collect(),
            other => Err(io_err(format!("unexpected reply {other:?}"))),
        }
    }
}

/// The value of field `name` in an `INFO` text (`name:value` lines), trimmed.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Per-peer counter `name` (a `name=N` entry of INFO's `peer_n<j>` lines),
/// summed over the peers.
pub fn peer_sum(info: &str, name: &str) -> u64 {
    info.split(',')
        .filter_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// A RESP2 reply as the K/V store's [`Reply`] (what the consistency checker compares).
pub fn to_reply(f: &BytesFrame) -> Reply {
    match f {
        BytesFrame::SimpleString(s) if &s[..] == b"OK" => Reply::Ok,
        BytesFrame::SimpleString(s) => Reply::Status(String::from_utf8_lossy(s).into_owned()),
        BytesFrame::Error(e) => Reply::Error(e.to_string()),
        BytesFrame::Integer(i) => Reply::Int(*i),
        BytesFrame::BulkString(b) => Reply::Bulk(Some(b.to_vec())),
        BytesFrame::Null => Reply::Bulk(None),
        BytesFrame::Array(a) => Reply::Array(a.iter().map(to_reply).collect()),
    }
}
