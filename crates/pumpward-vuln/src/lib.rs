//! Pumpward's vulnerability intelligence, pure core.
pub mod constraint;
pub mod cpe;
pub mod csaf;
pub mod cve5;
pub mod detect;
pub mod epss;
pub mod identity;
pub mod json;
pub mod kev;
pub mod nvd;
pub mod purl;
pub mod vers;
pub mod version;
