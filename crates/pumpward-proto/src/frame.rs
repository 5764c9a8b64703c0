//! Length-prefixed framing.
//!
//! A frame is a 4-byte big-endian payload length followed by that many bytes
//! of payload; the payload is one UTF-8 JSON message (see [`crate::message`]).
//!
//! Why JSON and not CBOR: the whole channel already runs inside TLS, messages
//! are small (a batch is at most [`MAX_FRAME_LEN`]), and JSON can be read in
//! a packet capture of the decrypted stream, in a log line and in a fuzz seed
//! without tooling. CBOR would save perhaps a third of the bytes, which does
//! not matter at heartbeat rates, and would add a second serialisation to
//! audit. Numbers that must be exact (doses) travel as decimal strings, so
//! JSON's float ambiguity does not arise.
//!
//! Refusals happen at the earliest possible point: a declared length above
//! the limit is refused as soon as the four length bytes have arrived, before
//! any payload byte is buffered, and a declared length of zero is refused
//! too. Every framing error is fatal to the connection (the byte stream can no
//! longer be trusted to be aligned on frame boundaries): the decoder then
//! stays failed and returns the same error on every later call.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the frame header (the big-endian `u32` payload length).
pub const HEADER_LEN: usize = 4;

/// The largest payload either side accepts or sends: 256 KiB.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header declares more than the limit. Nothing of the payload is
    /// buffered.
    #[error("frame declares {declared} payload bytes; the limit is {max}")]
    TooLarge {
        /// The length the header declares.
        declared: u64,
        /// The limit in force.
        max: usize,
    },
    /// The header declares an empty payload; no message is empty.
    #[error("frame declares an empty payload")]
    Empty,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {received} of {expected} bytes received")]
    Truncated {
        /// Bytes of the unfinished frame (header included) received.
        received: usize,
        /// Bytes the frame needs (header included); 4 while the header itself
        /// is incomplete.
        expected: usize,
    },
}

impl FrameError {
    /// The (fatal) refusal the gateway sends before closing the connection.
    pub fn refusal(&self) -> crate::message::Refusal {
        use crate::message::{Refusal, RefusalCode};
        let code = match self {
            Self::TooLarge { .. } => RefusalCode::FrameTooLarge,
            Self::Empty | Self::Truncated { .. } => RefusalCode::BadFrame,
        };
        Refusal {
            code,
            reason: self.to_string(),
            fatal: true,
            retry_after_s: None,
            supported_versions: Vec::new(),
            expected_next_seq: None,
            seq: None,
        }
    }
}

/// Errors of the `tokio_util` codec: framing or the underlying I/O.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The byte stream is not valid framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading or writing the stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Incremental frame decoder (and, through `tokio_util`, an encoder).
///
/// Use [`FrameDecoder::decode_chunk`] with byte chunks of any size (partial
/// frames, several frames per chunk), or wrap a stream with
/// `tokio_util::codec::Framed::new(io, FrameDecoder::new())`. At most one
/// frame (≤ `max_frame_len` + 4 bytes) is ever held.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    header: [u8; HEADER_LEN],
    header_have: usize,
    /// The payload being received, allocated once the header is accepted.
    payload: Option<(BytesMut, usize)>,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with the protocol limit [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_frame_len(MAX_FRAME_LEN)
    }

    /// A decoder with a smaller (or, for tests, other) limit. A limit above
    /// `u32::MAX` is clamped, since the header cannot express more.
    pub fn with_max_frame_len(max: usize) -> Self {
        Self {
            max: max.min(u32::MAX as usize),
            header: [0; HEADER_LEN],
            header_have: 0,
            payload: None,
            failed: None,
        }
    }

    /// The payload limit in force.
    pub fn max_frame_len(&self) -> usize {
        self.max
    }

    /// The error that stopped this decoder, if any.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Bytes of an unfinished frame held (header included).
    pub fn buffered(&self) -> usize {
        self.header_have + self.payload.as_ref().map_or(0, |(p, _)| p.len())
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.header_have = 0;
        self.payload = None;
        self.failed = Some(e.clone());
        e
    }

    fn check_len(&self, declared: u32) -> Result<usize, FrameError> {
        if declared == 0 {
            return Err(FrameError::Empty);
        }
        let declared_usize = declared as usize;
        if declared_usize > self.max {
            return Err(FrameError::TooLarge {
                declared: u64::from(declared),
                max: self.max,
            });
        }
        Ok(declared_usize)
    }

    /// Consumes `chunk`, appending each completed frame's payload to `out`.
    ///
    /// Frames completed before an error are still appended to `out`; after an
    /// error nothing more is decoded (the same error is returned again).
    pub fn decode_chunk(
        &mut self,
        mut chunk: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while !chunk.is_empty() {
            match &mut self.payload {
                None => {
                    let take = (HEADER_LEN - self.header_have).min(chunk.len());
                    self.header[self.header_have..self.header_have + take]
                        .copy_from_slice(&chunk[..take]);
                    self.header_have += take;
                    chunk = &chunk[take..];
                    if self.header_have == HEADER_LEN {
                        self.header_have = 0;
                        let len = match self.check_len(u32::from_be_bytes(self.header)) {
                            Ok(len) => len,
                            Err(e) => return Err(self.fail(e)),
                        };
                        self.payload = Some((BytesMut::with_capacity(len), len));
                    }
                }
                Some((buf, need)) => {
                    let take = (*need - buf.len()).min(chunk.len());
                    buf.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if buf.len() == *need {
                        let (buf, _) = self.payload.take().expect("matched Some above");
                        out.push(buf.freeze());
                    }
                }
            }
        }
        Ok(())
    }

    /// Declares the end of the stream: an unfinished frame is an error.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match &self.payload {
            Some((buf, need)) => {
                let e = FrameError::Truncated {
                    received: HEADER_LEN + buf.len(),
                    expected: HEADER_LEN + need,
                };
                Err(self.fail(e))
            }
            None if self.header_have > 0 => {
                let e = FrameError::Truncated {
                    received: self.header_have,
                    expected: HEADER_LEN,
                };
                Err(self.fail(e))
            }
            None => Ok(()),
        }
    }
}

