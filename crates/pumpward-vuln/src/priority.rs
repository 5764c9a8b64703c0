//! The published priority of a vulnerability finding: one score a hospital
//! can defend, with every factor that went into it.
//!
//! The formula is in `docs/vulnerability-priority.md`; this module is its
//! only implementation, and a test recomputes that document's worked
//! examples, so the two cannot drift apart.
//!
//! Arithmetic is in integer *tenths of a point* on a 0–100 scale (so 742
//! is shown as 74.2): no floating point after the inputs are read, the
//! same inputs always give the same score on every machine. The score is
//! the sum of the factors' contributions, clamped to 0–100, and it is
//! monotone in every risk factor: a higher CVSS score, a KEV listing, a
//! higher EPSS probability, a more critical device or care area, more
//! exposure never lower it; one more compensating control never raises it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The highest score, in tenths: 100.0.
pub const MAX_SCORE: u16 = 1000;

/// Points in tenths per CVSS base point (base 10.0 gives 40.0).
const CVSS_WEIGHT: i32 = 4;
/// The base score assumed when no document gives one: the middle of the
/// CVSS scale, so an unscored vulnerability is neither buried nor inflated.
const CVSS_ASSUMED_TENTHS: u8 = 50;
/// A CVE in CISA's Known Exploited Vulnerabilities catalog: 20.0.
const KEV_POINTS: i32 = 200;
/// EPSS probability 1.0 gives 15.0.
const EPSS_MAX_POINTS: i32 = 150;
/// Compensating controls together take off at most 25.0: they reduce the
/// urgency of a finding but never erase a known exploited vulnerability.
const CONTROLS_CAP: i32 = 250;

/// A CVSS version, newest last (the order is the preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum CvssVersion {
    /// CVSS v2.
    V2,
    /// CVSS v3.0.
    V3_0,
    /// CVSS v3.1.
    V3_1,
    /// CVSS v4.0.
    V4,
}

impl CvssVersion {
    /// Reads the version as documents write it ("2.0", "3.0", "3.1", "4.0",
    /// with or without a leading "v"/"cvss"); anything else is `None`.
    pub fn parse(s: &str) -> Option<CvssVersion> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("cvss").unwrap_or(&s);
        let s = s.trim_start_matches(['v', ':', '_', ' ']);
        match s {
            "2" | "2.0" => Some(CvssVersion::V2),
            "3" | "3.0" => Some(CvssVersion::V3_0),
            "3.1" => Some(CvssVersion::V3_1),
            "4" | "4.0" => Some(CvssVersion::V4),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CvssVersion::V2 => "2.0",
            CvssVersion::V3_0 => "3.0",
            CvssVersion::V3_1 => "3.1",
            CvssVersion::V4 => "4.0",
        }
    }
}

/// A CVSS base score, in tenths (0–100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cvss {
    /// Which CVSS version scored it.
    pub version: CvssVersion,
    /// Base score × 10, 0–100.
    pub base_tenths: u8,
}

impl Cvss {
    /// Picks the score of the newest CVSS version among `(version, base
    /// score)` pairs (v4.0 > v3.1 > v3.0 > v2.0: the newest is the one the
    /// publisher maintains); among equal versions, the highest score.
    /// Unknown versions and scores outside 0–10 are ignored.
    pub fn newest<'a>(scores: impl IntoIterator<Item = (&'a str, f64)>) -> Option<Cvss> {
        scores
            .into_iter()
            .filter_map(|(v, s)| {
                let version = CvssVersion::parse(v)?;
                if !(0.0..=10.0).contains(&s) {
                    return None;
                }
                // CVSS scores have one decimal; rounding removes the binary
                // representation error (6.5 may be stored as 6.4999…).
                Some(Cvss {
                    version,
                    base_tenths: (s * 10.0).round() as u8,
                })
            })
            .max_by_key(|c| (c.version, c.base_tenths))
    }
}

/// An EPSS probability in basis points (1/10000), 0–10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Epss(u16);

impl Epss {
    /// From basis points, clamped to 10000.
    pub fn from_basis_points(bp: u16) -> Epss {
        Epss(bp.min(10_000))
    }

