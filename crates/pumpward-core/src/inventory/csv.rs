//! CSV import and export of assets (the form a CMMS or a spreadsheet produces).
//!
//! # The format
//!
//! A UTF-8 text file (an initial byte-order mark is accepted, as "CSV UTF-8"
//! in spreadsheets writes one) in the RFC 4180 dialect: fields separated by
//! `,`, records ended by LF or CRLF, a field containing a comma, a quote or a
//! line break enclosed in `"`, with a quote inside it written twice (`""`).
//!
//! The first line is a header naming the columns. Names are trimmed and
//! compared without regard to case; columns may come in any order.
//!
//! * Required: [`REQUIRED_COLUMNS`] — `asset_id`, `manufacturer`, `model`,
//!   `serial_number`, `firmware_version`.
//! * Optional: [`OPTIONAL_COLUMNS`] — `kind`, `device_type`, `udi`, `software`,
//!   `cpe`, `mac_address`, `ip_address`, `hostname`, `location`, `care_area`, `zone`,
//!   `lifecycle_state`, `owner`, `vendor_support_contact`, `phi_stored`,
//!   `credential_state`, `end_of_support`, `notes`.
//!
//! A missing required column, a column not in these lists or a column named
//! twice makes the whole file unusable ([`CsvError`]): guessing what an
//! unknown column means could put a value in the wrong field.
//!
//! Each further line is one asset. An empty cell means "absent"; the defaults
//! are then those of [`AssetSpec::validate`] (`kind` pump, `phi_stored`
//! unknown, `credential_state` default_unchanged) and an absent
//! `lifecycle_state` is left to the caller. Values are checked exactly as
//! [`AssetSpec::validate`] checks any draft; `software` is `name=version` pairs
//! separated by `;`, `cpe` is CPE 2.3 formatted names separated by spaces
//! (`cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:* cpe:2.3:o:…`; a file
//! without the column imports as before, with no CPE names), `end_of_support` is `YYYY-MM-DD`, enumerations use their
//! snake_case names; a CRLF line break inside a quoted value is read as LF.
//! A row that fails is reported as a [`RowError`] with its
//! physical line number (the line on which the record starts, counting the
//! header as line 1 and counting blank lines and line breaks inside quoted
//! values) and every problem found in it; the other rows are still read. An
//! `asset_id` that appears twice is an error on the later row. Lines that are
//! empty, or whose cells are all empty, are skipped.
//!
//! ```text
//! asset_id,manufacturer,model,serial_number,firmware_version,software,mac_address,lifecycle_state,notes
//! PUMP-0001,BD,Alaris 8015 PC Unit,12345678,9.33.1,Wireless Battery Module=v22D28;PCU comms=1.2,00:1a:2b:3c:4d:5e,in_service,
//! PUMP-0002,BD,Alaris 8015 PC Unit,12345679,9.33.1,,00-1A-2B-3C-4D-5F,maintenance,"Door latch, left side.
//! Sent to biomed 2025-03-02."
//! ```
//!
//! # Limits
//!
//! The reader never holds more than about one record in memory:
//! a record longer than [`CsvLimits::max_record_bytes`] stops the import with
//! [`CsvError::RecordTooLong`] after reading at most that many bytes (plus one
//! read buffer) of it, and a file with more than [`CsvLimits::max_rows`] data
//! rows stops with [`CsvError::TooManyRows`]. Bytes that are not UTF-8 stop the
//! import too ([`CsvError::InvalidUtf8`]): they mean the file was saved in
//! another encoding, and every row of it is suspect.
//!
//! # Export
//!
//! [`write_assets_csv`] writes every column of [`EXPORT_COLUMNS`] in that
//! order, with CRLF line endings and quotes only where needed. Reading an
//! export back gives exactly the same specs and lifecycle states.
//!
//! ```
//! use pumpward_core::inventory::csv::{read_assets_csv, write_assets_csv, CsvLimits, ExportRow};
//!
//! let file = "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
//!             PUMP-1,BD,Alaris 8015,123,9.33.1,in_service\n";
//! let parsed = read_assets_csv(file.as_bytes(), &CsvLimits::default()).unwrap();
//! assert!(parsed.errors.is_empty());
//! let row = &parsed.rows[0];
//! assert_eq!((row.line, row.spec.asset_id.as_str()), (2, "PUMP-1"));
//!
//! let mut out = Vec::new();
//! let state = row.lifecycle_state.unwrap();
//! write_assets_csv(&mut out, [ExportRow { spec: &row.spec, lifecycle_state: state }]).unwrap();
//! let again = read_assets_csv(&out[..], &CsvLimits::default()).unwrap();
//! assert_eq!(again.rows[0].spec, row.spec);
//! ```

use super::{
    AssetDraft, AssetId, AssetSpec, CpeField, LifecycleState, SoftwareComponent, SoftwareField,
};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::rc::Rc;

/// Columns every file must have.
pub const REQUIRED_COLUMNS: &[&str] = &[
    "asset_id",
    "manufacturer",
    "model",
    "serial_number",
    "firmware_version",
];

/// Columns a file may have.
pub const OPTIONAL_COLUMNS: &[&str] = &[
    "kind",
    "device_type",
    "udi",
    "software",
    "cpe",
    "mac_address",
    "ip_address",
    "hostname",
    "location",
    "care_area",
    "zone",
    "lifecycle_state",
    "owner",
    "vendor_support_contact",
    "phi_stored",
    "credential_state",
    "end_of_support",
    "notes",
];

/// The columns [`write_assets_csv`] writes, in order: the required columns,
/// then the optional ones.
pub const EXPORT_COLUMNS: &[&str] = &[
    "asset_id",
    "manufacturer",
    "model",
    "serial_number",
    "firmware_version",
    "kind",
    "device_type",
    "udi",
    "software",
    "cpe",
    "mac_address",
    "ip_address",
    "hostname",
    "location",
    "care_area",
    "zone",
    "lifecycle_state",
    "owner",
    "vendor_support_contact",
    "phi_stored",
    "credential_state",
    "end_of_support",
    "notes",
];

/// Bounds on what [`read_assets_csv`] accepts, so that a hostile or broken
/// file cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvLimits {
    /// Longest record (one row, all its cells together), in bytes.
    pub max_record_bytes: usize,
    /// Most data rows (not counting the header and blank lines).
    pub max_rows: usize,
}

impl Default for CsvLimits {
    fn default() -> Self {
        CsvLimits {
            max_record_bytes: 64 * 1024,
            max_rows: 1_000_000,
        }
    }
}

/// One valid row of an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Physical line on which the row starts (the header is line 1).
    pub line: u64,
    pub spec: AssetSpec,
    /// `None` when the file has no `lifecycle_state` column or the cell is empty.
    pub lifecycle_state: Option<LifecycleState>,
}

/// One row that was refused, with everything wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Physical line on which the row starts (the header is line 1).
    pub line: u64,
    /// The row's asset id, when its `asset_id` cell holds a valid one.
    pub asset_id: Option<String>,
    /// `field: problem` for each bad field, joined with `; `.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.asset_id {
            Some(id) => write!(f, "line {} (asset {id}): {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for RowError {}

/// A file that could be read: its valid rows and its refused rows, each in
/// file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsv {
    /// The columns of the file's header, in file order, by their canonical
    /// names. A caller updating existing assets can tell from this whether a
    /// default (such as `kind` = pump) was stated in the file or assumed.
    pub columns: Vec<&'static str>,
    pub rows: Vec<ImportRow>,
    pub errors: Vec<RowError>,
}

