//! The SBOM pages: the SBOMs attached to device models and firmware
//! versions (`/sboms`, with the attach form for those who may manage
//! advisories), and one SBOM (`/sboms/{id}`: its facts and warnings, its
//! components with their purl and CPE names, its CycloneDX VEX statements,
//! and the open findings its components decided, each linked to its
//! advisory).

use super::findings::Row;
use super::{need, render, see_other, Nav, UiResult, UiResultExt, UiUser};
use crate::api_sbom::attach_target;
use crate::auth::Principal;
use crate::problem::{ApiError, ErrorKind, FieldProblem};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_store::{ModelSbom, SbomVexStatement, StoredComponent};

const HERE: &str = "/findings";

#[derive(Template)]
#[template(path = "sboms.html")]
struct SbomsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    refused: Vec<FieldProblem>,
    sboms: Vec<ModelSbom>,
    can_attach: bool,
    max_kib: usize,
    /// The form's values after a refusal, so nothing has to be typed again.
    manufacturer: String,
    model: String,
    version: String,
}

/// What the attach form held.
#[derive(Default)]
struct AttachForm {
    manufacturer: Option<String>,
    model: Option<String>,
    version: Option<String>,
    file_name: String,
    bytes: Bytes,
}

async fn sboms_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    form: Option<(&AttachForm, ApiError)>,
) -> UiResult {
    let sboms = st.store.list_model_sboms().await.ui(p, HERE)?;
    let (error, refused, manufacturer, model, version) = match form {
        Some((f, e)) => (
            Some(e.detail),
            e.errors,
            f.manufacturer.clone().unwrap_or_default(),
            f.model.clone().unwrap_or_default(),
            f.version.clone().unwrap_or_default(),
        ),
        None => Default::default(),
    };
    render(
        status,
        &SbomsPage {
            nav: Some(Nav::new(p, HERE)),
            notice: None,
            error,
            refused,
            sboms,
            can_attach: p.can(Permission::VulnManage),
            max_kib: st.settings.max_import_bytes / 1024,
            manufacturer,
            model,
            version,
        },
    )
}

/// `GET /sboms`.
pub async fn sboms(State(st): State<AppState>, UiUser(p): UiUser) -> UiResult {
    need(&st, &p, Permission::VulnRead, HERE).await?;
    sboms_page(&st, &p, StatusCode::OK, None).await
}

async fn read_form(mut form: Multipart) -> Result<AttachForm, ApiError> {
    let unreadable = || ApiError::bad_request("the form could not be read; reload the page");
    let mut out = AttachForm::default();
    while let Some(field) = form.next_field().await.map_err(|_| unreadable())? {
        match field.name() {
            Some("file") => {
                out.file_name = field.file_name().unwrap_or("").to_owned();
                out.bytes = field.bytes().await.map_err(|_| unreadable())?;
            }
            Some(name @ ("manufacturer" | "model" | "version")) => {
                let name = name.to_owned();
                let text = field.text().await.map_err(|_| unreadable())?;
                match name.as_str() {
                    "manufacturer" => out.manufacturer = Some(text),
                    "model" => out.model = Some(text),
                    _ => out.version = Some(text),
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `POST /sboms` (multipart): attaches the uploaded SBOM to the model and
/// version, re-matching their pumps; a file that is not an SBOM is refused
/// with the parser's words and nothing is stored.
pub async fn attach(State(st): State<AppState>, UiUser(p): UiUser, form: Multipart) -> UiResult {
    need(&st, &p, Permission::VulnManage, HERE).await?;
    let form = match read_form(form).await {
        Ok(f) => f,
        Err(e) => {
            return sboms_page(&st, &p, e.kind.status(), Some((&AttachForm::default(), e))).await
        }
    };
    let attached = async {
        let (manufacturer, model, version, source) = attach_target(
            form.manufacturer.clone(),
            form.model.clone(),
            form.version.clone(),
            Some(form.file_name.clone()),
        )?;
        if form.bytes.is_empty() {
            let mut e = ApiError::new(ErrorKind::Validation, "choose the SBOM file to attach");
            e.errors = vec![FieldProblem {
                field: "file".into(),
                message: "no file, or an empty one".into(),
            }];
            return Err(e);
        }
        st.store
            .attach_sbom(
                &manufacturer,
                &model,
                &version,
                &source,
                &form.bytes,
                &p.actor(),
            )
            .await
            .map_err(ApiError::from)
    }
    .await;
    match attached {
        Ok(r) => Ok(see_other(&format!(
            "/sboms/{}?done={}",
            r.sbom.id,
            if r.outcome == "attached" {
                "attached"
            } else {
                "skipped"
            }
        ))),
        Err(e) => sboms_page(&st, &p, e.kind.status(), Some((&form, e))).await,
    }
}

#[derive(Template)]
#[template(path = "sbom.html")]
struct SbomPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    s: ModelSbom,
    components: Vec<StoredComponent>,
    vex: Vec<SbomVexStatement>,
    /// `None` without findings.read.
    rows: Option<Vec<Row>>,
    link_assets: bool,
    link_advisories: bool,
}

/// `GET /sboms/{id}`.
pub async fn sbom(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<i64>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::VulnRead, HERE).await?;
    let s = st.store.model_sbom(id).await.ui(&p, HERE)?;
    let components = st.store.sbom_components(id).await.ui(&p, HERE)?;
    let vex = st.store.sbom_vex_statements(id).await.ui(&p, HERE)?;
    let rows = if p.can(Permission::FindingsRead) {
        Some(
            st.store
                .sbom_findings(id)
                .await
                .ui(&p, HERE)?
                .into_iter()
                .map(Row::from)
                .collect(),
        )
    } else {
        None
    };
    // Fixed confirmations after the attach redirect; nothing of the query
    // is echoed.
    let notice = match uri.query() {
        Some("done=attached") => {
            Some("The SBOM was attached; the pumps of this model and version were matched again.")
        }
        Some("done=skipped") => {
            Some("This file was already attached to this model and version; nothing changed.")
        }
        _ => None,
    };
    render(
        StatusCode::OK,
        &SbomPage {
            nav: Some(Nav::new(&p, HERE)),
            notice,
            error: None,
            s,
            components,
            vex,
            rows,
            link_assets: p.can(Permission::InventoryRead),
            link_advisories: p.can(Permission::VulnRead),
        },
    )
}
