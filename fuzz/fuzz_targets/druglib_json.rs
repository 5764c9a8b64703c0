//! Arbitrary bytes as a drug library JSON document (what an author uploads or a pump receives inside an envelope).
//!
//! Besides "never panics", checks what `pumpward-druglib` promises: what
//! parses re-exports to itself, a valid library compiles into a dose
//! checker whose checks never panic, CSV line numbers lie inside the file,
//! and an envelope that verifies holds a valid library whose canonical
//! bytes match the signed digest (and is never installed over itself).
//! The body lives in `pumpward_druglib::fuzzing` so the committed seeds are
//! replayed by a unit test on stable.
//!
//! Run: `cargo +nightly fuzz run druglib_json --sanitizer none fuzz/seeds/druglib_json`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_druglib::fuzzing::druglib_json(data);
});