    /// From FIRST's probability (0–1); `None` when it is not a number in
    /// that range.
    pub fn from_probability(p: f64) -> Option<Epss> {
        (0.0..=1.0)
            .contains(&p)
            .then(|| Epss((p * 10_000.0).round() as u16))
    }

    /// Basis points.
    pub fn basis_points(self) -> u16 {
        self.0
    }
}

/// The clinical type of the device, ranked by the harm a compromised
/// device can do (SP 1800-8: over- or under-infusion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// Not an infusion device (a pump server, a gateway).
    Infrastructure,
    /// Enteral feeding pump.
    Enteral,
    /// Large-volume pump.
    LargeVolume,
    /// Type not recorded: ranked above the common large-volume pump, so a
    /// missing inventory field does not lower a finding.
    Unknown,
    /// Syringe pump (small volumes of potent drugs).
    Syringe,
    /// Patient-controlled analgesia (opioids).
    Pca,
    /// Insulin pump.
    Insulin,
}

impl DeviceClass {
    /// From the inventory's device type (`pca`, `insulin`, `syringe`, `lvp`,
    /// `enteral`, `other`) and whether the asset is a pump at all.
    pub fn from_inventory(device_type: Option<&str>, is_pump: bool) -> DeviceClass {
        if !is_pump {
            return DeviceClass::Infrastructure;
        }
        match device_type {
            Some("pca") => DeviceClass::Pca,
            Some("insulin") => DeviceClass::Insulin,
            Some("syringe") => DeviceClass::Syringe,
            Some("lvp") => DeviceClass::LargeVolume,
            Some("enteral") => DeviceClass::Enteral,
            _ => DeviceClass::Unknown,
        }
    }

    fn points(self) -> i32 {
        match self {
            DeviceClass::Infrastructure => 40,
            DeviceClass::Enteral => 40,
            DeviceClass::LargeVolume => 60,
            DeviceClass::Unknown => 80,
            DeviceClass::Syringe => 80,
            DeviceClass::Pca => 120,
            DeviceClass::Insulin => 120,
        }
    }

    fn label(self) -> &'static str {
        match self {
            DeviceClass::Infrastructure => "pump infrastructure (server or gateway)",
            DeviceClass::Enteral => "enteral pump",
            DeviceClass::LargeVolume => "large-volume pump",
            DeviceClass::Unknown => "pump of unrecorded type",
            DeviceClass::Syringe => "syringe pump",
            DeviceClass::Pca => "PCA pump",
            DeviceClass::Insulin => "insulin pump",
        }
    }
}

/// The care area, ranked by patient fragility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CareAcuity {
    /// Not at a bedside (biomed workshop, storage, a server room).
    NotClinical,
    /// General ward (med-surg, oncology, …).
    General,
    /// Care area not recorded, or not recognised.
    Unknown,
    /// Emergency department, labour and delivery.
    Emergency,
    /// Adult intensive care, operating rooms, anaesthesia.
    Intensive,
    /// Paediatrics and paediatric ICU.
    Pediatric,
    /// Neonatal ICU.
    Neonatal,
}

impl CareAcuity {
    /// Classifies the inventory's free-text care area by its words
    /// ("NICU", "Adult ICU", "Anesthesia / OR", …). Whole words only, so
    /// "Oncology" is not an "OR".
    pub fn from_care_area(care_area: Option<&str>) -> CareAcuity {
        let Some(text) = care_area.map(str::trim).filter(|t| !t.is_empty()) else {
            return CareAcuity::Unknown;
        };
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
        if has(&["nicu", "neonatal", "neonatology", "newborn"]) {
            CareAcuity::Neonatal
        } else if has(&[
            "picu",
            "pediatric",
            "pediatrics",
            "paediatric",
            "paediatrics",
        ]) {
            CareAcuity::Pediatric
        } else if has(&[
            "icu",
            "intensive",
            "critical",
            "or",
            "anesthesia",
            "anaesthesia",
            "surgery",
            "operating",
            "ccu",
        ]) {
            CareAcuity::Intensive
        } else if has(&["emergency", "ed", "er", "labor", "labour", "delivery"]) {
            CareAcuity::Emergency
        } else if has(&["biomed", "biomedical", "storage", "workshop", "depot"]) {
            CareAcuity::NotClinical
        } else if has(&["med", "surg", "ward", "oncology", "medical", "general"]) {
            CareAcuity::General
        } else {
            CareAcuity::Unknown
        }
    }

