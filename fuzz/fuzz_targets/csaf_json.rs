//! Bytes as an importer receives a file: format detection and every JSON/CSV
//! parser of pumpward-vuln (CSAF, NVD API 2.0 and its transcription, CVE JSON 5,
//! KEV, EPSS). For a CSAF document that parses, every product's version rule is
//! read and matched; an unparsed rule must come out undecided.
//!
//! The body lives in `pumpward_vuln::fuzzing` so the committed seeds are
//! replayed by a unit test on stable.
//!
//! Run: `cargo fuzz run csaf_json --sanitizer none fuzz/seeds/csaf_json`
//! (from `fuzz/`, with a corpus directory first if you want one kept).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pumpward_vuln::fuzzing::csaf_json(data);
});
