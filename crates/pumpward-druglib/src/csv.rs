//! CSV import and export of a library: one row per care area × entry, the
//! form pharmacists review in a spreadsheet.
//!
//! # The format
//!
//! UTF-8 (an initial byte-order mark is accepted), RFC 4180 quoting, LF or
//! CRLF line ends. The first line is the header: exactly the columns of
//! [`CSV_COLUMNS`], in any order, each once:
//!
//! ```text
//! library_id,library_name,library_version,library_description,
//! care_area_id,care_area_name,weight_min_kg,weight_max_kg,
//! drug,code,concentration_amount,concentration_unit,concentration_volume_ml,dosing_unit,
//! soft_min,soft_max,hard_min,hard_max,
//! bolus_unit,bolus_soft_min,bolus_soft_max,bolus_hard_min,bolus_hard_max,
//! vtbi_soft_min_ml,vtbi_soft_max_ml,vtbi_hard_min_ml,vtbi_hard_max_ml,
//! max_duration_min,high_alert,advisory
//! ```
//! (one line in the file). Each further line is one entry of one care
//! area:
//!
//! - the `library_*` cells repeat on every row and must be the same on
//!   every row; `care_area_name` and the weight range repeat on every row of
//!   a care area and must agree;
//! - care areas appear in the order of their first row, entries in row
//!   order; a care area without entries is one row whose entry cells
//!   (`drug` … `advisory`) are all empty;
//! - an empty cell means "absent"; numbers are decimals as in the JSON form
//!   (`0.5`, no exponent, no thousands separator); units use their one
//!   spelling (`mcg/kg/min`, `units/kg`); `high_alert` is `true` or
//!   `false`; a bolus is present when `bolus_unit` is filled, VTBI limits
//!   when any `vtbi_*` cell is.
//!
//! Errors carry the physical line (the header is line 1) and the column.
//! The library read is validated ([`Library::validate`]); its problems are
//! reported with the line of the row and the column they concern.
//!
//! # Limits
//!
//! A file over [`MAX_CSV_BYTES`], a record over [`MAX_CSV_RECORD_BYTES`]
//! or a cell over [`MAX_CSV_FIELD_BYTES`] is refused with its line (and
//! column).
//!
//! # Export
//!
//! [`write_library_csv`] writes the columns in [`CSV_COLUMNS`] order, CRLF
//! line ends, quotes only where needed. Reading the export back gives the
//! same library.

use crate::model::{care_area_path, Bolus, CareArea, Entry, Library, LimitSet, WeightRange};
use crate::quantity::Dec;
use crate::units::{AmountUnit, BolusUnit, Concentration, DoseUnit};
use std::collections::HashMap;
use std::fmt;

/// The columns, in export order.
pub const CSV_COLUMNS: [&str; 30] = [
    "library_id",
    "library_name",
    "library_version",
    "library_description",
    "care_area_id",
    "care_area_name",
    "weight_min_kg",
    "weight_max_kg",
    "drug",
    "code",
    "concentration_amount",
    "concentration_unit",
    "concentration_volume_ml",
    "dosing_unit",
    "soft_min",
    "soft_max",
    "hard_min",
    "hard_max",
    "bolus_unit",
    "bolus_soft_min",
    "bolus_soft_max",
    "bolus_hard_min",
    "bolus_hard_max",
    "vtbi_soft_min_ml",
    "vtbi_soft_max_ml",
    "vtbi_hard_min_ml",
    "vtbi_hard_max_ml",
    "max_duration_min",
    "high_alert",
    "advisory",
];

/// Index of the first entry column (`drug`) in [`CSV_COLUMNS`].
const FIRST_ENTRY_COL: usize = 8;
const N: usize = CSV_COLUMNS.len();

