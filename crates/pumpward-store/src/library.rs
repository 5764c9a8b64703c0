//! Drug libraries: every revision a pharmacist authored, the two-person
//! review, and the published (signed) versions.
//!
//! A revision moves `draft → submitted → approved → published`, or
//! `submitted → rejected` (with a comment). Its author may replace a draft
//! or a rejected revision by a new draft; a replaced draft becomes
//! `superseded` (a rejected one stays rejected, so the review history is
//! kept). Every transition is one transaction with its audit record.
//!
//! Invariants kept here (the server checks them first, to answer with the
//! details; these are the backstop):
//! - only a valid library is submitted (validated again on submit);
//! - the approver or rejecter is not the author (separation of duties);
//! - published revisions are immutable (the store never updates them, and a
//!   database trigger refuses it) and numbered 1, 2, 3 … per library;
//! - publishing is one transaction: the version number is taken, the
//!   library is signed and the row written inside it, so a failure at any
//!   point (even after signing) leaves the previous state.

use crate::{Actor, Result, Store, StoreError};
use base64::Engine as _;
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Where a revision is in the review workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionState {
    Draft,
    Submitted,
    Approved,
    Published,
    Rejected,
    /// A draft its author replaced by a newer draft.
    Superseded,
}

impl RevisionState {
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionState::Draft => "draft",
            RevisionState::Submitted => "submitted",
            RevisionState::Approved => "approved",
            RevisionState::Published => "published",
            RevisionState::Rejected => "rejected",
            RevisionState::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "draft" => RevisionState::Draft,
            "submitted" => RevisionState::Submitted,
            "approved" => RevisionState::Approved,
            "published" => RevisionState::Published,
            "rejected" => RevisionState::Rejected,
            "superseded" => RevisionState::Superseded,
            other => {
                return Err(StoreError::Invalid(format!(
                    "unknown library revision state {other:?}"
                )))
            }
        })
    }
}

impl std::fmt::Display for RevisionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A library and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibrarySummary {
    pub library_id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    /// The highest published version, if any.
    pub published_version: Option<i64>,
    pub published_at: Option<String>,
    /// Revisions in draft, submitted or approved state.
    pub open_revisions: i64,
}

/// One revision of a library (without its envelope, see
/// [`Store::library_envelope`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryRevision {
    pub id: i64,
    pub library_id: String,
    pub state: RevisionState,
    /// Canonical JSON of the library.
    pub content: String,
    /// SHA-256 of `content`, lower-case hex.
    pub sha256: String,
    pub author: String,
    pub created_at: String,
    pub replaces: Option<i64>,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub rejected_by: Option<String>,
    pub rejected_at: Option<String>,
    pub reject_comment: Option<String>,
    /// The published version number.
    pub version: Option<i64>,
    pub published_by: Option<String>,
    pub published_at: Option<String>,
    pub signing_key_id: Option<String>,
    /// For a rollback: the version whose content was republished.
    pub rollback_of: Option<i64>,
}

/// The content of a new draft. `content` must be the canonical JSON of a
/// library whose id is `library_id` (the server produces it).
#[derive(Debug, Clone)]
pub struct NewLibraryDraft {
    pub library_id: String,
    pub name: String,
    pub content: String,
}

/// What signing produced, for [`Store::publish_library_revision`].
#[derive(Debug, Clone)]
pub struct SignedLibrary {
    /// Canonical JSON of the library with its `version` set to the version
    /// being published: the envelope's payload.
    pub content: String,
    /// The COSE_Sign1 envelope.
    pub envelope: Vec<u8>,
    /// The key id in the envelope (hex).
    pub key_id: String,
}

/// The library-signing key as stored: its certificate and its private key
/// sealed under the CA's key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLibrarySigner {
    pub cert_pem: String,
    pub key_sealed: String,
    /// Hex SHA-256 of the key's SubjectPublicKeyInfo.
    pub key_id: String,
}

