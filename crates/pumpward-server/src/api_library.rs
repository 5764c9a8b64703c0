//! REST handlers of drug libraries (issue 4, items 3 and 4): drafts from
//! JSON or CSV, review with two-person control, signing and publication,
//! rollback, export, diff and the published envelopes.
//!
//! A library is addressed by its id (the `id` inside the library); each
//! draft is a *revision* with a number of its own; a published revision
//! also has the library's *version* number (1, 2, 3 …), which is the
//! `version` inside the signed library.
//!
//! Rules enforced here (the store enforces them again as a backstop):
//! - a library that fails validation cannot be submitted: 422 with every
//!   problem and its path;
//! - approval and rejection are by a pharmacist who is not the author
//!   (403, audited); approval carries the approver's current password, and
//!   TOTP code when enrolled, checked like a login (wrong: 401, audited and
//!   counted toward the account's lockout);
//! - only an approved revision is published, in one transaction with its
//!   signature; a rollback republishes an old version's content, re-signed,
//!   as a new, higher version.

use crate::api::{parse_query, read_body, JsonBody};
use crate::auth::Principal;
use crate::library::LibrarySigner;
use crate::problem::{ApiError, ApiResult, ErrorKind, FieldProblem};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pumpward_core::access::password;
use pumpward_druglib::diff::{FieldChange, LibraryDiff};
use pumpward_druglib::json::{parse_library_json, to_canonical_json};
use pumpward_druglib::Library;
use pumpward_store::{LibraryRevision, NewLibraryDraft, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

/// Media type of a COSE_Sign1 envelope (RFC 9052).
pub const COSE_MEDIA_TYPE: &str = "application/cose; cose-type=\"cose-sign1\"";

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

async fn signer(st: &AppState) -> ApiResult<Arc<LibrarySigner>> {
    let ca = st.pki.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "this server runs without its certificate authority, so it cannot sign libraries",
        )
    })?;
    st.library_signer.get(ca).await.map_err(|e| {
        tracing::error!(error = %e, "library-signing key unavailable");
        internal("the library-signing key is unavailable; it has been logged")
    })
}

/// `GET /pki/library-signing.pem`: the certificate pumps and
/// `pumpward library verify` check envelopes against.
pub async fn signing_cert_pem(State(st): State<AppState>) -> Response {
    if st.pki.is_none() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match signer(&st).await {
        Ok(s) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            s.cert_pem().to_owned(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// A revision without its content, for lists and replies.
fn meta(rev: &LibraryRevision) -> Value {
    let mut v = serde_json::to_value(rev).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("content");
    }
    v
}

pub(crate) fn parse_stored(rev: &LibraryRevision) -> ApiResult<Library> {
    parse_library_json(rev.content.as_bytes())
        .map_err(|e| internal(format!("stored revision {} is not readable: {e}", rev.id)))
}

fn problems_json(lib: &Library) -> Vec<Value> {
    match lib.validate() {
        Ok(()) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|p| json!({ "path": p.path, "message": p.message }))
                .collect()
        }
    }
}

