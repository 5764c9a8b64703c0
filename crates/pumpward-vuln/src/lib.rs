//! Pumpward's vulnerability intelligence, pure core.
pub mod constraint;
pub mod cpe;
pub mod csaf;
pub mod json;
pub mod purl;
pub mod vers;
pub mod version;
