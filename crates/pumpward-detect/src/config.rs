//! Rule configuration: the built-in rules' catalogue (rationale, NIST CSF 2.0
//! category, defaults) and the TOML file that tunes them.
//!
//! ```toml
//! [rules.hard_limit_burst_pump]
//! threshold = 3
//! window = "15m"
//! severity = "critical"
//!
//! [rules.east_west_traffic]
//! enabled = false
//!
//! [rules.certificate_concurrent_use]
//! response = "quarantine"   # an automatic response, confirmed by a person
//!
//! [baseline]
//! learning_hours = 48
//!
//! [[custom]]
//! id = "gateway_auth_storm"
//! title = "Authentication failures at the gateway"
//! severity = "high"
//! when = 'kind == "auth_failure" and source == "gateway" with count(by asset within 5m) >= 5'
//! ```
//!
//! Every setting is optional: what the file leaves out keeps its shipped
//! default ([`RuleId::info`]). Unknown tables and keys are refused with their
//! line and column, so that a typo never silently leaves a rule at its
//! default.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::expr::{self, CustomRule};
use crate::response::ResponseKind;

pub use pumpward_core::severity::Severity;

/// A built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    LibraryMismatch,
    LibraryRejected,
    HardLimitBurstPump,
    HardLimitBurstCareArea,
    SoftOverrideBurstPump,
    SoftOverrideBurstCareArea,
    FirmwareDigestMismatch,
    AuthFailureBurst,
    CertificateConcurrentUse,
    DeviceUnseen,
    MaintenanceOutsideWindow,
    DefaultCredentials,
    PumpToInternet,
    EastWestTraffic,
    UnknownDeviceInZone,
    DeviceInTwoPlaces,
    KevFindingInService,
    BaselineRate,
    BaselineDestination,
    BaselineActiveHours,
}

/// What the catalogue says about a built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// Short title (the alert's title).
    pub title: &'static str,
    /// NIST CSF 2.0 subcategory.
    pub csf: &'static str,
    /// Why the rule exists, in the hospital's words.
    pub rationale: &'static str,
    /// Shipped defaults.
    pub defaults: RuleSettings,
}

const fn s(severity: Severity, threshold: u32, window_s: u64) -> RuleSettings {
    RuleSettings {
        enabled: true,
        severity,
        threshold,
        window_s,
    }
}

impl RuleId {
    /// Every built-in rule.
    pub const ALL: [RuleId; 20] = [
        RuleId::LibraryMismatch,
        RuleId::LibraryRejected,
        RuleId::HardLimitBurstPump,
        RuleId::HardLimitBurstCareArea,
        RuleId::SoftOverrideBurstPump,
        RuleId::SoftOverrideBurstCareArea,
        RuleId::FirmwareDigestMismatch,
        RuleId::AuthFailureBurst,
        RuleId::CertificateConcurrentUse,
        RuleId::DeviceUnseen,
        RuleId::MaintenanceOutsideWindow,
        RuleId::DefaultCredentials,
        RuleId::PumpToInternet,
        RuleId::EastWestTraffic,
        RuleId::UnknownDeviceInZone,
        RuleId::DeviceInTwoPlaces,
        RuleId::KevFindingInService,
        RuleId::BaselineRate,
        RuleId::BaselineDestination,
        RuleId::BaselineActiveHours,
    ];

