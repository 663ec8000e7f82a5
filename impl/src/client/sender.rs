//! The sender: writes a connection's encoded replies to its socket.

use crate::net::Stream;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufWriter, WriteHalf};
use tokio::sync::mpsc;

/// The sender's write buffer.
const SEND_BUFFER: usize = 64 << 10;

/// Writes encoded replies to the socket, flushing when no more are ready.
///
/// "Ready" includes replies the rest of the node is about to produce: before
/// flushing, the sender yields once, so the reader, the event loop and the
/// collector finish what they can first (as Redis writes replies only before it
/// sleeps). A pipeline answered in two runs (deeper than the connection's read
/// slots) then mostly leaves in one `send`, not two: on loopback a `send` costs
/// as much as the rest of a `GET`.
pub(super) async fn send(
    write: WriteHalf<Stream>,
    mut out: mpsc::UnboundedReceiver<(Bytes, bool)>,
    unsent: Arc<AtomicUsize>,
) {
    let mut sink = BufWriter::with_capacity(SEND_BUFFER, write);
    while let Some((bytes, close)) = out.recv().await {
        if sink.write_all(&bytes).await.is_err() {
            return;
        }
        unsent.fetch_sub(bytes.len(), SeqCst);
        if !close && out.is_empty() {
            tokio::task::yield_now().await;
        }
        if (close || out.is_empty()) && sink.flush().await.is_err() {
            return;
        }
        if close {
            let _ = sink.shutdown().await;
            return;
        }
    }
    let _ = sink.flush().await;
}
