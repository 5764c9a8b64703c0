//! The audit trail's hash chain.
//!
//! Each record carries the SHA-256 of its predecessor, and its own hash covers
//! every field including that link. Altering a record breaks its own hash;
//! deleting or reordering records breaks the sequence or a link; deleting the
//! newest records is caught by comparing the chain with the separately kept
//! head (last sequence number and hash). [`verify`] names the first record at
//! which any of these fail.
//!
//! The hash input is a length-prefixed encoding of the fields, so no choice of
//! field contents can make two different records hash the same input.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

string_enum!(
    /// How the audited action ended.
    Outcome, "audit outcome" {
        Success = "success",
        Failure = "failure",
        Denied = "denied",
    }
);

/// What is being recorded, before it gets its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who acted: `user:<name>`, `token:<id>`, `system`, `cli:<os user>`.
    pub actor: String,
    /// Dotted verb, e.g. `asset.transition`, `auth.login`.
    pub action: String,
    /// What was acted on, e.g. `asset:PUMP-0001`.
    pub object: Option<String>,
    pub outcome: Outcome,
    /// Why, in the actor's words or the system's.
    pub reason: Option<String>,
    /// Where from: the client's address, or `cli`.
    pub source: Option<String>,
    /// Extra structured facts (e.g. the fields that changed), as canonical JSON.
    pub details: Option<String>,
}

impl AuditEntry {
    pub fn new(actor: impl Into<String>, action: impl Into<String>, outcome: Outcome) -> Self {
        AuditEntry {
            actor: actor.into(),
            action: action.into(),
            object: None,
            outcome,
            reason: None,
            source: None,
            details: None,
        }
    }

    pub fn object(mut self, o: impl Into<String>) -> Self {
        self.object = Some(o.into());
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }

    pub fn source(mut self, s: Option<String>) -> Self {
        self.source = s;
        self
    }

    /// Details already serialised as JSON by the caller (it must be
    /// canonical: the same change always gives the same string).
    pub fn details_json(mut self, json: String) -> Self {
        self.details = Some(json);
        self
    }

    pub fn details(mut self, d: &serde_json::Value) -> Self {
        // serde_json's map is ordered by key (no preserve_order feature), so
        // this string is canonical for a given value.
        self.details = Some(d.to_string());
        self
    }

    /// Places the entry in the chain after `prev_hash` as number `seq`.
    pub fn seal(self, seq: i64, at: OffsetDateTime, prev_hash: &str) -> AuditRecord {
        let at = crate::timefmt::format(at);
        let hash = record_hash(seq, &at, &self, prev_hash);
        AuditRecord {
            seq,
            at,
            entry: self,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }
}

/// A record in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// Canonical UTC time string (see [`crate::timefmt`]); hashed as stored.
    pub at: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

fn record_hash(seq: i64, at: &str, e: &AuditEntry, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |b: Option<&[u8]>| match b {
        // Absent and empty differ: tag byte, then length, then bytes.
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    };
    field(Some(b"pumpward-audit-v1"));
    field(Some(&seq.to_be_bytes()));
    field(Some(at.as_bytes()));
    field(Some(e.actor.as_bytes()));
    field(Some(e.action.as_bytes()));
    field(e.object.as_deref().map(str::as_bytes));
    field(Some(e.outcome.as_str().as_bytes()));
    field(e.reason.as_deref().map(str::as_bytes));
    field(e.source.as_deref().map(str::as_bytes));
    field(e.details.as_deref().map(str::as_bytes));
    field(Some(prev_hash.as_bytes()));
    hex::encode(h.finalize())
}

/// The last link of the chain, kept apart from the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum ChainError {
    #[error("record {seq}: its contents do not match its hash (the record was altered)")]
    Altered { seq: i64 },
    #[error("record {seq}: expected sequence number {expected} (records before it were deleted or reordered)")]
    Gap { seq: i64, expected: i64 },
    #[error("record {seq}: it does not link to the hash of record {prev} (records were deleted, inserted or reordered)")]
    BrokenLink { seq: i64, prev: i64 },
    #[error("the chain ends at record {last} but its head says {head} (the newest records were deleted or the head was altered)")]
    Truncated { last: i64, head: i64 },
}

impl ChainError {
    /// The sequence number of the first bad record.
    pub fn first_bad_seq(&self) -> i64 {
        match *self {
            ChainError::Altered { seq }
            | ChainError::Gap { seq, .. }
            | ChainError::BrokenLink { seq, .. } => seq,
            ChainError::Truncated { last, .. } => last + 1,
        }
    }
}

