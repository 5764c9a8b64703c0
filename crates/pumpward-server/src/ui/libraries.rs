//! Drug-library authoring and review pages (issue 4, item 3): the list of
//! libraries with a draft upload, a library's revisions with rollback, and
//! a revision's page, which is also the review page (the diff against the
//! current published version, approve with re-authentication, reject with
//! a comment, publish).
//!
//! Every action goes through the same workflow functions as the REST API
//! ([`crate::api_library`]), so the pages enforce exactly its rules:
//! validation before submission, separation of duties, re-authentication
//! at approval, signing at publication. A refused action re-renders the
//! page with the reason (and, for a refused file, its line-numbered
//! problems) and changes nothing.

use super::{need, render, see_other, Nav, UiError, UiResult, UiResultExt, UiUser};
use crate::api_library::{self, revision_label, ApproveBody, LibraryFormat};
use crate::auth::Principal;
use crate::problem::{ApiError, ErrorKind, FieldProblem};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_druglib::diff::{FieldChange, LibraryDiff};
use pumpward_druglib::Library;
use pumpward_store::{LibraryRevision, LibrarySummary, RevisionState};

const LIBRARIES: &str = "/libraries";

/// A refused action as the page shows it: the reason and, when the API
/// names them, each problem with its line or path.
struct Refusal {
    status: StatusCode,
    message: String,
    problems: Vec<FieldProblem>,
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        let mut message = e.detail;
        if let Some(first) = message.get(..1) {
            message = first.to_uppercase() + message.get(1..).unwrap_or("");
        }
        Refusal {
            status: e.kind.status(),
            message,
            problems: e.errors,
        }
    }
}

/// Fixed confirmations after a redirect, chosen by `?done=` (nothing from
/// the query string is echoed).
fn notice(uri: &Uri) -> Option<&'static str> {
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    Some(match q.iter().find(|(k, _)| k == "done")?.1.as_str() {
        "draft" => "The draft was saved. Check its problems, if any, then submit it for review.",
        "submitted" => "The revision was submitted; a second pharmacist reviews it.",
        "approved" => "The revision was approved; it can now be published.",
        "rejected" => "The revision was rejected; its author sees your comment.",
        "published" => "The revision was signed and published as a new version.",
        "rollback" => "The older version was signed and published again as a new version.",
        _ => return None,
    })
}

fn revision_href(id: &str, rev: i64) -> String {
    format!("{LIBRARIES}/{id}/revisions/{rev}")
}

// ---------------------------------------------------------------- list

pub struct LibraryRow {
    pub id: String,
    pub name: String,
    pub published: String,
    pub published_at: String,
    /// Revisions awaiting review (submitted) or publication (approved).
    pub awaiting: Vec<(i64, &'static str)>,
}

#[derive(Template)]
#[template(path = "libraries.html")]
struct LibrariesPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    /// Problems of a refused file, line by line.
    refused: Vec<FieldProblem>,
    libraries: Vec<LibraryRow>,
    can_author: bool,
    max_kib: usize,
}

async fn libraries_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    refusal: Option<Refusal>,
) -> UiResult {
    let libs: Vec<LibrarySummary> = st.store.list_libraries().await.ui(p, LIBRARIES)?;
    let mut libraries = Vec::with_capacity(libs.len());
    for l in libs {
        let revs = st
            .store
            .library_revisions(&l.library_id)
            .await
            .ui(p, LIBRARIES)?;
        libraries.push(LibraryRow {
            awaiting: revs
                .iter()
                .filter_map(|r| match r.state {
                    RevisionState::Submitted => Some((r.id, "awaiting review")),
                    RevisionState::Approved => Some((r.id, "approved, awaiting publication")),
                    _ => None,
                })
                .collect(),
            published: super::or_dash(l.published_version),
            published_at: super::or_dash(l.published_at),
            id: l.library_id,
            name: l.name,
        });
    }
    let (error, refused) = match refusal {
        Some(r) => (Some(r.message), r.problems),
        None => (None, Vec::new()),
    };
    render(
        status,
        &LibrariesPage {
            nav: Some(Nav::new(p, LIBRARIES)),
            notice,
            error,
            refused,
            libraries,
            can_author: p.can(Permission::LibraryAuthor),
            max_kib: api_library::import_limit(st).min(st.settings.max_body_bytes) / 1024,
        },
    )
}

