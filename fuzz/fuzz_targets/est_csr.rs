//! Arbitrary bytes into the EST enrollment path of the built-in CA: the
//! base64 request body (`decode_est_csr`), the PKCS#10 parse, signature
//! check and issuance (`Ca::issue_device`), the certs-only PKCS#7 reader
//! (`parse_certs_only_pkcs7`) and the certificate inspector.
//!
//! Besides "never panics", checks that whatever is issued names the enrolled
//! asset and is not a CA, and that base64 and PKCS#7 re-encode losslessly.
//! The body is `pumpward_pki::fuzzing::est_csr`, which the seed-replay unit
//! test in pumpward-pki also runs on stable.
//!
//! Run: `cargo fuzz run --sanitizer none est_csr fuzz/seeds/est_csr`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pumpward_pki::fuzzing::est_csr(data);
});
