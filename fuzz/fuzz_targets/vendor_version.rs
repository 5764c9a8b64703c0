//! An advisory's version text, an installed version and a component version:
//! the text is read as a rule and matched under every vendor scheme (an
//! unparsed rule must never decide), and the versions are compared both ways
//! (the order must be antisymmetric under every scheme).
//!
//! The body lives in `pumpward_vuln::fuzzing` so the committed seeds are
//! replayed by a unit test on stable.
//!
//! Run: `cargo fuzz run vendor_version --sanitizer none fuzz/seeds/vendor_version`
//! (from `fuzz/`, with a corpus directory first if you want one kept).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pumpward_vuln::fuzzing::vendor_version(data);
});
