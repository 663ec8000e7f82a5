//! Replies as RESP2 frames: the state machine's [`Reply`] and the replica's
//! [`Response`] turned into the frames the connection sends (encoded, in RESP2
//! or RESP3, by [`super::shape::encode`]), and the small frames every command
//! module builds.

use crate::event::Response;
use bytes::Bytes;
use gsmo_spec::kv::Reply;
use redis_protocol::resp2::types::BytesFrame;

pub fn ok() -> BytesFrame {
    BytesFrame::SimpleString(Bytes::from_static(b"OK"))
}

pub fn error(msg: impl Into<String>) -> BytesFrame {
    BytesFrame::Error(msg.into().into())
}

pub(super) fn bulk(b: &Bytes) -> BytesFrame {
    BytesFrame::BulkString(b.clone())
}

/// The RESP2 form of a state-machine reply.
pub fn reply_frame(r: Reply) -> BytesFrame {
    match r {
        Reply::Ok => ok(),
        Reply::Int(i) => BytesFrame::Integer(i),
        Reply::Bulk(None) => BytesFrame::Null,
        Reply::Bulk(Some(v)) => BytesFrame::BulkString(v.into()),
        Reply::Error(e) => error(e),
        Reply::Status(s) => BytesFrame::SimpleString(s.into()),
        Reply::Array(items) => BytesFrame::Array(items.into_iter().map(reply_frame).collect()),
        Reply::NilArray => BytesFrame::Null,
    }
}

/// The RESP form of a replica's answer.
pub fn response_frame(r: Response) -> BytesFrame {
    match r {
        Response::Kv(reply) => reply_frame(reply),
        Response::Int(i) => BytesFrame::Integer(i),
        Response::Bulk(v) => BytesFrame::BulkString(v.into()),
        Response::Error(e) => error(e),
        Response::Array(items) => BytesFrame::Array(
            items
                .into_iter()
                .map(|v| BytesFrame::BulkString(v.into()))
                .collect(),
        ),
    }
}