    fn label(self) -> &'static str {
        match self {
            CareAcuity::NotClinical => "not at a bedside",
            CareAcuity::General => "general ward",
            CareAcuity::Unknown => "care area not recorded or not recognised",
            CareAcuity::Emergency => "emergency or labour and delivery",
            CareAcuity::Intensive => "intensive care or operating room",
            CareAcuity::Pediatric => "paediatrics",
            CareAcuity::Neonatal => "neonatal ICU",
        }
    }

    fn points(self) -> i32 {
        match self {
            CareAcuity::NotClinical => 0,
            CareAcuity::General => 20,
            CareAcuity::Unknown => 30,
            CareAcuity::Emergency => 40,
            CareAcuity::Intensive => 50,
            CareAcuity::Pediatric => 60,
            CareAcuity::Neonatal => 80,
        }
    }
}

/// How the vendor reaches the model for service, ranked by exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteAccess {
    /// None, or on site only.
    None,
    /// Not recorded.
    Unknown,
    /// Through the hospital's VPN.
    Vpn,
    /// A vendor cloud or a modem: a path the hospital does not control.
    Direct,
}

impl RemoteAccess {
    /// From the device model's remote service method (`none`,
    /// `on_site_only`, `vpn`, `vendor_cloud`, `modem`, `unknown`).
    pub fn from_inventory(method: Option<&str>) -> RemoteAccess {
        match method {
            Some("none" | "on_site_only") => RemoteAccess::None,
            Some("vpn") => RemoteAccess::Vpn,
            Some("vendor_cloud" | "modem") => RemoteAccess::Direct,
            _ => RemoteAccess::Unknown,
        }
    }

    fn label(self) -> &'static str {
        match self {
            RemoteAccess::None => "no vendor remote service",
            RemoteAccess::Unknown => "vendor remote service not recorded",
            RemoteAccess::Vpn => "vendor remote service through the hospital VPN",
            RemoteAccess::Direct => "vendor remote service by cloud or modem",
        }
    }

    fn points(self) -> i32 {
        match self {
            RemoteAccess::None => 0,
            RemoteAccess::Unknown => 20,
            RemoteAccess::Vpn => 30,
            RemoteAccess::Direct => 50,
        }
    }
}

/// Where the asset sits on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// No network zone recorded: it may sit on a flat network.
    pub zone_unrecorded: bool,
    /// It has an address on the network (reachable at all).
    pub network_reachable: bool,
    /// It connects over Wi-Fi.
    pub wireless: bool,
    /// The model's remote service path.
    pub remote_access: RemoteAccess,
}

/// A compensating control recorded on the asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Only its pump server may reach it (an enforced ACL / conduit).
    NetworkIsolated,
    /// Its radio is switched off; it runs standalone.
    WirelessDisabled,
    /// The vendor's remote service path is closed.
    VendorAccessDisabled,
    /// Its traffic is watched by the network sensors with alerting.
    Monitored,
    /// Its service ports and local interface are physically secured.
    PhysicalAccessRestricted,
}

impl Control {
    /// Every control, in display order.
    pub const ALL: [Control; 5] = [
        Control::NetworkIsolated,
        Control::WirelessDisabled,
        Control::VendorAccessDisabled,
        Control::Monitored,
        Control::PhysicalAccessRestricted,
    ];

    /// Its name as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Control::NetworkIsolated => "network_isolated",
            Control::WirelessDisabled => "wireless_disabled",
            Control::VendorAccessDisabled => "vendor_access_disabled",
            Control::Monitored => "monitored",
            Control::PhysicalAccessRestricted => "physical_access_restricted",
        }
    }

    /// From its name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Control> {
        Control::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    fn points(self) -> i32 {
        match self {
            Control::NetworkIsolated => 100,
            Control::WirelessDisabled => 60,
            Control::VendorAccessDisabled => 50,
            Control::Monitored => 40,
            Control::PhysicalAccessRestricted => 30,
        }
    }
}