/// `GET /libraries`.
pub async fn libraries(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::LibraryRead, LIBRARIES).await?;
    libraries_page(&st, &p, StatusCode::OK, notice(&uri), None).await
}

/// Which form a file is in, by its name: the two forms cannot be told
/// apart reliably by content, and a wrong guess would report confusing
/// errors.
fn format_of(file_name: &str) -> Result<LibraryFormat, ApiError> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".json") {
        Ok(LibraryFormat::Json)
    } else if lower.ends_with(".csv") {
        Ok(LibraryFormat::Csv)
    } else {
        let mut e = ApiError::new(
            ErrorKind::Validation,
            "choose a library file named .json (the canonical form) or .csv",
        );
        e.errors = vec![FieldProblem {
            field: "file".into(),
            message: format!("{file_name:?} ends in neither .json nor .csv"),
        }];
        Err(e)
    }
}

/// Reads the upload form: the file's name and bytes (the `csrf` field was
/// checked by the middleware).
async fn upload(mut form: Multipart) -> Result<(String, Bytes), ApiError> {
    let unreadable = || ApiError::bad_request("the form could not be read; reload the page");
    while let Some(field) = form.next_field().await.map_err(|_| unreadable())? {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("").to_owned();
            let bytes = field.bytes().await.map_err(|_| unreadable())?;
            if name.is_empty() && bytes.is_empty() {
                break;
            }
            return Ok((name, bytes));
        }
    }
    Err(ApiError::new(
        ErrorKind::Validation,
        "choose a library file (JSON or CSV) to upload",
    ))
}

/// `POST /libraries` (multipart): a new draft from an uploaded JSON or CSV
/// file. A file that is not a library is refused with its problems and
/// nothing is stored.
pub async fn upload_draft(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    form: Multipart,
) -> UiResult {
    need(&st, &p, Permission::LibraryAuthor, LIBRARIES).await?;
    let saved = async {
        let (name, bytes) = upload(form).await?;
        let lib = api_library::parse_library_file(format_of(&name)?, &bytes)?;
        api_library::save_draft(&st, &p, &lib, None).await
    }
    .await;
    match saved {
        Ok(rev) => Ok(see_other(&format!(
            "{}?done=draft",
            revision_href(&rev.library_id, rev.id)
        ))),
        Err(e) => {
            let r = Refusal::from(e);
            libraries_page(&st, &p, r.status, None, Some(r)).await
        }
    }
}

/// `POST /libraries/{id}/drafts`: a new draft holding the latest published
/// version's content, to start the next version from.
pub async fn draft_from_published(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
) -> UiResult {
    need(&st, &p, Permission::LibraryAuthor, LIBRARIES).await?;
    let saved = async {
        let latest = st
            .store
            .list_libraries()
            .await?
            .into_iter()
            .find(|l| l.library_id == id)
            .and_then(|l| l.published_version)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Conflict,
                    format!("library {id} has no published version to start from"),
                )
            })?;
        let rev = st.store.library_version(&id, latest).await?;
        let lib = api_library::parse_stored(&rev)?;
        api_library::save_draft(&st, &p, &lib, None).await
    }
    .await;
    match saved {
        Ok(rev) => Ok(see_other(&format!(
            "{}?done=draft",
            revision_href(&rev.library_id, rev.id)
        ))),
        Err(e) => {
            let r = Refusal::from(e);
            libraries_page(&st, &p, r.status, None, Some(r)).await
        }
    }
}

// ------------------------------------------------------------- library

pub struct RevisionRow {
    pub rev: LibraryRevision,
    pub state: &'static str,
    pub href: String,
}

