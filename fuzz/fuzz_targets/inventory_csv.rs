//! Arbitrary bytes into the asset CSV reader.
//!
//! Besides "never panics", checks what the reader promises: every row it
//! accepts exports and reads back unchanged, and line numbers are in the file.
//!
//! Run: `cargo +nightly fuzz run inventory_csv fuzz/seeds/inventory_csv`
//! (from the repository root or `fuzz/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pumpward_core::inventory::csv::{read_assets_csv, write_assets_csv, CsvLimits, ExportRow};
use pumpward_core::inventory::LifecycleState;

fuzz_target!(|data: &[u8]| {
    // Small limits, so that the limit paths are reached too.
    let limits = CsvLimits {
        max_record_bytes: 512,
        max_rows: 64,
    };
    let Ok(parsed) = read_assets_csv(data, &limits) else {
        return;
    };

    let last_line = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for line in parsed
        .rows
        .iter()
        .map(|r| r.line)
        .chain(parsed.errors.iter().map(|e| e.line))
    {
        assert!(
            (1..=last_line).contains(&line),
            "line {line} of {last_line}"
        );
    }

    let mut out = Vec::new();
    write_assets_csv(
        &mut out,
        parsed.rows.iter().map(|r| ExportRow {
            spec: &r.spec,
            lifecycle_state: r.lifecycle_state.unwrap_or(LifecycleState::Procured),
        }),
    )
    .expect("writing to a Vec cannot fail");
    let again = read_assets_csv(&out[..], &CsvLimits::default()).expect("export re-reads");
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert_eq!(again.rows.len(), parsed.rows.len());
    for (a, b) in again.rows.iter().zip(&parsed.rows) {
        assert_eq!(a.spec, b.spec);
        assert_eq!(
            a.lifecycle_state,
            Some(b.lifecycle_state.unwrap_or(LifecycleState::Procured))
        );
    }
});
