//! The drug-library editor (issue 4, item 8): an author changes their own
//! draft in the browser — care areas (add, rename, weight range, remove)
//! and entries (add, change, remove) — instead of editing a file.
//!
//! Each change is applied to the draft's library and validated with
//! [`pumpward_druglib::Library::validate`] before anything is stored: a
//! change that adds a problem is refused, the form comes back with the
//! values typed and each problem next to its field (the validator's path
//! names the entry and the field), and nothing is saved. An accepted
//! change is saved as a new draft that replaces this one
//! ([`crate::api_library::save_draft`], audited, own drafts only), so the
//! history keeps every step and a form posted from a stale page is
//! refused. Problems the draft already had (an uploaded file may have
//! some) do not block other changes, and a draft with problems still
//! cannot be submitted.

use super::{need, render, see_other, Fields, Nav, UiError, UiResult, UiResultExt, UiUser};
use crate::api_library;
use crate::auth::Principal;
use crate::problem::{ApiError, FieldProblem};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_druglib::model::{care_area_path, Bolus, CareArea, Entry, LimitSet, WeightRange};
use pumpward_druglib::quantity::Dec;
use pumpward_druglib::units::{AmountUnit, BolusUnit, Concentration, DoseUnit, AMOUNT_UNITS};
use pumpward_druglib::Library;
use pumpward_store::{LibraryRevision, RevisionState};

const LIBRARIES: &str = "/libraries";

fn editor_href(id: &str, rev: i64) -> String {
    format!("{LIBRARIES}/{id}/revisions/{rev}/edit")
}

/// One input of a form, with its inline error.
pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub hint: &'static str,
    pub error: String,
    /// A `<select>` of these values instead of a text input.
    pub options: Vec<String>,
}

impl FormField {
    fn text(name: &'static str, label: &'static str, value: String, hint: &'static str) -> Self {
        FormField {
            name,
            label,
            value,
            hint,
            error: String::new(),
            options: Vec::new(),
        }
    }
}

/// A form on the page: which action it posts and its fields.
pub struct EditForm {
    /// The care area it edits (its id as stored; empty: a new one).
    pub area: String,
    /// The entry it edits (index, or "new"); empty for care-area forms.
    pub entry: String,
    pub fields: Vec<FormField>,
    pub high_alert: bool,
    /// Problems of the change that belong to no field of the form.
    pub other: Vec<FieldProblem>,
}

impl EditForm {
    fn field_mut(&mut self, name: &str) -> Option<&mut FormField> {
        self.fields.iter_mut().find(|f| f.name == name)
    }

    /// Puts each problem next to its field, or in `other`.
    fn place(&mut self, problems: Vec<(String, FieldProblem)>) {
        for (field, p) in problems {
            match self.field_mut(&field) {
                Some(f) if f.error.is_empty() => f.error = p.message,
                Some(f) => {
                    f.error.push_str("; ");
                    f.error.push_str(&p.message);
                }
                None => self.other.push(p),
            }
        }
    }

    fn has_errors(&self) -> bool {
        !self.other.is_empty() || self.fields.iter().any(|f| !f.error.is_empty())
    }
}