/// Writes one frame (header and payload) to `dst`, refusing a payload that
/// the peer would refuse.
pub fn encode_frame(payload: &[u8], max: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    if payload.len() > max.min(u32::MAX as usize) {
        return Err(FrameError::TooLarge {
            declared: payload.len() as u64,
            max,
        });
    }
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_u32(payload.len() as u32);
    dst.extend_from_slice(payload);
    Ok(())
}

/// One frame as a byte vector (header and payload), for tests, seeds and
/// simple blocking writers.
pub fn frame_bytes(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut b = BytesMut::new();
    encode_frame(payload, MAX_FRAME_LEN, &mut b)?;
    Ok(b.to_vec())
}

impl tokio_util::codec::Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into());
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let declared = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let len = match self.check_len(declared) {
            Ok(len) => len,
            Err(e) => {
                src.clear();
                return Err(self.fail(e).into());
            }
        };
        if src.len() < HEADER_LEN + len {
            // Room for exactly this frame, so the reader does not grow the
            // buffer in small steps; bounded by the accepted length.
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let expected = if src.len() < HEADER_LEN {
                    HEADER_LEN
                } else {
                    HEADER_LEN + u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize
                };
                let e = FrameError::Truncated {
                    received: src.len(),
                    expected,
                };
                src.clear();
                Err(self.fail(e).into())
            }
        }
    }
}

/// Sends one payload (`Bytes::from(message.to_payload(v)?)`) as a frame.
impl tokio_util::codec::Encoder<Bytes> for FrameDecoder {
    type Error = CodecError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_frame(&payload, self.max, dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        payloads
            .iter()
            .flat_map(|p| frame_bytes(p).unwrap())
            .collect()
    }

    #[test]
    fn several_frames_in_one_chunk_and_split_everywhere() {
        let stream = frames(&[b"{}", b"{\"a\":1}", b"x"]);
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        d.decode_chunk(&stream, &mut out).unwrap();
        assert_eq!(out, vec![&b"{}"[..], &b"{\"a\":1}"[..], &b"x"[..]]);
        d.finish().unwrap();

        for split in 0..=stream.len() {
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            d.decode_chunk(&stream[..split], &mut out).unwrap();
            d.decode_chunk(&stream[split..], &mut out).unwrap();
            assert_eq!(out.len(), 3, "split at {split}");
            d.finish().unwrap();
        }
    }