/// A problem that makes the whole file unusable.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty: the first line must be a header naming the columns ({})", REQUIRED_COLUMNS.join(","))]
    Empty,
    #[error("line {line}: unknown column {column:?}; accepted columns are: {}", EXPORT_COLUMNS.join(", "))]
    UnknownColumn { line: u64, column: String },
    #[error("line {line}: column {column:?} appears more than once in the header")]
    DuplicateColumn { line: u64, column: &'static str },
    #[error("line {line}: the header lacks the required column(s) {}", missing.join(", "))]
    MissingColumns {
        line: u64,
        missing: Vec<&'static str>,
    },
    #[error("line {line}: the record starting here is longer than {max} bytes")]
    RecordTooLong { line: u64, max: usize },
    #[error("line {line}: the file has more than {max} rows")]
    TooManyRows { line: u64, max: usize },
    #[error("line {line}: {column} is not valid UTF-8; save the file as \"CSV UTF-8\"")]
    InvalidUtf8 { line: u64, column: String },
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("reading the file failed: {0}")]
    Io(#[source] io::Error),
}

/// One asset to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportRow<'a> {
    pub spec: &'a AssetSpec,
    pub lifecycle_state: LifecycleState,
}

/// Size of the reader's buffer; a record may cost this much beyond its limit.
const BUFFER_CAPACITY: usize = 8 * 1024;
/// Longest field message kept in a [`RowError`]: messages quote the bad
/// value, and a 64 KiB value should not be copied into every report.
const MAX_FIELD_MESSAGE_CHARS: usize = 300;
/// Longest header name quoted back in [`CsvError::UnknownColumn`].
const MAX_QUOTED_HEADER_CHARS: usize = 64;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Every column, so that a cell is assigned by an exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    AssetId,
    Manufacturer,
    Model,
    SerialNumber,
    FirmwareVersion,
    Kind,
    DeviceType,
    Udi,
    Software,
    Cpe,
    MacAddress,
    IpAddress,
    Hostname,
    Location,
    CareArea,
    Zone,
    LifecycleState,
    Owner,
    VendorSupportContact,
    PhiStored,
    CredentialState,
    EndOfSupport,
    Notes,
}

/// In [`EXPORT_COLUMNS`] order (checked by a test).
const COLS: &[Col] = &[
    Col::AssetId,
    Col::Manufacturer,
    Col::Model,
    Col::SerialNumber,
    Col::FirmwareVersion,
    Col::Kind,
    Col::DeviceType,
    Col::Udi,
    Col::Software,
    Col::Cpe,
    Col::MacAddress,
    Col::IpAddress,
    Col::Hostname,
    Col::Location,
    Col::CareArea,
    Col::Zone,
    Col::LifecycleState,
    Col::Owner,
    Col::VendorSupportContact,
    Col::PhiStored,
    Col::CredentialState,
    Col::EndOfSupport,
    Col::Notes,
];

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::AssetId => "asset_id",
            Col::Manufacturer => "manufacturer",
            Col::Model => "model",
            Col::SerialNumber => "serial_number",
            Col::FirmwareVersion => "firmware_version",
            Col::Kind => "kind",
            Col::DeviceType => "device_type",
            Col::Udi => "udi",
            Col::Software => "software",
            Col::Cpe => "cpe",
            Col::MacAddress => "mac_address",
            Col::IpAddress => "ip_address",
            Col::Hostname => "hostname",
            Col::Location => "location",
            Col::CareArea => "care_area",
            Col::Zone => "zone",
            Col::LifecycleState => "lifecycle_state",
            Col::Owner => "owner",
            Col::VendorSupportContact => "vendor_support_contact",
            Col::PhiStored => "phi_stored",
            Col::CredentialState => "credential_state",
            Col::EndOfSupport => "end_of_support",
            Col::Notes => "notes",
        }
    }

    fn from_header(name: &str) -> Option<Col> {
        let name = name.trim();
        COLS.iter()
            .copied()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The cell this column holds for an exported asset.
    fn export_cell(self, d: &AssetDraft, state: LifecycleState) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        match self {
            Col::AssetId => d.asset_id.clone(),
            Col::Manufacturer => d.manufacturer.clone(),
            Col::Model => d.model.clone(),
            Col::SerialNumber => d.serial_number.clone(),
            Col::FirmwareVersion => d.firmware_version.clone(),
            Col::Kind => opt(&d.kind),
            Col::DeviceType => opt(&d.device_type),
            Col::Udi => opt(&d.udi),
            Col::Software => match &d.software {
                None => String::new(),
                Some(SoftwareField::Text(t)) => t.clone(),
                Some(SoftwareField::List(l)) => SoftwareComponent::format_list(l),
            },
            Col::Cpe => match &d.cpe {
                None => String::new(),
                Some(CpeField::Text(t)) => t.clone(),
                Some(CpeField::List(l)) => super::format_cpe_list(l),
            },
            Col::MacAddress => opt(&d.mac_address),
            Col::IpAddress => opt(&d.ip_address),
            Col::Hostname => opt(&d.hostname),
            Col::Location => opt(&d.location),
            Col::CareArea => opt(&d.care_area),
            Col::Zone => opt(&d.zone),
            Col::LifecycleState => state.as_str().to_owned(),
            Col::Owner => opt(&d.owner),
            Col::VendorSupportContact => opt(&d.vendor_support_contact),
            Col::PhiStored => opt(&d.phi_stored),
            Col::CredentialState => opt(&d.credential_state),
            Col::EndOfSupport => opt(&d.end_of_support),
            Col::Notes => opt(&d.notes),
        }
    }
}

