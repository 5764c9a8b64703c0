//! A remediation step as the API and CLI receive it, and the free text the
//! priority reads: never a panic, and a step is accepted only along the
//! workflow's edges.
//!
//! The body lives in `pumpward_vuln::fuzzing` so the committed seeds are
//! replayed by a unit test on stable.
//!
//! Run: `cargo fuzz run remediation_step --sanitizer none fuzz/seeds/remediation_step`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pumpward_vuln::fuzzing::remediation_step(data);
});
