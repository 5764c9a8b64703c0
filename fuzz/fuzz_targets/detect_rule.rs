//! Arbitrary bytes as a custom detection rule, as an analyst types it.
//!
//! Besides "never panics", checks that errors point inside the text and
//! that what parses prints to a canonical form that parses to the same
//! tree. The body lives in `pumpward_detect::fuzzing` so the committed
//! seeds are replayed by a unit test on stable.
//!
//! Run: `cargo +nightly fuzz run detect_rule --sanitizer none fuzz/seeds/detect_rule`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_detect::fuzzing::rule_text(data);
});
