//! Drug libraries for smart infusion pumps (placeholder docs, expanded below).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod csv;
pub mod diff;
pub mod envelope;
pub mod json;
pub mod model;
pub mod quantity;
pub mod sample;
#[cfg(test)]
mod testgen;
pub mod units;
