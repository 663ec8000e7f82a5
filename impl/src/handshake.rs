//! The first frames on every peer connection: who the peers are, and proof
//! that both know the cluster secret.
//!
//! 1. The dialer sends a [`Hello`]: who it is, what cluster it believes it is
//!    in, and a fresh random nonce.
//! 2. The acceptor compares that with its own view; on a mismatch it answers
//!    [`Answer::Refused`] with the reason, which both sides log. Otherwise it
//!    answers [`Answer::Challenge`]: its own fresh nonce and an HMAC-SHA256
//!    proof over the whole transcript (both nonces, cluster id, mode, size,
//!    both node ids, epoch).
//! 3. The dialer checks that proof (so it never feeds a stranger) and answers
//!    with its own proof over the same transcript under a different label
//!    ([`Finish::Proof`]), or refuses.
//! 4. Only then does the acceptor `admit` the sender (take its slot) and answer
//!    [`Answer::Welcome`].
//!
//! A dialer told [`Answer::Refused`] reports it to its event loop, where the
//! spec's rule (`gsmo_spec::refusal`) decides: a node that has met the
//! cluster keeps re-dialing (the refuser may be misconfigured, or a stranger),
//! and one that every peer refused and none accepted exits with the reasons.
//! One told [`Answer::Retry`] (the acceptor is shutting down, or the proof
//! came too late) re-dials, as after any broken connection.
//!
//! This is the challenge-response of mutual authentication with a pre-shared
//! key (as in ISO/IEC 9798-4 and the SCRAM family): fresh nonces on both
//! sides defeat replay of a recorded handshake, distinct labels defeat
//! reflecting a proof back, and binding the ids and epoch into the MAC stops a
//! proof for one channel being used for another. Without a secret the MAC key
//! is empty: the exchange still runs, but proves nothing, which is why a node
//! without a secret only talks to peers on loopback (see `serve`). The link is
//! authenticated at the start only; the frames after it are neither encrypted
//! nor MACed (no TLS), see the README.
//!
//! Everything that would make the two replicas disagree about the protocol
//! (version, cluster, ordering mode, size, ids) is checked here, so a
//! misconfigured node is turned away at the door instead of corrupting state.

use crate::frame::{self, FrameError};
use crate::secret::{random_bytes, Secret};
use futures::{SinkExt, StreamExt};
use gsmo_spec::multicast::Mode;
use gsmo_spec::NodeId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Identifies a gsmo peer connection before anything else is trusted.
pub const MAGIC: [u8; 4] = *b"GSMO";
/// Bumped whenever the peer wire format changes (2: authenticated handshake;
/// 3: [`Answer::Retry`]; 4: the sequencer's messages travel through it,
/// `gsmo_spec::multicast::sequencer`).
pub const PROTOCOL_VERSION: u16 = 4;
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
    /// Fresh from a CSPRNG for every connection attempt (set by [`offer`] / [`accept`]).
    pub nonce: Nonce,
    /// The key this side proves itself with; never sent.
    #[serde(skip)]
    pub secret: Option<Arc<Secret>>,
}

/// A handshake nonce.
pub type Nonce = [u8; 32];

/// The epoch of a node started empty.
pub const FRESH: &str = "fresh";

/// The accepting node's replies: a challenge (or a refusal) to the hello,
/// then the verdict on the dialer's proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Challenge {
        nonce: Nonce,
        proof: Vec<u8>,
    },
    /// Admitted; the acceptor delivered the dialer's frames through `delivered`
    /// (the resume point of the dialer's link, see `gsmo_spec::link`).
    Welcome {
        delivered: u64,
    },
    /// A configuration mismatch or a failed proof: re-dialing cannot help.
    Refused(String),
    /// Not now (the acceptor is shutting down, or the dialer's proof came too
    /// late): the dialer re-dials with backoff, as after a broken connection.
    Retry(String),
}

/// The dialer's reply to a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    Proof(Vec<u8>),
    Refused(String),
}

/// What both proofs are computed over; bincode makes its encoding unambiguous.
#[derive(Serialize)]
struct Transcript<'a> {
    label: &'static str,
    version: u16,
    cluster_id: &'a str,
    mode: Mode,
    cluster_size: u32,
    dialer: u32,
    acceptor: u32,
    epoch: &'a str,
    dialer_nonce: &'a Nonce,
    acceptor_nonce: &'a Nonce,
}