#[derive(Template)]
#[template(path = "library.html")]
struct LibraryPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    id: String,
    name: String,
    current: Option<i64>,
    revisions: Vec<RevisionRow>,
    /// Published versions other than the current one, newest first.
    older: Vec<i64>,
    can_publish: bool,
    /// The comparison form: every revision, and what it preselects.
    choices: Vec<Choice>,
    from: String,
    to: String,
}

async fn library_page(
    st: &AppState,
    p: &Principal,
    id: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> UiResult {
    let summary = st
        .store
        .list_libraries()
        .await
        .ui(p, LIBRARIES)?
        .into_iter()
        .find(|l| l.library_id == id)
        .ok_or_else(|| {
            UiError::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("There is no library {id}."),
            )
            .with_nav(p, LIBRARIES)
        })?;
    let mut revs = st.store.library_revisions(id).await.ui(p, LIBRARIES)?;
    revs.sort_by_key(|r| std::cmp::Reverse(r.id));
    let mut older: Vec<i64> = revs
        .iter()
        .filter_map(|r| r.version)
        .filter(|&v| Some(v) != summary.published_version)
        .collect();
    older.sort_unstable_by(|a, b| b.cmp(a));
    let choices = choices(&revs);
    let (from, to) = default_pair(&revs);
    render(
        status,
        &LibraryPage {
            nav: Some(Nav::new(p, LIBRARIES)),
            notice,
            error,
            id: summary.library_id,
            name: summary.name,
            current: summary.published_version,
            revisions: revs
                .into_iter()
                .map(|r| RevisionRow {
                    href: revision_href(id, r.id),
                    state: r.state.as_str(),
                    rev: r,
                })
                .collect(),
            older,
            can_publish: p.can(Permission::LibraryPublish),
            choices,
            from,
            to,
        },
    )
}

/// `GET /libraries/{id}`.
pub async fn library(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::LibraryRead, LIBRARIES).await?;
    library_page(&st, &p, &id, StatusCode::OK, notice(&uri), None).await
}

/// `POST /libraries/{id}/rollback`: `version` and the `confirm` checkbox.
pub async fn rollback(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::LibraryPublish, LIBRARIES).await?;
    let f = super::Fields::parse(&body).map_err(|e| e.with_nav(&p, LIBRARIES))?;
    let again = |status, msg: String| library_page(&st, &p, &id, status, None, Some(msg));
    let Ok(version) = f.get("version").trim().parse::<i64>() else {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose the published version to roll back to.".into(),
        )
        .await;
    };
    if f.get("confirm") != "yes" {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Tick the confirmation to publish version {version}'s content again."),
        )
        .await;
    }
    match api_library::rollback_to(&st, &p, &id, version).await {
        Ok(_) => Ok(see_other(&format!("{LIBRARIES}/{id}?done=rollback"))),
        Err(e) => {
            let r = Refusal::from(e);
            again(r.status, r.message).await
        }
    }
}

// ------------------------------------------------------------- compare

/// One revision in the comparison form: `vN` for published version N (as
/// the API's diff takes it), else the revision number.
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// Every revision, newest first.
fn choices(revs: &[LibraryRevision]) -> Vec<Choice> {
    let mut c: Vec<&LibraryRevision> = revs.iter().collect();
    c.sort_by_key(|r| std::cmp::Reverse(r.id));
    c.into_iter()
        .map(|r| Choice {
            value: r
                .version
                .map_or_else(|| r.id.to_string(), |v| format!("v{v}")),
            label: revision_label(r),
        })
        .collect()
}

