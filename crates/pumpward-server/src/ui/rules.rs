//! The rules page (`/detection/rules`): every built-in detection rule with
//! its rationale, NIST CSF 2.0 category and the settings in effect (and
//! where each comes from: default, the rules file, or this page), the
//! custom rules of the rules file, and for `detection.configure` an editing
//! form per rule.
//!
//! An edit is checked the way the engine reads it (through
//! [`DetectionConfig`], over the rules file), refused with the field's
//! error and nothing changed, or else saved (audited as
//! `detection.configure`) and handed to the running engine, which judges
//! the next events by it. See [`crate::detection_rules`] for precedence.

use super::pki::{segment, Query};
use super::{need, render, see_other, Fields, Nav, Opt, UiError, UiResult, UiResultExt, UiUser};
use crate::api_incidents::parse_severity;
use crate::auth::Principal;
use crate::detection_rules::{effective, window_text, with_rule, RulesError};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_detect::config::{parse_duration, RuleSettings};
use pumpward_detect::{ConfigError, DetectionConfig, RuleId};

const HERE: &str = "/detection/rules";

struct RuleRow {
    name: &'static str,
    title: &'static str,
    csf: &'static str,
    rationale: &'static str,
    enabled: bool,
    severity: &'static str,
    severities: Vec<Opt>,
    threshold: u32,
    window: String,
    /// `default`, `rules file` or `this page`.
    source: &'static str,
}

struct CustomRow {
    id: String,
    title: String,
    severity: &'static str,
    enabled: bool,
    when: String,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    rules: Vec<RuleRow>,
    custom: Vec<CustomRow>,
    can_edit: bool,
    has_file: bool,
    updated: Option<(String, String)>,
    engine_running: bool,
}

fn has_rule(text: Option<&str>, id: RuleId) -> bool {
    text.and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("rules").and_then(|r| r.get(id.as_str())).cloned())
        .is_some()
}

fn severities(selected: &str) -> Vec<Opt> {
    ["low", "medium", "high", "critical"]
        .into_iter()
        .map(|s| Opt::new(s, s, s == selected))
        .collect()
}

async fn rules_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    mut error: Option<String>,
) -> UiResult {
    let saved = st.store.detection_settings().await.ui(p, HERE)?;
    let file = st.rules.file.as_deref();
    let saved_text = saved.as_ref().map(|s| s.rules.as_str());
    let (cfg, saved_used) = match effective(file, saved_text) {
        Ok((c, _)) => (c, saved_text),
        Err(e) => {
            // Shown, not hidden: the engine runs without these settings.
            error.get_or_insert(format!("{e}; the engine uses the rules file and defaults."));
            (
                effective(file, None)
                    .map(|(c, _)| c)
                    .unwrap_or_else(|_| DetectionConfig::default()),
                None,
            )
        }
    };
    let rules = RuleId::ALL
        .into_iter()
        .map(|id| {
            let info = id.info();
            let s = cfg.rule(id);
            RuleRow {
                name: id.as_str(),
                title: info.title,
                csf: info.csf,
                rationale: info.rationale,
                enabled: s.enabled,
                severity: s.severity.as_str(),
                severities: severities(s.severity.as_str()),
                threshold: s.threshold,
                window: window_text(s.window_s),
                source: if has_rule(saved_used, id) {
                    "this page"
                } else if has_rule(file, id) {
                    "rules file"
                } else {
                    "default"
                },
            }
        })
        .collect();
    let custom = cfg
        .custom
        .iter()
        .map(|c| CustomRow {
            id: c.id.clone(),
            title: c.title.clone(),
            severity: c.severity.as_str(),
            enabled: c.enabled,
            when: c.source.clone(),
        })
        .collect();
    render(
        status,
        &RulesPage {
            nav: Some(Nav::new(p, HERE)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            rules,
            custom,
            can_edit: p.can(Permission::DetectionConfigure),
            has_file: file.is_some(),
            updated: saved.map(|s| (s.updated_by, s.updated_at)),
            engine_running: st.rules.detection.is_some(),
        },
    )
}

pub async fn rules(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::AlertsRead, HERE).await?;
    let q = Query::parse(uri.query(), &p, HERE)?;
    let notice = match q.get("done") {
        Some("saved") => Some("The rule's settings were saved; the engine uses them from now on."),
        Some("reset") => Some("The rule is back to the rules file's settings (or the defaults)."),
        _ => None,
    };
    rules_page(&st, &p, StatusCode::OK, notice, None).await
}