const ACCEPTOR_LABEL: &str = "gsmo peer auth v2: acceptor";
const DIALER_LABEL: &str = "gsmo peer auth v2: dialer";

/// HMAC-SHA256 under `secret` (an empty key without one) of the transcript
/// fixed by the dialer's `hello` and the acceptor's nonce.
fn transcript_mac(
    secret: Option<&Secret>,
    label: &'static str,
    hello: &Hello,
    acceptor_nonce: &Nonce,
) -> Result<Hmac<Sha256>, FrameError> {
    let t = Transcript {
        label,
        version: hello.version,
        cluster_id: &hello.cluster_id,
        mode: hello.mode,
        cluster_size: hello.cluster_size,
        dialer: hello.from,
        acceptor: hello.to,
        epoch: &hello.epoch,
        dialer_nonce: &hello.nonce,
        acceptor_nonce,
    };
    let key = secret.map_or(&[][..], Secret::expose);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&frame::encode(&t)?);
    Ok(mac)
}

fn proof(
    secret: Option<&Secret>,
    label: &'static str,
    hello: &Hello,
    acceptor_nonce: &Nonce,
) -> Result<Vec<u8>, FrameError> {
    Ok(transcript_mac(secret, label, hello, acceptor_nonce)?
        .finalize()
        .into_bytes()
        .to_vec())
}

/// The dialer's proof for `hello` answering a challenge with `acceptor_nonce`:
/// what [`offer`] sends, public so that tests can play a dialer that ignores
/// the acceptor's proof (and so test the proof `offer` really sends).
pub fn dialer_proof(
    secret: Option<&Secret>,
    hello: &Hello,
    acceptor_nonce: &Nonce,
) -> Result<Vec<u8>, FrameError> {
    proof(secret, DIALER_LABEL, hello, acceptor_nonce)
}

/// Checks a received proof in constant time (hmac's `verify_slice`).
fn verify(
    secret: Option<&Secret>,
    label: &'static str,
    hello: &Hello,
    acceptor_nonce: &Nonce,
    received: &[u8],
) -> Result<bool, FrameError> {
    Ok(transcript_mac(secret, label, hello, acceptor_nonce)?
        .verify_slice(received)
        .is_ok())
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
    #[error("authentication failed: the sender's proof for node {0} does not match (wrong or missing cluster secret, or a replayed handshake)")]
    Unauthenticated(u32),
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
    #[error("the peer asked to retry: {0}")]
    RetryLater(String),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("the node there cannot prove it knows the cluster secret (is the secret the same on every node?)")]
    PeerUnauthenticated,
    #[error("expected {0}, got another handshake message")]
    Unexpected(&'static str),
}

impl HandshakeError {
    /// Whether the node at the address turned the dialer away for good: it
    /// refused (a configuration mismatch or a wrong secret) or could not
    /// prove the secret. Reported as a refusal, which may stop a node that
    /// has met no peer (`gsmo_spec::refusal`); anything else is a failed dial.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            HandshakeError::RefusedByPeer(_) | HandshakeError::PeerUnauthenticated
        )
    }

    /// The acceptor's answer to a dialer it turns away: [`Answer::Retry`] when
    /// the same dialer may succeed later (this node is shutting down; the
    /// proof came after [`HANDSHAKE_TIMEOUT`], e.g. from a process that was
    /// stopped), else [`Answer::Refused`]. A dialer told `Refused` may exit, so a
    /// passing condition must never be answered that way.
    fn answer(&self) -> Answer {
        let why = self.to_string();
        match self {
            HandshakeError::Timeout(_) | HandshakeError::Refused(Refusal::ShuttingDown) => {
                Answer::Retry(why)
            }
            _ => Answer::Refused(why),
        }
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
            nonce: [0; 32],
            secret: None,
        }
    }

    /// The same hello, proving itself with `secret`.
    pub fn with_secret(mut self, secret: Option<Arc<Secret>>) -> Self {
        self.secret = secret;
        self
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

/// Connecting side: send our hello with a fresh nonce, check the acceptor's
/// proof, send ours, wait for the verdict. Returns the resume point: how many
/// of our link frames the acceptor has delivered.
pub async fn offer<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    hello: &Hello,
) -> Result<u64, HandshakeError> {
    let hello = Hello {
        nonce: random_bytes(),
        ..hello.clone()
    };
    let secret = hello.secret.as_deref();
    framed.send(frame::encode(&hello)?).await?;
    let acceptor_nonce = match frame::decode::<Answer>(&next_frame(framed).await?)? {
        Answer::Challenge { nonce, proof } => {
            if !verify(secret, ACCEPTOR_LABEL, &hello, &nonce, &proof)? {
                let why = "the acceptor's proof does not match our cluster secret";
                let _ = framed
                    .send(frame::encode(&Finish::Refused(why.into()))?)
                    .await;
                return Err(HandshakeError::PeerUnauthenticated);
            }
            nonce
        }
        Answer::Refused(reason) => return Err(HandshakeError::RefusedByPeer(reason)),
        Answer::Retry(reason) => return Err(HandshakeError::RetryLater(reason)),
        Answer::Welcome { .. } => return Err(HandshakeError::Unexpected("a challenge")),
    };
    let mine = dialer_proof(secret, &hello, &acceptor_nonce)?;
    framed.send(frame::encode(&Finish::Proof(mine))?).await?;
    match frame::decode::<Answer>(&next_frame(framed).await?)? {
        Answer::Welcome { delivered } => Ok(delivered),
        Answer::Refused(reason) => Err(HandshakeError::RefusedByPeer(reason)),
        Answer::Retry(reason) => Err(HandshakeError::RetryLater(reason)),
        Answer::Challenge { .. } => Err(HandshakeError::Unexpected("a verdict")),
    }
}