fn dec_text(d: Option<Dec>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn area_form_of(a: Option<&CareArea>) -> EditForm {
    let w = a.and_then(|a| a.weight_kg);
    EditForm {
        area: a.map(|a| a.id.clone()).unwrap_or_default(),
        entry: String::new(),
        fields: vec![
            FormField::text(
                "area_id",
                "Id",
                a.map(|a| a.id.clone()).unwrap_or_default(),
                "a-z, 0-9 and -, e.g. adult-icu; pumps and reports key the care area by it",
            ),
            FormField::text(
                "area_name",
                "Name",
                a.map(|a| a.name.clone()).unwrap_or_default(),
                "as the unit is called, e.g. Adult ICU",
            ),
            FormField::text(
                "weight_min",
                "Lightest patient (kg)",
                dec_text(w.map(|w| w.min)),
                "needed when an entry is dosed per kg",
            ),
            FormField::text(
                "weight_max",
                "Heaviest patient (kg)",
                dec_text(w.map(|w| w.max)),
                "",
            ),
        ],
        high_alert: false,
        other: Vec::new(),
    }
}

fn entry_form_of(area: &str, index: Option<usize>, e: Option<&Entry>) -> EditForm {
    let c = e.map(|e| e.concentration);
    let (bolus, vtbi) = (e.and_then(|e| e.bolus), e.and_then(|e| e.vtbi_ml));
    let mut unit = FormField::text(
        "conc_unit",
        "Amount unit",
        c.map(|c| c.unit.as_str().to_owned()).unwrap_or_default(),
        "",
    );
    unit.options = AMOUNT_UNITS.iter().map(|u| u.as_str().to_owned()).collect();
    EditForm {
        area: area.to_owned(),
        entry: index.map_or_else(|| "new".to_owned(), |i| i.to_string()),
        fields: vec![
            FormField::text(
                "drug",
                "Drug (generic name)",
                e.map(|e| e.drug.clone()).unwrap_or_default(),
                "",
            ),
            FormField::text(
                "code",
                "RxNorm code",
                e.and_then(|e| e.code.clone()).unwrap_or_default(),
                "digits; leave empty if unknown",
            ),
            FormField::text(
                "conc_amount",
                "Drug amount in the container",
                dec_text(c.map(|c| c.amount)),
                "e.g. 25000",
            ),
            unit,
            FormField::text(
                "conc_volume",
                "Container volume (mL)",
                dec_text(c.map(|c| c.volume_ml)),
                "e.g. 250",
            ),
            FormField::text(
                "dosing_unit",
                "Dosing unit",
                e.map(|e| e.dosing_unit.to_string()).unwrap_or_default(),
                "e.g. units/kg/h, mcg/min, mcg/kg/min, mg/h, mL/h",
            ),
            FormField::text(
                "soft_min",
                "Soft minimum",
                dec_text(e.and_then(|e| e.soft_min)),
                "",
            ),
            FormField::text(
                "soft_max",
                "Soft maximum",
                dec_text(e.and_then(|e| e.soft_max)),
                "",
            ),
            FormField::text(
                "hard_min",
                "Hard minimum",
                dec_text(e.and_then(|e| e.hard_min)),
                "",
            ),
            FormField::text(
                "hard_max",
                "Hard maximum",
                dec_text(e.and_then(|e| e.hard_max)),
                "required; no override passes it",
            ),
            FormField::text(
                "bolus_unit",
                "Bolus unit",
                bolus.map(|b| b.unit.to_string()).unwrap_or_default(),
                "e.g. units/kg, mg, mL; leave every bolus field empty when no bolus is given from this entry",
            ),
            FormField::text(
                "bolus_soft_min",
                "Bolus soft minimum",
                dec_text(bolus.and_then(|b| b.soft_min)),
                "",
            ),
            FormField::text(
                "bolus_soft_max",
                "Bolus soft maximum",
                dec_text(bolus.and_then(|b| b.soft_max)),
                "",
            ),
            FormField::text(
                "bolus_hard_min",
                "Bolus hard minimum",
                dec_text(bolus.and_then(|b| b.hard_min)),
                "",
            ),
            FormField::text(
                "bolus_hard_max",
                "Bolus hard maximum",
                dec_text(bolus.and_then(|b| b.hard_max)),
                "required when a bolus is given",
            ),
            FormField::text(
                "vtbi_soft_min",
                "VTBI soft minimum (mL)",
                dec_text(vtbi.and_then(|v| v.soft_min)),
                "volume to be infused; leave every VTBI field empty for no VTBI limit",
            ),
            FormField::text(
                "vtbi_soft_max",
                "VTBI soft maximum (mL)",
                dec_text(vtbi.and_then(|v| v.soft_max)),
                "",
            ),
            FormField::text(
                "vtbi_hard_min",
                "VTBI hard minimum (mL)",
                dec_text(vtbi.and_then(|v| v.hard_min)),
                "",
            ),
            FormField::text(
                "vtbi_hard_max",
                "VTBI hard maximum (mL)",
                dec_text(vtbi.and_then(|v| v.hard_max)),
                "required when a VTBI limit is set",
            ),
            FormField::text(
                "max_duration_min",
                "Longest infusion (minutes)",
                e.and_then(|e| e.max_duration_min)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                "optional",
            ),
            FormField::text(
                "advisory",
                "Clinical advisory",
                e.and_then(|e| e.advisory.clone()).unwrap_or_default(),
                "shown on the pump when the drug is selected; optional",
            ),
        ],
        high_alert: e.is_some_and(|e| e.high_alert),
        other: Vec::new(),
    }
}

/// Which form field a validator path of the edited entry (or care area)
/// belongs to.
fn entry_field(suffix: &str) -> &'static str {
    match suffix {
        "drug" => "drug",
        "code" => "code",
        "concentration" | "concentration.amount" => "conc_amount",
        "concentration.volume_ml" => "conc_volume",
        "dosing_unit" => "dosing_unit",
        "soft_min" => "soft_min",
        "soft_max" => "soft_max",
        "hard_min" => "hard_min",
        "hard_max" => "hard_max",
        "max_duration_min" => "max_duration_min",
        "advisory" => "advisory",
        "bolus" | "bolus.unit" => "bolus_unit",
        "bolus.soft_min" => "bolus_soft_min",
        "bolus.soft_max" => "bolus_soft_max",
        "bolus.hard_min" => "bolus_hard_min",
        "bolus.hard_max" => "bolus_hard_max",
        "vtbi_ml" => "vtbi_hard_max",
        "vtbi_ml.soft_min" => "vtbi_soft_min",
        "vtbi_ml.soft_max" => "vtbi_soft_max",
        "vtbi_ml.hard_min" => "vtbi_hard_min",
        "vtbi_ml.hard_max" => "vtbi_hard_max",
        _ => "",
    }
}