/// Incremental verifier: feed records in sequence order, then [`finish`](Self::finish).
/// Streaming keeps memory flat for chains of millions of records.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl Verifier {
    pub fn push(&mut self, r: &AuditRecord) -> Result<(), ChainError> {
        if r.seq != self.expected_seq {
            return Err(ChainError::Gap {
                seq: r.seq,
                expected: self.expected_seq,
            });
        }
        if record_hash(r.seq, &r.at, &r.entry, &r.prev_hash) != r.hash {
            return Err(ChainError::Altered { seq: r.seq });
        }
        if r.prev_hash != self.prev_hash {
            return Err(ChainError::BrokenLink {
                seq: r.seq,
                prev: r.seq - 1,
            });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&r.hash);
        Ok(())
    }

    /// Checks the end of the chain against its head; returns the record count.
    pub fn finish(self, head: Option<&ChainHead>) -> Result<i64, ChainError> {
        let last = self.expected_seq - 1;
        match head {
            None if last == 0 => Ok(0),
            None => Err(ChainError::Truncated { last, head: 0 }),
            Some(h) if h.seq == last && h.hash == self.prev_hash => Ok(last),
            Some(h) if h.seq == last => Err(ChainError::Altered { seq: last }),
            Some(h) => Err(ChainError::Truncated { last, head: h.seq }),
        }
    }
}

/// Verifies a whole chain held in memory.
pub fn verify<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head: Option<&ChainHead>,
) -> Result<i64, ChainError> {
    let mut v = Verifier::default();
    for r in records {
        v.push(r)?;
    }
    v.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: i64) -> (Vec<AuditRecord>, ChainHead) {
        let mut prev = GENESIS_HASH.to_owned();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut out = Vec::new();
        for seq in 1..=n {
            let r = AuditEntry::new("user:alice", "asset.update", Outcome::Success)
                .object(format!("asset:P-{seq}"))
                .seal(seq, t0 + time::Duration::seconds(seq), &prev);
            prev.clone_from(&r.hash);
            out.push(r);
        }
        let head = ChainHead { seq: n, hash: prev };
        (out, head)
    }

    #[test]
    fn intact_chain_verifies() {
        let (c, h) = chain(20);
        assert_eq!(verify(&c, Some(&h)), Ok(20));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn altered_field_is_named() {
        let (mut c, h) = chain(10);
        c[4].entry.reason = Some("nothing to see".into());
        assert_eq!(verify(&c, Some(&h)), Err(ChainError::Altered { seq: 5 }));
    }

    #[test]
    fn absent_and_empty_hash_differently() {
        let (mut c, h) = chain(3);
        c[1].entry.reason = Some(String::new());
        assert_eq!(verify(&c, Some(&h)).unwrap_err().first_bad_seq(), 2);
    }

    #[test]
    fn deleted_record_is_a_gap() {
        let (mut c, h) = chain(10);
        c.remove(6);
        assert_eq!(
            verify(&c, Some(&h)),
            Err(ChainError::Gap {
                seq: 8,
                expected: 7
            })
        );
    }

    #[test]
    fn deleted_and_renumbered_breaks_the_link() {
        // An attacker who deletes record 7 and renumbers the rest must also
        // recompute hashes; record 7's new hash is then fine but its link is not.
        let (mut c, h) = chain(10);
        c.remove(6);
        for r in c.iter_mut().skip(6) {
            let at = crate::timefmt::parse(&r.at).unwrap();
            *r = r.entry.clone().seal(r.seq - 1, at, &r.prev_hash);
        }
        assert_eq!(
            verify(&c, Some(&h)),
            Err(ChainError::BrokenLink { seq: 7, prev: 6 })
        );
    }

    #[test]
    fn reordered_records_are_caught() {
        let (mut c, h) = chain(10);
        c.swap(2, 3);
        assert_eq!(verify(&c, Some(&h)).unwrap_err().first_bad_seq(), 4);
    }

    #[test]
    fn truncated_tail_is_caught_by_the_head() {
        let (mut c, h) = chain(10);
        c.truncate(8);
        assert_eq!(
            verify(&c, Some(&h)),
            Err(ChainError::Truncated { last: 8, head: 10 })
        );
        assert_eq!(verify(&c, Some(&h)).unwrap_err().first_bad_seq(), 9);
    }

    proptest! {
        #[test]
        fn any_single_field_change_is_detected(idx in 0usize..8, pos in 0usize..16, text in "[a-z]{1,8}") {
            let (mut c, h) = chain(16);
            let r = &mut c[pos];
            match idx {
                0 => r.entry.actor.push_str(&text),
                1 => r.entry.action.push_str(&text),
                2 => r.entry.object = Some(text.clone()),
                3 => r.entry.outcome = if r.entry.outcome == Outcome::Denied { Outcome::Success } else { Outcome::Denied },
                4 => r.entry.reason = Some(text.clone()),
                5 => r.entry.source = Some(text.clone()),
                6 => r.entry.details = Some(text.clone()),
                _ => r.at.push_str(&text),
            }
            prop_assert_eq!(verify(&c, Some(&h)), Err(ChainError::Altered { seq: pos as i64 + 1 }));
        }
    }
}
