//! Bytes as the gateway receives them from a pump: the frame decoder (fed in
//! chunks whose size the first byte picks), message parsing and validation,
//! and the sequence tracker for event batches.
//!
//! Besides "never panics", checks what the protocol crate promises: chunking
//! does not change the frames, the decoder never holds more than one frame,
//! what parses re-encodes to itself, every refusal validates, a validated
//! batch always has a plan, nothing is stored twice and acks never go down.
//! The body lives in `pumpward_proto::fuzzing` so the committed seeds are
//! replayed by a unit test on stable.
//!
//! Run: `cargo fuzz run device_frames --sanitizer none fuzz/seeds/device_frames`
//! (from `fuzz/`, with a corpus directory first if you want one kept).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pumpward_proto::fuzzing::device_frames(data);
});