fn area_field(suffix: &str) -> &'static str {
    match suffix {
        "id" => "area_id",
        "name" => "area_name",
        "weight_kg.min" => "weight_min",
        "weight_kg.max" => "weight_max",
        _ => "",
    }
}

/// The problems `after` has that `before` had not, each with the form
/// field it belongs to ("" for none): under `entry_prefix` (the edited
/// entry) by [`entry_field`], under `area_prefix` (the edited care area,
/// not its entries) by [`area_field`].
fn new_problems(
    before: &Library,
    after: &Library,
    area_prefix: &str,
    entry_prefix: Option<&str>,
) -> Vec<(String, FieldProblem)> {
    let list = |l: &Library| match l.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    let old = list(before);
    list(after)
        .into_iter()
        .filter(|p| !old.contains(p))
        .map(|p| {
            let field = match entry_prefix.and_then(|e| p.path.strip_prefix(e)) {
                Some(rest) => entry_field(rest.trim_start_matches('.')),
                None => match p.path.strip_prefix(area_prefix) {
                    Some(rest) if rest.starts_with('.') && !rest.starts_with(".entries") => {
                        area_field(rest.trim_start_matches('.'))
                    }
                    _ => "",
                },
            };
            (
                field.to_owned(),
                FieldProblem {
                    field: p.path,
                    message: p.message,
                },
            )
        })
        .collect()
}

// ---------------------------------------------------------------- page

pub struct AreaRow {
    pub href: String,
    pub id: String,
    pub name: String,
    pub weight: String,
    pub entries: usize,
    pub selected: bool,
}

pub struct EntryRow {
    pub index: usize,
    pub drug: String,
    pub concentration: String,
    pub dosing_unit: String,
    pub limits: String,
    pub problems: usize,
}

