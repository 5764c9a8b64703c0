//! CSV import and export of assets (the form a CMMS or a spreadsheet produces).
//! Being written: see the brief in the commit that fills this in.
