//! The detection rules in effect: shipped defaults, under the server's rules
//! file (`detection_rules` in the config file), under the overrides saved
//! from the rules page (table `detection_settings`).
//!
//! Precedence is per setting: a value saved in the UI beats the file's, which
//! beats the default; what neither sets keeps its default. The UI saves only
//! the rules it edited (each as a full `[rules.<name>]` table), so a later
//! change to the file still applies to every rule nobody edited in the UI.
//!
//! Both layers are TOML in the format of `pumpward detect rules`, and each is
//! checked on its own (so that an error's line and column refer to the text
//! that holds it) before their merge is checked by [`DetectionConfig`].

use pumpward_detect::config::RuleSettings;
use pumpward_detect::{ConfigError, DetectionConfig, RuleId};
use pumpward_store::Store;
use toml::{Table, Value};

use crate::detection::Detection;

/// What the rules page needs of a running server: the rules file's text
/// and the engine to hand new settings to.
#[derive(Clone)]
pub struct LiveRules {
    /// The rules file as read at startup (already validated).
    pub file: Option<String>,
    /// The running engine; `None` where the server runs without one (tests).
    pub detection: Option<Detection>,
}

impl LiveRules {
    /// Makes the running engine forget what it learned about `asset_id`'s
    /// normal behaviour, and audits it as `detection.baseline_reset`
    /// (`had_baseline` says whether anything was forgotten). The asset must
    /// exist. Refused, changing nothing, when this server runs no engine.
    pub async fn reset_baseline(
        &self,
        store: &Store,
        asset_id: &str,
        actor: &pumpward_store::Actor,
    ) -> Result<bool, crate::problem::ApiError> {
        use crate::problem::{ApiError, ErrorKind};
        let asset = store.asset(asset_id).await?;
        let engine_gone = || {
            ApiError::new(
                ErrorKind::Conflict,
                "detection is not running in this server",
            )
        };
        let detection = self.detection.as_ref().ok_or_else(engine_gone)?;
        let had = detection
            .reset_baseline(asset.spec.asset_id.clone())
            .await
            .ok_or_else(engine_gone)?;
        store
            .audit(
                actor
                    .entry(
                        "detection.baseline_reset",
                        pumpward_core::audit::Outcome::Success,
                    )
                    .object(format!("asset:{asset_id}"))
                    .details(&serde_json::json!({ "had_baseline": had })),
            )
            .await?;
        Ok(had)
    }
}

/// Which layer a setting failed in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("the rules file: {0}")]
    File(ConfigError),
    #[error("the settings saved from the rules page: {0}")]
    Saved(ConfigError),
    #[error("{0}")]
    Merged(ConfigError),
}

fn table(text: &str) -> Table {
    // Only called on text that `DetectionConfig::from_toml` accepted, which
    // is a TOML document, so the empty table is never really used.
    text.parse::<Table>().unwrap_or_default()
}

/// `over` laid over `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The configuration in effect for `file` and `saved` (either may be absent),
/// and the merged TOML text it was read from.
pub fn effective(
    file: Option<&str>,
    saved: Option<&str>,
) -> Result<(DetectionConfig, String), RulesError> {
    let mut merged = Table::new();
    if let Some(f) = file {
        DetectionConfig::from_toml(f).map_err(RulesError::File)?;
        merged = table(f);
    }
    if let Some(s) = saved {
        DetectionConfig::from_toml(s).map_err(RulesError::Saved)?;
        merge(&mut merged, table(s));
    }
    let text = toml::to_string(&merged).unwrap_or_default();
    let cfg = DetectionConfig::from_toml(&text).map_err(RulesError::Merged)?;
    Ok((cfg, text))
}

/// The saved overrides with rule `id` set to `st` (or, with `None`, returned
/// to what the file or the defaults say).
pub fn with_rule(saved: Option<&str>, id: RuleId, st: Option<&RuleSettings>) -> String {
    let mut t = saved.map(table).unwrap_or_default();
    let rules = t
        .entry("rules")
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(rules) = rules {
        match st {
            Some(st) => {
                let mut r = Table::new();
                r.insert("enabled".into(), Value::Boolean(st.enabled));
                r.insert(
                    "severity".into(),
                    Value::String(st.severity.as_str().into()),
                );
                r.insert("threshold".into(), Value::Integer(st.threshold.into()));
                r.insert("window".into(), Value::String(window_text(st.window_s)));
                rules.insert(id.as_str().into(), Value::Table(r));
            }
            None => {
                rules.remove(id.as_str());
            }
        }
        if rules.is_empty() {
            t.remove("rules");
        }
    }
    toml::to_string(&t).unwrap_or_default()
}