/// The pair the form starts with: the two newest published versions (or
/// the newest two revisions).
fn default_pair(revs: &[LibraryRevision]) -> (String, String) {
    let mut published: Vec<i64> = revs.iter().filter_map(|r| r.version).collect();
    published.sort_unstable();
    match published[..] {
        [.., a, b] => (format!("v{a}"), format!("v{b}")),
        _ => {
            let mut ids: Vec<i64> = revs.iter().map(|r| r.id).collect();
            ids.sort_unstable();
            match ids[..] {
                [.., a, b] => (a.to_string(), b.to_string()),
                [a] => (a.to_string(), a.to_string()),
                [] => (String::new(), String::new()),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "library_compare.html")]
struct ComparePage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    id: String,
    name: String,
    choices: Vec<Choice>,
    from: String,
    to: String,
    diff: Option<DiffView>,
}

/// `GET /libraries/{id}/diff?from=&to=`: the per-care-area diff between
/// any two revisions or published versions (`vN`), chosen in a form.
pub async fn compare(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::LibraryRead, LIBRARIES).await?;
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let param = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().chars().take(24).collect::<String>())
            .filter(|v| !v.is_empty())
    };
    let revs = st.store.library_revisions(&id).await.ui(&p, LIBRARIES)?;
    let Some(newest) = revs.iter().max_by_key(|r| r.id) else {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no library {id}."),
        )
        .with_nav(&p, LIBRARIES));
    };
    let name = api_library::parse_stored(newest)
        .map(|l| l.name)
        .unwrap_or_else(|_| id.clone());
    let (dfrom, dto) = default_pair(&revs);
    let (from, to) = (param("from").unwrap_or(dfrom), param("to").unwrap_or(dto));
    let compared = async {
        let a = api_library::resolve(&st, &id, &from).await?;
        let b = api_library::resolve(&st, &id, &to).await?;
        let d = pumpward_druglib::diff::diff(
            &api_library::parse_stored(&a)?,
            &api_library::parse_stored(&b)?,
        );
        Ok::<_, ApiError>(diff_view(revision_label(&a), revision_label(&b), d))
    }
    .await;
    let (status, diff, error) = match compared {
        Ok(d) => (StatusCode::OK, Some(d), None),
        Err(e) => {
            let r = Refusal::from(e);
            (r.status, None, Some(r.message))
        }
    };
    render(
        status,
        &ComparePage {
            nav: Some(Nav::new(&p, LIBRARIES)),
            notice: None,
            error,
            choices: choices(&revs),
            id,
            name,
            from,
            to,
            diff,
        },
    )
}

// ------------------------------------------------------------ revision

/// One entry as the tables show it.
pub struct EntryRow {
    pub drug: String,
    pub code: String,
    pub concentration: String,
    pub dosing_unit: String,
    pub soft_min: String,
    pub soft_max: String,
    pub hard_min: String,
    pub hard_max: String,
    pub high_alert: bool,
}

pub struct CareAreaView {
    pub id: String,
    pub name: String,
    pub weight: String,
    pub entries: Vec<EntryRow>,
}

fn care_areas(lib: &Library) -> Vec<CareAreaView> {
    lib.care_areas
        .iter()
        .map(|c| CareAreaView {
            id: c.id.clone(),
            name: c.name.clone(),
            weight: c
                .weight_kg
                .as_ref()
                .map(|w| format!("{}–{} kg", w.min, w.max))
                .unwrap_or_default(),
            entries: c
                .entries
                .iter()
                .map(|e| EntryRow {
                    drug: e.drug.clone(),
                    code: e.code.clone().unwrap_or_default(),
                    concentration: e.concentration.to_string(),
                    dosing_unit: e.dosing_unit.to_string(),
                    soft_min: super::or_dash(e.soft_min),
                    soft_max: super::or_dash(e.soft_max),
                    hard_min: super::or_dash(e.hard_min),
                    hard_max: super::or_dash(e.hard_max),
                    high_alert: e.high_alert,
                })
                .collect(),
        })
        .collect()
}

