//! The connection's codec after the handshake: length-delimited frames in, and out either as
//! pre-encoded envelopes (the naive path: each frame built in its own buffer, then copied
//! into the connection's) or encoded straight into the connection's write buffer (the
//! zero-copy-net toggle's tuned path: one copy of the payload). Both put the same bytes on
//! the wire.

use crate::wire::Envelope;
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// A frame to send.
pub(crate) enum Outgoing {
    /// An envelope already encoded into its own buffer.
    Encoded(Bytes),
    /// An envelope to encode in place.
    Parts(Envelope),
}

/// [`LengthDelimitedCodec`] framing (4-byte big-endian length) that also encodes envelopes
/// in place.
pub(crate) struct FrameCodec {
    inner: LengthDelimitedCodec,
    max_frame: usize,
}

impl FrameCodec {
    pub(crate) fn new(inner: LengthDelimitedCodec, max_frame: usize) -> FrameCodec {
        FrameCodec { inner, max_frame }
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        self.inner.decode(src)
    }
}

impl Encoder<Outgoing> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        match item {
            Outgoing::Encoded(b) => self.inner.encode(b, dst),
            Outgoing::Parts(env) => {
                let len = env.encoded_len();
                if len > self.max_frame {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "frame of {len} bytes exceeds the {} byte limit",
                            self.max_frame
                        ),
                    ));
                }
                dst.reserve(4 + len);
                dst.put_u32(len as u32);
                env.encode(dst).map_err(std::io::Error::other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_put_the_same_bytes_on_the_wire() {
        for channel in [0u32, 1, 2] {
            for payload in [
                Bytes::new(),
                Bytes::from_static(b"x"),
                Bytes::from(vec![7u8; 70_000]),
            ] {
                let env = Envelope {
                    channel,
                    payload: payload.clone(),
                };
                let mut naive = FrameCodec::new(LengthDelimitedCodec::new(), 1 << 20);
                let mut a = BytesMut::new();
                naive
                    .encode(Outgoing::Encoded(Bytes::from(env.encode_to_vec())), &mut a)
                    .unwrap();
                let mut b = BytesMut::new();
                naive.encode(Outgoing::Parts(env.clone()), &mut b).unwrap();
                assert_eq!(a, b, "channel {channel}, {} bytes", payload.len());
                let frame = naive.decode(&mut b).unwrap().unwrap();
                assert_eq!(Envelope::decode(frame.freeze()).unwrap(), env);
            }
        }
        let mut small = FrameCodec::new(LengthDelimitedCodec::new(), 10);
        let big = Envelope {
            channel: 2,
            payload: Bytes::from(vec![0u8; 64]),
        };
        let e = small.encode(Outgoing::Parts(big), &mut BytesMut::new());
        assert!(e.unwrap_err().to_string().contains("limit"));
    }
}