/// A window in the largest unit that writes it exactly (`300` → `5m`).
pub fn window_text(secs: u64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// The configuration the engine starts with: the file and the saved
/// settings. Saved settings that no longer fit the file (or cannot be read)
/// are logged and left out rather than stopping the server; the rules page
/// shows the same error.
pub async fn startup_config(store: &Store, file: Option<&str>) -> anyhow::Result<DetectionConfig> {
    let saved = store.detection_settings().await?;
    match effective(file, saved.as_ref().map(|s| s.rules.as_str())) {
        Ok((cfg, _)) => Ok(cfg),
        Err(RulesError::File(e)) => Err(anyhow::anyhow!("detection rules file: {e}")),
        Err(e) => {
            tracing::error!(error = %e, "the rule settings saved from the UI are not used");
            Ok(effective(file, None).map_err(|e| anyhow::anyhow!("{e}"))?.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pumpward_detect::Severity;

    #[test]
    fn saved_settings_beat_the_file_which_beats_the_defaults() {
        let file = "[rules.auth_failure_burst]\nthreshold = 7\nwindow = \"10m\"\n\
                    [rules.library_rejected]\nenabled = false\n";
        let saved = "[rules.auth_failure_burst]\nthreshold = 9\n";
        let (cfg, _) = effective(Some(file), Some(saved)).unwrap();
        let a = cfg.rule(RuleId::AuthFailureBurst);
        // The saved threshold, the file's window, the default severity.
        assert_eq!((a.threshold, a.window_s), (9, 600));
        assert_eq!(
            a.severity,
            RuleId::AuthFailureBurst.info().defaults.severity
        );
        assert!(!cfg.rule(RuleId::LibraryRejected).enabled);
        assert_eq!(
            *cfg.rule(RuleId::DeviceUnseen),
            RuleId::DeviceUnseen.info().defaults
        );
        let (plain, _) = effective(None, None).unwrap();
        assert_eq!(
            *plain.rule(RuleId::AuthFailureBurst),
            RuleId::AuthFailureBurst.info().defaults
        );
    }

    #[test]
    fn each_layer_reports_its_own_position() {
        let err =
            effective(Some("[rules.auth_failure_burst]\nthreshhold = 1\n"), None).unwrap_err();
        assert!(
            matches!(err, RulesError::File(ConfigError::Toml { line: 2, .. })),
            "{err:?}"
        );
        let err = effective(None, Some("[rules.nope]\n")).unwrap_err();
        assert!(matches!(err, RulesError::Saved(_)), "{err:?}");
    }

    #[test]
    fn editing_a_rule_keeps_the_others_and_resets_cleanly() {
        let mut st = RuleId::DeviceUnseen.info().defaults;
        st.enabled = false;
        st.severity = Severity::Low;
        st.window_s = 7200;
        let one = with_rule(None, RuleId::DeviceUnseen, Some(&st));
        let mut other = RuleId::AuthFailureBurst.info().defaults;
        other.threshold = 11;
        let two = with_rule(Some(&one), RuleId::AuthFailureBurst, Some(&other));
        let (cfg, _) = effective(None, Some(&two)).unwrap();
        assert_eq!(*cfg.rule(RuleId::DeviceUnseen), st);
        assert_eq!(*cfg.rule(RuleId::AuthFailureBurst), other);
        let back = with_rule(Some(&two), RuleId::AuthFailureBurst, None);
        let back = with_rule(Some(&back), RuleId::DeviceUnseen, None);
        assert_eq!(back.trim(), "");
        let (cfg, _) = effective(None, Some(&back)).unwrap();
        assert_eq!(
            *cfg.rule(RuleId::DeviceUnseen),
            RuleId::DeviceUnseen.info().defaults
        );
    }

    proptest::proptest! {
        /// Every window the engine accepts is written so that it reads back
        /// as the same number of seconds.
        #[test]
        fn window_text_reads_back(secs in 1u64..=pumpward_detect::config::MAX_WINDOW_S) {
            proptest::prop_assert_eq!(
                pumpward_detect::config::parse_duration(&window_text(secs)),
                Ok(secs)
            );
        }

        /// A saved override of any valid settings is what the engine then
        /// uses, whatever the file says about the same rule.
        #[test]
        fn a_saved_rule_always_wins(
            idx in 0..RuleId::ALL.len(),
            enabled: bool,
            sev in 0..4usize,
            threshold in 1u32..=10_000,
            window_s in 1u64..=pumpward_detect::config::MAX_WINDOW_S,
        ) {
            let id = RuleId::ALL[idx];
            let severity = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical][sev];
            let st = RuleSettings { enabled, severity, threshold, window_s };
            let file = format!("[rules.{id}]\nenabled = {}\nthreshold = 3\n", !enabled);
            let saved = with_rule(None, id, Some(&st));
            let (cfg, _) = effective(Some(&file), Some(&saved)).unwrap();
            proptest::prop_assert_eq!(*cfg.rule(id), st);
        }
    }

    #[test]
    fn windows_are_written_in_their_largest_exact_unit() {
        assert_eq!(window_text(300), "5m");
        assert_eq!(window_text(7200), "2h");
        assert_eq!(window_text(86_400), "1d");
        assert_eq!(window_text(90), "90s");
        for s in [1, 59, 60, 61, 3600, 3601, 86_400, 604_800] {
            assert_eq!(
                pumpward_detect::config::parse_duration(&window_text(s)),
                Ok(s)
            );
        }
    }
}