/// Reads an asset file: the valid rows and the refused ones, or a
/// [`CsvError`] if the file as a whole cannot be used.
pub fn read_assets_csv(r: impl Read, limits: &CsvLimits) -> Result<ParsedCsv, CsvError> {
    let mut reader = AssetCsvReader::new(r, limits)?;
    let mut out = ParsedCsv {
        columns: reader.columns(),
        rows: Vec::new(),
        errors: Vec::new(),
    };
    while let Some(row) = reader.next_row()? {
        match row {
            Ok(row) => out.rows.push(row),
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

/// Reads an asset file one row at a time, so that a bulk import can store
/// the first rows while it parses the rest. [`read_assets_csv`] is this
/// reader collected; both accept and refuse exactly the same rows.
pub struct AssetCsvReader<R> {
    records: RecordSource<io::Chain<io::Cursor<Vec<u8>>, R>>,
    rec: csv::ByteRecord,
    columns: Vec<Col>,
    asset_col: Option<usize>,
    /// Where each asset id was first seen, to refuse a second row for it.
    first_line_of: HashMap<AssetId, u64>,
    data_rows: usize,
    max_rows: usize,
}

impl<R: Read> AssetCsvReader<R> {
    /// Reads up to and including the header, or says why the file cannot
    /// be used.
    pub fn new(r: R, limits: &CsvLimits) -> Result<Self, CsvError> {
        let mut records = RecordSource::new(r, limits)?;
        let mut rec = csv::ByteRecord::new();
        // The header: the first line that is not blank.
        let header_line = loop {
            match records.next(&mut rec)? {
                None => return Err(CsvError::Empty),
                Some(line) if !is_blank(&rec) => break line,
                Some(_) => {}
            }
        };
        let columns = parse_header(&rec, header_line)?;
        let asset_col = columns.iter().position(|&c| c == Col::AssetId);
        Ok(AssetCsvReader {
            records,
            rec,
            columns,
            asset_col,
            first_line_of: HashMap::new(),
            data_rows: 0,
            max_rows: limits.max_rows,
        })
    }

    /// The columns of the file's header, in file order, by their canonical
    /// names.
    pub fn columns(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name()).collect()
    }

    /// The next data row, valid or refused; `None` at the end of the file.
    /// An `Err` means the file as a whole cannot be used (from here on).
    pub fn next_row(&mut self) -> Result<Option<Result<ImportRow, RowError>>, CsvError> {
        let AssetCsvReader {
            records,
            rec,
            columns,
            asset_col,
            first_line_of,
            data_rows,
            max_rows,
        } = self;
        let asset_col = *asset_col;
        let line = loop {
            match records.next(rec)? {
                None => return Ok(None),
                Some(_) if is_blank(rec) => {}
                Some(line) => break line,
            }
        };
        *data_rows += 1;
        if *data_rows > *max_rows {
            return Err(CsvError::TooManyRows {
                line,
                max: *max_rows,
            });
        }
        let cells = utf8_cells(rec, line, |i| match columns.get(i) {
            Some(c) => format!("column {}", c.name()),
            None => format!("field {} (beyond the header)", i + 1),
        })?;
        let asset_id = asset_col
            .and_then(|i| cells.get(i))
            .and_then(|c| c.parse::<AssetId>().ok());

        if cells.len() != columns.len() {
            return Ok(Some(Err(RowError {
                line,
                asset_id: asset_id.map(String::from),
                message: format!(
                    "the row has {} fields but the header has {}; a value containing a comma, \
                     a quote or a line break must be enclosed in double quotes",
                    cells.len(),
                    columns.len()
                ),
            })));
        }

        let (draft, state_cell) = draft_from_cells(columns, &cells);
        let mut problems = Vec::new();
        let spec = match AssetSpec::validate(&draft) {
            Ok(spec) => Some(spec),
            Err(errs) => {
                problems.extend(
                    errs.0
                        .iter()
                        .map(|e| format!("{}: {}", e.field, truncate(&e.message))),
                );
                None
            }
        };
        let state = match state_cell.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => match s.parse::<LifecycleState>() {
                Ok(st) => Some(st),
                Err(e) => {
                    problems.push(format!("lifecycle_state: {}", truncate(&e.to_string())));
                    None
                }
            },
        };
        if let Some(id) = &asset_id {
            if let Some(first) = first_line_of.get(id) {
                problems.push(format!(
                    "asset_id: {id} is already used by the row on line {first}"
                ));
            } else {
                first_line_of.insert(id.clone(), line);
            }
        }

        Ok(Some(match spec {
            Some(spec) if problems.is_empty() => Ok(ImportRow {
                line,
                spec,
                lifecycle_state: state,
            }),
            _ => Err(RowError {
                line,
                asset_id: asset_id.map(String::from),
                message: problems.join("; "),
            }),
        }))
    }
}

/// Writes assets as CSV: a header of [`EXPORT_COLUMNS`], then one row per
/// asset, which [`read_assets_csv`] reads back unchanged.
pub fn write_assets_csv<'a>(
    w: impl Write,
    rows: impl IntoIterator<Item = ExportRow<'a>>,
) -> Result<(), csv::Error> {
    let mut wtr = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(w);
    wtr.write_record(EXPORT_COLUMNS)?;
    for row in rows {
        let draft = row.spec.to_draft();
        wtr.write_record(
            COLS.iter()
                .map(|c| c.export_cell(&draft, row.lifecycle_state)),
        )?;
    }
    wtr.flush()?;
    Ok(())
}

fn parse_header(rec: &csv::ByteRecord, line: u64) -> Result<Vec<Col>, CsvError> {
    let names = utf8_cells(rec, line, |i| format!("header field {}", i + 1))?;
    if names.iter().any(|n| n.contains('\r')) {
        return Err(CsvError::Malformed {
            line,
            message: "the header contains a carriage return not followed by a line feed; \
                      save the file with LF or CRLF line endings"
                .into(),
        });
    }
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let col = Col::from_header(name).ok_or_else(|| CsvError::UnknownColumn {
            line,
            column: name.trim().chars().take(MAX_QUOTED_HEADER_CHARS).collect(),
        })?;
        if columns.contains(&col) {
            return Err(CsvError::DuplicateColumn {
                line,
                column: col.name(),
            });
        }
        columns.push(col);
    }
    let missing: Vec<&'static str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|r| !columns.iter().any(|c| c.name() == *r))
        .collect();
    if !missing.is_empty() {
        return Err(CsvError::MissingColumns { line, missing });
    }
    Ok(columns)
}

/// The record's cells as text, or the physical line of the first byte that is
/// not UTF-8.
fn utf8_cells(
    rec: &csv::ByteRecord,
    line: u64,
    describe: impl Fn(usize) -> String,
) -> Result<Vec<&str>, CsvError> {
    let mut cells = Vec::with_capacity(rec.len());
    let mut newlines = 0u64;
    for (i, field) in rec.iter().enumerate() {
        match std::str::from_utf8(field) {
            Ok(s) => cells.push(s),
            Err(e) => {
                return Err(CsvError::InvalidUtf8 {
                    line: line + newlines + count_newlines(&field[..e.valid_up_to()]),
                    column: describe(i),
                })
            }
        }
        newlines += count_newlines(field);
    }
    Ok(cells)
}

fn draft_from_cells<'c>(columns: &[Col], cells: &[&'c str]) -> (AssetDraft, Option<&'c str>) {
    let mut d = AssetDraft::default();
    let mut state = None;
    for (&col, &cell) in columns.iter().zip(cells) {
        // A line break inside a quoted value may be CRLF; it is stored as LF.
        let v: &str = &if cell.contains("\r\n") {
            std::borrow::Cow::Owned(cell.replace("\r\n", "\n"))
        } else {
            std::borrow::Cow::Borrowed(cell)
        };
        let opt = || (!v.trim().is_empty()).then(|| v.to_owned());
        match col {
            Col::AssetId => d.asset_id = v.to_owned(),
            Col::Manufacturer => d.manufacturer = v.to_owned(),
            Col::Model => d.model = v.to_owned(),
            Col::SerialNumber => d.serial_number = v.to_owned(),
            Col::FirmwareVersion => d.firmware_version = v.to_owned(),
            Col::Kind => d.kind = opt(),
            Col::DeviceType => d.device_type = opt(),
            Col::Udi => d.udi = opt(),
            Col::Software => d.software = opt().map(SoftwareField::Text),
            Col::Cpe => d.cpe = opt().map(CpeField::Text),
            Col::MacAddress => d.mac_address = opt(),
            Col::IpAddress => d.ip_address = opt(),
            Col::Hostname => d.hostname = opt(),
            Col::Location => d.location = opt(),
            Col::CareArea => d.care_area = opt(),
            Col::Zone => d.zone = opt(),
            Col::LifecycleState => state = Some(cell),
            Col::Owner => d.owner = opt(),
            Col::VendorSupportContact => d.vendor_support_contact = opt(),
            Col::PhiStored => d.phi_stored = opt(),
            Col::CredentialState => d.credential_state = opt(),
            Col::EndOfSupport => d.end_of_support = opt(),
            Col::Notes => d.notes = opt(),
        }
    }
    (d, state)
}

fn is_blank(rec: &csv::ByteRecord) -> bool {
    rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

fn count_newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&b| b == b'\n').count() as u64
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD_MESSAGE_CHARS) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// What the parsing loop and [`LimitedReader`] share.
#[derive(Debug, Default)]
struct Budget {
    /// Bytes taken from the source since the last record was completed.
    used: Cell<usize>,
    /// The source has reported its end.
    eof: Cell<bool>,
}

