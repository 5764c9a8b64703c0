//! What the vulnerability pages read: the findings an advisory's rules
//! decided, and the trend of open vulnerability findings per day.

use crate::findings::{finding_from_row, COLUMNS};
use crate::vuln::{KIND_AFFECTED, KIND_REVIEW};
use crate::{Finding, Result, Store};
use pumpward_core::timefmt;
use serde::Serialize;
use time::{Date, Duration};

/// Open vulnerability findings at the end of one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrendDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub affected: u32,
    pub review: u32,
}

/// Per day from `first` to `last`, the findings open at the day's end: raised
/// by then and not resolved by then. `findings` are (kind, raised_at,
/// resolved_at) in the store's timestamp form, whose string order is time
/// order.
pub fn open_per_day(
    findings: &[(String, String, Option<String>)],
    first: Date,
    last: Date,
) -> Vec<TrendDay> {
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        let date = timefmt::format_date(d);
        let end = format!("{date}T23:59:59.999999Z");
        let (mut affected, mut review) = (0, 0);
        for (kind, raised, resolved) in findings {
            let open =
                raised.as_str() <= end.as_str() && resolved.as_ref().is_none_or(|r| *r > end);
            if open && kind == KIND_AFFECTED {
                affected += 1;
            } else if open && kind == KIND_REVIEW {
                review += 1;
            }
        }
        out.push(TrendDay {
            date,
            affected,
            review,
        });
        d = match d.next_day() {
            Some(n) => n,
            None => break,
        };
    }
    out
}

impl Store {
    /// The open vulnerability findings whose evidence cites this advisory's
    /// rules, highest priority first.
    pub async fn advisory_findings(&self, advisory_id: i64) -> Result<Vec<Finding>> {
        let cves: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT cve FROM vuln_vulnerabilities WHERE advisory_id = $1 AND cve IS NOT NULL",
        )
        .bind(advisory_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for cve in cves {
            // A range over the open-findings index (`cve:<id>:asset:` …).
            for r in sqlx::query(&format!(
                "SELECT {COLUMNS} FROM findings WHERE state = 'open' AND kind IN ($1, $2) \
                 AND subject >= $3 AND subject < $4"
            ))
            .bind(KIND_AFFECTED)
            .bind(KIND_REVIEW)
            .bind(format!("cve:{cve}:asset:"))
            .bind(format!("cve:{cve}:asset;"))
            .fetch_all(self.pool())
            .await?
            {
                let f = finding_from_row(&r)?;
                let cites = f.evidence["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["advisory_id"].as_i64() == Some(advisory_id));
                if cites {
                    out.push(f);
                }
            }
        }
        out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.subject.cmp(&b.subject)));
        Ok(out)
    }

    /// Open vulnerability findings (affected, review) at the end of each of
    /// the last `days` days, today included.
    pub async fn vulnerability_trend(&self, days: u16) -> Result<Vec<TrendDay>> {
        let today = crate::now().date();
        let first = today - Duration::days(i64::from(days.max(1)) - 1);
        let start = format!("{}T00:00:00.000000Z", timefmt::format_date(first));
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT kind, raised_at, resolved_at FROM findings WHERE kind IN ($1, $2) \
             AND (resolved_at IS NULL OR resolved_at >= $3)",
        )
        .bind(KIND_AFFECTED)
        .bind(KIND_REVIEW)
        .bind(start)
        .fetch_all(self.pool())
        .await?;
        Ok(open_per_day(&rows, first, today))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_finding_counts_from_the_day_raised_until_the_day_resolved() {
        let f = |kind: &str, raised: &str, resolved: Option<&str>| {
            (
                kind.to_owned(),
                raised.to_owned(),
                resolved.map(str::to_owned),
            )
        };
        let rows = [
            f(
                KIND_AFFECTED,
                "2026-11-02T10:00:00.000000Z",
                Some("2026-11-04T09:00:00.000000Z"),
            ),
            f(KIND_REVIEW, "2026-11-03T23:59:59.999999Z", None),
            f("certificate.expiring", "2026-11-01T00:00:00.000000Z", None),
        ];
        let days = open_per_day(&rows, date!(2026 - 11 - 01), date!(2026 - 11 - 05));
        let counts: Vec<(u32, u32)> = days.iter().map(|d| (d.affected, d.review)).collect();
        assert_eq!(counts, vec![(0, 0), (1, 0), (1, 1), (0, 1), (0, 1)]);
        assert_eq!(days[0].date, "2026-11-01");
    }
}