/// The revision `rev` of library `id` (404 if it belongs to another).
pub(crate) async fn revision_of(st: &AppState, id: &str, rev: i64) -> ApiResult<LibraryRevision> {
    match st.store.library_revision(rev).await {
        Ok(r) if r.library_id == id => Ok(r),
        Ok(_) | Err(StoreError::NotFound { .. }) => Err(ApiError::not_found(format!(
            "revision {rev} of library {id}"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn list_libraries(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "items": st.store.list_libraries().await? })))
}

pub async fn get_library(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let revs = st.store.library_revisions(&id).await?;
    let summary = st
        .store
        .list_libraries()
        .await?
        .into_iter()
        .find(|l| l.library_id == id);
    Ok(Json(json!({
        "library": summary,
        "revisions": revs.iter().map(meta).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DraftQuery {
    /// The draft or rejected revision this draft replaces.
    replaces: Option<i64>,
}

/// The two file forms of a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LibraryFormat {
    /// The canonical form.
    Json,
    /// One row per care area × entry.
    Csv,
}

/// Reads a library from a JSON or CSV body; every problem of the form
/// (not yet of the content) is a 422 with its line.
async fn library_from_body(st: &AppState, req: Request) -> ApiResult<Library> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match ct.as_str() {
        "application/json" => LibraryFormat::Json,
        "text/csv" => LibraryFormat::Csv,
        _ => {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "send the library as application/json (the canonical form) or text/csv",
            ))
        }
    };
    let bytes = read_body(req, None, import_limit(st)).await?;
    parse_library_file(format, &bytes)
}

/// The largest library file accepted.
pub(crate) fn import_limit(st: &AppState) -> usize {
    st.settings
        .max_import_bytes
        .min(pumpward_druglib::csv::MAX_CSV_BYTES)
}

/// Reads a library file (API body or UI upload); a file that is not a
/// library is a 422 listing each problem with its line (and column).
pub(crate) fn parse_library_file(format: LibraryFormat, bytes: &[u8]) -> ApiResult<Library> {
    match format {
        LibraryFormat::Json => parse_library_json(bytes).map_err(|e| {
            let mut err = ApiError::new(
                ErrorKind::Validation,
                format!("the body is not a drug library: {e}"),
            );
            if let pumpward_druglib::json::JsonError::Invalid {
                line,
                column,
                message,
            } = e
            {
                err.errors = vec![FieldProblem {
                    field: format!("line {line}, column {column}"),
                    message,
                }];
            }
            err
        }),
        LibraryFormat::Csv => pumpward_druglib::csv::read_library_csv(bytes).map_err(|e| {
            let mut err = ApiError::new(
                ErrorKind::Validation,
                format!("the CSV file is not a valid drug library: {e}"),
            );
            if let pumpward_druglib::csv::CsvError::Rows(rows) = &e {
                err.detail = format!(
                    "the CSV file has {} problem(s); nothing was stored",
                    rows.len()
                );
                err.errors = rows
                    .iter()
                    .map(|p| FieldProblem {
                        field: match p.column {
                            Some(c) => format!("line {}, column {c}", p.line),
                            None => format!("line {}", p.line),
                        },
                        message: p.message.clone(),
                    })
                    .collect();
            }
            err
        }),
    }
}

/// `POST /api/v1/libraries`: a new draft (of a new or existing library).
/// The draft is stored even if it does not validate yet (an editor saves
/// work in progress); the reply lists its problems, and it cannot be
/// submitted until there are none.
pub async fn create_draft(
    State(st): State<AppState>,
    p: Principal,
    req: Request,
) -> ApiResult<Response> {
    let q: DraftQuery = parse_query(req.uri().query())?;
    let lib = library_from_body(&st, req).await?;
    let rev = save_draft(&st, &p, &lib, q.replaces).await?;
    let problems = problems_json(&lib);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "revision": meta(&rev),
            "valid": problems.is_empty(),
            "problems": problems,
        })),
    )
        .into_response())
}

/// Stores `lib` as a new draft by `p` (valid or not: see [`create_draft`]).
pub(crate) async fn save_draft(
    st: &AppState,
    p: &Principal,
    lib: &Library,
    replaces: Option<i64>,
) -> ApiResult<LibraryRevision> {
    if !pumpward_druglib::model::is_valid_id(&lib.id) {
        let mut err = ApiError::new(ErrorKind::Validation, "the library id is not valid");
        err.errors = vec![FieldProblem {
            field: "id".into(),
            message: "1 to 64 of a-z, 0-9 and -, not starting or ending with -".into(),
        }];
        return Err(err);
    }
    let content = String::from_utf8(to_canonical_json(lib)).map_err(internal)?;
    let rev = st
        .store
        .create_library_draft(
            &NewLibraryDraft {
                library_id: lib.id.clone(),
                name: lib.name.clone(),
                content,
            },
            &p.user.username,
            replaces,
            &p.actor(),
        )
        .await?;
    Ok(rev)
}

