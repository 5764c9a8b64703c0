//! Exports to enforcement points.