/// Everything the priority of one finding depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityInput {
    /// The newest CVSS base score ([`Cvss::newest`]), if any is published.
    pub cvss: Option<Cvss>,
    /// Listed in CISA's KEV catalog.
    pub kev: bool,
    /// FIRST's EPSS probability, if known.
    pub epss: Option<Epss>,
    /// What kind of device.
    pub device: DeviceClass,
    /// Where it is used.
    pub care: CareAcuity,
    /// How exposed it is.
    pub exposure: Exposure,
    /// Compensating controls recorded on the asset.
    pub controls: BTreeSet<Control>,
}

/// The band a score falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// Below 30.0.
    Low,
    /// 30.0 to 49.9.
    Medium,
    /// 50.0 to 69.9.
    High,
    /// 70.0 and above.
    Critical,
}

impl Band {
    /// From a score in tenths.
    pub fn of(score: u16) -> Band {
        match score {
            700.. => Band::Critical,
            500.. => Band::High,
            300.. => Band::Medium,
            _ => Band::Low,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
            Band::Critical => "critical",
        }
    }
}

/// One factor of a priority: what it is, what was seen, what it added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Factor {
    /// `cvss`, `kev`, `epss`, `device_type`, `care_area`, `zone`,
    /// `network`, `wireless`, `remote_service`, `control`.
    pub factor: &'static str,
    /// What was seen, in words.
    pub input: String,
    /// Contribution in tenths of a point (negative for controls).
    pub points: i32,
}

/// A finding's priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Priority {
    /// 0–1000, tenths of a point.
    pub score: u16,
    /// The band of the score.
    pub band: Band,
    /// Every factor, in the order of the formula, including those that
    /// added nothing (so a reader sees what was considered).
    pub factors: Vec<Factor>,
}

/// Tenths as "74.2" (and "-10.0").
pub fn tenths(t: i32) -> String {
    let sign = if t < 0 { "-" } else { "" };
    format!("{sign}{}.{}", t.unsigned_abs() / 10, t.unsigned_abs() % 10)
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            tenths(i32::from(self.score)),
            self.band.as_str()
        )
    }
}