#[derive(Template)]
#[template(path = "library_editor.html")]
struct EditorPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    id: String,
    name: String,
    rev: i64,
    /// Every problem of the draft (it cannot be submitted until none).
    problems: Vec<FieldProblem>,
    areas: Vec<AreaRow>,
    /// The selected care area: its entries and its form.
    area: Option<(String, String)>,
    entries: Vec<EntryRow>,
    /// The selected care area's editor link (`…/edit?area=ID`).
    area_href: String,
    area_form: Option<EditForm>,
    entry_form: Option<EditForm>,
    /// Always shown (an `Option` for the template's `if let`).
    new_area_form: Option<EditForm>,
}

/// The editor with care area `area` selected.
fn area_href(id: &str, rev: i64, area: &str) -> String {
    format!(
        "{}?{}",
        editor_href(id, rev),
        serde_urlencoded::to_string([("area", area)]).unwrap_or_default()
    )
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn notice(q: &[(String, String)]) -> Option<&'static str> {
    Some(match param(q, "done")? {
        "saved" => "Saved as a new draft revision, which replaces the one you edited.",
        "removed" => "Removed; saved as a new draft revision.",
        _ => return None,
    })
}

/// The draft `rev` of library `id`, if `p` may edit it: their own draft or
/// rejected revision.
async fn editable(
    st: &AppState,
    p: &Principal,
    id: &str,
    rev: i64,
) -> Result<(LibraryRevision, Library), UiError> {
    let r = api_library::revision_of(st, id, rev)
        .await
        .ui(p, LIBRARIES)?;
    if !matches!(r.state, RevisionState::Draft | RevisionState::Rejected) {
        return Err(UiError::new(
            StatusCode::CONFLICT,
            "Not editable",
            format!(
                "Revision {rev} is {}; only a draft (or a rejected revision) is edited. Start a new draft from the published version.",
                r.state.as_str()
            ),
        )
        .with_nav(p, LIBRARIES));
    }
    if r.author != p.user.username {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "Not your draft",
            format!(
                "Revision {rev} is {}'s draft; only its author edits it. Start your own draft from the published version.",
                r.author
            ),
        )
        .with_nav(p, LIBRARIES));
    }
    let lib = api_library::parse_stored(&r).ui(p, LIBRARIES)?;
    Ok((r, lib))
}

/// What the page shows besides the forms.
struct Selection {
    area: Option<String>,
    entry: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn page(
    p: &Principal,
    id: &str,
    rev: i64,
    lib: &Library,
    sel: &Selection,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    area_override: Option<EditForm>,
    entry_override: Option<EditForm>,
    new_area_override: Option<EditForm>,
) -> UiResult {
    let problems = super::libraries::validation_problems(lib);
    let selected = sel
        .area
        .as_deref()
        .and_then(|a| lib.care_areas.iter().position(|c| c.id == a));
    let areas = lib
        .care_areas
        .iter()
        .enumerate()
        .map(|(i, c)| AreaRow {
            href: area_href(id, rev, &c.id),
            id: c.id.clone(),
            name: c.name.clone(),
            weight: c
                .weight_kg
                .map(|w| format!("{}–{} kg", w.min, w.max))
                .unwrap_or_default(),
            entries: c.entries.len(),
            selected: Some(i) == selected,
        })
        .collect();
    let (area, entries, area_form, entry_form) =
        match selected.and_then(|i| lib.care_areas.get(i).map(|c| (i, c))) {
            None => (None, Vec::new(), None, None),
            Some((i, c)) => {
                let base = care_area_path(i, &c.id);
                let entries = c
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(j, e)| {
                        let at = format!("{base}.entries[{j}].");
                        let l = e.limits();
                        EntryRow {
                            index: j,
                            drug: e.drug.clone(),
                            concentration: e.concentration.to_string(),
                            dosing_unit: e.dosing_unit.to_string(),
                            limits: format!(
                                "{} / {} – {} / {}",
                                super::or_dash(l.hard_min),
                                super::or_dash(l.soft_min),
                                super::or_dash(l.soft_max),
                                super::or_dash(l.hard_max)
                            ),
                            problems: problems.iter().filter(|x| x.field.starts_with(&at)).count(),
                        }
                    })
                    .collect();
                let entry_form = entry_override.or_else(|| match sel.entry.as_deref() {
                    Some("new") => Some(entry_form_of(&c.id, None, None)),
                    Some(n) => n.parse::<usize>().ok().and_then(|j| {
                        c.entries
                            .get(j)
                            .map(|e| entry_form_of(&c.id, Some(j), Some(e)))
                    }),
                    None => None,
                });
                (
                    Some((c.id.clone(), c.name.clone())),
                    entries,
                    Some(area_override.unwrap_or_else(|| area_form_of(Some(c)))),
                    entry_form,
                )
            }
        };
    render(
        status,
        &EditorPage {
            nav: Some(Nav::new(p, LIBRARIES)),
            notice,
            error,
            id: id.to_owned(),
            name: lib.name.clone(),
            rev,
            problems,
            areas,
            area_href: area
                .as_ref()
                .map(|(a, _)| area_href(id, rev, a))
                .unwrap_or_default(),
            area,
            entries,
            area_form,
            entry_form,
            new_area_form: Some(new_area_override.unwrap_or_else(|| area_form_of(None))),
        },
    )
}