pub async fn get_revision(
    State(st): State<AppState>,
    _: Principal,
    Path((id, rev)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    let r = revision_of(&st, &id, rev).await?;
    let lib = parse_stored(&r)?;
    let library: Value = serde_json::from_str(&r.content).map_err(internal)?;
    Ok(Json(json!({
        "revision": meta(&r),
        "library": library,
        "problems": problems_json(&lib),
    })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json` (default) or `csv` for exports; `json` or `text` for diffs.
    format: Option<String>,
}

/// `GET …/revisions/{rev}/export?format=json|csv`: the library as a file.
/// JSON is the canonical form (for a published revision, exactly the
/// signed bytes).
pub async fn export_revision(
    State(st): State<AppState>,
    _: Principal,
    Path((id, rev)): Path<(String, i64)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q: FormatQuery = parse_query(q.as_deref())?;
    let r = revision_of(&st, &id, rev).await?;
    let name = format!("{id}-r{rev}");
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok((
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.json\""),
                ),
            ],
            r.content,
        )
            .into_response()),
        "csv" => {
            let lib = parse_stored(&r)?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}.csv\""),
                    ),
                ],
                pumpward_druglib::csv::write_library_csv(&lib),
            )
                .into_response())
        }
        other => Err(ApiError::bad_request(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// A revision number, or `vN` for published version N.
    from: String,
    to: String,
    format: Option<String>,
}

/// A revision number, or `vN` for published version N, of library `id`.
/// How a revision is named in a diff: "version N" once published, else
/// "revision ID (state)" (a draft's content still carries the version it
/// was drafted from, so that number would name the wrong thing).
pub(crate) fn revision_label(r: &LibraryRevision) -> String {
    match r.version {
        Some(v) => format!("version {v}"),
        None => format!("revision {} ({})", r.id, r.state.as_str()),
    }
}

pub(crate) async fn resolve(st: &AppState, id: &str, what: &str) -> ApiResult<LibraryRevision> {
    let bad = || {
        ApiError::bad_request(format!(
            "{what:?}: give a revision number, or vN for published version N"
        ))
    };
    match what.strip_prefix('v') {
        Some(n) => {
            let n: i64 = n.parse().map_err(|_| bad())?;
            Ok(st.store.library_version(id, n).await?)
        }
        None => revision_of(st, id, what.parse().map_err(|_| bad())?).await,
    }
}

fn changes_json(c: &[FieldChange]) -> Vec<Value> {
    c.iter()
        .map(|f| json!({ "field": f.field, "old": f.old, "new": f.new }))
        .collect()
}

fn diff_json(d: &LibraryDiff) -> Value {
    json!({
        "from": { "id": d.from.0, "version": d.from.1 },
        "to": { "id": d.to.0, "version": d.to.1 },
        "empty": d.is_empty(),
        "fields": changes_json(&d.fields),
        "care_areas_added": d.care_areas_added.iter()
            .map(|(id, name, entries)| json!({ "id": id, "name": name, "entries": entries }))
            .collect::<Vec<_>>(),
        "care_areas_removed": d.care_areas_removed.iter()
            .map(|(id, name, n)| json!({ "id": id, "name": name, "entry_count": n }))
            .collect::<Vec<_>>(),
        "care_areas": d.care_areas.iter().map(|c| json!({
            "id": c.id,
            "fields": changes_json(&c.fields),
            "added": c.added,
            "removed": c.removed,
            "changed": c.changed.iter()
                .map(|e| json!({ "entry": e.entry, "fields": changes_json(&e.fields) }))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/libraries/{id}/diff?from=&to=[&format=text]`: what changed
/// between two revisions or versions, as the reviewer reads it.
pub async fn diff(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q: DiffQuery = parse_query(q.as_deref())?;
    let (a, b) = (
        resolve(&st, &id, &q.from).await?,
        resolve(&st, &id, &q.to).await?,
    );
    let d = pumpward_druglib::diff::diff(&parse_stored(&a)?, &parse_stored(&b)?);
    let (from_label, to_label) = (revision_label(&a), revision_label(&b));
    let text = d.text(&from_label, &to_label);
    match q.format.as_deref().unwrap_or("json") {
        "text" => Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()),
        "json" => Ok(Json(json!({
            "from_revision": a.id,
            "to_revision": b.id,
            "from_label": from_label,
            "to_label": to_label,
            "diff": diff_json(&d),
            "text": text,
        }))
        .into_response()),
        other => Err(ApiError::bad_request(format!(
            "format {other:?}: use json or text"
        ))),
    }
}

/// `POST …/revisions/{rev}/submit`: a valid draft goes to review.
pub async fn submit(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rev)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    let r = submit_revision(&st, &p, &id, rev).await?;
    Ok(Json(json!({ "revision": meta(&r) })))
}

/// Submits revision `rev` of library `id` for review, if it validates
/// (422 with every problem and its path otherwise).
pub(crate) async fn submit_revision(
    st: &AppState,
    p: &Principal,
    id: &str,
    rev: i64,
) -> ApiResult<LibraryRevision> {
    let r = revision_of(st, id, rev).await?;
    let lib = parse_stored(&r)?;
    if let Err(e) = lib.validate() {
        let mut err = ApiError::new(
            ErrorKind::Validation,
            format!(
                "the library has {} problem(s) and cannot be submitted",
                e.0.len()
            ),
        );
        err.errors =
            e.0.into_iter()
                .map(|p| FieldProblem {
                    field: p.path,
                    message: p.message,
                })
                .collect();
        return Err(err);
    }
    let r = st
        .store
        .submit_library_revision(rev, &p.user.username, &p.actor())
        .await?;
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The approver's current password (re-authentication).
    pub(crate) password: String,
    /// The approver's current TOTP code, when they have enrolled MFA.
    pub(crate) totp_code: Option<String>,
}

/// Refuses the reviewer of their own revision (separation of duties),
/// with an audit record.
async fn refuse_own(
    st: &AppState,
    p: &Principal,
    r: &LibraryRevision,
    action: &str,
) -> ApiResult<()> {
    if r.author != p.user.username {
        return Ok(());
    }
    st.store
        .audit_library_refusal(
            &p.actor(),
            action,
            &r.library_id,
            &format!("separation of duties: {} wrote revision {}", r.author, r.id),
        )
        .await?;
    Err(ApiError::forbidden(format!(
        "you wrote revision {}; a second pharmacist must review it",
        r.id
    )))
}

/// Checks the approver's password (and TOTP code when enrolled) as a login
/// would: a lockout refuses, a failure is recorded toward the lockout.
async fn reauthenticate(
    st: &AppState,
    p: &Principal,
    b: &ApproveBody,
    library_id: &str,
) -> ApiResult<()> {
    let (pass, totp_code) = (&b.password, b.totp_code.as_deref());
    let now = OffsetDateTime::now_utc();
    let refuse = |why: &'static str| async move {
        st.store
            .audit_library_refusal(&p.actor(), "library.approve", library_id, why)
            .await?;
        Err::<(), ApiError>(ApiError::new(
            ErrorKind::Unauthenticated,
            "re-authentication failed: the password or the TOTP code is wrong",
        ))
    };
    let user = st
        .store
        .user_by_id(p.user.id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "the account is disabled"))?;
    if crate::auth::locked(st, &user.username, now).await? {
        password::dummy_verify(pass);
        st.store
            .audit_library_refusal(&p.actor(), "library.approve", library_id, "account locked")
            .await?;
        return Err(ApiError::new(
            ErrorKind::Locked,
            "too many failed attempts; wait 15 minutes, or ask an administrator",
        ));
    }
    if pass.len() > 1024 || !password::verify_password(pass, &user.password_hash) {
        crate::auth::record_failed_login(
            st,
            &user.username,
            p.source.clone(),
            "wrong password at re-authentication (library approval)",
        )
        .await?;
        return refuse("re-authentication failed: wrong password").await;
    }
    if let Some(secret) = &user.totp_secret {
        let Some(code) = totp_code else {
            return refuse("re-authentication failed: TOTP code missing").await;
        };
        // check_totp records a wrong or replayed code toward the lockout.
        if crate::auth::check_totp(st, &user, secret, code, p.source.clone())
            .await?
            .is_none()
        {
            return refuse("re-authentication failed: wrong TOTP code").await;
        }
    }
    Ok(())
}