/// Accepting side: read a hello, check it with `ours`, challenge the sender,
/// check its proof, and only then let `admit` (the event loop) refuse it or
/// name the resume point (a reconnect of the same node replaces its stale
/// connection there), and answer. Returns the sender's id and `admit`'s value.
pub async fn accept<S, F, T>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    ours: &Hello,
    admit: impl FnOnce(NodeId) -> F,
) -> Result<(NodeId, T), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = Result<(u64, T), Refusal>>,
{
    let verdict = async {
        let hello = frame::decode::<Hello>(&next_frame(framed).await?)?;
        let from = ours.check(&hello)?;
        let nonce: Nonce = random_bytes();
        let secret = ours.secret.as_deref();
        let challenge = Answer::Challenge {
            nonce,
            proof: proof(secret, ACCEPTOR_LABEL, &hello, &nonce)?,
        };
        framed.send(frame::encode(&challenge)?).await?;
        match frame::decode::<Finish>(&next_frame(framed).await?)? {
            Finish::Proof(p) if verify(secret, DIALER_LABEL, &hello, &nonce, &p)? => {}
            Finish::Proof(_) => return Err(Refusal::Unauthenticated(hello.from).into()),
            Finish::Refused(reason) => return Err(HandshakeError::RefusedByPeer(reason)),
        }
        // The slot is taken only now, by a sender that proved it knows the secret.
        let admitted = admit(from).await?;
        Ok((from, admitted))
    }
    .await;
    match verdict {
        Ok((from, (delivered, value))) => {
            framed
                .send(frame::encode(&Answer::Welcome { delivered })?)
                .await?;
            Ok((from, value))
        }
        Err(e) => {
            // Best effort: tell the other side why, then hang up.
            if !matches!(
                e,
                HandshakeError::RefusedByPeer(_) | HandshakeError::Closed | HandshakeError::Io(_)
            ) {
                let _ = framed.send(frame::encode(&e.answer())?).await;
            }
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

    fn pair() -> (
        Framed<tokio::io::DuplexStream, LengthDelimitedCodec>,
        Framed<tokio::io::DuplexStream, LengthDelimitedCodec>,
    ) {
        let (a, b) = tokio::io::duplex(4096);
        (
            Framed::new(a, codec(MAX_HANDSHAKE_FRAME)),
            Framed::new(b, codec(MAX_HANDSHAKE_FRAME)),
        )
    }

    fn keyed(h: Hello, key: Option<&str>) -> Hello {
        h.with_secret(key.map(|k| Arc::new(Secret::new(k))))
    }

    #[tokio::test]
    async fn only_matching_secrets_complete_and_admit_runs_last() {
        let cases = [
            (Some("k"), Some("k"), true),
            (None, None, true),
            (Some("k"), Some("other"), false),
            (None, Some("k"), false),
            (Some("k"), None, false),
        ];
        for (dialer_key, acceptor_key, welcome) in cases {
            let (mut client, mut server) = pair();
            let dialer = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), dialer_key);
            let ours = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), acceptor_key);
            let admitted = std::cell::Cell::new(false);
            let (offered, accepted) = tokio::join!(
                offer(&mut client, &dialer),
                accept(&mut server, &ours, |from| {
                    admitted.set(true);
                    async move { Ok((0, from * 10)) }
                })
            );
            let case = format!("{dialer_key:?} -> {acceptor_key:?}");
            assert_eq!(offered.is_ok(), welcome, "{case}: {offered:?}");
            assert_eq!(accepted.is_ok(), welcome, "{case}: {accepted:?}");
            assert_eq!(admitted.get(), welcome, "{case}: slot taken without proof");
            if welcome {
                assert_eq!(accepted.unwrap(), (1, 10));
            } else {
                assert!(offered.unwrap_err().is_permanent(), "{case}");
            }
        }
    }

    /// A recording of an earlier genuine exchange: the dialer's hello and its
    /// valid proof for the challenge it got then (acceptor nonce `[9; 32]`).
    fn recorded_dialer_bytes(hello: &Hello) -> Vec<u8> {
        let then = Hello {
            nonce: [7; 32],
            ..hello.clone()
        };
        let proof = dialer_proof(hello.secret.as_deref(), &then, &[9; 32]).unwrap();
        let mut out = Vec::new();
        for body in [
            frame::encode(&then).unwrap(),
            frame::encode(&Finish::Proof(proof)).unwrap(),
        ] {
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    #[tokio::test]
    async fn a_replayed_handshake_is_refused_and_admits_nothing() {
        use tokio::io::AsyncWriteExt;
        let key = Some("k");
        let dialer = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), key);
        let ours = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), key);
        let (mut client, mut server) = pair();
        client
            .get_mut()
            .write_all(&recorded_dialer_bytes(&dialer))
            .await
            .unwrap();
        let accepted = accept(
            &mut server,
            &ours,
            |_| -> std::future::Ready<Result<(u64, ()), Refusal>> {
                panic!("a replay must not reach admit")
            },
        )
        .await;
        assert!(
            matches!(
                accepted,
                Err(HandshakeError::Refused(Refusal::Unauthenticated(1)))
            ),
            "{accepted:?}"
        );
    }

    /// An impostor that recorded a genuine acceptor's answers (its challenge
    /// and welcome) replays them to the same dialer: the dialer's fresh nonce
    /// makes the recorded proof wrong, so the dialer refuses before it sends
    /// its own proof or trusts the resume point.
    #[tokio::test]
    async fn a_replayed_acceptor_is_refused_by_the_dialer() {
        let dialer = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), Some("k"));
        let genuine = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), Some("k"));
        let acceptor_nonce = [9; 32];
        // The genuine exchange, recorded: the challenge for the hello it got,
        // and the welcome.
        let (mut client, mut server) = pair();
        let recorded = async {
            let hello = frame::decode::<Hello>(&next_frame(&mut server).await.unwrap()).unwrap();
            let secret = genuine.secret.as_deref();
            let challenge = Answer::Challenge {
                nonce: acceptor_nonce,
                proof: proof(secret, ACCEPTOR_LABEL, &hello, &acceptor_nonce).unwrap(),
            };
            let challenge = frame::encode(&challenge).unwrap();
            server.send(challenge.clone()).await.unwrap();
            let _proof = next_frame(&mut server).await.unwrap();
            let welcome = frame::encode(&Answer::Welcome { delivered: 3 }).unwrap();
            server.send(welcome.clone()).await.unwrap();
            (hello.nonce, challenge, welcome)
        };
        let (offered, (first_nonce, challenge, welcome)) =
            tokio::join!(offer(&mut client, &dialer), recorded);
        assert_eq!(offered.unwrap(), 3, "the genuine exchange completes");

        // The replay, to a new connection of the same dialer.
        let (mut client, mut server) = pair();
        let replay = async {
            let hello = frame::decode::<Hello>(&next_frame(&mut server).await.unwrap()).unwrap();
            server.send(challenge).await.unwrap();
            let answer = frame::decode::<Finish>(&next_frame(&mut server).await.unwrap()).unwrap();
            let _ = server.send(welcome).await;
            (hello.nonce, answer)
        };
        let (offered, (second_nonce, answer)) = tokio::join!(offer(&mut client, &dialer), replay);
        assert_ne!(first_nonce, second_nonce, "every attempt has a fresh nonce");
        assert!(
            matches!(offered, Err(HandshakeError::PeerUnauthenticated)),
            "{offered:?}"
        );
        assert!(matches!(answer, Finish::Refused(_)), "{answer:?}");
    }

    /// Conditions that pass are answered `Retry`, never `Refused`, which
    /// would make the dialing node exit: an acceptor shutting down, and a
    /// dialer whose proof came after the timeout (a stopped process resumed).
    #[tokio::test(start_paused = true)]
    async fn a_passing_condition_is_never_a_refusal() {
        let dialer = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), Some("k"));
        let ours = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), Some("k"));
        let (mut client, mut server) = pair();
        let (offered, accepted) = tokio::join!(
            offer(&mut client, &dialer),
            accept(&mut server, &ours, |_| async {
                Err::<(u64, ()), _>(Refusal::ShuttingDown)
            })
        );
        assert!(matches!(
            accepted,
            Err(HandshakeError::Refused(Refusal::ShuttingDown))
        ));
        let offered = offered.unwrap_err();
        assert!(
            matches!(offered, HandshakeError::RetryLater(_)),
            "{offered:?}"
        );
        assert!(!offered.is_permanent());

        let (mut client, mut server) = pair();
        let late = async {
            let hello = Hello {
                nonce: [1; 32],
                ..dialer.clone()
            };
            client.send(frame::encode(&hello).unwrap()).await.unwrap();
            let Answer::Challenge { nonce, .. } =
                frame::decode(&next_frame(&mut client).await.unwrap()).unwrap()
            else {
                panic!("expected a challenge")
            };
            tokio::time::sleep(HANDSHAKE_TIMEOUT * 2).await;
            let mine = dialer_proof(hello.secret.as_deref(), &hello, &nonce).unwrap();
            let _ = client
                .send(frame::encode(&Finish::Proof(mine)).unwrap())
                .await;
            frame::decode::<Answer>(&next_frame(&mut client).await.unwrap()).unwrap()
        };
        let (answer, accepted) =
            tokio::join!(late, accept(&mut server, &ours, |_| async { Ok((0, ())) }));
        assert!(
            matches!(accepted, Err(HandshakeError::Timeout(_))),
            "{accepted:?}"
        );
        assert!(matches!(answer, Answer::Retry(_)), "{answer:?}");
    }

    #[test]
    fn only_refusals_are_permanent() {
        let transient = [
            HandshakeError::Closed,
            HandshakeError::Timeout(HANDSHAKE_TIMEOUT),
            HandshakeError::Io(std::io::ErrorKind::ConnectionReset.into()),
            HandshakeError::Unexpected("a challenge"),
            HandshakeError::RetryLater("shutting down".into()),
        ];
        for e in transient {
            assert!(!e.is_permanent(), "{e}: a re-dial may succeed");
        }
        assert!(HandshakeError::RefusedByPeer("cluster id".into()).is_permanent());
        assert!(HandshakeError::PeerUnauthenticated.is_permanent());
    }

    proptest::proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(256))]

        /// Whatever a stranger sends, the acceptor answers with an error or a
        /// refusal, never panics, and never admits.
        #[test]
        fn arbitrary_frames_never_get_admitted(
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            second in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            valid_hello in proptest::prelude::any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let ours = keyed(Hello::new("c", Mode::Fifo, 2, 1, 0), Some("k"));
                let (mut client, mut server) = pair();
                let hello_body = if valid_hello {
                    frame::encode(&Hello::new("c", Mode::Fifo, 2, 1, 0)).unwrap().to_vec()
                } else {
                    first
                };
                let _ = client.send(bytes::Bytes::from(hello_body)).await;
                let _ = client.send(bytes::Bytes::from(second)).await;
                drop(client);
                let r = accept(&mut server, &ours, |_| -> std::future::Ready<Result<(u64, ()), Refusal>> {
                    panic!("an unauthenticated sender reached admit")
                })
                .await;
                proptest::prop_assert!(r.is_err());
                Ok(())
            })?;
        }

        /// Decoding any bytes as any handshake message is an error or a value, never a panic.
        #[test]
        fn decoders_take_any_bytes(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = frame::decode::<Hello>(&body);
            let _ = frame::decode::<Answer>(&body);
            let _ = frame::decode::<Finish>(&body);
        }
    }
}