    /// The snake_case name (configuration key, alert rule name).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::LibraryMismatch => "library_mismatch",
            RuleId::LibraryRejected => "library_rejected",
            RuleId::HardLimitBurstPump => "hard_limit_burst_pump",
            RuleId::HardLimitBurstCareArea => "hard_limit_burst_care_area",
            RuleId::SoftOverrideBurstPump => "soft_override_burst_pump",
            RuleId::SoftOverrideBurstCareArea => "soft_override_burst_care_area",
            RuleId::FirmwareDigestMismatch => "firmware_digest_mismatch",
            RuleId::AuthFailureBurst => "auth_failure_burst",
            RuleId::CertificateConcurrentUse => "certificate_concurrent_use",
            RuleId::DeviceUnseen => "device_unseen",
            RuleId::MaintenanceOutsideWindow => "maintenance_outside_window",
            RuleId::DefaultCredentials => "default_credentials",
            RuleId::PumpToInternet => "pump_to_internet",
            RuleId::EastWestTraffic => "east_west_traffic",
            RuleId::UnknownDeviceInZone => "unknown_device_in_zone",
            RuleId::DeviceInTwoPlaces => "device_in_two_places",
            RuleId::KevFindingInService => "kev_finding_in_service",
            RuleId::BaselineRate => "baseline_rate",
            RuleId::BaselineDestination => "baseline_destination",
            RuleId::BaselineActiveHours => "baseline_active_hours",
        }
    }

    /// Catalogue entry. Thresholds and windows are the shipped defaults;
    /// `threshold`/`window` are unused by rules that fire on one event.
    pub fn info(self) -> RuleInfo {
        use Severity::*;
        let (title, csf, rationale, defaults) = match self {
            RuleId::LibraryMismatch => (
                "Drug library installed on a pump differs from the one Pumpward sent it",
                "DE.CM-09",
                "A pump running another library than the signed one pharmacy published and Pumpward announced to it applies the wrong dose limits; it is either a failed rollout or tampering.",
                s(High, 1, 3600),
            ),
            RuleId::LibraryRejected => (
                "Pump rejected a drug library",
                "DE.CM-09",
                "A pump refuses a library whose signature or digest does not verify, or a rollback: someone may be pushing a forged or stale library.",
                s(High, 1, 3600),
            ),
            RuleId::HardLimitBurstPump => (
                "Burst of hard-limit blocks on one pump",
                "DE.AE-02",
                "Repeated hard-limit blocks on one pump suggest a wrong library, a wrong care-area setting or someone probing the limits.",
                s(High, 5, 600),
            ),
            RuleId::HardLimitBurstCareArea => (
                "Burst of hard-limit blocks in one care area",
                "DE.AE-02",
                "Hard-limit blocks spread over many pumps of one care area point at the library itself or a manipulated limit.",
                s(High, 15, 1800),
            ),
            RuleId::SoftOverrideBurstPump => (
                "Burst of soft-limit overrides on one pump",
                "DE.AE-02",
                "Frequent overrides on one pump mean limits that do not fit practice or a user working around them; pharmacy reviews both.",
                s(Medium, 10, 3600),
            ),
            RuleId::SoftOverrideBurstCareArea => (
                "Burst of soft-limit overrides in one care area",
                "DE.AE-02",
                "Overrides across a care area show a library out of step with the ward's practice.",
                s(Medium, 30, 3600),
            ),
            RuleId::FirmwareDigestMismatch => (
                "Firmware image digest is not the vendor's for this model and version",
                "DE.CM-09",
                "Firmware whose digest differs from the vendor's published image for that model and version is modified firmware.",
                s(Critical, 1, 3600),
            ),
            RuleId::AuthFailureBurst => (
                "Repeated authentication failures at the gateway",
                "DE.CM-01",
                "Many failed TLS client authentications from one address are a device with a broken certificate or someone trying to join the pump network.",
                s(High, 5, 300),
            ),
            RuleId::CertificateConcurrentUse => (
                "One device certificate used from two addresses at once",
                "DE.AE-02",
                "A pump certificate connected from two addresses at the same time has been copied: its key left the pump.",
                s(Critical, 1, 300),
            ),
            RuleId::DeviceUnseen => (
                "Pump not seen for longer than its care area allows",
                "DE.CM-09",
                "A pump that stops reporting may be off the network, stolen, or its events suppressed; clinical areas differ in how long that is normal.",
                s(Medium, 1, 4 * 3600),
            ),
            RuleId::MaintenanceOutsideWindow => (
                "Local maintenance login outside an approved maintenance window",
                "DE.CM-03",
                "Service logins must fall in a time-boxed, approved maintenance grant; any other is unapproved access to a pump's service functions.",
                s(High, 1, 3600),
            ),
            RuleId::DefaultCredentials => (
                "Default credentials still set on an in-service pump",
                "ID.RA-01",
                "A pump in clinical use with the vendor's default service password is open to anyone who has read the manual.",
                s(High, 1, 24 * 3600),
            ),
            RuleId::PumpToInternet => (
                "Pump traffic to the internet",
                "DE.CM-01",
                "Pumps talk to the gateway and the pump server only; traffic to the internet is exfiltration, a command channel or a misconfigured route.",
                s(Critical, 1, 3600),
            ),
            RuleId::EastWestTraffic => (
                "East-west traffic between devices in a device zone",
                "DE.CM-01",
                "Pumps never talk to each other; east-west traffic is lateral movement or scanning.",
                s(High, 1, 3600),
            ),
            RuleId::UnknownDeviceInZone => (
                "Unknown device in a medical-device zone",
                "DE.CM-01",
                "Only inventoried devices belong in the device zones; an unknown one is a rogue device or a gap in the inventory.",
                s(High, 1, 24 * 3600),
            ),
            RuleId::DeviceInTwoPlaces => (
                "One registered device seen in two places at once",
                "DE.CM-01",
                "A registered device's MAC address in two places within a minute has been copied: another device is using its identity, typically to get past MAC authentication bypass onto the pump network.",
                s(High, 1, 3600),
            ),
            RuleId::KevFindingInService => (
                "Known exploited vulnerability on an in-service pump",
                "DE.AE-07",
                "A vulnerability that CISA lists as exploited in the wild, on a pump in clinical use, moves from patch planning to incident response.",
                s(Critical, 1, 24 * 3600),
            ),
            RuleId::BaselineRate => (
                "Event rate far above the learned baseline",
                "DE.AE-02",
                "A pump producing many more events per hour than it normally does is misbehaving or being driven by someone.",
                s(Medium, 1, 3600),
            ),
            RuleId::BaselineDestination => (
                "Traffic to a destination never seen while learning",
                "DE.AE-02",
                "A pump's destinations are few and stable; a new one is worth a look even when the zone policy allows it.",
                s(Medium, 1, 24 * 3600),
            ),
            RuleId::BaselineActiveHours => (
                "Activity in an hour of the day that was never active while learning",
                "DE.AE-02",
                "Activity at an hour a pump is never used is a sign of remote use rather than care.",
                s(Low, 1, 3600),
            ),
        };
        RuleInfo {
            title,
            csf,
            rationale,
            defaults,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RuleSettings {
    /// Whether the rule runs.
    pub enabled: bool,
    /// The severity of its alerts.
    pub severity: Severity,
    /// Events needed within the window (burst rules), 1 to
    /// [`crate::window::MAX_WINDOW_CAP`].
    pub threshold: u32,
    /// The window, and the deduplication period of the rule's alerts, in
    /// seconds.
    pub window_s: u64,
}

/// A duration written `30s`, `5m`, `2h` or `1d` (TOML string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub u64);

/// The longest window: a week (windows hold state; longer ones are baselines).
pub const MAX_WINDOW_S: u64 = 7 * 24 * 3600;

/// Parses `30s`, `5m`, `2h`, `1d`: a positive integer and one unit.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; write e.g. 30s, 5m, 2h or 1d"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} does not start with a whole number"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unit {other:?} is not one of s, m, h, d (in {s:?})"
            ))
        }
    };
    let secs = n.saturating_mul(mult);
    if secs == 0 || secs > MAX_WINDOW_S {
        return Err(format!("{s:?} is outside 1s to 7d"));
    }
    Ok(secs)
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Window)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOverride {
    enabled: Option<bool>,
    severity: Option<Severity>,
    threshold: Option<u32>,
    window: Option<Window>,
    response: Option<ResponseKind>,
}