/// The form's settings for rule `id`, or the field's error.
fn read_form(f: &Fields, id: RuleId) -> Result<RuleSettings, String> {
    let severity = f.get("severity");
    let severity = parse_severity(severity).ok_or_else(|| {
        format!("Severity: choose low, medium, high or critical, not {severity:?}.")
    })?;
    let t = f.get("threshold").trim();
    let threshold: u32 = t
        .parse()
        .map_err(|_| format!("Threshold: give a whole number, not {t:?}."))?;
    let w = f.get("window").trim();
    let window_s = parse_duration(w).map_err(|e| format!("Window: {e}."))?;
    let st = RuleSettings {
        enabled: f.get("enabled") == "yes",
        severity,
        threshold,
        window_s,
    };
    // The engine's own bounds, with the field named.
    DetectionConfig::default()
        .set_rule(id, st)
        .map_err(|e| field_error(&e))?;
    Ok(st)
}

/// A configuration error in the words of the form.
fn field_error(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { path, message } => {
            let field = match path.rsplit('.').next() {
                Some("threshold") => "Threshold",
                Some("window") => "Window",
                _ => path.as_str(),
            };
            format!("{field}: {message}.")
        }
        other => format!("{other}."),
    }
}

/// The page again, with why rule `id` was not saved (422).
async fn refuse(st: &AppState, p: &Principal, id: RuleId, msg: String) -> UiResult {
    rules_page(
        st,
        p,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        Some(format!("{}: not saved. {msg}", id.as_str())),
    )
    .await
}

/// `POST /detection/rules/{rule}`: `action=save` with enabled, severity,
/// threshold and window; or `action=reset` to drop this page's settings.
pub async fn edit(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(rule): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::DetectionConfigure, HERE).await?;
    let Some(id) = RuleId::ALL.into_iter().find(|r| r.as_str() == rule) else {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no built-in rule {rule:?}."),
        )
        .with_nav(&p, HERE));
    };
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, HERE))?;
    let action = f.get("action");
    let new = match action {
        "save" => match read_form(&f, id) {
            Ok(s) => Some(s),
            Err(msg) => return refuse(&st, &p, id, msg).await,
        },
        "reset" => None,
        _ => return refuse(&st, &p, id, "Choose save or reset.".into()).await,
    };
    let saved = st.store.detection_settings().await.ui(&p, HERE)?;
    let saved_text = saved.as_ref().map(|s| s.rules.as_str());
    let file = st.rules.file.as_deref();
    let before = effective(file, saved_text).ok().map(|(c, _)| *c.rule(id));
    let text = with_rule(saved_text, id, new.as_ref());
    let cfg = match effective(file, Some(&text)) {
        Ok((c, _)) => c,
        Err(RulesError::Merged(e)) | Err(RulesError::Saved(e)) => {
            return refuse(&st, &p, id, field_error(&e)).await
        }
        Err(e) => return refuse(&st, &p, id, format!("{e}.")).await,
    };
    let show = |s: Option<RuleSettings>| {
        s.map(|s| {
            serde_json::json!({
                "enabled": s.enabled, "severity": s.severity.as_str(),
                "threshold": s.threshold, "window": window_text(s.window_s),
            })
        })
    };
    let change = serde_json::json!({
        "rule": id.as_str(),
        "action": action,
        "from": show(before),
        "to": show(Some(*cfg.rule(id))),
    });
    st.store
        .save_detection_settings(&text, &change, &p.actor())
        .await
        .ui(&p, HERE)?;
    if let Some(d) = &st.rules.detection {
        if !d.reconfigure(cfg).await {
            tracing::error!("detection engine stopped: rule settings saved but not applied");
        }
    }
    let done = if new.is_some() { "saved" } else { "reset" };
    Ok(see_other(&format!(
        "{HERE}?done={done}#rule-{}",
        segment(id.as_str())
    )))
}