/// Refuses to read more than `allowance` bytes between two completed records,
/// so that one enormous record cannot be buffered.
struct LimitedReader<R> {
    inner: R,
    budget: Rc<Budget>,
    allowance: usize,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let used = self.budget.used.get();
        if used > self.allowance {
            return Err(io::Error::other("CSV record exceeds the size limit"));
        }
        // At most one byte beyond the allowance, which is enough to know it is exceeded.
        let room = self.allowance - used + 1;
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        if n == 0 {
            self.budget.eof.set(true);
        }
        self.budget.used.set(used + n);
        Ok(n)
    }
}

/// Records with their physical start lines, within the limits.
struct RecordSource<R> {
    rdr: csv::Reader<LimitedReader<R>>,
    budget: Rc<Budget>,
    allowance: usize,
    max_record_bytes: usize,
}

impl<R: Read> RecordSource<io::Chain<io::Cursor<Vec<u8>>, R>> {
    fn new(mut r: R, limits: &CsvLimits) -> Result<Self, CsvError> {
        // Strip a byte-order mark before the CSV parser sees it, so that a
        // quoted first header name still parses as quoted.
        let mut start = Vec::with_capacity(UTF8_BOM.len());
        while start.len() < UTF8_BOM.len() {
            let mut b = [0u8; 3];
            let want = UTF8_BOM.len() - start.len();
            match r.read(&mut b[..want]) {
                Ok(0) => break,
                Ok(n) => start.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CsvError::Io(e)),
            }
        }
        if start == UTF8_BOM {
            start.clear();
        }
        let budget = Rc::new(Budget::default());
        let allowance = limits.max_record_bytes.saturating_add(BUFFER_CAPACITY);
        let inner = LimitedReader {
            inner: io::Cursor::new(start).chain(r),
            budget: Rc::clone(&budget),
            allowance,
        };
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            // Only LF ends a record, so that the line count after a record
            // tells where it started; the CR of a CRLF is removed below.
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER_CAPACITY)
            .from_reader(inner);
        Ok(RecordSource {
            rdr,
            budget,
            allowance,
            max_record_bytes: limits.max_record_bytes,
        })
    }
}