    #[test]
    fn oversize_is_refused_at_the_header() {
        let mut d = FrameDecoder::with_max_frame_len(10);
        let mut out = Vec::new();
        let e = d.decode_chunk(&11u32.to_be_bytes(), &mut out).unwrap_err();
        assert_eq!(
            e,
            FrameError::TooLarge {
                declared: 11,
                max: 10
            }
        );
        assert_eq!(d.buffered(), 0);
        let r = e.refusal();
        assert_eq!(
            (r.code, r.fatal),
            (crate::message::RefusalCode::FrameTooLarge, true)
        );
        // Stays failed.
        assert_eq!(d.decode_chunk(b"more", &mut out).unwrap_err(), e);
        assert_eq!(d.finish().unwrap_err(), e);

        let mut d = FrameDecoder::new();
        let e = d
            .decode_chunk(&u32::MAX.to_be_bytes(), &mut out)
            .unwrap_err();
        assert_eq!(
            e,
            FrameError::TooLarge {
                declared: u64::from(u32::MAX),
                max: MAX_FRAME_LEN
            }
        );
    }

    #[test]
    fn frames_before_an_error_are_delivered() {
        let mut stream = frames(&[b"ok"]);
        stream.extend_from_slice(&0u32.to_be_bytes());
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode_chunk(&stream, &mut out), Err(FrameError::Empty));
        assert_eq!(out, vec![&b"ok"[..]]);
    }

    #[test]
    fn truncated_stream_is_reported_at_finish() {
        let stream = frames(&[b"hello"]);
        for cut in 1..stream.len() {
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            d.decode_chunk(&stream[..cut], &mut out).unwrap();
            assert!(out.is_empty());
            let e = d.finish().unwrap_err();
            let expected = if cut < 4 { 4 } else { 9 };
            assert_eq!(
                e,
                FrameError::Truncated {
                    received: cut,
                    expected
                }
            );
        }
    }

    #[test]
    fn encoder_refuses_what_the_peer_would_refuse() {
        let mut b = BytesMut::new();
        assert_eq!(encode_frame(b"", 10, &mut b), Err(FrameError::Empty));
        assert_eq!(
            encode_frame(&[b'a'; 11], 10, &mut b),
            Err(FrameError::TooLarge {
                declared: 11,
                max: 10
            })
        );
        assert!(b.is_empty());
    }

    #[test]
    fn tokio_decoder_matches_and_refuses_early() {
        let stream = frames(&[b"{}", b"abc"]);
        let mut d = FrameDecoder::new();
        let mut src = BytesMut::from(&stream[..5]);
        assert_eq!(d.decode(&mut src).unwrap(), None);
        src.extend_from_slice(&stream[5..]);
        assert_eq!(d.decode(&mut src).unwrap().unwrap(), &b"{}"[..]);
        assert_eq!(d.decode(&mut src).unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(d.decode_eof(&mut src).unwrap(), None);

        let mut d = FrameDecoder::new();
        let mut src = BytesMut::from(&((MAX_FRAME_LEN + 1) as u32).to_be_bytes()[..]);
        assert!(matches!(
            d.decode(&mut src),
            Err(CodecError::Frame(FrameError::TooLarge { .. }))
        ));

        let mut d = FrameDecoder::new();
        let mut src = BytesMut::from(&stream[..3]);
        assert!(matches!(
            d.decode_eof(&mut src),
            Err(CodecError::Frame(FrameError::Truncated {
                received: 3,
                expected: 4
            }))
        ));
    }

    #[tokio::test]
    async fn framed_over_a_duplex_pipe() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_util::codec::Framed;
        let (a, b) = tokio::io::duplex(64);
        let mut tx = Framed::new(a, FrameDecoder::new());
        let mut rx = Framed::new(b, FrameDecoder::new());
        let big = vec![b'x'; 10_000];
        let sender = tokio::spawn(async move {
            tx.send(Bytes::from_static(b"{\"type\":\"hello\"}"))
                .await
                .unwrap();
            tx.send(Bytes::from(big)).await.unwrap();
            tx.close().await.unwrap();
        });
        assert_eq!(
            rx.next().await.unwrap().unwrap(),
            &b"{\"type\":\"hello\"}"[..]
        );
        assert_eq!(rx.next().await.unwrap().unwrap().len(), 10_000);
        assert!(rx.next().await.is_none());
        sender.await.unwrap();
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_frames(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
            cuts in proptest::collection::vec(0usize..4000, 0..10),
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| frame_bytes(p).unwrap()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                d.decode_chunk(&stream[at..c], &mut out).unwrap();
                at = c;
            }
            d.finish().unwrap();
            let got: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_buffer_stays_bounded(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut d = FrameDecoder::with_max_frame_len(100);
            let mut out = Vec::new();
            for chunk in bytes.chunks(7) {
                if d.decode_chunk(chunk, &mut out).is_err() {
                    break;
                }
                prop_assert!(d.buffered() <= 104);
            }
            for f in &out {
                prop_assert!(!f.is_empty() && f.len() <= 100);
            }
        }
    }
}
