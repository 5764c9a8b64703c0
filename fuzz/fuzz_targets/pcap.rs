//! Arbitrary bytes as a pcap or pcapng capture file, aggregated into flows.
//!
//! Besides "never panics", checks what `pumpward-flow` promises (see
//! `pumpward_flow::fuzzing`, where the body lives so that the committed
//! seeds are replayed by a unit test on stable).
//!
//! Run: `cargo +nightly fuzz run pcap --sanitizer none fuzz/seeds/pcap`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_flow::fuzzing::pcap(data);
});