impl<R: Read> RecordSource<R> {
    /// Reads the next record into `rec`; returns the line it starts on.
    fn next(&mut self, rec: &mut csv::ByteRecord) -> Result<Option<u64>, CsvError> {
        // Where the parser stands: the line after the previous record, or an
        // earlier one if blank lines precede the next record.
        let before = self.rdr.position().line();
        match self.rdr.read_byte_record(rec) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(before, |p| p.line());
                return Err(match e.into_kind() {
                    csv::ErrorKind::Io(_) if self.budget.used.get() > self.allowance => {
                        CsvError::RecordTooLong {
                            line: before,
                            max: self.max_record_bytes,
                        }
                    }
                    csv::ErrorKind::Io(e) => CsvError::Io(e),
                    other => CsvError::Malformed {
                        line,
                        message: format!("{other:?}"),
                    },
                });
            }
        }
        self.budget.used.set(0);
        // The parser has counted every LF up to the end of this record: those
        // inside its quoted values, and its terminator unless the file ended
        // without one. Blank lines before the record were skipped silently,
        // so the start is counted back from the end.
        let after = self.rdr.position().line();
        let terminator = u64::from(!self.budget.eof.get());
        let inside: u64 = rec.iter().map(count_newlines).sum();
        let line = after.saturating_sub(inside + terminator).max(1);

        if rec.as_slice().len() > self.max_record_bytes {
            return Err(CsvError::RecordTooLong {
                line,
                max: self.max_record_bytes,
            });
        }
        // A CRLF line ending leaves its CR at the end of the last field.
        let stripped = rec
            .len()
            .checked_sub(1)
            .and_then(|i| rec.get(i))
            .and_then(|f| f.strip_suffix(b"\r"))
            .map(<[u8]>::to_vec);
        if let Some(last) = stripped {
            rec.truncate(rec.len() - 1);
            rec.push_field(&last);
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Answer, AssetKind, CredentialState, DeviceType, MacAddress};
    use proptest::prelude::*;
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    const HEADER: &str = "asset_id,manufacturer,model,serial_number,firmware_version";

    fn read(s: &str) -> Result<ParsedCsv, CsvError> {
        read_assets_csv(s.as_bytes(), &CsvLimits::default())
    }

    fn parse_ok(s: &str) -> ParsedCsv {
        read(s).unwrap_or_else(|e| panic!("file refused: {e}"))
    }

    fn lines_of(p: &ParsedCsv) -> (Vec<u64>, Vec<u64>) {
        (
            p.rows.iter().map(|r| r.line).collect(),
            p.errors.iter().map(|e| e.line).collect(),
        )
    }

    fn only_error(p: &ParsedCsv) -> &RowError {
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        &p.errors[0]
    }

    #[test]
    fn good_file_with_every_column() {
        let file = "\
asset_id,manufacturer,model,serial_number,firmware_version,kind,device_type,udi,software,cpe,mac_address,ip_address,hostname,location,care_area,zone,lifecycle_state,owner,vendor_support_contact,phi_stored,credential_state,end_of_support,notes
PUMP-0001,BD,Alaris 8015 PC Unit,12345678,9.33.1,pump,lvp,(01)00885403123456,Wireless Battery Module=v22D28;PCU comms=1.2,cpe:2.3:h:BD:alaris_8015_pc_unit:-:*:*:*:*:*:*:*  cpe:2.3:o:bd:alaris_pc_unit_firmware:12.1.2:*:*:*:*:*:*:*,00-1A-2B-3C-4D-5E,10.20.0.15,Pump-0001.icu.example.org,Building A / 3rd floor,ICU,pumps-icu,in_service,Clinical Engineering,+1 555 0100,no,changed,2029-12-31,Bought 2021
SRV-1,BD,Alaris Systems Manager,SM-9,5.2,pump_server,,,,,,fd00::15,,,,servers,,,,,,,
";
        let p = parse_ok(file);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.columns, EXPORT_COLUMNS);
        assert_eq!(lines_of(&p).0, [2, 3]);

        let r = &p.rows[0];
        assert_eq!(r.lifecycle_state, Some(LifecycleState::InService));
        let s = &r.spec;
        assert_eq!(s.asset_id.as_str(), "PUMP-0001");
        assert_eq!(s.kind, AssetKind::Pump);
        assert_eq!(s.device_type, Some(DeviceType::Lvp));
        assert_eq!(s.udi.as_deref(), Some("(01)00885403123456"));
        assert_eq!(s.software.len(), 2);
        assert_eq!(s.software[0].name, "Wireless Battery Module");
        assert_eq!(s.software[1].version, "1.2");
        assert_eq!(
            s.cpe,
            [
                "cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:*",
                "cpe:2.3:o:bd:alaris_pc_unit_firmware:12.1.2:*:*:*:*:*:*:*"
            ]
        );
        assert_eq!(s.mac_address.unwrap().to_string(), "00:1a:2b:3c:4d:5e");
        assert_eq!(s.ip_address, Some("10.20.0.15".parse().unwrap()));
        assert_eq!(s.hostname.as_deref(), Some("pump-0001.icu.example.org"));
        assert_eq!(s.location.as_deref(), Some("Building A / 3rd floor"));
        assert_eq!(s.care_area.as_deref(), Some("ICU"));
        assert_eq!(s.zone.as_deref(), Some("pumps-icu"));
        assert_eq!(s.owner.as_deref(), Some("Clinical Engineering"));
        assert_eq!(s.vendor_support_contact.as_deref(), Some("+1 555 0100"));
        assert_eq!(s.phi_stored, Answer::No);
        assert_eq!(s.credential_state, CredentialState::Changed);
        assert_eq!(
            s.end_of_support.map(crate::timefmt::format_date).as_deref(),
            Some("2029-12-31")
        );
        assert_eq!(s.notes.as_deref(), Some("Bought 2021"));

        // Empty cells are absent and take the validation defaults.
        let r = &p.rows[1];
        assert_eq!(r.lifecycle_state, None);
        assert_eq!(r.spec.kind, AssetKind::PumpServer);
        assert_eq!(r.spec.device_type, None);
        assert!(r.spec.software.is_empty());
        assert!(r.spec.cpe.is_empty());
        assert_eq!(r.spec.ip_address, Some("fd00::15".parse().unwrap()));
        assert_eq!(r.spec.phi_stored, Answer::Unknown);
        assert_eq!(r.spec.credential_state, CredentialState::DefaultUnchanged);
        assert_eq!(r.spec.notes, None);
    }

    #[test]
    fn header_names_are_trimmed_case_insensitive_and_in_any_order() {
        let p = parse_ok(
            " Firmware_Version ,SERIAL_NUMBER,model , Manufacturer,Asset_ID,Lifecycle_State\n\
             9.33.1,123,8015,BD,PUMP-1,received\n",
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.columns,
            [
                "firmware_version",
                "serial_number",
                "model",
                "manufacturer",
                "asset_id",
                "lifecycle_state"
            ]
        );
        let s = &p.rows[0].spec;
        assert_eq!(
            (s.asset_id.as_str(), s.manufacturer.as_str()),
            ("PUMP-1", "BD")
        );
        assert_eq!(
            (s.model.as_str(), s.serial_number.as_str()),
            ("8015", "123")
        );
        assert_eq!(s.firmware_version, "9.33.1");
        assert_eq!(p.rows[0].lifecycle_state, Some(LifecycleState::Received));
    }

    #[test]
    fn missing_required_columns_are_a_file_error() {
        let e = read("asset_id,model,firmware_version\nPUMP-1,x,1\n").unwrap_err();
        assert!(
            matches!(&e, CsvError::MissingColumns { line: 1, missing } if missing == &["manufacturer", "serial_number"]),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "line 1: the header lacks the required column(s) manufacturer, serial_number"
        );
    }

    #[test]
    fn unknown_column_is_a_file_error_listing_the_accepted_ones() {
        let e = read(&format!("{HEADER},mac\n")).unwrap_err();
        assert!(
            matches!(&e, CsvError::UnknownColumn { line: 1, column } if column == "mac"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("line 1: unknown column \"mac\"; accepted columns are: asset_id, "),
            "{msg}"
        );
        for c in EXPORT_COLUMNS {
            assert!(msg.contains(c), "{msg} lacks {c}");
        }
        // An empty header cell (a trailing comma) is an unknown column too.
        let e = read(&format!("{HEADER},\n")).unwrap_err();
        assert!(
            matches!(&e, CsvError::UnknownColumn { column, .. } if column.is_empty()),
            "{e:?}"
        );
        // A huge header name is not echoed in full.
        let e = read(&format!("{HEADER},{}\n", "x".repeat(10_000))).unwrap_err();
        assert!(e.to_string().len() < 1000, "{e}");
    }

    #[test]
    fn duplicated_column_is_a_file_error() {
        let e = read(&format!("{HEADER},Notes, notes\n")).unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::DuplicateColumn {
                    line: 1,
                    column: "notes"
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("\"notes\" appears more than once"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_is_a_file_error() {
        for empty in ["", "\n\n", "\r\n", "\u{feff}", "  \n"] {
            let e = read(empty).unwrap_err();
            assert!(matches!(e, CsvError::Empty), "{empty:?}: {e:?}");
        }
        // A header alone is a valid, empty file.
        let p = parse_ok(HEADER);
        assert!(p.rows.is_empty() && p.errors.is_empty());
    }

    #[test]
    fn a_bad_row_lists_every_problem_with_its_line() {
        let file = format!(
            "{HEADER},mac_address,ip_address,kind,lifecycle_state\n\
             PUMP-1,BD,8015,1,9.33,00:1a:2b:3c:4d:5e,10.0.0.1,pump,in_service\n\
             PUMP-2,BD,8015,2,9.33,zz,10.0.0.300,balloon,broken\n\
             PUMP-3,,8015,3,9.33,,,,\n"
        );
        let p = parse_ok(&file);
        assert_eq!(lines_of(&p), (vec![2], vec![3, 4]));
        let e = &p.errors[0];
        assert_eq!(e.asset_id.as_deref(), Some("PUMP-2"));
        assert_eq!(
            e.message,
            "kind: \"balloon\" is not a valid asset kind (expected one of: pump, pump_server, gateway, workstation, other); \
             mac_address: \"zz\" is not a MAC address (aa:bb:cc:dd:ee:ff); \
             ip_address: \"10.0.0.300\" is not an IPv4 or IPv6 address; \
             lifecycle_state: \"broken\" is not a valid lifecycle state (expected one of: procured, received, provisioned, \
             in_service, maintenance, quarantined, decommissioned, disposed)"
        );
        assert!(
            e.to_string()
                .starts_with("line 3 (asset PUMP-2): kind: \"balloon\""),
            "{e}"
        );
        assert_eq!(
            p.errors[1].to_string(),
            "line 4 (asset PUMP-3): manufacturer: is required"
        );
    }

    #[test]
    fn a_bad_asset_id_is_reported_without_an_asset() {
        let p = parse_ok(&format!(
            "{HEADER}\nPUMP 1,BD,8015,1,9.33\n,BD,8015,1,9.33\n"
        ));
        assert_eq!(lines_of(&p).1, [2, 3]);
        assert_eq!(p.errors[0].asset_id, None);
        assert!(
            p.errors[0]
                .to_string()
                .starts_with("line 2: asset_id: \"PUMP 1\" contains ' '"),
            "{}",
            p.errors[0]
        );
        assert_eq!(p.errors[1].to_string(), "line 3: asset_id: is required");
    }

    #[test]
    fn an_invalid_lifecycle_state_alone_is_a_row_error() {
        let p = parse_ok(&format!(
            "{HEADER},lifecycle_state\nPUMP-1,BD,8015,1,9.33,In Service\n"
        ));
        let e = only_error(&p);
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .starts_with("lifecycle_state: \"In Service\" is not a valid lifecycle state"),
            "{e}"
        );
    }

    #[test]
    fn long_values_are_not_copied_whole_into_messages() {
        let p = parse_ok(&format!(
            "{HEADER},mac_address\nPUMP-1,BD,8015,1,9.33,{}\n",
            "z".repeat(50_000)
        ));
        let e = only_error(&p);
        assert!(
            e.message.starts_with("mac_address: \"zzz"),
            "{}",
            &e.message[..40]
        );
        assert!(
            e.message.len() < 400 && e.message.ends_with('…'),
            "{}",
            e.message.len()
        );
    }

    #[test]
    fn wrong_number_of_fields_is_a_row_error() {
        let file = format!(
            "{HEADER}\nPUMP-1,BD,8015,1\nPUMP-2,BD,Alaris 8015, PC Unit,2,9.33\nPUMP-3,BD,8015,3,9.33\nx\n"
        );
        let p = parse_ok(&file);
        assert_eq!(lines_of(&p), (vec![4], vec![2, 3, 5]));
        assert_eq!(p.errors[0].asset_id.as_deref(), Some("PUMP-1"));
        assert!(
            p.errors[0]
                .message
                .starts_with("the row has 4 fields but the header has 5"),
            "{}",
            p.errors[0]
        );
        assert!(
            p.errors[1]
                .message
                .starts_with("the row has 6 fields but the header has 5"),
            "{}",
            p.errors[1]
        );
        assert!(
            p.errors[2].message.starts_with("the row has 1 fields"),
            "{}",
            p.errors[2]
        );
    }

    #[test]
    fn duplicate_asset_id_names_the_earlier_line() {
        let file = format!(
            "{HEADER}\nPUMP-1,BD,8015,1,9.33\nPUMP-2,BD,8015,2,9.33\n\n PUMP-1 ,BD,8015,3,9.33\npump-1,BD,8015,4,9.33\n"
        );
        let p = parse_ok(&file);
        assert_eq!(lines_of(&p), (vec![2, 3, 6], vec![5]));
        assert_eq!(
            p.errors[0].to_string(),
            "line 5 (asset PUMP-1): asset_id: PUMP-1 is already used by the row on line 2"
        );
        // A refused row still claims its id: fixing it must not create a duplicate.
        let p = parse_ok(&format!(
            "{HEADER}\nPUMP-1,,8015,1,9.33\nPUMP-1,BD,8015,1,9.33\n"
        ));
        assert_eq!(lines_of(&p).1, [2, 3]);
        assert!(
            p.errors[1]
                .message
                .contains("already used by the row on line 2"),
            "{}",
            p.errors[1]
        );
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_stay_physical() {
        let file = format!(
            "\n\n{HEADER}\n\n\nPUMP-1,BD,8015,1,9.33\n,,,,\n   \n\r\nPUMP-2,,8015,2,9.33\n\nPUMP-3,BD,8015,3,9.33\n\n\n"
        );
        let p = parse_ok(&file);
        assert_eq!(lines_of(&p), (vec![6, 12], vec![10]));
        // Header problems are reported on the header's own line.
        let e = read(&format!("\n\n{HEADER},nope\n")).unwrap_err();
        assert!(
            matches!(e, CsvError::UnknownColumn { line: 3, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn last_line_without_a_line_break() {
        let p = parse_ok(&format!(
            "{HEADER}\nPUMP-1,BD,8015,1,9.33\nPUMP-2,,8015,2,9.33"
        ));
        assert_eq!(lines_of(&p), (vec![2], vec![3]));
        let p = parse_ok(&format!("{HEADER}\r\n\r\nPUMP-2,,8015,2,\"9.33\"\r\n\r\n"));
        assert_eq!(lines_of(&p), (vec![], vec![3]));
    }

    #[test]
    fn crlf_line_endings() {
        let file = format!(
            "{HEADER},notes,lifecycle_state\r\nPUMP-1,BD,8015,1,9.33,\"a\r\nb\",in_service\r\nPUMP-2,BD,8015,2,9.33,,\"maintenance\"\r\n\r\nPUMP-3,BD,8015,3,9.33,,nope\r\n"
        );
        let p = parse_ok(&file);
        assert_eq!(lines_of(&p), (vec![2, 4], vec![6]));
        // A CRLF inside a quoted value is read as LF.
        assert_eq!(p.rows[0].spec.notes.as_deref(), Some("a\nb"));
        assert_eq!(p.rows[1].lifecycle_state, Some(LifecycleState::Maintenance));
        assert_eq!(p.rows[1].spec.firmware_version, "9.33");
        assert!(
            p.errors[0].message.starts_with("lifecycle_state: \"nope\""),
            "{}",
            p.errors[0]
        );
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_line_breaks() {
        let file = format!(
            "{HEADER},notes,location\n\
             \"PUMP-1\",\"Becton, Dickinson\",\"Alaris \"\"8015\"\"\",1,9.33,\"first line\nsecond, line\n\nfourth\",\"ICU, bed 4\"\n\
             PUMP-2,BD,8015,2,9.33,\"multi\nline\",\"bad\u{7}\"\n\
             PUMP-3,BD,8015,3,9.33,,\n"
        );
        let p = parse_ok(&file);
        assert_eq!(lines_of(&p), (vec![2, 8], vec![6]));
        let s = &p.rows[0].spec;
        assert_eq!(s.manufacturer, "Becton, Dickinson");
        assert_eq!(s.model, "Alaris \"8015\"");
        assert_eq!(
            s.notes.as_deref(),
            Some("first line\nsecond, line\n\nfourth")
        );
        assert_eq!(s.location.as_deref(), Some("ICU, bed 4"));
        assert!(
            p.errors[0]
                .message
                .starts_with("location: contains a control character"),
            "{}",
            p.errors[0]
        );
    }

    #[test]
    fn utf8_bom_is_accepted() {
        let p = parse_ok(&format!("\u{feff}{HEADER}\nPUMP-1,BD,8015,1,9.33\n"));
        assert_eq!(lines_of(&p), (vec![2], vec![]));
        // Also before a quoted header name, and on a CRLF file.
        let p = parse_ok("\u{feff}\"asset_id\",manufacturer,model,serial_number,firmware_version\r\nPUMP-1,BD,8015,1,9.33\r\n");
        assert_eq!(lines_of(&p), (vec![2], vec![]));
        // Only at the very start: elsewhere it is an unknown column name.
        let e = read(&format!("{HEADER},\u{feff}notes\n")).unwrap_err();
        assert!(matches!(e, CsvError::UnknownColumn { .. }), "{e:?}");
    }

    #[test]
    fn invalid_utf8_is_a_file_error_naming_the_line() {
        let mut file = format!(
            "{HEADER},notes\nPUMP-1,BD,8015,1,9.33,ok\nPUMP-2,BD,8015,2,9.33,\"two\nlines \""
        )
        .into_bytes();
        file.extend_from_slice(b"caf\xe9\"\n");
        let e = read_assets_csv(&file[..], &CsvLimits::default()).unwrap_err();
        assert!(
            matches!(&e, CsvError::InvalidUtf8 { line: 4, column } if column == "column notes"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "line 4: column notes is not valid UTF-8; save the file as \"CSV UTF-8\""
        );

        let e = read_assets_csv(
            &b"asset_id,manufacturer,model,serial_number,firmware_\xffversion\n"[..],
            &CsvLimits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, CsvError::InvalidUtf8 { line: 1, column } if column == "header field 5"),
            "{e:?}"
        );
        // A truncated BOM is not a BOM.
        let e = read_assets_csv(&b"\xEF\xBBasset_id\n"[..], &CsvLimits::default()).unwrap_err();
        assert!(matches!(e, CsvError::InvalidUtf8 { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn old_mac_line_endings_are_refused_clearly() {
        let e = read(&format!("{HEADER}\rPUMP-1,BD,8015,1,9.33\r")).unwrap_err();
        assert!(matches!(e, CsvError::Malformed { line: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("carriage return"), "{e}");
    }

    /// Counts what the parser pulls from its source.
    struct Metered<R> {
        inner: R,
        pulled: Rc<Cell<u64>>,
    }

    impl<R: Read> Read for Metered<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.pulled.set(self.pulled.get() + n as u64);
            Ok(n)
        }
    }

    fn assert_huge_record_refused(prefix: &str, expected_line: u64) {
        let limits = CsvLimits::default();
        let pulled = Rc::new(Cell::new(0));
        let src = Metered {
            inner: prefix.as_bytes().chain(io::repeat(b'a').take(1 << 30)),
            pulled: Rc::clone(&pulled),
        };
        let t = Instant::now();
        let e = read_assets_csv(src, &limits).unwrap_err();
        let elapsed = t.elapsed();
        assert!(
            matches!(e, CsvError::RecordTooLong { line, max } if line == expected_line && max == limits.max_record_bytes),
            "{e:?}"
        );
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
        let bound = (prefix.len() + limits.max_record_bytes + 2 * BUFFER_CAPACITY) as u64;
        assert!(
            pulled.get() <= bound,
            "read {} bytes, more than {bound}",
            pulled.get()
        );
    }

    #[test]
    fn a_gigabyte_line_is_refused_after_reading_about_the_limit() {
        assert_huge_record_refused(&format!("{HEADER}\n"), 2);
        assert_huge_record_refused(&format!("{HEADER}\nPUMP-1,BD,8015,1,9.33\nPUMP-2,BD,\""), 3);
        // An endless header.
        assert_huge_record_refused("asset_id,", 1);
    }

    #[test]
    fn the_record_limit_is_exact() {
        // The limit counts the bytes of the cells, as read (quotes and separators not included).
        let header_cells = HEADER.len() - 4;
        let limits = CsvLimits {
            max_record_bytes: header_cells,
            max_rows: 10,
        };
        // A row whose cells are `n` bytes long.
        let row = |n: usize| format!("{},BD,8015,1,9.33\n", "P".repeat(n - 11));
        let p = read_assets_csv(
            format!("{HEADER}\n{}", row(header_cells)).as_bytes(),
            &limits,
        )
        .unwrap();
        assert_eq!(lines_of(&p), (vec![2], vec![]));
        let e = read_assets_csv(
            format!("{HEADER}\n{}", row(header_cells + 1)).as_bytes(),
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(e, CsvError::RecordTooLong { line: 2, max } if max == header_cells),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("line 2: the record starting here is longer than"),
            "{e}"
        );
        let short = CsvLimits {
            max_record_bytes: header_cells - 1,
            ..limits
        };
        let e = read_assets_csv(HEADER.as_bytes(), &short).unwrap_err();
        assert!(
            matches!(e, CsvError::RecordTooLong { line: 1, .. }),
            "{e:?}"
        );
    }

    /// Repeats its bytes forever.
    struct Endless(&'static [u8], usize);

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            for b in buf.iter_mut() {
                *b = self.0[self.1 % self.0.len()];
                self.1 += 1;
            }
            Ok(buf.len())
        }
    }

    #[test]
    fn too_many_rows_is_a_file_error() {
        let limits = CsvLimits {
            max_rows: 2,
            ..CsvLimits::default()
        };
        let two = format!("{HEADER}\nPUMP-1,BD,8015,1,9.33\n\nPUMP-2,,8015,2,9.33\n\n");
        assert!(read_assets_csv(two.as_bytes(), &limits).is_ok());
        let three = format!("{two}PUMP-3,BD,8015,3,9.33\n");
        let e = read_assets_csv(three.as_bytes(), &limits).unwrap_err();
        assert!(
            matches!(e, CsvError::TooManyRows { line: 6, max: 2 }),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "line 6: the file has more than 2 rows");
        // An endless stream of short rows stops at the limit.
        let endless = format!("{HEADER}\n").into_bytes();
        let endless = io::Cursor::new(endless).chain(Endless(b"PUMP-1,BD,8015,1,9.33\n", 0));
        let e = read_assets_csv(endless, &limits).unwrap_err();
        assert!(
            matches!(e, CsvError::TooManyRows { line: 4, max: 2 }),
            "{e:?}"
        );
    }

    #[test]
    fn export_columns_are_the_required_then_the_optional_columns() {
        let all: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .chain(OPTIONAL_COLUMNS)
            .copied()
            .collect();
        assert_eq!(EXPORT_COLUMNS, all);
        let cols: Vec<&str> = COLS.iter().map(|c| c.name()).collect();
        assert_eq!(cols, EXPORT_COLUMNS);
        for c in EXPORT_COLUMNS {
            assert_eq!(Col::from_header(&c.to_uppercase()).map(Col::name), Some(*c));
        }
    }

    #[test]
    fn export_writes_every_column_and_reads_back() {
        let file = format!(
            "{HEADER},notes,software,mac_address,lifecycle_state,cpe\n\
             PUMP-1,\"Becton, Dickinson\",8015,1,9.33,\"says \"\"hi\"\"\nand more\",WBM=v2;PCU=1.2,001A.2B3C.4D5E,quarantined,CPE:2.3:H:BD:A\\+B:-:*:*:*:*:*:*:*\n"
        );
        let p = parse_ok(&file);
        let r = &p.rows[0];
        let mut out = Vec::new();
        write_assets_csv(
            &mut out,
            [ExportRow {
                spec: &r.spec,
                lifecycle_state: r.lifecycle_state.unwrap(),
            }],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!(
                "{}\r\nPUMP-1,\"Becton, Dickinson\",8015,1,9.33,pump,,,WBM=v2;PCU=1.2,cpe:2.3:h:bd:a\\+b:-:*:*:*:*:*:*:*,00:1a:2b:3c:4d:5e,,,,,,\
                 quarantined,,,unknown,default_unchanged,,\"says \"\"hi\"\"\nand more\"\r\n",
                EXPORT_COLUMNS.join(",")
            )
        );
        let again = parse_ok(&text);
        assert!(again.errors.is_empty());
        assert_eq!(again.rows[0].spec, r.spec);
        assert_eq!(
            again.rows[0].lifecycle_state,
            Some(LifecycleState::Quarantined)
        );
        // An empty export is a header alone.
        let mut out = Vec::new();
        write_assets_csv(&mut out, []).unwrap();
        assert_eq!(
            out,
            format!("{}\r\n", EXPORT_COLUMNS.join(",")).into_bytes()
        );
    }

    #[test]
    fn fuzz_seeds_replay() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/seeds/inventory_csv"
        );
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("fuzz seeds directory") {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            n += 1;
            let limits = CsvLimits {
                max_record_bytes: 512,
                max_rows: 64,
            };
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            match read_assets_csv(&bytes[..], &limits) {
                Ok(p) => {
                    if name.starts_with("good") {
                        assert!(
                            p.errors.is_empty() && !p.rows.is_empty(),
                            "{name}: {:?}",
                            p.errors
                        );
                    }
                    assert_round_trip(&p);
                }
                Err(e) => assert!(!name.starts_with("good"), "{name}: {e}"),
            }
        }
        assert!(n >= 5, "only {n} seeds in {dir}");
    }

    /// What the fuzz target checks too: whatever was read exports and reads
    /// back unchanged.
    fn assert_round_trip(p: &ParsedCsv) {
        let mut out = Vec::new();
        let rows = p.rows.iter().map(|r| ExportRow {
            spec: &r.spec,
            lifecycle_state: r.lifecycle_state.unwrap_or(LifecycleState::Procured),
        });
        write_assets_csv(&mut out, rows).unwrap();
        let again = read_assets_csv(&out[..], &CsvLimits::default()).unwrap();
        assert!(again.errors.is_empty(), "{:?}", again.errors);
        let specs: Vec<_> = again.rows.iter().map(|r| &r.spec).collect();
        let before: Vec<_> = p.rows.iter().map(|r| &r.spec).collect();
        assert_eq!(specs, before);
    }

    // ---- property tests ----

    /// Single-line text as validation leaves it: trimmed, not empty, no controls.
    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ,\"';=.é漢\u{a0}\u{feff}-]{1,40}".prop_filter_map("blank", |s| {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_owned())
        })
    }

    fn notes() -> impl Strategy<Value = String> {
        "[a-z ,\"\n\t;é\r]{1,200}".prop_filter_map("blank", |s| {
            let s = s.replace('\r', "");
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_owned())
        })
    }

    fn hostname() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4).prop_map(|l| l.join("."))
    }

    fn software() -> impl Strategy<Value = Vec<SoftwareComponent>> {
        let part = || {
            "[A-Za-z0-9 ,\"._-]{1,15}".prop_filter_map("blank", |s| {
                let t = s.trim();
                (!t.is_empty()).then(|| t.to_owned())
            })
        };
        prop::collection::vec((part(), part()), 0..4).prop_map(|v| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|(n, _)| seen.insert(n.to_lowercase()))
                .map(|(name, version)| SoftwareComponent { name, version })
                .collect()
        })
    }

    /// Canonical CPE names (as validation leaves them), quoting included.
    fn cpe_names() -> impl Strategy<Value = Vec<String>> {
        let name = (
            prop::sample::select(vec!["a", "o", "h", "*"]),
            "[a-zA-Z0-9_]{1,8}",
            "[a-z0-9_]{1,6}(\\\\[+.!-][a-z0-9]{1,4})?",
            prop::sample::select(vec!["*", "-", "12.1.2", "9\\.33\\.1", "v22d28"]),
        )
            .prop_map(|(part, vendor, product, version)| {
                let text = format!("cpe:2.3:{part}:{vendor}:{product}:{version}:*:*:*:*:*:*:*");
                pumpward_vuln::cpe::Cpe::parse(&text).unwrap().to_string()
            });
        prop::collection::vec(name, 0..4).prop_map(|mut v| {
            let mut seen = std::collections::HashSet::new();
            v.retain(|n| seen.insert(n.clone()));
            v
        })
    }

    fn mac() -> impl Strategy<Value = MacAddress> {
        any::<[u8; 6]>().prop_filter_map("multicast or zero", |o| {
            let s = o.map(|b| format!("{b:02x}")).join(":");
            s.parse().ok()
        })
    }

    fn date() -> impl Strategy<Value = time::Date> {
        let (lo, hi) = (
            time::Date::MIN.to_julian_day(),
            time::Date::MAX.to_julian_day(),
        );
        (lo..=hi).prop_map(|d| time::Date::from_julian_day(d).unwrap())
    }

    fn spec() -> impl Strategy<Value = AssetSpec> {
        let ids = (
            "[A-Za-z0-9._:-]{1,64}",
            prop::sample::select(AssetKind::ALL),
            text(),
            text(),
            prop::option::of(prop::sample::select(DeviceType::ALL)),
            text(),
            prop::option::of(text()),
            text(),
        );
        let net = (
            (software(), cpe_names()),
            prop::option::of(mac()),
            prop::option::of(any::<IpAddr>()),
            prop::option::of(hostname()),
        );
        let place = (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
        );
        let rest = (
            prop::option::of(date()),
            prop::sample::select(Answer::ALL),
            prop::sample::select(CredentialState::ALL),
            prop::option::of(notes()),
        );
        (ids, net, place, rest).prop_map(
            |(
                (id, kind, manufacturer, model, device_type, serial_number, udi, firmware_version),
                ((software, cpe), mac_address, ip_address, hostname),
                (location, care_area, zone, owner, vendor_support_contact),
                (end_of_support, phi_stored, credential_state, notes),
            )| AssetSpec {
                asset_id: id.parse().unwrap(),
                kind,
                manufacturer,
                model,
                device_type,
                serial_number,
                udi,
                firmware_version,
                software,
                cpe,
                mac_address,
                ip_address,
                hostname,
                location,
                care_area,
                zone,
                owner,
                vendor_support_contact,
                end_of_support,
                phi_stored,
                credential_state,
                notes,
            },
        )
    }

    fn unique_specs() -> impl Strategy<Value = Vec<(AssetSpec, LifecycleState)>> {
        prop::collection::vec((spec(), prop::sample::select(LifecycleState::ALL)), 0..8).prop_map(
            |v| {
                let mut seen = std::collections::HashSet::new();
                v.into_iter()
                    .filter(|(s, _)| seen.insert(s.asset_id.clone()))
                    .collect()
            },
        )
    }

    fn export(specs: &[(AssetSpec, LifecycleState)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_assets_csv(
            &mut out,
            specs.iter().map(|(spec, state)| ExportRow {
                spec,
                lifecycle_state: *state,
            }),
        )
        .unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn generated_specs_are_valid(s in spec()) {
            prop_assert_eq!(AssetSpec::validate(&s.to_draft()).unwrap(), s);
        }

        #[test]
        fn export_then_import_is_lossless(specs in unique_specs()) {
            let p = read_assets_csv(&export(&specs)[..], &CsvLimits::default()).unwrap();
            prop_assert!(p.errors.is_empty(), "{:?}", p.errors);
            let back: Vec<_> = p.rows.iter().map(|r| (r.spec.clone(), r.lifecycle_state.unwrap())).collect();
            prop_assert_eq!(back, specs);
        }

        /// Rows written one by one, with blank lines, LF or CRLF and an
        /// optional final line break, come back with their physical lines.
        #[test]
        fn line_numbers_are_physical(
            specs in unique_specs(),
            layout in prop::collection::vec((0usize..3, any::<bool>()), 8),
            final_break in any::<bool>(),
        ) {
            let mut file = EXPORT_COLUMNS.join(",") + "\n";
            let mut expected = Vec::new();
            for (i, ((spec, state), (blank, crlf))) in specs.iter().zip(&layout).enumerate() {
                for _ in 0..*blank {
                    file.push_str(if *crlf { "\r\n" } else { "\n" });
                }
                expected.push(file.matches('\n').count() as u64 + 1);
                let one = String::from_utf8(export(&[(spec.clone(), *state)])).unwrap();
                let record = one.split_once("\r\n").unwrap().1.strip_suffix("\r\n").unwrap();
                file.push_str(record);
                if i + 1 < specs.len() || final_break {
                    file.push_str(if *crlf { "\r\n" } else { "\n" });
                }
            }
            let p = read_assets_csv(file.as_bytes(), &CsvLimits::default()).unwrap();
            prop_assert!(p.errors.is_empty(), "{:?}", p.errors);
            prop_assert_eq!(lines_of(&p).0, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let limits = CsvLimits { max_record_bytes: 256, max_rows: 16 };
            let _ = read_assets_csv(&bytes[..], &limits);
        }

        /// Bytes that mostly look like CSV get past the header and into rows.
        #[test]
        fn csv_like_bytes_never_panic_and_round_trip(
            body in prop::collection::vec(
                prop::sample::select(&b"PUMP-1,BD a9:\"\n\r\n;=.\xEF\xBB\xBF\xff\x00\t"[..]), 0..600),
        ) {
            let mut bytes = format!("{HEADER},notes,software,mac_address,lifecycle_state,kind\n").into_bytes();
            bytes.extend(body);
            let limits = CsvLimits { max_record_bytes: 128, max_rows: 16 };
            if let Ok(p) = read_assets_csv(&bytes[..], &limits) {
                assert_round_trip(&p);
                for r in p.rows.iter().map(|r| r.line).chain(p.errors.iter().map(|e| e.line)) {
                    prop_assert!(r >= 2 && r <= bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1);
                }
            }
        }
    }
}