/// Computes the priority (see the module docs and
/// `docs/vulnerability-priority.md`).
pub fn priority(input: &PriorityInput) -> Priority {
    let mut factors = Vec::new();
    let mut add = |factor: &'static str, input: String, points: i32| {
        factors.push(Factor {
            factor,
            input,
            points,
        })
    };
    match input.cvss {
        Some(c) => add(
            "cvss",
            format!(
                "CVSS v{} base {}",
                c.version.as_str(),
                tenths(i32::from(c.base_tenths))
            ),
            i32::from(c.base_tenths.min(100)) * CVSS_WEIGHT,
        ),
        None => add(
            "cvss",
            format!(
                "no CVSS score published: assumed {}",
                tenths(i32::from(CVSS_ASSUMED_TENTHS))
            ),
            i32::from(CVSS_ASSUMED_TENTHS) * CVSS_WEIGHT,
        ),
    }
    add(
        "kev",
        if input.kev {
            "in CISA's Known Exploited Vulnerabilities catalog".into()
        } else {
            "not in the KEV catalog".into()
        },
        if input.kev { KEV_POINTS } else { 0 },
    );
    match input.epss {
        Some(e) => add(
            "epss",
            format!("EPSS probability {}.{:02}%", e.0 / 100, e.0 % 100),
            i32::from(e.0) * EPSS_MAX_POINTS / 10_000,
        ),
        None => add("epss", "no EPSS score known".into(), 0),
    }
    add(
        "device_type",
        input.device.label().into(),
        input.device.points(),
    );
    add("care_area", input.care.label().into(), input.care.points());
    let x = input.exposure;
    add(
        "zone",
        if x.zone_unrecorded {
            "no network zone recorded (may be on a flat network)".into()
        } else {
            "in a Pumpward network zone (default deny)".into()
        },
        if x.zone_unrecorded { 60 } else { 0 },
    );
    add(
        "network",
        if x.network_reachable {
            "has a network address".into()
        } else {
            "no network address recorded".into()
        },
        if x.network_reachable { 40 } else { 0 },
    );
    add(
        "wireless",
        if x.wireless {
            "connects over Wi-Fi"
        } else {
            "not wireless"
        }
        .into(),
        if x.wireless { 30 } else { 0 },
    );
    add(
        "remote_service",
        x.remote_access.label().into(),
        x.remote_access.points(),
    );
    let mut taken = 0;
    for c in &input.controls {
        // Past the cap a control still shows, with what it could still take.
        let points = c.points().min(CONTROLS_CAP - taken);
        taken += points;
        add(
            "control",
            format!("compensating control: {}", c.as_str()),
            -points,
        );
    }
    let sum: i32 = factors.iter().map(|f| f.points).sum();
    let score = sum.clamp(0, i32::from(MAX_SCORE)) as u16;
    Priority {
        score,
        band: Band::of(score),
        factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> PriorityInput {
        PriorityInput {
            cvss: Some(Cvss {
                version: CvssVersion::V3_1,
                base_tenths: 65,
            }),
            kev: false,
            epss: None,
            device: DeviceClass::LargeVolume,
            care: CareAcuity::General,
            exposure: Exposure {
                zone_unrecorded: false,
                network_reachable: true,
                wireless: true,
                remote_access: RemoteAccess::Unknown,
            },
            controls: BTreeSet::new(),
        }
    }

    #[test]
    fn newest_cvss_version_wins_over_a_higher_older_score() {
        let c = Cvss::newest([("2.0", 10.0), ("3.1", 6.5), ("3.0", 7.0)]).unwrap();
        assert_eq!((c.version, c.base_tenths), (CvssVersion::V3_1, 65));
        let c = Cvss::newest([("3.1", 9.8), ("4.0", 8.7)]).unwrap();
        assert_eq!((c.version, c.base_tenths), (CvssVersion::V4, 87));
        assert_eq!(Cvss::newest([("5.0", 9.0), ("3.1", 11.0)]), None);
    }

    #[test]
    fn care_areas_are_read_by_whole_words() {
        assert_eq!(
            CareAcuity::from_care_area(Some("NICU")),
            CareAcuity::Neonatal
        );
        assert_eq!(
            CareAcuity::from_care_area(Some("Anesthesia / OR")),
            CareAcuity::Intensive
        );
        assert_eq!(
            CareAcuity::from_care_area(Some("Oncology")),
            CareAcuity::General
        );
        assert_eq!(
            CareAcuity::from_care_area(Some("Labor & Delivery")),
            CareAcuity::Emergency
        );
        assert_eq!(
            CareAcuity::from_care_area(Some("Pediatrics")),
            CareAcuity::Pediatric
        );
        assert_eq!(
            CareAcuity::from_care_area(Some("Adult ICU")),
            CareAcuity::Intensive
        );
        assert_eq!(
            CareAcuity::from_care_area(Some("Hospice")),
            CareAcuity::Unknown
        );
        assert_eq!(CareAcuity::from_care_area(None), CareAcuity::Unknown);
    }

    #[test]
    fn controls_are_capped_and_shown() {
        let mut i = base();
        i.controls = Control::ALL.into_iter().collect();
        let p = priority(&i);
        let taken: i32 = p
            .factors
            .iter()
            .filter(|f| f.factor == "control")
            .map(|f| f.points)
            .sum();
        assert_eq!(taken, -CONTROLS_CAP);
        assert_eq!(
            p.factors.iter().filter(|f| f.factor == "control").count(),
            5
        );
    }

    #[test]
    fn display_and_bands() {
        assert_eq!(tenths(742), "74.2");
        assert_eq!(tenths(-100), "-10.0");
        assert_eq!(Band::of(700), Band::Critical);
        assert_eq!(Band::of(699), Band::High);
        assert_eq!(Band::of(300), Band::Medium);
        assert_eq!(Band::of(299), Band::Low);
    }

    fn device() -> impl Strategy<Value = DeviceClass> {
        prop_oneof![
            Just(DeviceClass::Infrastructure),
            Just(DeviceClass::Enteral),
            Just(DeviceClass::LargeVolume),
            Just(DeviceClass::Unknown),
            Just(DeviceClass::Syringe),
            Just(DeviceClass::Pca),
            Just(DeviceClass::Insulin),
        ]
    }
    fn care() -> impl Strategy<Value = CareAcuity> {
        prop_oneof![
            Just(CareAcuity::NotClinical),
            Just(CareAcuity::General),
            Just(CareAcuity::Unknown),
            Just(CareAcuity::Emergency),
            Just(CareAcuity::Intensive),
            Just(CareAcuity::Pediatric),
            Just(CareAcuity::Neonatal),
        ]
    }
    fn remote() -> impl Strategy<Value = RemoteAccess> {
        prop_oneof![
            Just(RemoteAccess::None),
            Just(RemoteAccess::Unknown),
            Just(RemoteAccess::Vpn),
            Just(RemoteAccess::Direct),
        ]
    }
    prop_compose! {
        fn input()(
            cvss in proptest::option::of((0u8..4, 0u8..=100)),
            kev in any::<bool>(),
            epss in proptest::option::of(0u16..=10_000),
            device in device(), care in care(),
            zone in any::<bool>(), net in any::<bool>(), wifi in any::<bool>(), remote in remote(),
            controls in proptest::collection::btree_set(0usize..5, 0..5),
        ) -> PriorityInput {
            let version = [CvssVersion::V2, CvssVersion::V3_0, CvssVersion::V3_1, CvssVersion::V4];
            PriorityInput {
                cvss: cvss.map(|(v, t)| Cvss { version: version[usize::from(v)], base_tenths: t }),
                kev, epss: epss.map(Epss::from_basis_points), device, care,
                exposure: Exposure { zone_unrecorded: zone, network_reachable: net, wireless: wifi, remote_access: remote },
                controls: controls.into_iter().map(|i| Control::ALL[i]).collect(),
            }
        }
    }

    proptest! {
        #[test]
        fn bounded_and_explained(i in input()) {
            let p = priority(&i);
            prop_assert!(p.score <= MAX_SCORE);
            prop_assert_eq!(p.band, Band::of(p.score));
            let sum: i32 = p.factors.iter().map(|f| f.points).sum();
            prop_assert_eq!(i32::from(p.score), sum.clamp(0, 1000));
        }

        #[test]
        fn monotone_in_every_risk_factor(i in input(), d in device(), c in care(), r in remote(), t in 0u8..=100, e in 0u16..=10_000, k in 0usize..5) {
            let s = |i: &PriorityInput| priority(i).score;
            let before = s(&i);
            let mut j = i.clone();
            if let Some(cv) = j.cvss.as_mut() { cv.base_tenths = cv.base_tenths.max(t); }
            prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.kev = true; prop_assert!(s(&j) >= before);
            let mut j = i.clone();
            j.epss = Some(Epss::from_basis_points(i.epss.map_or(e, |x| x.basis_points().max(e))));
            prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.device = i.device.max(d); prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.care = i.care.max(c); prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.exposure.remote_access = i.exposure.remote_access.max(r); prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.exposure.zone_unrecorded = true; prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.exposure.network_reachable = true; prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.exposure.wireless = true; prop_assert!(s(&j) >= before);
            let mut j = i.clone(); j.controls.insert(Control::ALL[k]); prop_assert!(s(&j) <= before);
        }

        #[test]
        fn epss_from_probability_is_total(p in any::<f64>()) {
            if let Some(e) = Epss::from_probability(p) { prop_assert!(e.basis_points() <= 10_000); }
        }
    }

    #[test]
    fn the_example_base_adds_up() {
        // 26.0 + 0 + 0 + 6.0 + 2.0 + 0 + 4.0 + 3.0 + 2.0 = 43.0
        let p = priority(&base());
        assert_eq!(p.score, 430);
        assert_eq!(p.band, Band::Medium);
    }
}