/// `GET /libraries/{id}/revisions/{rev}/edit[?area=ID[&entry=N|new]]`.
pub async fn editor(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::LibraryAuthor, LIBRARIES).await?;
    let (_, lib) = editable(&st, &p, &id, rev).await?;
    let q = query(&uri);
    let sel = Selection {
        area: param(&q, "area").map(str::to_owned),
        entry: param(&q, "entry").map(str::to_owned),
    };
    page(
        &p,
        &id,
        rev,
        &lib,
        &sel,
        StatusCode::OK,
        notice(&q),
        None,
        None,
        None,
        None,
    )
}

/// A number field: empty is none; anything else must be a decimal.
fn dec_field(form: &mut EditForm, f: &Fields, name: &str) -> Option<Dec> {
    let v = f.get(name).trim();
    if v.is_empty() {
        return None;
    }
    match v.parse::<Dec>() {
        Ok(d) => Some(d),
        Err(e) => {
            if let Some(x) = form.field_mut(name) {
                x.error = format!("{v:?} is not a number: {e}");
            }
            None
        }
    }
}

/// The four limits `<prefix>soft_min` … `<prefix>hard_max` of the form;
/// `None` when all four are empty (no such limits). A value that is not a
/// number gets its inline error.
fn limit_set(form: &mut EditForm, f: &Fields, prefix: &str) -> Option<LimitSet> {
    let [soft_min, soft_max, hard_min, hard_max] = ["soft_min", "soft_max", "hard_min", "hard_max"]
        .map(|n| {
            let name = format!("{prefix}{n}");
            dec_field(form, f, &name)
        });
    let set = LimitSet {
        hard_max,
        hard_min,
        soft_max,
        soft_min,
    };
    (!set.is_empty()).then_some(set)
}