/// Baseline learning settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSettings {
    /// Hours of history before a baseline judges anything.
    pub learning_hours: u32,
    /// An hour's count is anomalous above `mean + factor × deviation`.
    pub rate_factor: f64,
    /// ... and at least this many events above the mean (so that a pump
    /// that normally sends 1 event an hour does not alert on 4).
    pub rate_min_excess: f64,
    /// EWMA smoothing of the hourly mean and deviation (0 < alpha ≤ 1).
    pub alpha: f64,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        BaselineSettings {
            learning_hours: 24,
            rate_factor: 4.0,
            rate_min_excess: 20.0,
            alpha: 0.1,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomRuleFile {
    id: String,
    title: String,
    #[serde(default = "default_custom_severity")]
    severity: Severity,
    #[serde(default = "yes")]
    enabled: bool,
    when: String,
    #[serde(default)]
    response: Option<ResponseKind>,
}

fn default_custom_severity() -> Severity {
    Severity::Medium
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    rules: BTreeMap<RuleId, RuleOverride>,
    #[serde(default)]
    baseline: Option<BaselineSettings>,
    #[serde(default)]
    custom: Vec<CustomRuleFile>,
}

/// The engine's whole configuration.
#[derive(Debug, Clone)]
pub struct DetectionConfig {
    rules: [RuleSettings; RuleId::ALL.len()],
    /// Baseline learning.
    pub baseline: BaselineSettings,
    /// Compiled custom rules.
    pub custom: Vec<CustomRule>,
    /// The automatic response of a rule (built-in or custom), by rule name;
    /// rules not listed raise alerts only.
    pub responses: BTreeMap<String, ResponseKind>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            rules: RuleId::ALL.map(|r| r.info().defaults),
            baseline: BaselineSettings::default(),
            custom: Vec::new(),
            responses: BTreeMap::new(),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// TOML syntax, an unknown table or key, or a value of the wrong type.
    #[error("line {line}, column {column}: {message}")]
    Toml {
        line: usize,
        column: usize,
        message: String,
    },
    /// A value out of bounds.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A custom rule's expression.
    #[error("custom rule {rule:?}, {field}: {error}")]
    Expression {
        rule: String,
        field: &'static str,
        error: expr::ParseError,
    },
}

impl DetectionConfig {
    /// Settings of one rule.
    pub fn rule(&self, id: RuleId) -> &RuleSettings {
        &self.rules[id as usize]
    }

    /// The automatic response configured for alerts of `rule`, if any.
    pub fn response_for(&self, rule: &str) -> Option<ResponseKind> {
        self.responses.get(rule).copied()
    }

    /// Changes one rule's settings (the UI's edit), checking bounds.
    pub fn set_rule(&mut self, id: RuleId, settings: RuleSettings) -> Result<(), ConfigError> {
        check_settings(id, &settings)?;
        self.rules[id as usize] = settings;
        Ok(())
    }

    /// Reads a TOML configuration over the shipped defaults.
    pub fn from_toml(text: &str) -> Result<DetectionConfig, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|sp| line_col(text, sp.start))
                .unwrap_or((0, 0));
            ConfigError::Toml {
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let mut cfg = DetectionConfig::default();
        for (id, o) in file.rules {
            let mut st = *cfg.rule(id);
            if let Some(v) = o.enabled {
                st.enabled = v;
            }
            if let Some(v) = o.severity {
                st.severity = v;
            }
            if let Some(v) = o.threshold {
                st.threshold = v;
            }
            if let Some(Window(v)) = o.window {
                st.window_s = v;
            }
            if let Some(r) = o.response {
                cfg.responses.insert(id.as_str().to_owned(), r);
            }
            cfg.set_rule(id, st)?;
        }
        if let Some(b) = file.baseline {
            check_baseline(&b)?;
            cfg.baseline = b;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in file.custom.into_iter().enumerate() {
            let path = format!("custom[{i}].id");
            if c.id.is_empty()
                || c.id.len() > 64
                || !c
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ConfigError::Invalid {
                    path,
                    message: format!("{:?} must be 1 to 64 of [a-z0-9_]", c.id),
                });
            }
            if RuleId::ALL.iter().any(|r| r.as_str() == c.id) || !seen.insert(c.id.clone()) {
                return Err(ConfigError::Invalid {
                    path,
                    message: format!("{:?} is already the name of another rule", c.id),
                });
            }
            let rule = CustomRule::compile(&c.id, &c.title, c.severity, c.enabled, &c.when)
                .map_err(|(field, error)| ConfigError::Expression {
                    rule: c.id.clone(),
                    field,
                    error,
                })?;
            if let Some(r) = c.response {
                cfg.responses.insert(c.id.clone(), r);
            }
            cfg.custom.push(rule);
        }
        Ok(cfg)
    }
}

