//! Pumpward's domain: plain types and pure logic, one module per bounded context.
//!
//! Nothing in this crate performs I/O, reads a clock or touches a database: every
//! function takes what it needs as arguments, so the rules that keep patients safe
//! (lifecycle transitions, permission checks, audit-chain verification, input
//! validation) can be tested exhaustively without a server.

#[macro_use]
mod macros;

pub mod access;
pub mod audit;
pub mod demo;
pub mod inventory;
pub mod severity;
pub mod timefmt;