/// Largest file accepted.
pub const MAX_CSV_BYTES: usize = 8 * 1024 * 1024;
/// Longest record (one row, all its cells).
pub const MAX_CSV_RECORD_BYTES: usize = 16 * 1024;
/// Longest cell.
pub const MAX_CSV_FIELD_BYTES: usize = 4 * 1024;

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// Physical line of the row (the header is line 1).
    pub line: u64,
    /// The column concerned, when one is.
    pub column: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Why a CSV file is not a valid library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// Larger than [`MAX_CSV_BYTES`].
    #[error("the file is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No header line.
    #[error("the file is empty: the first line must be the header ({})", CSV_COLUMNS.join(","))]
    Empty,
    /// No data row.
    #[error("the file has a header but no rows")]
    NoRows,
    /// The header is not the documented one.
    #[error("line {line}: {message}")]
    Header {
        /// Line of the header.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A record longer than [`MAX_CSV_RECORD_BYTES`].
    #[error("line {line}: the row is longer than {max} bytes")]
    RecordTooLong {
        /// Line on which it starts.
        line: u64,
        /// The limit.
        max: usize,
    },
    /// The CSV structure is broken, or a cell is not UTF-8.
    #[error("line {line}: {message}")]
    Malformed {
        /// Line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Rows with problems (all of them, in line order).
    #[error("{} problem(s): {}", .0.len(), join(.0))]
    Rows(Vec<CsvProblem>),
}

fn join(p: &[CsvProblem]) -> String {
    let mut s = p
        .iter()
        .take(20)
        .map(CsvProblem::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if p.len() > 20 {
        s.push_str(&format!("; … and {} more", p.len() - 20));
    }
    s
}

fn col(name: &str) -> usize {
    CSV_COLUMNS.iter().position(|c| *c == name).unwrap_or(0)
}

fn dec_cell(v: Option<Dec>) -> String {
    v.map(|d| d.to_string()).unwrap_or_default()
}

/// The entry's cells (columns `drug` … `advisory`), as [`CSV_COLUMNS`]
/// names them; also what [`crate::diff`] compares.
pub fn entry_cells(e: &Entry) -> Vec<(&'static str, String)> {
    let b = e.bolus;
    let bl = b.map(|b| b.limits()).unwrap_or_default();
    let v = e.vtbi_ml.unwrap_or_default();
    let cells = [
        e.drug.clone(),
        e.code.clone().unwrap_or_default(),
        e.concentration.amount.to_string(),
        e.concentration.unit.to_string(),
        e.concentration.volume_ml.to_string(),
        e.dosing_unit.to_string(),
        dec_cell(e.soft_min),
        dec_cell(e.soft_max),
        dec_cell(e.hard_min),
        dec_cell(e.hard_max),
        b.map(|b| b.unit.to_string()).unwrap_or_default(),
        dec_cell(bl.soft_min),
        dec_cell(bl.soft_max),
        dec_cell(bl.hard_min),
        dec_cell(bl.hard_max),
        dec_cell(v.soft_min),
        dec_cell(v.soft_max),
        dec_cell(v.hard_min),
        dec_cell(v.hard_max),
        e.max_duration_min
            .map(|m| m.to_string())
            .unwrap_or_default(),
        e.high_alert.to_string(),
        e.advisory.clone().unwrap_or_default(),
    ];
    CSV_COLUMNS[FIRST_ENTRY_COL..]
        .iter()
        .copied()
        .zip(cells)
        .collect()
}

/// Writes the library as CSV (see the module documentation).
pub fn write_library_csv(lib: &Library) -> Vec<u8> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .quote_style(::csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; a failure would drop rows, which the
    // round-trip tests would catch.
    let _ = w.write_record(CSV_COLUMNS);
    for ca in &lib.care_areas {
        let mut head = vec![
            lib.id.clone(),
            lib.name.clone(),
            lib.version.to_string(),
            lib.description.clone(),
            ca.id.clone(),
            ca.name.clone(),
            dec_cell(ca.weight_kg.map(|w| w.min)),
            dec_cell(ca.weight_kg.map(|w| w.max)),
        ];
        if ca.entries.is_empty() {
            head.resize(N, String::new());
            let _ = w.write_record(&head);
        }
        for e in &ca.entries {
            let mut row = head.clone();
            row.extend(entry_cells(e).into_iter().map(|(_, v)| v));
            let _ = w.write_record(&row);
        }
    }
    w.into_inner().unwrap_or_default()
}

/// Reads and validates a library from CSV (see the module documentation).
pub fn read_library_csv(bytes: &[u8]) -> Result<Library, CsvError> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge {
            len: bytes.len(),
            max: MAX_CSV_BYTES,
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rec = ::csv::ByteRecord::new();

    let read = |rdr: &mut ::csv::Reader<&[u8]>,
                rec: &mut ::csv::ByteRecord|
     -> Result<Option<u64>, CsvError> {
        match rdr.read_byte_record(rec) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let line = rec.position().map_or(0, |p| p.line());
                if rec.as_slice().len() > MAX_CSV_RECORD_BYTES {
                    return Err(CsvError::RecordTooLong {
                        line,
                        max: MAX_CSV_RECORD_BYTES,
                    });
                }
                Ok(Some(line))
            }
            Err(e) => Err(CsvError::Malformed {
                line: e.position().map_or(0, |p| p.line()),
                message: format!("{:?}", e.kind()).chars().take(200).collect(),
            }),
        }
    };

    // Header.
    let Some(hline) = read(&mut rdr, &mut rec)? else {
        return Err(CsvError::Empty);
    };
    let mut order = Vec::with_capacity(rec.len());
    for (i, f) in rec.iter().enumerate() {
        let name = std::str::from_utf8(f).map_err(|_| CsvError::Header {
            line: hline,
            message: format!("header field {} is not UTF-8", i + 1),
        })?;
        let name = name.trim();
        let c = CSV_COLUMNS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| CsvError::Header {
                line: hline,
                message: format!(
                    "unknown column {:?}; the columns are: {}",
                    name.chars().take(64).collect::<String>(),
                    CSV_COLUMNS.join(",")
                ),
            })?;
        if order.contains(&c) {
            return Err(CsvError::Header {
                line: hline,
                message: format!("column {} appears twice", CSV_COLUMNS[c]),
            });
        }
        order.push(c);
    }
    let missing: Vec<&str> = (0..N)
        .filter(|c| !order.contains(c))
        .map(|c| CSV_COLUMNS[c])
        .collect();
    if !missing.is_empty() {
        return Err(CsvError::Header {
            line: hline,
            message: format!("missing column(s): {}", missing.join(", ")),
        });
    }

    let mut b = Builder::default();
    while let Some(line) = read(&mut rdr, &mut rec)? {
        if rec.len() != N {
            b.problems.push(CsvProblem {
                line,
                column: None,
                message: format!(
                    "the row has {} cells but the header has {N}; a value containing a comma, a quote or a line break must be in double quotes",
                    rec.len()
                ),
            });
            continue;
        }
        let mut cells: [&str; N] = [""; N];
        let mut bad = false;
        for (i, f) in rec.iter().enumerate() {
            let c = order[i];
            if f.len() > MAX_CSV_FIELD_BYTES {
                b.problems.push(CsvProblem {
                    line,
                    column: Some(CSV_COLUMNS[c]),
                    message: format!("the cell is longer than {MAX_CSV_FIELD_BYTES} bytes"),
                });
                bad = true;
                continue;
            }
            match std::str::from_utf8(f) {
                Ok(s) => cells[c] = s,
                Err(_) => {
                    b.problems.push(CsvProblem {
                        line,
                        column: Some(CSV_COLUMNS[c]),
                        message: "the cell is not UTF-8; save the file as \"CSV UTF-8\"".into(),
                    });
                    bad = true;
                }
            }
        }
        if !bad {
            b.row(line, &cells);
        }
    }
    b.finish()
}

