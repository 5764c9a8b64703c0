//! Lines of text tried as CPE 2.3 names, purls and vers ranges: whatever parses
//! must print to text that parses to the same value; CPE criteria are matched
//! with a version bound and vers ranges asked about a version.
//!
//! The body lives in `pumpward_vuln::fuzzing` so the committed seeds are
//! replayed by a unit test on stable.
//!
//! Run: `cargo fuzz run cpe_purl_vers --sanitizer none fuzz/seeds/cpe_purl_vers`
//! (from `fuzz/`, with a corpus directory first if you want one kept).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pumpward_vuln::fuzzing::cpe_purl_vers(data);
});