/// `POST …/revisions/{rev}/approve` with `{password, totp_code?}`.
pub async fn approve(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rev)): Path<(String, i64)>,
    JsonBody(b): JsonBody<ApproveBody>,
) -> ApiResult<Json<Value>> {
    let r = approve_revision(&st, &p, &id, rev, &b).await?;
    Ok(Json(json!({ "revision": meta(&r) })))
}

/// Approves revision `rev` of library `id`: not by its author (403,
/// audited), and only with the approver's password and TOTP code.
pub(crate) async fn approve_revision(
    st: &AppState,
    p: &Principal,
    id: &str,
    rev: i64,
    b: &ApproveBody,
) -> ApiResult<LibraryRevision> {
    let r = revision_of(st, id, rev).await?;
    refuse_own(st, p, &r, "library.approve").await?;
    reauthenticate(st, p, b, id).await?;
    Ok(st
        .store
        .approve_library_revision(rev, &p.user.username, &p.actor())
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why, for the author.
    comment: String,
}

/// `POST …/revisions/{rev}/reject` with `{comment}`.
pub async fn reject(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rev)): Path<(String, i64)>,
    JsonBody(b): JsonBody<RejectBody>,
) -> ApiResult<Json<Value>> {
    let r = reject_revision(&st, &p, &id, rev, &b.comment).await?;
    Ok(Json(json!({ "revision": meta(&r) })))
}