/// Collects rows into a library.
#[derive(Default)]
struct Builder {
    problems: Vec<CsvProblem>,
    lib: Option<(u64, Library)>,
    /// Per care area index: first line, and the line of each entry.
    lines: Vec<(u64, Vec<u64>)>,
    index: HashMap<String, usize>,
}

struct Row<'a> {
    line: u64,
    cells: &'a [&'a str; N],
    problems: Vec<CsvProblem>,
}

impl<'a> Row<'a> {
    fn get(&self, name: &'static str) -> &'a str {
        self.cells[col(name)]
    }
    fn fail(&mut self, column: &'static str, message: impl Into<String>) {
        self.problems.push(CsvProblem {
            line: self.line,
            column: Some(column),
            message: message.into(),
        });
    }
    fn dec(&mut self, name: &'static str) -> Option<Dec> {
        let v = self.get(name);
        if v.is_empty() {
            return None;
        }
        match v.parse() {
            Ok(d) => Some(d),
            Err(e) => {
                self.fail(name, format!("{e}"));
                None
            }
        }
    }
    fn required<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.get(name);
        if v.is_empty() {
            self.fail(name, "is required");
            return None;
        }
        match parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(name, e);
                None
            }
        }
    }
    fn opt_text(&self, name: &'static str) -> Option<String> {
        let v = self.get(name);
        (!v.is_empty()).then(|| v.to_owned())
    }
}

