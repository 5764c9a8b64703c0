//! Password policy (being written).
