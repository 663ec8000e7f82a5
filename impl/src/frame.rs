//! Peer wire framing: a 4-byte big-endian length, then a bincode body.
//!
//! `LengthDelimitedCodec` checks the length prefix against the limit *before*
//! reserving any buffer, so a garbage or hostile prefix costs nothing; bincode
//! decodes under the same limit so a length field inside a body cannot ask for
//! more either.

use bincode::config::{Configuration, Limit, Varint};
use bytes::Bytes;
use gsmo_spec::node::LinkFrame;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// Largest peer frame: comfortably above the largest client request
/// ([`crate::resp::MAX_REQUEST`]) plus the ordering protocol's envelope.
pub const MAX_FRAME: usize = 64 << 20;
/// Largest handshake frame; a real one is under a hundred bytes.
pub const MAX_HANDSHAKE_FRAME: usize = 4 << 10;

type BincodeConfig = Configuration<bincode::config::LittleEndian, Varint, Limit<MAX_FRAME>>;

fn config() -> BincodeConfig {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// One message on an established peer channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFrame {
    /// The sender's ShiViz logging clock after its send event, when it logs
    /// ShiViz; purely for the diagram, the protocol never reads it.
    pub clock: Option<Vec<u64>>,
    pub frame: LinkFrame,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("cannot encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("malformed frame: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("malformed frame: {0} bytes left over after the message")]
    Trailing(usize),
}

/// A length-delimited codec that refuses frames over `max` bytes.
pub fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max)
        .new_codec()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, FrameError> {
    Ok(bincode::serde::encode_to_vec(value, config())?.into())
}

/// Decodes one whole frame body; trailing bytes mean the peer and we disagree on the format.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (value, used) = bincode::serde::decode_from_slice(body, config())?;
    match body.len() - used {
        0 => Ok(value),
        left => Err(FrameError::Trailing(left)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use gsmo_spec::batch::Batch;
    use gsmo_spec::kv::{Op, Stamp, Write};
    use gsmo_spec::link::Frame;
    use gsmo_spec::multicast::{fifo, MsgId, Wire};
    use gsmo_spec::snapshot::Envelope;
    use tokio_util::codec::{Decoder, Encoder};

    fn sample() -> PeerFrame {
        let id = MsgId { origin: 1, seq: 7 };
        let payload = Write {
            stamp: Stamp {
                lamport: 3,
                node: 1,
            },
            op: Op::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
        };
        PeerFrame {
            clock: Some(vec![1, 2, 0]),
            frame: Frame::Data {
                seq: 4,
                ack: 2,
                body: Envelope::Msg {
                    seq: 4,
                    body: Wire::Fifo(fifo::Msg {
                        id,
                        payload: Batch {
                            first: 7,
                            writes: std::sync::Arc::new(vec![payload]),
                        },
                    }),
                },
                ack_now: true,
            },
        }
    }

    #[test]
    fn round_trip_through_the_codec() {
        let mut codec = codec(MAX_FRAME);
        let mut buf = BytesMut::new();
        codec.encode(encode(&sample()).unwrap(), &mut buf).unwrap();
        let body = codec.decode(&mut buf).unwrap().expect("one whole frame");
        assert_eq!(decode::<PeerFrame>(&body).unwrap(), sample());
        assert!(buf.is_empty());
    }

    #[test]
    fn huge_prefix_is_refused_before_the_body_arrives() {
        let mut codec = codec(MAX_HANDSHAKE_FRAME);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("frame size too big"), "{err}");
        assert!(
            buf.capacity() < 1024,
            "nothing reserved for the claimed body"
        );
    }

    /// Each codec's limit is its own: a handshake frame one byte over 4 KiB is
    /// refused, while a channel frame of 16 MiB (over tokio-util's default of
    /// 8 MiB) is waited for.
    #[test]
    fn each_codec_holds_its_own_limit() {
        let prefix = |n: usize| BytesMut::from(&(n as u32).to_be_bytes()[..]);
        let mut hs = codec(MAX_HANDSHAKE_FRAME);
        let mut at_limit = prefix(MAX_HANDSHAKE_FRAME);
        at_limit.extend_from_slice(&vec![0; MAX_HANDSHAKE_FRAME]);
        assert_eq!(
            hs.decode(&mut at_limit).unwrap().unwrap().len(),
            MAX_HANDSHAKE_FRAME
        );
        assert!(hs.decode(&mut prefix(MAX_HANDSHAKE_FRAME + 1)).is_err());
        let mut waiting = codec(MAX_FRAME);
        assert!(
            waiting.decode(&mut prefix(16 << 20)).unwrap().is_none(),
            "waits for the body"
        );
        assert!(codec(MAX_FRAME).decode(&mut prefix(MAX_FRAME + 1)).is_err());
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        assert!(matches!(
            decode::<PeerFrame>(&[0xde, 0xad, 0xbe, 0xef]),
            Err(FrameError::Decode(_))
        ));
        let mut body = encode(&sample()).unwrap().to_vec();
        body.push(0);
        assert!(matches!(
            decode::<PeerFrame>(&body),
            Err(FrameError::Trailing(1))
        ));
    }

    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(gsmo_spec::testing::proptest_config(256))]

        #[test]
        fn random_bodies_are_refused_or_decoded_never_a_panic(body in vec(any::<u8>(), 0..512)) {
            if let Ok(f) = decode::<PeerFrame>(&body) {
                // Whatever decodes re-encodes to the very bytes: nothing was skipped.
                prop_assert_eq!(encode(&f).unwrap().to_vec(), body);
            }
        }

        #[test]
        fn mutated_frames_decode_exactly_or_fail_cleanly(
            flips in vec((any::<usize>(), 1u8..), 1..6),
            cut in any::<usize>(),
        ) {
            let mut body = encode(&sample()).unwrap().to_vec();
            for (i, x) in flips {
                let n = body.len();
                body[i % n] ^= x;
            }
            body.truncate(cut % (body.len() + 1));
            if let Ok(f) = decode::<PeerFrame>(&body) {
                prop_assert_eq!(encode(&f).unwrap().to_vec(), body);
            }
        }

        #[test]
        fn random_streams_never_reserve_past_the_limit(stream in vec(any::<u8>(), 0..2048)) {
            let mut c = codec(MAX_HANDSHAKE_FRAME);
            let mut buf = BytesMut::from(&stream[..]);
            while let Ok(Some(_)) = c.decode(&mut buf) {}
            prop_assert!(buf.capacity() <= stream.len().max(MAX_HANDSHAKE_FRAME + 4));
        }
    }
}