impl Builder {
    fn row(&mut self, line: u64, cells: &[&str; N]) {
        let mut r = Row {
            line,
            cells,
            problems: Vec::new(),
        };
        let version = r.required("library_version", |v| {
            v.parse::<u32>()
                .map_err(|_| format!("{:?} is not a version number (0–4294967295)", short(v)))
        });
        let lib = Library {
            care_areas: Vec::new(),
            description: r.get("library_description").to_owned(),
            id: r.get("library_id").to_owned(),
            name: r.get("library_name").to_owned(),
            version: version.unwrap_or(0),
        };
        match &self.lib {
            None => self.lib = Some((line, lib)),
            Some((first, l)) => {
                for (name, a, b) in [
                    ("library_id", &l.id, &lib.id),
                    ("library_name", &l.name, &lib.name),
                    ("library_description", &l.description, &lib.description),
                ] {
                    if a != b {
                        r.fail(name, format!("differs from the row on line {first}; every row must name the same library"));
                    }
                }
                if version.is_some() && l.version != lib.version {
                    r.fail(
                        "library_version",
                        format!("differs from the row on line {first}"),
                    );
                }
            }
        }

        let wmin = r.dec("weight_min_kg");
        let wmax = r.dec("weight_max_kg");
        let weight = match (wmin, wmax) {
            (Some(min), Some(max)) => Some(WeightRange { min, max }),
            (None, None) => None,
            _ => {
                if r.get("weight_min_kg").is_empty() != r.get("weight_max_kg").is_empty() {
                    let c = if r.get("weight_min_kg").is_empty() {
                        "weight_min_kg"
                    } else {
                        "weight_max_kg"
                    };
                    r.fail(
                        c,
                        "weight_min_kg and weight_max_kg are given together or not at all",
                    );
                }
                None
            }
        };
        let ca_id = r.get("care_area_id").to_owned();
        let ca_name = r.get("care_area_name").to_owned();

        let entry_empty = cells[FIRST_ENTRY_COL..].iter().all(|c| c.is_empty());
        let entry = if entry_empty {
            None
        } else {
            parse_entry(&mut r)
        };

        let ok = r.problems.is_empty();
        self.problems.append(&mut r.problems);
        let Some((_, lib)) = self.lib.as_mut() else {
            return;
        };
        let ci = match self.index.get(&ca_id) {
            Some(&ci) => {
                let ca = &lib.care_areas[ci];
                let first = self.lines[ci].0;
                if ca.name != ca_name {
                    self.problems.push(CsvProblem {
                        line,
                        column: Some("care_area_name"),
                        message: format!(
                            "differs from the row on line {first} for care area {}",
                            short(&ca_id)
                        ),
                    });
                } else if ok && ca.weight_kg != weight {
                    self.problems.push(CsvProblem { line, column: Some("weight_min_kg"), message: format!("the weight range differs from the row on line {first} for care area {}", short(&ca_id)) });
                }
                ci
            }
            None => {
                lib.care_areas.push(CareArea {
                    entries: Vec::new(),
                    id: ca_id.clone(),
                    name: ca_name,
                    weight_kg: weight,
                });
                self.lines.push((line, Vec::new()));
                self.index.insert(ca_id, lib.care_areas.len() - 1);
                lib.care_areas.len() - 1
            }
        };
        if let (true, Some(e)) = (ok, entry) {
            lib.care_areas[ci].entries.push(e);
            self.lines[ci].1.push(line);
        }
    }