fn check_settings(id: RuleId, st: &RuleSettings) -> Result<(), ConfigError> {
    let cap = crate::window::MAX_WINDOW_CAP as u32;
    if st.threshold == 0 || st.threshold > cap {
        return Err(ConfigError::Invalid {
            path: format!("rules.{id}.threshold"),
            message: format!("{} is outside 1 to {cap}", st.threshold),
        });
    }
    if st.window_s == 0 || st.window_s > MAX_WINDOW_S {
        return Err(ConfigError::Invalid {
            path: format!("rules.{id}.window"),
            message: format!("{} s is outside 1s to 7d", st.window_s),
        });
    }
    Ok(())
}

fn check_baseline(b: &BaselineSettings) -> Result<(), ConfigError> {
    let bad = |field: &str, message: String| ConfigError::Invalid {
        path: format!("baseline.{field}"),
        message,
    };
    if b.learning_hours == 0 || b.learning_hours > 24 * 90 {
        return Err(bad(
            "learning_hours",
            format!("{} is outside 1 to 2160", b.learning_hours),
        ));
    }
    if !(b.rate_factor.is_finite() && b.rate_factor > 0.0 && b.rate_factor <= 100.0) {
        return Err(bad(
            "rate_factor",
            format!("{} is outside (0, 100]", b.rate_factor),
        ));
    }
    if !(b.rate_min_excess.is_finite() && b.rate_min_excess >= 0.0 && b.rate_min_excess <= 1e6) {
        return Err(bad(
            "rate_min_excess",
            format!("{} is outside [0, 1000000]", b.rate_min_excess),
        ));
    }
    if !(b.alpha.is_finite() && b.alpha > 0.0 && b.alpha <= 1.0) {
        return Err(bad("alpha", format!("{} is outside (0, 1]", b.alpha)));
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The shipped defaults as a TOML file (documentation and a starting point).
pub fn default_toml() -> String {
    let mut out = String::from(
        "# Pumpward detection rules: shipped defaults. Delete what you do not change.\n",
    );
    for id in RuleId::ALL {
        let i = id.info();
        let d = i.defaults;
        out.push_str(&format!(
            "\n# {} ({})\n[rules.{}]\nenabled = {}\nseverity = \"{}\"\nthreshold = {}\nwindow = \"{}s\"\n",
            i.title,
            i.csf,
            id,
            d.enabled,
            d.severity.as_str(),
            d.threshold,
            d.window_s
        ));
    }
    let b = BaselineSettings::default();
    out.push_str(&format!(
        "\n[baseline]\nlearning_hours = {}\nrate_factor = {:?}\nrate_min_excess = {:?}\nalpha = {:?}\n",
        b.learning_hours, b.rate_factor, b.rate_min_excess, b.alpha
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_the_shipped_file() {
        let cfg = DetectionConfig::from_toml(&default_toml()).unwrap();
        for id in RuleId::ALL {
            assert_eq!(*cfg.rule(id), id.info().defaults, "{id}");
        }
    }

    #[test]
    fn overrides_apply_and_keep_other_defaults() {
        let cfg = DetectionConfig::from_toml(
            "[rules.hard_limit_burst_pump]\nthreshold = 3\nwindow = \"15m\"\n",
        )
        .unwrap();
        let st = cfg.rule(RuleId::HardLimitBurstPump);
        assert_eq!((st.threshold, st.window_s), (3, 900));
        assert_eq!(st.severity, Severity::High);
    }

    #[test]
    fn unknown_key_is_refused_with_its_position() {
        let err =
            DetectionConfig::from_toml("[rules.library_rejected]\nenabeld = false\n").unwrap_err();
        match err {
            ConfigError::Toml {
                line,
                column,
                message,
            } => {
                assert_eq!((line, column), (2, 1));
                assert!(message.contains("enabeld"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_rule_is_refused() {
        let err = DetectionConfig::from_toml("[rules.no_such_rule]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Toml { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn bad_window_and_threshold_are_refused() {
        let err =
            DetectionConfig::from_toml("[rules.auth_failure_burst]\nwindow = \"5 minutes\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err =
            DetectionConfig::from_toml("[rules.auth_failure_burst]\nthreshold = 0\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Invalid {
                path: "rules.auth_failure_burst.threshold".into(),
                message: "0 is outside 1 to 10000".into()
            }
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("8d").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn every_rule_has_a_real_csf_category() {
        // The CSF 2.0 subcategories the catalogue may use.
        const CSF: &[&str] = &[
            "DE.CM-01", "DE.CM-03", "DE.CM-06", "DE.CM-09", "DE.AE-02", "DE.AE-03", "DE.AE-07",
            "ID.RA-01",
        ];
        for id in RuleId::ALL {
            assert!(CSF.contains(&id.info().csf), "{id}");
        }
    }

    #[test]
    fn responses_are_set_per_rule_and_checked() {
        let cfg = DetectionConfig::from_toml(
            "[rules.certificate_concurrent_use]\nresponse = \"quarantine\"\n\n\
             [[custom]]\nid = \"storm\"\ntitle = \"Storm\"\n\
             when = 'kind == \"auth_failure\" with count(by asset within 5m) >= 5'\n\
             response = \"quarantine\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.response_for("certificate_concurrent_use"),
            Some(ResponseKind::Quarantine)
        );
        assert_eq!(cfg.response_for("storm"), Some(ResponseKind::Quarantine));
        assert_eq!(cfg.response_for("auth_failure_burst"), None);
        assert_eq!(DetectionConfig::default().responses.len(), 0);
        // An unknown response is refused with its position.
        let e = DetectionConfig::from_toml("[rules.pump_to_internet]\nresponse = \"shutdown\"\n")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Toml { line: 2, .. }), "{e}");
    }
}