/// The bolus fields: none when the unit and every limit are empty; limits
/// without a unit are refused at the unit field (the validator checks the
/// rest: a hard maximum, soft within hard, a unit that fits the
/// concentration, a weight range for a per-kg bolus).
fn bolus_of(form: &mut EditForm, f: &Fields) -> Option<Bolus> {
    let limits = limit_set(form, f, "bolus_");
    let typed_limit = ["soft_min", "soft_max", "hard_min", "hard_max"]
        .iter()
        .any(|n| !f.get(&format!("bolus_{n}")).trim().is_empty());
    let unit_text = f.get("bolus_unit").trim();
    let unit = if unit_text.is_empty() {
        if typed_limit {
            if let Some(x) = form.field_mut("bolus_unit") {
                x.error = "give the bolus unit (e.g. units/kg, mg, mL), or empty every bolus field"
                    .into();
            }
        }
        return None;
    } else {
        match unit_text.parse::<BolusUnit>() {
            Ok(u) => u,
            Err(e) => {
                if let Some(x) = form.field_mut("bolus_unit") {
                    x.error = e.to_string();
                }
                return None;
            }
        }
    };
    let l = limits.unwrap_or_default();
    Some(Bolus {
        hard_max: l.hard_max,
        hard_min: l.hard_min,
        soft_max: l.soft_max,
        soft_min: l.soft_min,
        unit,
    })
}

/// The form as posted (values kept for a refused change).
fn posted(mut form: EditForm, f: &Fields) -> EditForm {
    for x in &mut form.fields {
        x.value = f.get(x.name).chars().take(4000).collect();
    }
    form.high_alert = f.get("high_alert") == "yes";
    form
}

/// What the change did, for the redirect.
enum Applied {
    Saved {
        area: Option<String>,
        entry: Option<String>,
    },
    Removed {
        area: Option<String>,
    },
}

/// A refused change: the form to show again with its errors.
enum Refused {
    Area(EditForm),
    NewArea(EditForm),
    Entry(EditForm),
    /// Refused as a whole (a message, no form).
    Message(String),
}