    fn finish(mut self) -> Result<Library, CsvError> {
        let Some((first_line, lib)) = self.lib.take() else {
            if self.problems.is_empty() {
                return Err(CsvError::NoRows);
            }
            return Err(CsvError::Rows(self.problems));
        };
        if !self.problems.is_empty() {
            return Err(CsvError::Rows(self.problems));
        }
        if let Err(v) = lib.validate() {
            // Paths to lines: care areas by their path key, entries by index.
            let mut by_key: HashMap<String, usize> = HashMap::new();
            for (i, ca) in lib.care_areas.iter().enumerate() {
                by_key.entry(care_area_path(i, &ca.id)).or_insert(i);
            }
            let mut out: Vec<CsvProblem> =
                v.0.iter()
                    .map(|p| {
                        let (line, column) = self.locate(&p.path, &by_key, first_line);
                        CsvProblem {
                            line,
                            column,
                            message: format!("{} ({})", p.message, p.path),
                        }
                    })
                    .collect();
            out.sort_by_key(|p| p.line);
            return Err(CsvError::Rows(out));
        }
        Ok(lib)
    }

    fn locate(
        &self,
        path: &str,
        by_key: &HashMap<String, usize>,
        first_line: u64,
    ) -> (u64, Option<&'static str>) {
        let Some(close) = path.strip_prefix("care_areas[").and_then(|r| r.find(']')) else {
            let column = match path {
                "id" => Some("library_id"),
                "name" => Some("library_name"),
                "description" => Some("library_description"),
                "version" => Some("library_version"),
                _ => Some("care_area_id"),
            };
            return (first_line, column);
        };
        let key = &path[..close + "care_areas[".len() + 1];
        let rest = &path[key.len()..];
        let Some(&ci) = by_key.get(key) else {
            return (first_line, None);
        };
        let (ca_line, entry_lines) = &self.lines[ci];
        if let Some(after) = rest.strip_prefix(".entries[") {
            if let Some((j, field)) = after.split_once(']') {
                let line = j
                    .parse::<usize>()
                    .ok()
                    .and_then(|j| entry_lines.get(j))
                    .copied()
                    .unwrap_or(*ca_line);
                return (line, entry_column(field.trim_start_matches('.')));
            }
        }
        let column = match rest {
            ".id" => "care_area_id",
            ".name" => "care_area_name",
            ".weight_kg.max" => "weight_max_kg",
            ".weight_kg.min" | ".weight_kg" => "weight_min_kg",
            _ => "care_area_id",
        };
        (*ca_line, Some(column))
    }
}

