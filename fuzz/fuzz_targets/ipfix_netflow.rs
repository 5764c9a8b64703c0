//! Arbitrary bytes as a run of IPFIX / NetFlow v9 datagrams (each preceded by a 2-byte length) from one exporter.
//!
//! Besides "never panics", checks what `pumpward-flow` promises (see
//! `pumpward_flow::fuzzing`, where the body lives so that the committed
//! seeds are replayed by a unit test on stable).
//!
//! Run: `cargo +nightly fuzz run ipfix_netflow --sanitizer none fuzz/seeds/ipfix_netflow`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_flow::fuzzing::ipfix_netflow(data);
});
