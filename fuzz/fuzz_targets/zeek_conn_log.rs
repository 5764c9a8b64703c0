//! Arbitrary bytes as a Zeek conn.log (TSV or JSON), read whole and followed in two chunks.
//!
//! Besides "never panics", checks what `pumpward-flow` promises (see
//! `pumpward_flow::fuzzing`, where the body lives so that the committed
//! seeds are replayed by a unit test on stable).
//!
//! Run: `cargo +nightly fuzz run zeek_conn_log --sanitizer none fuzz/seeds/zeek_conn_log`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_flow::fuzzing::zeek_conn_log(data);
});
