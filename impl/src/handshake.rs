//! The first frame on every peer connection, and its answer.
//!
//! The connecting node says who it is and what cluster it believes it is in;
//! the accepting node compares that with its own view and answers
//! [`Answer::Welcome`] or [`Answer::Refused`] with the reason, which both sides
//! log. The welcome carries the resume point of the dialer's channel: how many
//! of its link frames the acceptor has delivered (see `gsmo_spec::link`). Everything that would make the two replicas disagree about the
//! protocol (version, cluster, ordering mode, size, ids) is checked here, so a
//! misconfigured node is turned away at the door instead of corrupting state.

use crate::frame::{self, FrameError};
use futures::{SinkExt, StreamExt};
use gsmo_spec::multicast::Mode;
use gsmo_spec::NodeId;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Identifies a gsmo peer connection before anything else is trusted.
pub const MAGIC: [u8; 4] = *b"GSMO";
/// Bumped whenever the peer wire format changes.
pub const PROTOCOL_VERSION: u16 = 2;
/// A peer that has not completed its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the connecting node sends first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: [u8; 4],
    pub version: u16,
    pub cluster_id: String,
    pub mode: Mode,
    pub cluster_size: u32,
    /// The sender's node id.
    pub from: u32,
    /// The node id the sender believes it is talking to (catches swapped addresses).
    pub to: u32,
    /// Where the sender's state came from: `fresh`, or `restored from I-S`.
    /// Channels restart at position zero in each epoch, so members of
    /// different epochs must never be joined.
    pub epoch: String,
}

/// The epoch of a node started empty.
pub const FRESH: &str = "fresh";

/// The accepting node's reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Admitted; the acceptor delivered the dialer's frames through `delivered`.
    Welcome {
        delivered: u64,
    },
    Refused(String),
}

/// Why a hello was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a gsmo peer (bad magic {0:02x?})")]
    Magic([u8; 4]),
    #[error("protocol version {theirs}, this node speaks {ours}")]
    Version { ours: u16, theirs: u16 },
    #[error("cluster id `{theirs}`, this node is in `{ours}`")]
    ClusterId { ours: String, theirs: String },
    #[error("ordering mode {theirs}, this cluster runs {ours}")]
    Mode { ours: Mode, theirs: Mode },
    #[error("cluster size {theirs}, this node has {ours} members")]
    Size { ours: u32, theirs: u32 },
    #[error("addressed to node {theirs}, but this is node {ours} (check the address list order)")]
    WrongTarget { ours: u32, theirs: u32 },
    #[error("sender's state is `{theirs}`, this node's is `{ours}` (restore every node from the same snapshot)")]
    Epoch { ours: String, theirs: String },
    #[error("sender claims node id {0}, which is not another member")]
    BadSender(u32),
    #[error("the event loop of this node is shutting down")]
    ShuttingDown,
}

/// A handshake could not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("connection closed during the handshake")]
    Closed,
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("refused by the peer: {0}")]
    RefusedByPeer(String),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
}

impl HandshakeError {
    /// Whether retrying can help: a refusal is a configuration error and will not go away.
    pub fn is_permanent(&self) -> bool {
        matches!(self, HandshakeError::RefusedByPeer(_))
    }
}

impl Hello {
    pub fn new(
        cluster_id: &str,
        mode: Mode,
        cluster_size: usize,
        from: NodeId,
        to: NodeId,
    ) -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: cluster_id.to_string(),
            mode,
            cluster_size: cluster_size as u32,
            from: from as u32,
            to: to as u32,
            epoch: FRESH.to_string(),
        }
    }

    /// The same hello from a node started in another epoch.
    pub fn with_epoch(mut self, epoch: &str) -> Self {
        self.epoch = epoch.to_string();
        self
    }

    /// Checks a received hello against this node's own view (`self` with `to` = this node);
    /// returns the sender's id.
    pub fn check(&self, received: &Hello) -> Result<NodeId, Refusal> {
        if received.magic != MAGIC {
            return Err(Refusal::Magic(received.magic));
        }
        if received.version != self.version {
            return Err(Refusal::Version {
                ours: self.version,
                theirs: received.version,
            });
        }
        if received.cluster_id != self.cluster_id {
            return Err(Refusal::ClusterId {
                ours: self.cluster_id.clone(),
                theirs: received.cluster_id.clone(),
            });
        }
        if received.mode != self.mode {
            return Err(Refusal::Mode {
                ours: self.mode,
                theirs: received.mode,
            });
        }
        if received.cluster_size != self.cluster_size {
            return Err(Refusal::Size {
                ours: self.cluster_size,
                theirs: received.cluster_size,
            });
        }
        if received.to != self.to {
            return Err(Refusal::WrongTarget {
                ours: self.to,
                theirs: received.to,
            });
        }
        if received.epoch != self.epoch {
            return Err(Refusal::Epoch {
                ours: self.epoch.clone(),
                theirs: received.epoch.clone(),
            });
        }
        if received.from >= self.cluster_size || received.from == self.to {
            return Err(Refusal::BadSender(received.from));
        }
        Ok(received.from as NodeId)
    }
}

async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
) -> Result<bytes::BytesMut, HandshakeError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next()).await {
        Err(_) => Err(HandshakeError::Timeout(HANDSHAKE_TIMEOUT)),
        Ok(None) => Err(HandshakeError::Closed),
        Ok(Some(r)) => Ok(r?),
    }
}

