//! Exports to the enforcement points hospitals already run.
//!
//! Each export is a pure function from the policy (and the assets'
//! identities) to text, deterministic down to the byte: sets, chains, rows
//! and entries are sorted by name, so two exports differ exactly where the
//! policy did and can be reviewed with `diff`. They assume a policy that
//! `check` passes without errors: overlapping zones, for instance, have no
//! single meaning at an enforcement point.

pub mod acl;
pub mod ise;
pub mod nft;
pub mod radius;

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) is prefixed with `'`, as OWASP advises for CSV exports.
pub(crate) fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Writes CSV rows with the one quoting rule (RFC 4180: quote when needed).
pub(crate) fn csv_lines(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}