const COLUMNS: &str = "id, library_id, state, content, sha256, author, created_at, replaces, \
     submitted_by, submitted_at, approved_by, approved_at, rejected_by, rejected_at, \
     reject_comment, version, published_by, published_at, signing_key_id, rollback_of";

fn revision_from_row(r: &AnyRow) -> Result<LibraryRevision> {
    Ok(LibraryRevision {
        id: r.try_get("id")?,
        library_id: r.try_get("library_id")?,
        state: RevisionState::parse(&r.try_get::<String, _>("state")?)?,
        content: r.try_get("content")?,
        sha256: r.try_get("sha256")?,
        author: r.try_get("author")?,
        created_at: r.try_get("created_at")?,
        replaces: r.try_get("replaces")?,
        submitted_by: r.try_get("submitted_by")?,
        submitted_at: r.try_get("submitted_at")?,
        approved_by: r.try_get("approved_by")?,
        approved_at: r.try_get("approved_at")?,
        rejected_by: r.try_get("rejected_by")?,
        rejected_at: r.try_get("rejected_at")?,
        reject_comment: r.try_get("reject_comment")?,
        version: r.try_get("version")?,
        published_by: r.try_get("published_by")?,
        published_at: r.try_get("published_at")?,
        signing_key_id: r.try_get("signing_key_id")?,
        rollback_of: r.try_get("rollback_of")?,
    })
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Parses and validates stored or submitted content (canonical JSON).
fn check_content(content: &str, library_id: &str) -> Result<pumpward_druglib::Library> {
    let lib = pumpward_druglib::json::parse_library_json(content.as_bytes())
        .map_err(|e| StoreError::Invalid(format!("the library is not readable: {e}")))?;
    if !pumpward_druglib::model::is_valid_id(&lib.id) {
        return Err(StoreError::Invalid(format!(
            "the library id {:?} is not valid: use 1 to 64 of a-z, 0-9 and -",
            lib.id
        )));
    }
    if lib.id != library_id {
        return Err(StoreError::Invalid(format!(
            "the library's id is {:?}, not {library_id:?}",
            lib.id
        )));
    }
    Ok(lib)
}

fn wrong_state(rev: &LibraryRevision, wanted: &str) -> StoreError {
    StoreError::Conflict(format!(
        "revision {} of library {} is {}; {wanted}",
        rev.id, rev.library_id, rev.state
    ))
}

async fn revision_in(conn: &mut crate::Conn, id: i64) -> Result<LibraryRevision> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM drug_library_revisions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("library revision {id}"),
    })?;
    revision_from_row(&r)
}