/// Connecting side: send our hello, wait for the answer; returns the resume
/// point (how many of our frames the peer delivered).
pub async fn offer<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    hello: &Hello,
) -> Result<u64, HandshakeError> {
    framed.send(frame::encode(hello)?).await?;
    match frame::decode::<Answer>(&next_frame(framed).await?)? {
        Answer::Welcome { delivered } => Ok(delivered),
        Answer::Refused(reason) => Err(HandshakeError::RefusedByPeer(reason)),
    }
}

/// Accepting side: read a hello, check it with `ours`, let `admit` (the event
/// loop) refuse it or name the resume point, and answer. Returns the sender's
/// id and `admit`'s value once welcomed.
///
/// Hook for peer authentication: a check of the sender's credentials belongs
/// between `ours.check` and `admit`, so an unauthenticated dialer never
/// reaches the event loop.
pub async fn accept<S, F, T>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    ours: &Hello,
    admit: impl FnOnce(NodeId) -> F,
) -> Result<(NodeId, T), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = Result<(u64, T), Refusal>>,
{
    let body = next_frame(framed).await?;
    let checked = frame::decode::<Hello>(&body)
        .map_err(HandshakeError::from)
        .and_then(|h| Ok(ours.check(&h)?));
    let verdict = match checked {
        Ok(from) => admit(from)
            .await
            .map(|admitted| (from, admitted))
            .map_err(HandshakeError::from),
        Err(e) => Err(e),
    };
    match verdict {
        Ok((from, (delivered, value))) => {
            framed
                .send(frame::encode(&Answer::Welcome { delivered })?)
                .await?;
            Ok((from, value))
        }
        Err(e) => {
            // Best effort: tell the other side why, then hang up.
            let _ = framed
                .send(frame::encode(&Answer::Refused(e.to_string()))?)
                .await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{codec, MAX_HANDSHAKE_FRAME};

    /// A hello and the test its refusal must pass.
    type Case = (Hello, fn(&Refusal) -> bool);

    #[test]
    fn each_mismatch_has_its_own_reason() {
        let ours = Hello::new("c", Mode::TotalIsis, 3, 0, 1);
        let good = Hello::new("c", Mode::TotalIsis, 3, 2, 1);
        assert_eq!(ours.check(&good), Ok(2));
        let cases: Vec<Case> = vec![
            (
                Hello {
                    magic: *b"HTTP",
                    ..good.clone()
                },
                |r| matches!(r, Refusal::Magic(_)),
            ),
            (
                Hello {
                    version: 9,
                    ..good.clone()
                },
                |r| matches!(r, Refusal::Version { .. }),
            ),
            (good.clone().with_epoch("restored from 0-1"), |r| {
                matches!(r, Refusal::Epoch { .. })
            }),
            (
                Hello {
                    cluster_id: "x".into(),
                    ..good.clone()
                },
                |r| matches!(r, Refusal::ClusterId { .. }),
            ),
            (
                Hello {
                    mode: Mode::Fifo,
                    ..good.clone()
                },
                |r| matches!(r, Refusal::Mode { .. }),
            ),
            (
                Hello {
                    cluster_size: 4,
                    ..good.clone()
                },
                |r| matches!(r, Refusal::Size { .. }),
            ),
            (
                Hello {
                    to: 2,
                    ..good.clone()
                },
                |r| matches!(r, Refusal::WrongTarget { .. }),
            ),
            (
                Hello {
                    from: 1,
                    ..good.clone()
                },
                |r| matches!(r, Refusal::BadSender(1)),
            ),
            (
                Hello {
                    from: 3,
                    ..good.clone()
                },
                |r| matches!(r, Refusal::BadSender(3)),
            ),
        ];
        for (hello, want) in cases {
            let r = ours.check(&hello).unwrap_err();
            assert!(want(&r), "{hello:?} gave {r}");
        }
    }

    #[tokio::test]
    async fn refusal_reaches_the_connecting_side() {
        let (a, b) = tokio::io::duplex(1024);
        let mut client = Framed::new(a, codec(MAX_HANDSHAKE_FRAME));
        let mut server = Framed::new(b, codec(MAX_HANDSHAKE_FRAME));
        let theirs = Hello::new("other", Mode::Fifo, 2, 1, 0);
        let ours = Hello::new("gsmo", Mode::Fifo, 2, 1, 0);
        let (offered, accepted) = tokio::join!(
            offer(&mut client, &theirs),
            accept(&mut server, &ours, |_| async { Ok((0, ())) })
        );
        let offered = offered.unwrap_err();
        assert!(offered.is_permanent());
        assert!(
            offered.to_string().contains("cluster id `other`"),
            "{offered}"
        );
        assert!(matches!(
            accepted,
            Err(HandshakeError::Refused(Refusal::ClusterId { .. }))
        ));

        let (a, b) = tokio::io::duplex(1024);
        let mut client = Framed::new(a, codec(MAX_HANDSHAKE_FRAME));
        let mut server = Framed::new(b, codec(MAX_HANDSHAKE_FRAME));
        let (offered, accepted) = tokio::join!(
            offer(&mut client, &ours),
            accept(&mut server, &ours, |_| async { Ok((7, "admitted")) })
        );
        assert_eq!(offered.unwrap(), 7, "the resume point reaches the dialer");
        assert_eq!(accepted.unwrap(), (1, "admitted"));
    }
}