/// Applies the posted change to `lib`; returns what to save, or the form
/// with its errors.
fn apply(lib: &mut Library, f: &Fields) -> Result<Applied, Refused> {
    let before = lib.clone();
    let area_id = f.get("area").trim().to_owned();
    let area_index = lib.care_areas.iter().position(|c| c.id == area_id);
    match f.get("action") {
        "area_add" | "area_save" => {
            let adding = f.get("action") == "area_add";
            let mut form = posted(area_form_of(None), f);
            form.area = area_id.clone();
            let (min, max) = (
                dec_field(&mut form, f, "weight_min"),
                dec_field(&mut form, f, "weight_max"),
            );
            let weight = match (min, max) {
                (Some(min), Some(max)) => Some(WeightRange { min, max }),
                (None, None) => None,
                _ => {
                    let which = if min.is_none() {
                        "weight_min"
                    } else {
                        "weight_max"
                    };
                    if let Some(x) = form.field_mut(which) {
                        if x.error.is_empty() {
                            x.error = "give both weights, or neither".into();
                        }
                    }
                    None
                }
            };
            let refuse = |form| {
                if adding {
                    Refused::NewArea(form)
                } else {
                    Refused::Area(form)
                }
            };
            if form.has_errors() {
                return Err(refuse(form));
            }
            let new_id = f.get("area_id").trim().to_owned();
            let index = if adding {
                if lib.care_areas.iter().any(|c| c.id == new_id) {
                    if let Some(x) = form.field_mut("area_id") {
                        x.error = format!("the library already has a care area {new_id:?}");
                    }
                    return Err(refuse(form));
                }
                lib.care_areas.push(CareArea {
                    entries: Vec::new(),
                    id: new_id.clone(),
                    name: String::new(),
                    weight_kg: None,
                });
                lib.care_areas.len() - 1
            } else {
                match area_index {
                    Some(i) => i,
                    None => {
                        return Err(Refused::Message(format!(
                            "There is no care area {area_id:?} in this draft; reload the page."
                        )))
                    }
                }
            };
            let Some(c) = lib.care_areas.get_mut(index) else {
                return Err(Refused::Message(
                    "The care area is gone; reload the page.".into(),
                ));
            };
            c.id = new_id.clone();
            c.name = f.get("area_name").trim().to_owned();
            c.weight_kg = weight;
            let base = care_area_path(index, &new_id);
            let problems = new_problems(&before, lib, &base, None);
            if !problems.is_empty() {
                form.place(problems);
                return Err(refuse(form));
            }
            Ok(Applied::Saved {
                area: Some(new_id),
                entry: None,
            })
        }
        "area_remove" => {
            let Some(i) = area_index else {
                return Err(Refused::Message(format!(
                    "There is no care area {area_id:?} in this draft; reload the page."
                )));
            };
            if f.get("confirm") != "yes" {
                return Err(Refused::Message(format!(
                    "Tick the confirmation to remove care area {area_id} and its entries."
                )));
            }
            lib.care_areas.remove(i);
            if lib.care_areas.is_empty() {
                return Err(Refused::Message(
                    "A library needs at least one care area; add another before removing this one."
                        .into(),
                ));
            }
            Ok(Applied::Removed { area: None })
        }
        "entry_save" => {
            let Some(ai) = area_index else {
                return Err(Refused::Message(format!(
                    "There is no care area {area_id:?} in this draft; reload the page."
                )));
            };
            let which = f.get("entry").trim();
            let existing = if which == "new" {
                None
            } else {
                match which.parse::<usize>() {
                    Ok(j) if lib.care_areas.get(ai).is_some_and(|c| j < c.entries.len()) => Some(j),
                    _ => {
                        return Err(Refused::Message(
                            "That entry is gone; reload the page.".into(),
                        ))
                    }
                }
            };
            let mut form = posted(entry_form_of(&area_id, existing, None), f);
            let amount = dec_field(&mut form, f, "conc_amount");
            let volume = dec_field(&mut form, f, "conc_volume");
            let unit = match f.get("conc_unit").trim().parse::<AmountUnit>() {
                Ok(u) => Some(u),
                Err(e) => {
                    if let Some(x) = form.field_mut("conc_unit") {
                        x.error = e.to_string();
                    }
                    None
                }
            };
            let dosing = match f.get("dosing_unit").trim().parse::<DoseUnit>() {
                Ok(u) => Some(u),
                Err(e) => {
                    if let Some(x) = form.field_mut("dosing_unit") {
                        x.error = e.to_string();
                    }
                    None
                }
            };
            let limits = ["soft_min", "soft_max", "hard_min", "hard_max"]
                .map(|n| dec_field(&mut form, f, n));
            let bolus = bolus_of(&mut form, f);
            let vtbi = limit_set(&mut form, f, "vtbi_");
            let duration = match f.get("max_duration_min").trim() {
                "" => None,
                v => match v.parse::<u32>() {
                    Ok(m) => Some(m),
                    Err(_) => {
                        if let Some(x) = form.field_mut("max_duration_min") {
                            x.error = format!("{v:?} is not a whole number of minutes");
                        }
                        None
                    }
                },
            };
            for (name, what) in [
                ("conc_amount", amount.is_some()),
                ("conc_volume", volume.is_some()),
            ] {
                if let Some(x) = form.field_mut(name) {
                    if x.error.is_empty() && !what {
                        x.error = "is required".into();
                    }
                }
            }
            let (Some(amount), Some(volume), Some(unit), Some(dosing)) =
                (amount, volume, unit, dosing)
            else {
                return Err(Refused::Entry(form));
            };
            if form.has_errors() {
                return Err(Refused::Entry(form));
            }
            let text = |n: &str| {
                let v = f.get(n).trim();
                (!v.is_empty()).then(|| v.to_owned())
            };
            let Some(c) = lib.care_areas.get_mut(ai) else {
                return Err(Refused::Message(
                    "The care area is gone; reload the page.".into(),
                ));
            };
            let [soft_min, soft_max, hard_min, hard_max] = limits;
            let e = Entry {
                advisory: text("advisory"),
                bolus,
                code: text("code"),
                concentration: Concentration {
                    amount,
                    unit,
                    volume_ml: volume,
                },
                dosing_unit: dosing,
                drug: f.get("drug").trim().to_owned(),
                hard_max,
                hard_min,
                high_alert: f.get("high_alert") == "yes",
                max_duration_min: duration,
                soft_max,
                soft_min,
                vtbi_ml: vtbi,
            };
            let j = match existing {
                Some(j) => {
                    if let Some(slot) = c.entries.get_mut(j) {
                        *slot = e;
                    }
                    j
                }
                None => {
                    c.entries.push(e);
                    c.entries.len() - 1
                }
            };
            let base = care_area_path(ai, &area_id);
            let problems = new_problems(&before, lib, &base, Some(&format!("{base}.entries[{j}]")));
            if !problems.is_empty() {
                form.place(problems);
                return Err(Refused::Entry(form));
            }
            Ok(Applied::Saved {
                area: Some(area_id),
                entry: Some(j.to_string()),
            })
        }
        "entry_remove" => {
            let Some(c) = area_index.and_then(|i| lib.care_areas.get_mut(i)) else {
                return Err(Refused::Message(format!(
                    "There is no care area {area_id:?} in this draft; reload the page."
                )));
            };
            match f.get("entry").trim().parse::<usize>() {
                Ok(j) if j < c.entries.len() => {
                    c.entries.remove(j);
                }
                _ => {
                    return Err(Refused::Message(
                        "That entry is gone; reload the page.".into(),
                    ))
                }
            }
            Ok(Applied::Removed {
                area: Some(area_id),
            })
        }
        _ => Err(Refused::Message(
            "The form could not be read; reload the page.".into(),
        )),
    }
}