/// The CSV column of an entry field path (`bolus.hard_max` → `bolus_hard_max`).
fn entry_column(field: &str) -> Option<&'static str> {
    let name = match field {
        "concentration" | "concentration.amount" => "concentration_amount",
        "concentration.volume_ml" => "concentration_volume_ml",
        f => {
            if let Some(v) = f.strip_prefix("vtbi_ml.") {
                return CSV_COLUMNS
                    .iter()
                    .copied()
                    .find(|c| *c == format!("vtbi_{v}_ml"));
            }
            if let Some(b) = f.strip_prefix("bolus.") {
                return CSV_COLUMNS
                    .iter()
                    .copied()
                    .find(|c| *c == format!("bolus_{b}"));
            }
            return CSV_COLUMNS.iter().copied().find(|c| *c == f);
        }
    };
    Some(name)
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_entry(r: &mut Row) -> Option<Entry> {
    let drug = r.required("drug", |v| Ok(v.to_owned()));
    let amount = r.required("concentration_amount", |v| {
        v.parse::<Dec>().map_err(|e| e.to_string())
    });
    let unit = r.required("concentration_unit", |v| {
        v.parse::<AmountUnit>().map_err(|e| e.to_string())
    });
    let volume = r.required("concentration_volume_ml", |v| {
        v.parse::<Dec>().map_err(|e| e.to_string())
    });
    let dosing_unit = r.required("dosing_unit", |v| {
        v.parse::<DoseUnit>().map_err(|e| e.to_string())
    });
    let soft_min = r.dec("soft_min");
    let soft_max = r.dec("soft_max");
    let hard_min = r.dec("hard_min");
    let hard_max = r.dec("hard_max");
    let bolus_cols = [
        "bolus_soft_min",
        "bolus_soft_max",
        "bolus_hard_min",
        "bolus_hard_max",
    ];
    let bl: Vec<Option<Dec>> = bolus_cols.iter().map(|c| r.dec(c)).collect();
    let bolus = if r.get("bolus_unit").is_empty() {
        if bolus_cols.iter().any(|c| !r.get(c).is_empty()) {
            r.fail("bolus_unit", "is required when a bolus limit is given");
        }
        None
    } else {
        r.required("bolus_unit", |v| {
            v.parse::<BolusUnit>().map_err(|e| e.to_string())
        })
        .map(|unit| Bolus {
            soft_min: bl[0],
            soft_max: bl[1],
            hard_min: bl[2],
            hard_max: bl[3],
            unit,
        })
    };
    let vtbi_cols = [
        "vtbi_soft_min_ml",
        "vtbi_soft_max_ml",
        "vtbi_hard_min_ml",
        "vtbi_hard_max_ml",
    ];
    let vl: Vec<Option<Dec>> = vtbi_cols.iter().map(|c| r.dec(c)).collect();
    let vtbi_ml = vtbi_cols
        .iter()
        .any(|c| !r.get(c).is_empty())
        .then_some(LimitSet {
            soft_min: vl[0],
            soft_max: vl[1],
            hard_min: vl[2],
            hard_max: vl[3],
        });
    let max_duration_min = match r.get("max_duration_min") {
        "" => None,
        v => match v.parse::<u32>() {
            Ok(m) => Some(m),
            Err(_) => {
                r.fail(
                    "max_duration_min",
                    format!("{:?} is not a whole number of minutes", short(v)),
                );
                None
            }
        },
    };
    let high_alert = r.required("high_alert", |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{:?} is not true or false", short(v))),
    });
    Some(Entry {
        advisory: r.opt_text("advisory"),
        bolus,
        code: r.opt_text("code"),
        concentration: Concentration {
            amount: amount?,
            unit: unit?,
            volume_ml: volume?,
        },
        dosing_unit: dosing_unit?,
        drug: drug?,
        hard_max,
        hard_min,
        high_alert: high_alert?,
        max_duration_min,
        soft_max,
        soft_min,
        vtbi_ml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> String {
        CSV_COLUMNS.join(",")
    }

    /// A row from a few cells by column name; the rest empty.
    fn row(cells: &[(&str, &str)]) -> String {
        let mut v = vec![String::new(); N];
        for (c, x) in cells {
            v[col(c)] = if x.contains(',') {
                format!("\"{x}\"")
            } else {
                (*x).to_owned()
            };
        }
        v.join(",")
    }

    fn base<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("library_id", "lib"),
            ("library_name", "Lib"),
            ("library_version", "2"),
            ("care_area_id", "med-surg"),
            ("care_area_name", "Med-Surg"),
            ("drug", "heparin"),
            ("concentration_amount", "25000"),
            ("concentration_unit", "units"),
            ("concentration_volume_ml", "250"),
            ("dosing_unit", "units/h"),
            ("hard_max", "2000"),
            ("high_alert", "true"),
        ];
        for (c, x) in extra {
            v.retain(|(k, _)| k != c);
            v.push((c, x));
        }
        v
    }

    fn read(rows: &[String]) -> Result<Library, CsvError> {
        let mut s = header();
        for r in rows {
            s.push('\n');
            s.push_str(r);
        }
        read_library_csv(s.as_bytes())
    }

    fn problems(r: Result<Library, CsvError>) -> Vec<(u64, Option<&'static str>, String)> {
        match r {
            Err(CsvError::Rows(p)) => p
                .into_iter()
                .map(|p| (p.line, p.column, p.message))
                .collect(),
            other => panic!("expected row problems, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_small_file_and_round_trips() {
        let lib = read(&[
            row(&base(&[])),
            row(&base(&[
                ("drug", "insulin regular"),
                ("concentration_amount", "100"),
                ("concentration_volume_ml", "100"),
                ("advisory", "Check glucose, hourly"),
                ("bolus_unit", "units"),
                ("bolus_hard_max", "10"),
            ])),
            row(&base(&[
                ("care_area_id", "nicu"),
                ("care_area_name", "NICU"),
                ("drug", ""),
                ("concentration_amount", ""),
                ("concentration_unit", ""),
                ("concentration_volume_ml", ""),
                ("dosing_unit", ""),
                ("hard_max", ""),
                ("high_alert", ""),
            ])),
        ])
        .unwrap();
        assert_eq!(lib.care_areas.len(), 2);
        assert_eq!(lib.care_areas[0].entries.len(), 2);
        assert!(lib.care_areas[1].entries.is_empty());
        assert_eq!(
            lib.care_areas[0].entries[1].bolus.unwrap().hard_max,
            Some("10".parse().unwrap())
        );
        let out = write_library_csv(&lib);
        assert_eq!(read_library_csv(&out).unwrap(), lib);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("{}\r\n", header())));
        assert!(text.contains("\"Check glucose, hourly\""));
    }

    #[test]
    fn errors_name_line_and_column() {
        let p = problems(read(&[
            row(&base(&[])),
            row(&base(&[("hard_max", "1e3")])),
            row(&base(&[
                ("dosing_unit", "units/hr"),
                ("library_name", "Other"),
            ])),
            row(&base(&[("high_alert", "yes"), ("bolus_hard_max", "3")])),
            row(&base(&[("weight_min_kg", "3")])),
        ]));
        let has = |line: u64, c: &str, msg: &str| {
            assert!(
                p.iter()
                    .any(|(l, cc, m)| *l == line && *cc == Some(c) && m.contains(msg)),
                "{line} {c} {msg}: {p:#?}"
            )
        };
        has(3, "hard_max", "not a decimal number");
        has(4, "dosing_unit", "unknown dosing unit \"units/hr\"");
        has(4, "library_name", "differs from the row on line 2");
        has(5, "high_alert", "\"yes\" is not true or false");
        has(5, "bolus_unit", "required when a bolus limit is given");
        has(6, "weight_max_kg", "given together");
    }

    #[test]
    fn validation_problems_point_at_rows() {
        let p = problems(read(&[
            row(&base(&[])),
            row(&base(&[
                ("drug", "propofol"),
                ("concentration_amount", "10"),
                ("concentration_unit", "mg"),
                ("concentration_volume_ml", "1"),
                ("dosing_unit", "mcg/kg/min"),
                ("soft_max", "300"),
                ("hard_max", "200"),
            ])),
            row(&base(&[
                ("concentration_amount", "100"),
                ("concentration_volume_ml", "1"),
            ])),
        ]));
        assert!(
            p.contains(&(
                3,
                Some("soft_max"),
                "soft_max 300 is above hard_max 200 (care_areas[med-surg].entries[1].soft_max)"
                    .into()
            )),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|(l, c, m)| *l == 3
                && *c == Some("dosing_unit")
                && m.contains("weight range")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|(l, c, m)| *l == 4
                && *c == Some("concentration_amount")
                && m.contains("duplicate")),
            "{p:#?}"
        );
    }

    #[test]
    fn documented_header_is_the_real_one() {
        assert!(include_str!("lib.rs").contains(&header()));
        let doc: String = include_str!("csv.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! library_id,"))
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//! "))
            .collect();
        assert_eq!(doc, header());
    }

    #[test]
    fn header_and_limits() {
        assert_eq!(read_library_csv(b""), Err(CsvError::Empty));
        assert_eq!(read_library_csv(header().as_bytes()), Err(CsvError::NoRows));
        let e = read_library_csv(b"drug,dose\n").unwrap_err().to_string();
        assert!(e.contains("unknown column \"dose\""), "{e}");
        let e = read_library_csv(format!("{},drug", header()).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("column drug appears twice"), "{e}");
        let e = read_library_csv(b"drug\n").unwrap_err().to_string();
        assert!(e.contains("missing column(s): library_id"), "{e}");
        let long = "x".repeat(MAX_CSV_FIELD_BYTES + 1);
        let p = problems(read(&[row(&base(&[("advisory", long.as_str())]))]));
        assert_eq!(p[0].0, 2);
        assert_eq!(p[0].1, Some("advisory"));
        let huge = "y".repeat(MAX_CSV_RECORD_BYTES);
        let r = read(&[row(&base(&[])), row(&base(&[("advisory", huge.as_str())]))]);
        assert_eq!(
            r,
            Err(CsvError::RecordTooLong {
                line: 3,
                max: MAX_CSV_RECORD_BYTES
            })
        );
        let p = problems(read(&[row(&base(&[])), "a,b".into()]));
        assert_eq!((p[0].0, p[0].1), (3, None));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(format!("{}\n{}\n", header(), row(&base(&[]))).as_bytes());
        assert!(read_library_csv(&bom).is_ok());
        let r = read_library_csv(&vec![b'a'; MAX_CSV_BYTES + 1]);
        assert!(matches!(r, Err(CsvError::TooLarge { .. })));
    }
}
