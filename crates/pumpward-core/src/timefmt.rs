//! The one timestamp format Pumpward stores and hashes.
//!
//! Times are UTC with microsecond precision in a fixed-width RFC 3339 form
//! (`2026-11-26T06:32:16.123456Z`), so that string order equals time order in
//! both SQLite and PostgreSQL and the audit hash of a record never depends on
//! how a library chose to print a time.

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats `t` (converted to UTC) in the canonical form.
pub fn format(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&FORMAT)
        .expect("fixed format of a valid date cannot fail")
}

/// Parses the canonical form, or any RFC 3339 time.
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    time::PrimitiveDateTime::parse(s, &FORMAT)
        .map(|p| p.assume_utc())
        .or_else(|_| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339))
}

/// Formats a calendar date as `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .expect("fixed format of a valid date cannot fail")
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<time::Date, time::error::Parse> {
    time::Date::parse(s, format_description!("[year]-[month]-[day]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips_and_sorts() {
        let a = OffsetDateTime::from_unix_timestamp_nanos(1_764_138_736_123_456_000).unwrap();
        let b = a + time::Duration::microseconds(1);
        let (fa, fb) = (format(a), format(b));
        assert_eq!(fa, "2025-11-26T06:32:16.123456Z");
        assert!(fa < fb);
        assert_eq!(parse(&fa).unwrap(), a);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = parse("2026-01-01T01:00:00+01:00").unwrap();
        assert_eq!(format(t), "2026-01-01T00:00:00.000000Z");
    }
}