/// A field change as the diff table shows it.
pub struct ChangeRow {
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

fn change_rows(c: &[FieldChange]) -> Vec<ChangeRow> {
    let show = |s: &str| {
        if s.is_empty() {
            "—".to_owned()
        } else {
            s.to_owned()
        }
    };
    c.iter()
        .map(|f| ChangeRow {
            field: f.field,
            old: show(&f.old),
            new: show(&f.new),
        })
        .collect()
}

pub struct EntryChangeRow {
    pub entry: String,
    pub changes: Vec<ChangeRow>,
}

pub struct AreaDiffView {
    pub id: String,
    pub fields: Vec<ChangeRow>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<EntryChangeRow>,
}

/// The diff as the review and comparison pages show it, per care area.
pub struct DiffView {
    /// What the old and new columns hold ("published version 3",
    /// "revision 7").
    pub old_label: String,
    pub new_label: String,
    pub empty: bool,
    pub fields: Vec<ChangeRow>,
    pub areas_added: Vec<(String, String, Vec<String>)>,
    pub areas_removed: Vec<(String, String, usize)>,
    pub areas: Vec<AreaDiffView>,
}

fn diff_view(old_label: String, new_label: String, d: LibraryDiff) -> DiffView {
    DiffView {
        old_label,
        new_label,
        empty: d.is_empty(),
        fields: change_rows(&d.fields),
        areas_added: d.care_areas_added,
        areas_removed: d.care_areas_removed,
        areas: d
            .care_areas
            .into_iter()
            .map(|c| AreaDiffView {
                fields: change_rows(&c.fields),
                changed: c
                    .changed
                    .iter()
                    .map(|e| EntryChangeRow {
                        entry: e.entry.clone(),
                        changes: change_rows(&e.fields),
                    })
                    .collect(),
                id: c.id,
                added: c.added,
                removed: c.removed,
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "library_revision.html")]
struct RevisionPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    /// Problems of a refused action (from the API).
    refused: Vec<FieldProblem>,
    id: String,
    name: String,
    rev: LibraryRevision,
    state: &'static str,
    /// Validation problems of the content (a draft may have some).
    problems: Vec<FieldProblem>,
    areas: Vec<CareAreaView>,
    entry_count: usize,
    diff: Option<DiffView>,
    own: bool,
    /// The author may change it in the editor.
    can_edit: bool,
    can_submit: bool,
    can_review: bool,
    can_publish: bool,
    needs_totp: bool,
    comment: String,
}

async fn revision_page(
    st: &AppState,
    p: &Principal,
    id: &str,
    rev: i64,
    notice: Option<&'static str>,
    refusal: Option<Refusal>,
    comment: &str,
) -> UiResult {
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let r = api_library::revision_of(st, id, rev)
        .await
        .ui(p, LIBRARIES)?;
    let lib = api_library::parse_stored(&r).ui(p, LIBRARIES)?;
    let problems = validation_problems(&lib);
    // The reviewer's question: what changes for the pumps if this is
    // published, so the diff is against the current published version.
    let current = st
        .store
        .list_libraries()
        .await
        .ui(p, LIBRARIES)?
        .into_iter()
        .find(|l| l.library_id == id)
        .and_then(|l| l.published_version);
    let diff = match (current, r.state) {
        (Some(v), s) if s != RevisionState::Published && s != RevisionState::Superseded => {
            let published = st.store.library_version(id, v).await.ui(p, LIBRARIES)?;
            let old = api_library::parse_stored(&published).ui(p, LIBRARIES)?;
            Some(diff_view(
                format!("published version {v}"),
                "this revision".into(),
                pumpward_druglib::diff::diff(&old, &lib),
            ))
        }
        _ => None,
    };
    let own = r.author == p.user.username;
    let (error, refused) = match refusal {
        Some(x) => (Some(x.message), x.problems),
        None => (None, Vec::new()),
    };
    render(
        status,
        &RevisionPage {
            nav: Some(Nav::new(p, LIBRARIES)),
            notice,
            error,
            refused,
            id: id.to_owned(),
            name: lib.name.clone(),
            state: r.state.as_str(),
            entry_count: lib.care_areas.iter().map(|c| c.entries.len()).sum(),
            areas: care_areas(&lib),
            can_edit: matches!(r.state, RevisionState::Draft | RevisionState::Rejected)
                && own
                && p.can(Permission::LibraryAuthor),
            can_submit: r.state == RevisionState::Draft
                && own
                && problems.is_empty()
                && p.can(Permission::LibraryAuthor),
            can_review: r.state == RevisionState::Submitted && p.can(Permission::LibraryApprove),
            can_publish: r.state == RevisionState::Approved && p.can(Permission::LibraryPublish),
            needs_totp: p.user.totp_secret.is_some(),
            problems,
            diff,
            own,
            rev: r,
            comment: comment.to_owned(),
        },
    )
}

/// `GET /libraries/{id}/revisions/{rev}`: a revision, and for a submitted
/// one the review.
pub async fn revision(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::LibraryRead, LIBRARIES).await?;
    revision_page(&st, &p, &id, rev, notice(&uri), None, "").await
}

/// What a form on the revision page asks for.
enum Step {
    Submit,
    Approve,
    Reject,
    Publish,
}

impl Step {
    fn permission(&self) -> Permission {
        match self {
            Step::Submit => Permission::LibraryAuthor,
            Step::Approve | Step::Reject => Permission::LibraryApprove,
            Step::Publish => Permission::LibraryPublish,
        }
    }
}

async fn step(
    st: AppState,
    p: Principal,
    id: String,
    rev: i64,
    body: Bytes,
    what: Step,
) -> UiResult {
    need(&st, &p, what.permission(), LIBRARIES).await?;
    let f = super::Fields::parse(&body).map_err(|e| e.with_nav(&p, LIBRARIES))?;
    let (done, comment) = match what {
        Step::Submit => (api_library::submit_revision(&st, &p, &id, rev).await, ""),
        Step::Approve => {
            let totp = f.get("totp_code").trim();
            let b = ApproveBody {
                password: f.get("password").to_owned(),
                totp_code: (!totp.is_empty()).then(|| totp.to_owned()),
            };
            (
                api_library::approve_revision(&st, &p, &id, rev, &b).await,
                "",
            )
        }
        Step::Reject => (
            api_library::reject_revision(&st, &p, &id, rev, f.get("comment")).await,
            f.get("comment"),
        ),
        Step::Publish => (api_library::publish_revision(&st, &p, &id, rev).await, ""),
    };
    match done {
        Ok(r) => Ok(see_other(&format!(
            "{}?done={}",
            revision_href(&id, r.id),
            r.state.as_str()
        ))),
        Err(e) => {
            let r = Refusal::from(e);
            revision_page(&st, &p, &id, rev, None, Some(r), comment).await
        }
    }
}

/// `POST /libraries/{id}/revisions/{rev}/submit`.
pub async fn submit(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    body: Bytes,
) -> UiResult {
    step(st, p, id, rev, body, Step::Submit).await
}

/// `POST /libraries/{id}/revisions/{rev}/approve`: `password` and, when
/// enrolled, `totp_code`.
pub async fn approve(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    body: Bytes,
) -> UiResult {
    step(st, p, id, rev, body, Step::Approve).await
}

/// `POST /libraries/{id}/revisions/{rev}/reject`: `comment`.
pub async fn reject(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    body: Bytes,
) -> UiResult {
    step(st, p, id, rev, body, Step::Reject).await
}

/// `POST /libraries/{id}/revisions/{rev}/publish`.
pub async fn publish(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    body: Bytes,
) -> UiResult {
    step(st, p, id, rev, body, Step::Publish).await
}

/// What the druglib validator finds in `lib`, as field problems for the
/// pages (none for a valid library).
pub(super) fn validation_problems(lib: &pumpward_druglib::Library) -> Vec<FieldProblem> {
    match lib.validate() {
        Ok(()) => Vec::new(),
        Err(e) => {
            e.0.into_iter()
                .map(|x| FieldProblem {
                    field: x.path,
                    message: x.message,
                })
                .collect()
        }
    }
}