/// `POST /libraries/{id}/revisions/{rev}/edit`: `action` (`area_add`,
/// `area_save`, `area_remove`, `entry_save`, `entry_remove`), `area`,
/// `entry` and the form's fields. Saved as a new draft replacing `rev`;
/// a refused change saves nothing.
pub async fn edit(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path((id, rev)): Path<(String, i64)>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::LibraryAuthor, LIBRARIES).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, LIBRARIES))?;
    let (_, mut lib) = editable(&st, &p, &id, rev).await?;
    let original = lib.clone();
    let sel = Selection {
        area: Some(f.get("area").to_owned()).filter(|a| !a.is_empty()),
        entry: Some(f.get("entry").to_owned()).filter(|e| !e.is_empty()),
    };
    let refused = |status: StatusCode,
                   error: Option<String>,
                   a: Option<EditForm>,
                   e: Option<EditForm>,
                   n: Option<EditForm>| {
        page(&p, &id, rev, &original, &sel, status, None, error, a, e, n)
    };
    let applied = match apply(&mut lib, &f) {
        Ok(a) => a,
        Err(Refused::Message(m)) => {
            return refused(StatusCode::UNPROCESSABLE_ENTITY, Some(m), None, None, None)
        }
        Err(r) => {
            let msg = Some("The change was not saved: correct the fields marked below.".to_owned());
            let s = StatusCode::UNPROCESSABLE_ENTITY;
            return match r {
                Refused::Area(form) => refused(s, msg, Some(form), None, None),
                Refused::NewArea(form) => refused(s, msg, None, None, Some(form)),
                Refused::Entry(form) => refused(s, msg, None, Some(form), None),
                Refused::Message(_) => refused(s, msg, None, None, None),
            };
        }
    };
    match api_library::save_draft(&st, &p, &lib, Some(rev)).await {
        Ok(saved) => {
            let (done, area, entry) = match applied {
                Applied::Saved { area, entry } => ("saved", area, entry),
                Applied::Removed { area } => ("removed", area, None),
            };
            let mut q = vec![("done", done.to_owned())];
            q.extend(area.map(|a| ("area", a)));
            q.extend(entry.map(|e| ("entry", e)));
            let q = serde_urlencoded::to_string(&q).unwrap_or_default();
            Ok(see_other(&format!("{}?{q}", editor_href(&id, saved.id))))
        }
        Err(e) => {
            let e: ApiError = e;
            refused(e.kind.status(), Some(e.detail), None, None, None)
        }
    }
}