/// Rejects revision `rev` of library `id` with a comment for its author
/// (not by the author).
pub(crate) async fn reject_revision(
    st: &AppState,
    p: &Principal,
    id: &str,
    rev: i64,
    comment: &str,
) -> ApiResult<LibraryRevision> {
    let comment = comment.trim();
    if comment.is_empty() || comment.chars().count() > 4000 {
        let mut err = ApiError::new(ErrorKind::Validation, "a rejection needs a comment");
        err.errors = vec![FieldProblem {
            field: "comment".into(),
            message: "1 to 4000 characters, for the author".into(),
        }];
        return Err(err);
    }
    let r = revision_of(st, id, rev).await?;
    refuse_own(st, p, &r, "library.reject").await?;
    Ok(st
        .store
        .reject_library_revision(rev, &p.user.username, comment, &p.actor())
        .await?)
}

/// `POST …/revisions/{rev}/publish`: signs an approved revision and
/// publishes it as the next version.
pub async fn publish(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rev)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    let r = publish_revision(&st, &p, &id, rev).await?;
    Ok(Json(json!({ "revision": meta(&r) })))
}

/// Signs and publishes approved revision `rev` of library `id`.
pub(crate) async fn publish_revision(
    st: &AppState,
    p: &Principal,
    id: &str,
    rev: i64,
) -> ApiResult<LibraryRevision> {
    revision_of(st, id, rev).await?;
    let signer = signer(st).await?;
    let identity = format!("user:{}", p.user.username);
    Ok(st
        .store
        .publish_library_revision(
            rev,
            &p.user.username,
            |v, c| signer.publication(&identity, v, c),
            &p.actor(),
        )
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The published version whose content is published again.
    version: i64,
}

/// `POST /api/v1/libraries/{id}/rollback` with `{version}`: publishes that
/// version's content again as a new, higher version (pumps never install a
/// lower version).
pub async fn rollback(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RollbackBody>,
) -> ApiResult<Json<Value>> {
    let r = rollback_to(&st, &p, &id, b.version).await?;
    Ok(Json(json!({ "revision": meta(&r) })))
}

/// Publishes published version `version` of library `id` again, re-signed,
/// as a new, higher version.
pub(crate) async fn rollback_to(
    st: &AppState,
    p: &Principal,
    id: &str,
    version: i64,
) -> ApiResult<LibraryRevision> {
    st.store.library_version(id, version).await?;
    let signer = signer(st).await?;
    let identity = format!("user:{}", p.user.username);
    Ok(st
        .store
        .rollback_library(
            id,
            version,
            &p.user.username,
            |v, c| signer.publication(&identity, v, c),
            &p.actor(),
        )
        .await?)
}

/// `GET /api/v1/libraries/{id}/versions/{version}/envelope`: the signed
/// envelope a pump installs.
pub async fn envelope(
    State(st): State<AppState>,
    _: Principal,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let bytes = st.store.library_envelope(&id, version).await?;
    Ok((
        [
            (header::CONTENT_TYPE, COSE_MEDIA_TYPE.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-v{version}.cose\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