impl Store {
    /// Stores a new draft, creating the library on its first draft. With
    /// `replaces`, the draft replaces that revision, which must be the same
    /// library's, by the same author, and a draft (it becomes superseded)
    /// or rejected (it stays rejected). The content need not be valid yet:
    /// a draft is work in progress; submitting checks it.
    pub async fn create_library_draft(
        &self,
        d: &NewLibraryDraft,
        author: &str,
        replaces: Option<i64>,
        actor: &Actor,
    ) -> Result<LibraryRevision> {
        check_content(&d.content, &d.library_id)?;
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 AS x FROM drug_libraries WHERE library_id = $1")
            .bind(d.library_id.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let mut entries = Vec::new();
        if !exists {
            sqlx::query(
                "INSERT INTO drug_libraries (library_id, name, created_by, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(d.library_id.clone())
            .bind(d.name.clone())
            .bind(author.to_owned())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
            entries.push(
                actor
                    .entry("library.create", Outcome::Success)
                    .object(format!("library:{}", d.library_id))
                    .reason(d.name.clone()),
            );
        }
        if let Some(old) = replaces {
            let prev = revision_in(&mut tx, old).await?;
            if prev.library_id != d.library_id {
                return Err(StoreError::Invalid(format!(
                    "revision {old} belongs to library {}, not {}",
                    prev.library_id, d.library_id
                )));
            }
            if prev.author != author {
                return Err(StoreError::Forbidden(format!(
                    "revision {old} was written by {}; only its author may replace it",
                    prev.author
                )));
            }
            match prev.state {
                RevisionState::Draft => {
                    sqlx::query(
                        "UPDATE drug_library_revisions SET state = 'superseded' \
                         WHERE id = $1 AND state = 'draft'",
                    )
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                }
                RevisionState::Rejected => {}
                _ => {
                    return Err(wrong_state(
                        &prev,
                        "only a draft or a rejected revision can be replaced",
                    ))
                }
            }
        }
        let r = sqlx::query(&format!(
            "INSERT INTO drug_library_revisions (library_id, state, content, sha256, author, \
             created_at, replaces) VALUES ($1, 'draft', $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(d.library_id.clone())
        .bind(d.content.clone())
        .bind(sha256_hex(&d.content))
        .bind(author.to_owned())
        .bind(now)
        .bind(replaces)
        .fetch_one(&mut *tx)
        .await?;
        let rev = revision_from_row(&r)?;
        entries.push(
            actor
                .entry("library.draft", Outcome::Success)
                .object(format!("library:{}", rev.library_id))
                .details(&serde_json::json!({
                    "revision": rev.id, "sha256": rev.sha256, "replaces": replaces,
                })),
        );
        tx.commit_audited(entries, crate::now()).await?;
        Ok(rev)
    }

    /// Every library, by id.
    pub async fn list_libraries(&self) -> Result<Vec<LibrarySummary>> {
        sqlx::query(
            "SELECT l.library_id, l.name, l.created_by, l.created_at, \
             (SELECT MAX(version) FROM drug_library_revisions r WHERE r.library_id = l.library_id) AS pv, \
             (SELECT published_at FROM drug_library_revisions r WHERE r.library_id = l.library_id \
                AND r.state = 'published' ORDER BY version DESC LIMIT 1) AS pa, \
             (SELECT COUNT(*) FROM drug_library_revisions r WHERE r.library_id = l.library_id \
                AND r.state IN ('draft', 'submitted', 'approved')) AS open_revs \
             FROM drug_libraries l ORDER BY l.library_id",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(LibrarySummary {
                library_id: r.try_get("library_id")?,
                name: r.try_get("name")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                published_version: r.try_get("pv")?,
                published_at: r.try_get("pa")?,
                open_revisions: r.try_get("open_revs")?,
            })
        })
        .collect()
    }

    /// A library's revisions, oldest first.
    pub async fn library_revisions(&self, library_id: &str) -> Result<Vec<LibraryRevision>> {
        let revs = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM drug_library_revisions WHERE library_id = $1 ORDER BY id"
        ))
        .bind(library_id.to_owned())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(revision_from_row)
        .collect::<Result<Vec<_>>>()?;
        if revs.is_empty() {
            return Err(StoreError::NotFound {
                what: format!("library {library_id}"),
            });
        }
        Ok(revs)
    }

    /// One revision by id.
    pub async fn library_revision(&self, id: i64) -> Result<LibraryRevision> {
        let mut conn = self.pool().acquire().await?;
        revision_in(&mut conn, id).await
    }

    /// The published revision of `library_id` with this version number.
    pub async fn library_version(&self, library_id: &str, version: i64) -> Result<LibraryRevision> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM drug_library_revisions WHERE library_id = $1 AND version = $2"
        ))
        .bind(library_id.to_owned())
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("version {version} of library {library_id}"),
        })?;
        revision_from_row(&r)
    }

    /// The COSE_Sign1 envelope of a published version.
    pub async fn library_envelope(&self, library_id: &str, version: i64) -> Result<Vec<u8>> {
        let b64: Option<String> = sqlx::query_scalar(
            "SELECT envelope FROM drug_library_revisions WHERE library_id = $1 AND version = $2",
        )
        .bind(library_id.to_owned())
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .flatten();
        let b64 = b64.ok_or_else(|| StoreError::NotFound {
            what: format!("version {version} of library {library_id}"),
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| StoreError::Invalid(format!("stored envelope: {e}")))
    }

    /// Submits a draft for review. The content must be a valid library.
    pub async fn submit_library_revision(
        &self,
        id: i64,
        by: &str,
        actor: &Actor,
    ) -> Result<LibraryRevision> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let rev = revision_in(&mut tx, id).await?;
        if rev.state != RevisionState::Draft {
            return Err(wrong_state(&rev, "only a draft can be submitted"));
        }
        let lib = check_content(&rev.content, &rev.library_id)?;
        lib.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "UPDATE drug_library_revisions SET state = 'submitted', submitted_by = $1, \
             submitted_at = $2 WHERE id = $3 AND state = 'draft'",
        )
        .bind(by.to_owned())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("library.submit", Outcome::Success)
            .object(format!("library:{}", rev.library_id))
            .details(&serde_json::json!({ "revision": id, "sha256": rev.sha256 }));
        tx.commit_audited(vec![entry], crate::now()).await?;
        self.library_revision(id).await
    }

    /// Approves a submitted revision. The approver must not be its author
    /// (the caller has checked the approver's role and re-authentication).
    pub async fn approve_library_revision(
        &self,
        id: i64,
        approver: &str,
        actor: &Actor,
    ) -> Result<LibraryRevision> {
        self.review(id, approver, None, actor).await
    }

    /// Rejects a submitted revision with a comment for its author. The
    /// reviewer must not be its author.
    pub async fn reject_library_revision(
        &self,
        id: i64,
        reviewer: &str,
        comment: &str,
        actor: &Actor,
    ) -> Result<LibraryRevision> {
        if comment.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a rejection needs a comment for the author".into(),
            ));
        }
        self.review(id, reviewer, Some(comment.trim()), actor).await
    }

    async fn review(
        &self,
        id: i64,
        reviewer: &str,
        reject: Option<&str>,
        actor: &Actor,
    ) -> Result<LibraryRevision> {
        let action = if reject.is_some() {
            "library.reject"
        } else {
            "library.approve"
        };
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let rev = revision_in(&mut tx, id).await?;
        if rev.state != RevisionState::Submitted {
            return Err(wrong_state(
                &rev,
                "only a submitted revision can be reviewed",
            ));
        }
        if rev.author == reviewer {
            drop(tx);
            self.audit(
                actor
                    .entry(action, Outcome::Denied)
                    .object(format!("library:{}", rev.library_id))
                    .reason("separation of duties: the author cannot review their own library")
                    .details(&serde_json::json!({ "revision": id })),
            )
            .await?;
            return Err(StoreError::Forbidden(format!(
                "{reviewer} wrote revision {id}; a second pharmacist must review it"
            )));
        }
        let q = match reject {
            None => sqlx::query(
                "UPDATE drug_library_revisions SET state = 'approved', approved_by = $1, \
                 approved_at = $2 WHERE id = $3 AND state = 'submitted'",
            )
            .bind(reviewer.to_owned())
            .bind(now)
            .bind(id),
            Some(c) => sqlx::query(
                "UPDATE drug_library_revisions SET state = 'rejected', rejected_by = $1, \
                 rejected_at = $2, reject_comment = $4 WHERE id = $3 AND state = 'submitted'",
            )
            .bind(reviewer.to_owned())
            .bind(now)
            .bind(id)
            .bind(c.to_owned()),
        };
        q.execute(&mut *tx).await?;
        let mut entry = actor
            .entry(action, Outcome::Success)
            .object(format!("library:{}", rev.library_id))
            .details(&serde_json::json!({ "revision": id, "sha256": rev.sha256 }));
        if let Some(c) = reject {
            entry = entry.reason(c.to_owned());
        }
        tx.commit_audited(vec![entry], crate::now()).await?;
        self.library_revision(id).await
    }

    /// Publishes an approved revision as the library's next version, in one
    /// transaction: the number is taken (highest + 1), `sign` is called with
    /// it and the approved content and must return the signed payload and
    /// envelope, and the revision is written as published with its audit
    /// record. If anything fails, nothing is published.
    pub async fn publish_library_revision<F>(
        &self,
        id: i64,
        publisher: &str,
        sign: F,
        actor: &Actor,
    ) -> Result<LibraryRevision>
    where
        F: FnOnce(i64, &str) -> Result<SignedLibrary>,
    {
        self.publish(Publish::Revision(id), publisher, sign, actor, false)
            .await
    }

    /// Rolls back: publishes the content of published `version` again as
    /// the library's next (higher) version, re-signed. The content was
    /// approved when it was first published, so no new review is asked.
    pub async fn rollback_library<F>(
        &self,
        library_id: &str,
        version: i64,
        publisher: &str,
        sign: F,
        actor: &Actor,
    ) -> Result<LibraryRevision>
    where
        F: FnOnce(i64, &str) -> Result<SignedLibrary>,
    {
        self.publish(
            Publish::Rollback(library_id.to_owned(), version),
            publisher,
            sign,
            actor,
            false,
        )
        .await
    }

    /// [`Store::publish_library_revision`] that fails after signing and
    /// writing, just before the commit: for the test that a crash in the
    /// middle of publishing leaves nothing published.
    #[doc(hidden)]
    pub async fn publish_library_revision_failing_before_commit<F>(
        &self,
        id: i64,
        publisher: &str,
        sign: F,
        actor: &Actor,
    ) -> Result<LibraryRevision>
    where
        F: FnOnce(i64, &str) -> Result<SignedLibrary>,
    {
        self.publish(Publish::Revision(id), publisher, sign, actor, true)
            .await
    }

    async fn publish<F>(
        &self,
        what: Publish,
        publisher: &str,
        sign: F,
        actor: &Actor,
        fail_before_commit: bool,
    ) -> Result<LibraryRevision>
    where
        F: FnOnce(i64, &str) -> Result<SignedLibrary>,
    {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let (library_id, source) = match &what {
            Publish::Revision(id) => {
                let rev = revision_in(&mut tx, *id).await?;
                if rev.state != RevisionState::Approved {
                    return Err(wrong_state(
                        &rev,
                        "only an approved revision can be published",
                    ));
                }
                (rev.library_id.clone(), rev)
            }
            Publish::Rollback(lib, v) => {
                let r = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM drug_library_revisions \
                     WHERE library_id = $1 AND version = $2"
                ))
                .bind(lib.clone())
                .bind(*v)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("published version {v} of library {lib}"),
                })?;
                (lib.clone(), revision_from_row(&r)?)
            }
        };
        // On PostgreSQL two publishers could read the same maximum; the
        // unique index on (library_id, version) makes the second fail with
        // a conflict instead of publishing a duplicate number. (SQLite
        // writers are serialised by BEGIN IMMEDIATE.)
        let max: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM drug_library_revisions WHERE library_id = $1",
        )
        .bind(library_id.clone())
        .fetch_one(&mut *tx)
        .await?;
        let version = max.unwrap_or(0) + 1;
        let signed = sign(version, &source.content)?;
        let lib = check_content(&signed.content, &library_id)?;
        if i64::from(lib.version) != version {
            return Err(StoreError::Invalid(format!(
                "the signed library says version {}, not {version}",
                lib.version
            )));
        }
        let sha = sha256_hex(&signed.content);
        let envelope = base64::engine::general_purpose::STANDARD.encode(signed.envelope.as_slice());
        let (rev, action, rollback_of) = match &what {
            Publish::Revision(id) => {
                let n = sqlx::query(
                    "UPDATE drug_library_revisions SET state = 'published', content = $1, \
                     sha256 = $2, version = $3, published_by = $4, published_at = $5, \
                     envelope = $6, signing_key_id = $7 WHERE id = $8 AND state = 'approved'",
                )
                .bind(signed.content.clone())
                .bind(sha.clone())
                .bind(version)
                .bind(publisher.to_owned())
                .bind(now.clone())
                .bind(envelope)
                .bind(signed.key_id.clone())
                .bind(*id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 1 {
                    return Err(StoreError::Conflict(format!(
                        "revision {id} changed while it was being published"
                    )));
                }
                (*id, "library.publish", None)
            }
            Publish::Rollback(_, v) => {
                // The new row keeps the history readable: author and
                // reviewers of the content that is republished.
                let r = sqlx::query(
                    "INSERT INTO drug_library_revisions (library_id, state, content, sha256, \
                     author, created_at, submitted_by, submitted_at, approved_by, approved_at, \
                     version, published_by, published_at, envelope, signing_key_id, rollback_of) \
                     VALUES ($1, 'published', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $5, \
                     $12, $13, $14) RETURNING id",
                )
                .bind(library_id.clone())
                .bind(signed.content.clone())
                .bind(sha.clone())
                .bind(source.author.clone())
                .bind(now.clone())
                .bind(source.submitted_by.clone())
                .bind(source.submitted_at.clone())
                .bind(source.approved_by.clone())
                .bind(source.approved_at.clone())
                .bind(version)
                .bind(publisher.to_owned())
                .bind(envelope)
                .bind(signed.key_id.clone())
                .bind(*v)
                .fetch_one(&mut *tx)
                .await?;
                (r.try_get::<i64, _>("id")?, "library.rollback", Some(*v))
            }
        };
        let entry = actor
            .entry(action, Outcome::Success)
            .object(format!("library:{library_id}"))
            .details(&serde_json::json!({
                "revision": rev, "version": version, "sha256": sha,
                "key_id": signed.key_id, "rollback_of": rollback_of,
            }));
        if fail_before_commit {
            // Everything is written but not committed; dropping the
            // transaction rolls it back, as a crash would.
            return Err(StoreError::Unavailable(
                "injected failure before the publish commit".into(),
            ));
        }
        tx.commit_audited(vec![entry], crate::now()).await?;
        self.library_revision(rev).await
    }

    /// Records a refused library action (wrong password at approval, …)
    /// in the audit trail.
    pub async fn audit_library_refusal(
        &self,
        actor: &Actor,
        action: &str,
        library_id: &str,
        reason: &str,
    ) -> Result<()> {
        self.audit(
            actor
                .entry(action, Outcome::Denied)
                .object(format!("library:{library_id}"))
                .reason(reason.to_owned()),
        )
        .await?;
        Ok(())
    }

    /// The library-signing key, if one has been made.
    pub async fn library_signer(&self) -> Result<Option<StoredLibrarySigner>> {
        let r = sqlx::query(
            "SELECT cert_pem, key_sealed, key_id FROM library_signing_key WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(StoredLibrarySigner {
                cert_pem: r.try_get("cert_pem")?,
                key_sealed: r.try_get("key_sealed")?,
                key_id: r.try_get("key_id")?,
            })
        })
        .transpose()
    }

    /// Stores the library-signing key and records its certificate, in one
    /// transaction. There is one key: a second is refused (two servers
    /// racing to create it: the loser must load the winner's).
    pub async fn save_library_signer(
        &self,
        s: &StoredLibrarySigner,
        cert: &crate::NewCertificate,
        actor: &Actor,
    ) -> Result<()> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        crate::pki::insert_certificate(&mut tx, cert, actor, &now).await?;
        sqlx::query(
            "INSERT INTO library_signing_key (id, cert_pem, key_sealed, key_id, created_at) \
             VALUES (1, $1, $2, $3, $4)",
        )
        .bind(s.cert_pem.clone())
        .bind(s.key_sealed.clone())
        .bind(s.key_id.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let entries = vec![
            crate::pki::issue_entry(
                actor,
                cert,
                "drug-library signing key created on first need",
            ),
            actor
                .entry("pki.library_signer.create", Outcome::Success)
                .object(format!("library-signing-key:{}", s.key_id)),
        ];
        tx.commit_audited(entries, crate::now()).await
    }
}

enum Publish {
    Revision(i64),
    Rollback(String, i64),
}
