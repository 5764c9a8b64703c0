//! Arbitrary bytes as a network policy TOML file (`pumpward net policy import`).
//!
//! Besides "never panics", checks what `pumpward-net` promises: a file that
//! parses exports to text that imports to the same document, the evaluator
//! accepts it and evaluation and every export run. The body lives in
//! `pumpward_net::fuzzing` so the committed seeds are replayed by a unit
//! test on stable.
//!
//! Run: `cargo +nightly fuzz run net_policy_toml --sanitizer none fuzz/seeds/net_policy_toml`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pumpward_net::fuzzing::policy_toml(data);
});
