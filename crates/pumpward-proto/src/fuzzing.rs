//! The body of the `device_frames` fuzz target, here so that the committed
//! seeds (`fuzz/seeds/device_frames/`) are replayed by a unit test on stable.
//!
//! Bytes as a gateway receives them from a pump: framed, parsed, validated
//! and, for event batches, planned and committed by a [`SequenceTracker`].
//! Besides "never panics" it checks what the crate promises.

use crate::frame::{FrameDecoder, MAX_FRAME_LEN};
use crate::message::{
    negotiate, parse_gateway_message, parse_pump_message, GatewayMessage, PumpMessage,
    SUPPORTED_VERSIONS,
};
use crate::seq::SequenceTracker;

/// What one run saw (for the seed tests' expectations).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Frames decoded.
    pub frames: usize,
    /// Messages that parsed and validated.
    pub accepted: usize,
    /// Messages refused (each refusal validated).
    pub refused: usize,
    /// Events stored.
    pub stored: usize,
    /// Events dropped as duplicates.
    pub duplicates: usize,
    /// Gaps recorded.
    pub gaps: usize,
    /// Sequence refusals (regression or not increasing).
    pub seq_refusals: usize,
    /// The stream's framing failed.
    pub frame_error: bool,
}

/// Runs the target over `data`. The first byte picks the chunk size the
/// stream is fed in; the rest is the stream.
pub fn device_frames(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Some((&chunk, stream)) = data.split_first() else {
        return out;
    };
    let chunk = usize::from(chunk % 64) + 1;

    let mut dec = FrameDecoder::new();
    let mut frames = Vec::new();
    for c in stream.chunks(chunk) {
        if dec.decode_chunk(c, &mut frames).is_err() {
            out.frame_error = true;
            break;
        }
        assert!(dec.buffered() <= MAX_FRAME_LEN + 4);
    }
    if !out.frame_error && dec.finish().is_err() {
        out.frame_error = true;
    }
    // Chunking does not change what is decoded.
    let mut whole = Vec::new();
    let _ = FrameDecoder::new().decode_chunk(stream, &mut whole);
    assert_eq!(frames, whole);
    out.frames = frames.len();

    let mut session: Option<u16> = None;
    let mut tracker = SequenceTracker::new(0);
    let mut last_ack = 0;
    for f in &frames {
        let _ = parse_gateway_message(f, Some(1));
        match parse_pump_message(f, session) {
            Err(e) => {
                out.refused += 1;
                GatewayMessage::Refusal(e.refusal())
                    .validate()
                    .expect("a refusal always validates");
            }
            Ok(msg) => {
                out.accepted += 1;
                let v = session.unwrap_or(1);
                let again = parse_pump_message(
                    &msg.to_payload(v).expect("a parsed message encodes"),
                    session,
                )
                .expect("a parsed message re-parses");
                assert_eq!(again, msg);
                match msg {
                    PumpMessage::Hello(h) => {
                        if session.is_none() {
                            session = negotiate(&h.versions, SUPPORTED_VERSIONS);
                        }
                        if let Err(e) = tracker.on_hello(h.next_seq) {
                            out.seq_refusals += 1;
                            GatewayMessage::Refusal(e.refusal())
                                .validate()
                                .expect("valid refusal");
                        }
                    }
                    PumpMessage::EventBatch(b) => {
                        // A validated batch always has a plan.
                        let plan = tracker.plan(&b.events).expect("validated batch plans");
                        assert_eq!(plan.duplicates + plan.store.len(), b.events.len());
                        for e in &b.events[plan.store.clone()] {
                            assert!(e.seq > tracker.last_stored());
                        }
                        out.stored += plan.store.len();
                        out.duplicates += plan.duplicates;
                        out.gaps += plan.gaps.len();
                        let ack = tracker.commit(&plan).expect("fresh plan commits");
                        assert!(ack.up_to_seq >= last_ack);
                        last_ack = ack.up_to_seq;
                        GatewayMessage::Ack(ack).validate().expect("valid ack");
                    }
                    PumpMessage::Heartbeat(_) | PumpMessage::CommandResult(_) => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn seed(name: &str) -> Outcome {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/device_frames")
            .join(name);
        device_frames(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    /// Replays every committed seed of the `device_frames` target on stable.
    #[test]
    fn device_frames_fuzz_seeds_replay() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/seeds/device_frames"
        );
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            device_frames(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 8, "only {n} seeds");
    }

    #[test]
    fn seeds_do_what_their_names_say() {
        let s = seed("session.bin");
        assert_eq!((s.frames, s.accepted, s.refused, s.stored), (4, 4, 0, 13));
        let s = seed("replay_and_gap.bin");
        assert_eq!((s.stored, s.duplicates, s.gaps, s.refused), (5, 2, 1, 0));
        let s = seed("not_increasing.bin");
        assert_eq!((s.accepted, s.refused), (1, 1));
        let s = seed("regression.bin");
        assert_eq!(s.seq_refusals, 1);
        assert!(seed("oversize_header.bin").frame_error);
        assert!(seed("zero_length.bin").frame_error);
        assert!(seed("truncated.bin").frame_error);
        let s = seed("unknown_things.bin");
        assert_eq!((s.accepted, s.refused, s.stored), (2, 3, 1));
        let s = seed("malformed.bin");
        assert_eq!((s.accepted, s.refused), (0, 4));
    }
}
