//! Arbitrary bytes as a detection event at the engine's boundary.
//!
//! Besides "never panics", checks what `pumpward-detect` promises: every
//! refusal is counted once under its reason, and an accepted event
//! re-encodes to JSON that decodes to the same event and goes through the
//! engine. The body lives in `pumpward_detect::fuzzing` so the committed
//! seeds are replayed by a unit test on stable.
//!
//! Run: `cargo +nightly fuzz run detect_event_json --sanitizer none fuzz/seeds/detect_event_json`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_detect::fuzzing::event_json(data);
});
