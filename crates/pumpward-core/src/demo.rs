//! A sample hospital for `pumpward demo`.
//!
//! **Synthetic sample data for demonstration. This is not a real hospital, and no
//! asset in it is a real device.** It exists so that a biomedical engineer, a
//! pharmacist or a security analyst opening the UI of a fresh installation sees a
//! fleet that looks like theirs: several hundred pumps from six manufacturers in
//! eight care areas, a few pump servers, docking-station gateways and biomed
//! workstations, in every lifecycle state.
//!
//! What is real and what is made up:
//!
//! - **Manufacturer and model names are real**, spelled as the vendors write them today
//!   (Hospira's infusion business is ICU Medical's since 2017, so Plum and LifeCare
//!   pumps are listed under "ICU Medical").
//! - **Most firmware and component versions are real**, taken from CISA advisories so
//!   that vulnerability matching has something to find, and mixed with versions
//!   outside the affected ranges. The tables below name the source of each; versions
//!   marked *illustrative* are plausible values that no advisory or manual in
//!   reach confirmed.
//! - **Everything that identifies a unit is synthetic**: serial numbers (plausible
//!   per-vendor shapes, not the vendors' real numbering), UDIs (GS1 restricted-
//!   circulation GTINs, see [`gs1_check_digit`]), MAC addresses (locally
//!   administered, see `Builder::mac`), IP addresses, host names (under the
//!   reserved `.example` domain), locations and notes.
//! - **Capabilities** ([`Capabilities`]) are `unknown` except where the answer is
//!   obvious (a desktop PC has USB ports): the sample hospital has no MDS2 forms on
//!   file, which is itself what the UI should show as a gap.
//! - **End-of-support dates** are the sample hospital's planning dates, not dates
//!   the vendors announced.
//! - **Vendor support contacts** are generic ("BD Technical Support"); no phone
//!   number or address is given.
//!
//! Sources of versions (advisory text as in `shared/data/csaf/*.json`, or for
//! advisories not among those files, the ICS Advisory Project extract and NVD CPE
//! records in `shared/data/ics-advisory-project/` and `shared/data/cve/`):
//!
//! | product | versions used | source |
//! |---|---|---|
//! | BD Alaris 8015 PC Unit | 9.7, 9.13, 9.19, 9.33, 9.33.1, 12.1, 12.1.2, 12.1.3 | ICSMA-17-017-02 (≤9.5, 9.7, ≤9.33; <9.19 end of life), ICSMA-20-170-06 (9.13/9.19/9.33/12.1 with Laird WB40N, Linux 4.4.97), ICSMA-20-317-01 (≤9.33.1), ICSMA-23-194-01 (≤12.1.3) |
//! | BD Alaris Systems Manager, Guardrails Editor, CQI Reporter, Calculation Services | 12.1.2, 12.1.2, 10.17, 1.0 | ICSMA-20-317-01 (SM 12.1.2 fixes CVE-2020-25165), ICSMA-23-194-01 (SM ≤12.3, Editor ≤12.1.2, CQI ≤10.17, Calculation Services ≤1.0) |
//! | Baxter Sigma Spectrum 35700BAX / 35700BAX2 / Spectrum IQ 35700BAX3 | 6.05 / 8.0 / 9.0 (minor illustrative) | ICSA-15-181-01 (6.05 with WBM 16), NVD CPE (`8.0`), ICSMA-22-251-01 (v9.x) |
//! | Baxter Wireless Battery Module | v13 … v22D28 | ICSMA-20-170-04 Update B, ICSMA-22-251-01 (all listed versions are affected; no fixed WBM version is named) |
//! | B. Braun Infusomat Space / Perfusor Space | 586U / 588U | B. Braun US instructions for use ("valid for software") |
//! | B. Braun Battery Pack SP with Wi-Fi | 028U000061, 028U000093, 054U000091, 054U000092, 054U000093 | ICSMA-21-294-01 (≤028U000061), ICSMA-20-296-02 Update A (fixes 028U00093 / 054U00093, printed with one digit fewer), ICSMA-23-103-01 (054U000091/092) |
//! | B. Braun SpaceStation with SpaceCom 2 | 012U000040, 012U000061, 012U000093 | ICSMA-17-082-02 (<012U000040), ICSMA-21-294-01 (≤012U000061), ICSMA-20-296-02 (fix 012U000093) |
//! | B. Braun OnlineSuite | AP 3.0 | ICSMA-20-296-01 (AP 3.0 and earlier) |
//! | ICU Medical Plum A+ / Plum A+3 | 13.4, 13.40 / 13.6 | ICSA-15-161-01 (≤13.4, ≤13.6; hard-coded accounts), ICSA-15-337-02 (13.40) |
//! | ICU Medical Plum 360 | 15.11 | ICU Medical training guide "SW 15.11 and higher"; no advisory in the data |
//! | ICU Medical LifeCare PCA | 5.0, 5.07 (+ Communication Engine 1.0), 7.0 | ICSA-15-125-01B (≤5.0, hard-coded password; 7.0 fixes), ICSA-15-337-02 (5.07 with CE 1.0) |
//! | ICU Medical MedNet | 5.8, 6.1 | ICSA-15-090-03 (≤5.8 with hard-coded passwords; 6.1 fixes) |
//! | Smiths Medical Medfusion 4000 | 1.1, 1.5.0, 1.5.1, 1.6.0, 1.6.1, 1.7.0 | ICSMA-17-250-02A (1.1, 1.5, 1.6 with hard-coded credentials; 1.6.1 fixes), Smiths Medical 2020 recall notice (1.5.0–1.7.0) |
//! | Smiths Medical CADD-Solis | 5.2, 5.4 (illustrative) | none |
//! | Smiths Medical CADD-Solis Medication Safety Software | 3.1 | ICSMA-16-306-01 (1.0–3.1; 3.2 fixes in the US) |
//! | Fresenius Kabi Agilia VP / SP | 4.1 (illustrative) with Agilia Connect WiFi module D23 (illustrative) / D25 | ICSMA-21-355-01 (WiFi module vD25 and prior) |
//! | Fresenius Kabi Link+ Agilia, Vigilant Centerium, Agilia Partner | 3.0 D15, 1.0, 3.3.0 | ICSMA-21-355-01 |
//! | Baxter Care Everywhere | 2.0 (illustrative) | none |

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use time::macros::date;
use time::Date;

use crate::inventory::{
    Answer, AssetKind, AssetSpec, Capabilities, CredentialState, DeviceModel, DeviceType,
    LifecycleState, SoftwareComponent,
};

/// The seed `pumpward demo` uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 18_008;

/// The sample hospital's name; plainly fictional.
pub const HOSPITAL_NAME: &str = "Pumpward Demo General Hospital (sample data)";

/// DNS domain of every sample host name (`.example` is reserved by RFC 2606).
pub const DOMAIN: &str = "demo-hospital.example";

/// The care areas, in the order their subnets are numbered.
pub const CARE_AREAS: [&str; 8] = [
    "Adult ICU",
    "Med-Surg",
    "Oncology",
    "Pediatrics",
    "NICU",
    "Emergency Department",
    "Anesthesia / OR",
    "Labor & Delivery",
];

/// Network zone of pumps and their docking-station gateways.
pub const ZONE_PUMPS: &str = "infusion-pump";
/// Network zone of the vendors' pump servers.
pub const ZONE_SERVERS: &str = "pump-server";
/// Network zone of the biomedical engineering workstations.
pub const ZONE_BIOMED: &str = "biomed";

const OWNER: &str = "Clinical Engineering";
const BIOMED_WORKSHOP: &str = "Biomed workshop, Building C, Basement";
const BIOMED_STORAGE: &str = "Biomed storage, Building C, Basement";

/// One asset of the sample hospital with the state the store keeps beside its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampleAsset {
    pub spec: AssetSpec,
    pub lifecycle_state: LifecycleState,
    /// How long before "now" the asset was last heard from; `None` if it never
    /// connected. The loader turns it into a time with its own clock.
    pub last_seen_secs_ago: Option<u32>,
}

/// One IPv4 subnet of the sample hospital's address plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampleSubnet {
    pub name: String,
    pub zone: String,
    pub care_area: Option<String>,
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl SampleSubnet {
    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        };
        u32::from(ip) & mask == u32::from(self.network) & mask
    }
}

/// The whole sample: care areas, the device-model catalogue, the assets and the
/// address plan they were numbered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampleHospital {
    pub name: String,
    pub care_areas: Vec<String>,
    /// One entry per (manufacturer, model) that some asset uses.
    pub models: Vec<DeviceModel>,
    pub assets: Vec<SampleAsset>,
    pub subnets: Vec<SampleSubnet>,
}

impl SampleHospital {
    /// The assets that are infusion pumps.
    pub fn pumps(&self) -> impl Iterator<Item = &SampleAsset> {
        self.assets
            .iter()
            .filter(|a| a.spec.kind == AssetKind::Pump)
    }
}

/// Builds the sample hospital. The same seed always gives the same hospital; a
/// different seed gives different serials, addresses, versions and placements
/// (the numbers of pumps per model, area and state stay the same).
pub fn sample_hospital(seed: u64) -> SampleHospital {
    let mut b = Builder::new(seed);
    b.pumps();
    b.gateways();
    b.servers();
    b.workstations();
    b.finish()
}

// ---------------------------------------------------------------------------
// Deterministic randomness

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, and the same on every
/// platform, which is all sample data needs. Not for anything secret.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is far below what matters here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut r = self.below(total);
        for &(v, w) in items {
            if r < u64::from(w) {
                return v;
            }
            r -= u64::from(w);
        }
        items[items.len() - 1].0
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------
// Vendors and models

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Bd,
    Baxter,
    BBraun,
    IcuMedical,
    Smiths,
    Fresenius,
    Dell,
}

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::Bd => "BD",
            Vendor::Baxter => "Baxter",
            Vendor::BBraun => "B. Braun",
            Vendor::IcuMedical => "ICU Medical",
            Vendor::Smiths => "Smiths Medical",
            Vendor::Fresenius => "Fresenius Kabi",
            Vendor::Dell => "Dell",
        }
    }

    fn support(self) -> &'static str {
        match self {
            Vendor::Bd => "BD Technical Support",
            Vendor::Baxter => "Baxter Technical Support",
            Vendor::BBraun => "B. Braun Technical Support",
            Vendor::IcuMedical => "ICU Medical Technical Support",
            Vendor::Smiths => "Smiths Medical Technical Support",
            Vendor::Fresenius => "Fresenius Kabi Technical Support",
            Vendor::Dell => "Dell Technical Support",
        }
    }

    /// Second octet of the vendor's synthetic MAC addresses, so a listing sorted by
    /// MAC groups by vendor the way real OUIs do.
    fn mac_octet(self) -> u8 {
        0x10 + self as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Model {
    AlarisPcu,
    SigmaSpectrum,
    SigmaSpectrum8,
    SpectrumIq,
    InfusomatSpace,
    PerfusorSpace,
    Plum360,
    PlumAPlus,
    PlumAPlus3,
    LifeCarePca,
    Medfusion4000,
    CaddSolis,
    AgiliaVp,
    AgiliaSp,
    SpaceStation,
    LinkPlusAgilia,
    AlarisSystemsManager,
    MedNet,
    OnlineSuite,
    CareEverywhere,
    CaddSolisMss,
    VigilantCenterium,
    OptiPlex,
}

impl Model {
    fn vendor(self) -> Vendor {
        use Model::*;
        match self {
            AlarisPcu | AlarisSystemsManager => Vendor::Bd,
            SigmaSpectrum | SigmaSpectrum8 | SpectrumIq | CareEverywhere => Vendor::Baxter,
            InfusomatSpace | PerfusorSpace | SpaceStation | OnlineSuite => Vendor::BBraun,
            Plum360 | PlumAPlus | PlumAPlus3 | LifeCarePca | MedNet => Vendor::IcuMedical,
            Medfusion4000 | CaddSolis | CaddSolisMss => Vendor::Smiths,
            AgiliaVp | AgiliaSp | LinkPlusAgilia | VigilantCenterium => Vendor::Fresenius,
            OptiPlex => Vendor::Dell,
        }
    }

    fn name(self) -> &'static str {
        use Model::*;
        match self {
            AlarisPcu => "Alaris 8015 PC Unit",
            SigmaSpectrum => "Sigma Spectrum 35700BAX",
            SigmaSpectrum8 => "Sigma Spectrum 35700BAX2",
            SpectrumIq => "Spectrum IQ 35700BAX3",
            InfusomatSpace => "Infusomat Space",
            PerfusorSpace => "Perfusor Space",
            Plum360 => "Plum 360",
            PlumAPlus => "Plum A+",
            PlumAPlus3 => "Plum A+3",
            LifeCarePca => "LifeCare PCA",
            Medfusion4000 => "Medfusion 4000",
            CaddSolis => "CADD-Solis",
            AgiliaVp => "Agilia VP",
            AgiliaSp => "Agilia SP",
            SpaceStation => "SpaceStation with SpaceCom 2",
            LinkPlusAgilia => "Link+ Agilia",
            AlarisSystemsManager => "Alaris Systems Manager",
            MedNet => "MedNet",
            OnlineSuite => "OnlineSuite",
            CareEverywhere => "Care Everywhere",
            CaddSolisMss => "CADD-Solis Medication Safety Software",
            VigilantCenterium => "Vigilant Centerium",
            OptiPlex => "OptiPlex 7090",
        }
    }

    fn kind(self) -> AssetKind {
        use Model::*;
        match self {
            SpaceStation | LinkPlusAgilia => AssetKind::Gateway,
            AlarisSystemsManager | MedNet | OnlineSuite | CareEverywhere | CaddSolisMss
            | VigilantCenterium => AssetKind::PumpServer,
            OptiPlex => AssetKind::Workstation,
            _ => AssetKind::Pump,
        }
    }

    /// The catalogue's device type. The Alaris PC Unit has none: what it is
    /// depends on the modules attached, which each asset records.
    fn device_type(self) -> Option<DeviceType> {
        use Model::*;
        match self {
            SigmaSpectrum | SigmaSpectrum8 | SpectrumIq | InfusomatSpace | Plum360 | PlumAPlus
            | PlumAPlus3 | AgiliaVp => Some(DeviceType::Lvp),
            PerfusorSpace | Medfusion4000 | AgiliaSp => Some(DeviceType::Syringe),
            LifeCarePca | CaddSolis => Some(DeviceType::Pca),
            _ => None,
        }
    }

    /// Only what is beyond doubt is answered; the rest stays `unknown`.
    fn capabilities(self) -> Capabilities {
        match self {
            // A desktop PC has USB ports.
            Model::OptiPlex => Capabilities {
                removable_media: Answer::Yes,
                ..Capabilities::default()
            },
            _ => Capabilities::default(),
        }
    }

    /// The sample hospital's planning dates (not vendor announcements).
    fn end_of_support(self) -> Option<Date> {
        match self {
            Model::PlumAPlus | Model::PlumAPlus3 => Some(date!(2022 - 12 - 31)),
            Model::SigmaSpectrum => Some(date!(2026 - 06 - 30)),
            Model::LifeCarePca => Some(date!(2027 - 06 - 30)),
            Model::Medfusion4000 => Some(date!(2027 - 12 - 31)),
            Model::SigmaSpectrum8 => Some(date!(2028 - 12 - 31)),
            _ => None,
        }
    }

    /// A synthetic GTIN-14 for the model: indicator digit 0, then a GTIN-13 in
    /// GS1's restricted-circulation range (prefixes 200–299, for use inside one
    /// company or region, never assigned to a trade item), so it can never equal
    /// the real GTIN of any device.
    fn gtin(self) -> String {
        let body = format!("0{}", 290_000_001_000u64 + 10 * self as u64);
        format!("{body}{}", gs1_check_digit(&body))
    }

    /// A serial number in a plausible shape; synthetic, not the vendor's scheme.
    fn serial(self, rng: &mut Rng) -> String {
        use Model::*;
        match self {
            AlarisPcu => rng.between(10_000_000, 19_999_999).to_string(),
            SigmaSpectrum | SigmaSpectrum8 | SpectrumIq => {
                rng.between(1_000_000, 9_999_999).to_string()
            }
            InfusomatSpace | PerfusorSpace => rng.between(100_000, 999_999).to_string(),
            SpaceStation => format!("SC{:06}", rng.below(1_000_000)),
            Plum360 | PlumAPlus | PlumAPlus3 | LifeCarePca => {
                rng.between(20_000_000, 29_999_999).to_string()
            }
            Medfusion4000 => format!("MF4{:06}", rng.below(1_000_000)),
            CaddSolis => format!("CS{:07}", rng.below(10_000_000)),
            AgiliaVp | AgiliaSp => rng.between(300_000_000, 399_999_999).to_string(),
            LinkPlusAgilia => format!("LP{:07}", rng.below(10_000_000)),
            AlarisSystemsManager | MedNet | OnlineSuite | CareEverywhere | CaddSolisMss
            | VigilantCenterium => format!("LIC-{:08}", rng.below(100_000_000)),
            OptiPlex => {
                const ALNUM: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZ";
                (0..7).map(|_| rng.pick(ALNUM) as char).collect()
            }
        }
    }
}

/// The GS1 check digit of `digits` (weights 3,1,3,… from the right).
///
/// # Panics
/// If `digits` contains anything but ASCII digits.
pub fn gs1_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).expect("GS1 numbers are digits");
            if i % 2 == 0 {
                3 * d
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

// ---------------------------------------------------------------------------
// Version tables, oldest first (see the module docs for their sources)

/// BD Alaris System software on the 8015 PC Unit. BD releases the PC Unit and its
/// modules' software together as one Alaris System version, so the modules are
/// listed with the same version as the unit.
const ALARIS_PCU: &[(&str, u32)] = &[
    ("9.7", 1),
    ("9.13", 2),
    ("9.19", 8),
    ("9.33", 10),
    ("9.33.1", 14),
    ("12.1", 10),
    ("12.1.2", 25),
    ("12.1.3", 30),
];
/// PC Unit versions ICSMA-20-170-06 names with Linux 4.4.97 in the Laird WB40N module.
const ALARIS_WB40N_4_4_97: &[&str] = &["9.13", "9.19", "9.33", "12.1"];
/// Versions BD declared end of life in ICSMA-17-017-02 ("less than 9.19").
const ALARIS_END_OF_LIFE: &[&str] = &["9.7", "9.13"];

const SIGMA_SPECTRUM_6: &[(&str, u32)] = &[("6.05", 1)];
const SIGMA_SPECTRUM_8: &[(&str, u32)] = &[("8.0", 1)];
const SPECTRUM_IQ: &[(&str, u32)] = &[("9.0", 1)];
/// Wireless Battery Module versions each Spectrum generation runs (ICSMA-20-170-04).
const WBM_V6: &[(&str, u32)] = &[
    ("v13", 1),
    ("v14", 1),
    ("v15", 1),
    ("v16", 2),
    ("v16D38", 3),
    ("v17", 2),
    ("v17D19", 3),
    ("v20D29", 2),
    ("v20D32", 4),
    ("v22D24", 2),
    ("v22D28", 4),
];
const WBM_V8: &[(&str, u32)] = &[
    ("v17", 2),
    ("v17D19", 3),
    ("v20D29", 2),
    ("v20D30", 2),
    ("v20D31", 2),
    ("v20D32", 5),
    ("v22D24", 4),
    ("v22D26", 3),
    ("v22D28", 8),
];
const WBM_IQ: &[(&str, u32)] = &[("v22D19", 2), ("v22D24", 4), ("v22D28", 8)];

const INFUSOMAT_SPACE: &[(&str, u32)] = &[("586U", 1)];
const PERFUSOR_SPACE: &[(&str, u32)] = &[("588U", 1)];
/// Battery Pack SP with Wi-Fi: the 028U line runs on packs up to serial 138852,
/// the 054U line on packs from 138853 (ICSMA-20-296-02, ICSMA-23-103-01).
const BBRAUN_BATTERY: &[(&str, u32)] = &[
    ("028U000061", 4),
    ("028U000093", 3),
    ("054U000091", 2),
    ("054U000092", 3),
    ("054U000093", 6),
];
const SPACECOM_2: &[(&str, u32)] = &[("012U000040", 1), ("012U000061", 3), ("012U000093", 4)];

const PLUM_360: &[(&str, u32)] = &[("15.11", 1)];
const PLUM_A_PLUS: &[(&str, u32)] = &[("13.4", 2), ("13.40", 1)];
const PLUM_A_PLUS_3: &[(&str, u32)] = &[("13.6", 1)];
const LIFECARE_PCA: &[(&str, u32)] = &[("5.0", 2), ("5.07", 3), ("7.0", 15)];

const MEDFUSION_4000: &[(&str, u32)] = &[
    ("1.1", 1),
    ("1.5.0", 1),
    ("1.5.1", 1),
    ("1.6.0", 2),
    ("1.6.1", 15),
    ("1.7.0", 20),
];
/// Versions before the 1.6.1 fix of ICSMA-17-250-02A (hard-coded credentials).
const MEDFUSION_HARD_CODED: &[&str] = &["1.1", "1.5.0", "1.5.1", "1.6.0"];
/// Versions named in Smiths Medical's 2020 bolus/loading-dose recall notice.
const MEDFUSION_2020_RECALL: &[&str] = &["1.5.0", "1.5.1", "1.6.0", "1.6.1", "1.7.0"];
/// Illustrative: no source in reach gives CADD-Solis pump firmware versions.
const CADD_SOLIS: &[(&str, u32)] = &[("5.2", 1), ("5.4", 3)];

/// Illustrative pump software; the advisory names only the WiFi module.
const AGILIA: &[(&str, u32)] = &[("4.1", 1)];
/// D25 from ICSMA-21-355-01 ("vD25 and prior"); D23 illustrative.
const AGILIA_WIFI: &[(&str, u32)] = &[("D23", 1), ("D25", 3)];
const LINK_PLUS_AGILIA: &[(&str, u32)] = &[("3.0 D15", 1)];

// ---------------------------------------------------------------------------
// Places

const ICU: usize = 0;
const MED_SURG: usize = 1;
const ONCOLOGY: usize = 2;
const PEDIATRICS: usize = 3;
const NICU: usize = 4;
const ED: usize = 5;
const OR: usize = 6;
const LABOR: usize = 7;

/// Where pumps stand in each care area: (unit, word for the spot, number of spots).
const AREA_SPOTS: [&[(&str, &str, u64)]; 8] = [
    &[
        ("Building A, 3 East", "Bed", 16),
        ("Building A, 3 West", "Bed", 16),
    ],
    &[
        ("Building A, 4 West", "Bed", 32),
        ("Building A, 5 West", "Bed", 32),
        ("Building A, 6 West", "Bed", 32),
    ],
    &[
        ("Building B, 2 North", "Bed", 28),
        ("Building B, Outpatient Infusion Center", "Chair", 24),
    ],
    &[("Building B, 3 North", "Bed", 24)],
    &[("Building C, 2 South", "Bay", 30)],
    &[
        ("Building A, Ground Floor, ED", "Room", 30),
        ("Building A, Ground Floor, ED", "Resus", 4),
    ],
    &[
        ("Building C, 1st Floor", "OR", 12),
        ("Building C, 1st Floor, PACU", "Bay", 16),
    ],
    &[
        ("Building C, 3 South", "LDR", 14),
        ("Building C, 3 South, Postpartum", "Room", 20),
    ],
];

/// Each care area's pump subnet is 10.20.(16 + 4·i).0/22.
fn area_subnet(area: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 16 + 4 * area as u8, 0)
}
/// Pump servers and biomed workstations sit in the zones of the network
/// starter policy (`crates/pumpward-net/policy/starter.toml`: pump-server
/// 10.21.0.0/24, biomed 10.22.0.0/24; pumps 10.20.0.0/16), so that the
/// fleet's normal traffic is allowed and only rogue traffic violates.
const SERVER_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 21, 0, 0);
const BIOMED_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 22, 0, 0);

// ---------------------------------------------------------------------------
// The fleet

/// Pumps in use, per care area.
const ACTIVE_FLEET: [(usize, &[(Model, u32)]); 8] = [
    (
        ICU,
        &[
            (Model::AlarisPcu, 55),
            (Model::Medfusion4000, 15),
            (Model::SpectrumIq, 10),
        ],
    ),
    (
        MED_SURG,
        &[
            (Model::AlarisPcu, 70),
            (Model::SigmaSpectrum8, 30),
            (Model::SigmaSpectrum, 10),
            (Model::SpectrumIq, 15),
            (Model::LifeCarePca, 15),
            (Model::CaddSolis, 10),
        ],
    ),
    (
        ONCOLOGY,
        &[
            (Model::SpectrumIq, 25),
            (Model::SigmaSpectrum8, 15),
            (Model::AlarisPcu, 15),
            (Model::CaddSolis, 10),
        ],
    ),
    (
        PEDIATRICS,
        &[
            (Model::Plum360, 30),
            (Model::Medfusion4000, 20),
            (Model::AlarisPcu, 5),
        ],
    ),
    (
        NICU,
        &[(Model::Medfusion4000, 20), (Model::PerfusorSpace, 20)],
    ),
    (ED, &[(Model::AlarisPcu, 30), (Model::Plum360, 25)]),
    (
        OR,
        &[
            (Model::PerfusorSpace, 20),
            (Model::InfusomatSpace, 15),
            (Model::AgiliaSp, 15),
            (Model::AgiliaVp, 5),
            (Model::Medfusion4000, 5),
        ],
    ),
    (
        LABOR,
        &[
            (Model::Plum360, 20),
            (Model::AgiliaVp, 10),
            (Model::LifeCarePca, 10),
            (Model::AgiliaSp, 5),
        ],
    ),
];
/// Of the pumps in use, how many are in the workshop and how many the SOC isolated.
const IN_MAINTENANCE: usize = 28;
const QUARANTINED: usize = 6;

/// Retired pumps: the Plum A+ fleet that Plum 360 replaced (on whatever version
/// each ran), and a few old units still on their oldest version.
const RETIRED: [(usize, Model, Vintage, usize); 5] = [
    (PEDIATRICS, Model::PlumAPlus, Vintage::InUse, 8),
    (ED, Model::PlumAPlus, Vintage::InUse, 8),
    (LABOR, Model::PlumAPlus3, Vintage::InUse, 5),
    (MED_SURG, Model::LifeCarePca, Vintage::Retired, 4),
    (NICU, Model::Medfusion4000, Vintage::Retired, 4),
];
/// How many retired Plum A+ pumps have already left the building.
const DISPOSED: usize = 3;

/// Pumps on their way in: (care area, model, state, count).
const ARRIVING: [(usize, Model, LifecycleState, usize); 3] = [
    (ED, Model::Plum360, LifecycleState::Procured, 6),
    (ONCOLOGY, Model::SpectrumIq, LifecycleState::Received, 5),
    (ICU, Model::AlarisPcu, LifecycleState::Provisioned, 8),
];

const MAINTENANCE_REASONS: &[&str] = &[
    "Annual preventive maintenance and electrical safety test.",
    "Occlusion alarm fault reported by nursing; under investigation.",
    "Cracked display bezel; replacement part ordered.",
    "Battery no longer holds charge; replacement ordered.",
    "Door latch sticks; awaiting vendor part.",
    "Dropped during transport; inspection before return to service.",
    "Firmware upgrade to the current release.",
    "Keypad unresponsive; sent to workshop by unit manager.",
];
const QUARANTINE_REASONS: &[&str] = &[
    "Quarantined by the SOC: repeated connections to an address outside the pump-server zone. Pump left at the bedside; awaiting biomed inspection.",
    "Quarantined by the SOC: drug library version reported does not match the approved rollout. Awaiting biomed inspection.",
    "Quarantined by the SOC: Telnet and FTP traffic seen from this pump. Awaiting biomed inspection.",
];
const IN_SERVICE_NOTES: &[&str] = &[
    "Battery replaced at last preventive maintenance.",
    "Pole clamp replaced.",
    "Asset tag re-printed; the old tag was illegible.",
    "Float-pool pump; may be found on other units.",
    "Returned from vendor repair.",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Vintage {
    /// The oldest version in the model's table.
    Retired,
    /// Weighted across the table.
    InUse,
    /// The newest version in the table.
    Arriving,
}

struct Plan {
    model: Model,
    area: usize,
    state: LifecycleState,
    vintage: Vintage,
}

/// What the model-specific rules decide about one pump.
struct PumpBuild {
    firmware: &'static str,
    software: Vec<SoftwareComponent>,
    device_type: Option<DeviceType>,
    /// An advisory reports hard-coded credentials for this model and version.
    hard_coded: bool,
    note: Option<String>,
}

/// A server, gateway or workstation, described by hand.
struct Fixed {
    id: String,
    model: Model,
    firmware: &'static str,
    software: &'static [(&'static str, &'static str)],
    host: String,
    location: String,
    care_area: Option<usize>,
    state: LifecycleState,
    hard_coded: bool,
    note: Option<&'static str>,
}

fn comp(name: &str, version: &str) -> SoftwareComponent {
    SoftwareComponent {
        name: name.to_owned(),
        version: version.to_owned(),
    }
}

fn version(rng: &mut Rng, table: &[(&'static str, u32)], vintage: Vintage) -> &'static str {
    match vintage {
        Vintage::Retired => table[0].0,
        Vintage::InUse => rng.weighted(table),
        Vintage::Arriving => table[table.len() - 1].0,
    }
}

struct Builder {
    rng: Rng,
    serials: HashSet<String>,
    macs: HashSet<[u8; 6]>,
    next_host: [u32; 8],
    next_server_host: u32,
    next_biomed_host: u32,
    next_pump: u32,
    models: BTreeSet<Model>,
    assets: Vec<SampleAsset>,
}

/// Everything needed to write one spec.
struct Parts {
    asset_id: String,
    model: Model,
    device_type: Option<DeviceType>,
    udi: bool,
    firmware: &'static str,
    software: Vec<SoftwareComponent>,
    ip: Option<Ipv4Addr>,
    hostname: Option<String>,
    location: Option<String>,
    care_area: Option<usize>,
    zone: &'static str,
    phi: Answer,
    credential_state: CredentialState,
    notes: Option<String>,
}

impl Builder {
    fn new(seed: u64) -> Self {
        Builder {
            rng: Rng(seed),
            serials: HashSet::new(),
            macs: HashSet::new(),
            next_host: [0; 8],
            next_server_host: 0,
            next_biomed_host: 0,
            next_pump: 1,
            models: BTreeSet::new(),
            assets: Vec::new(),
        }
    }

    fn serial(&mut self, model: Model) -> String {
        loop {
            let s = model.serial(&mut self.rng);
            if self.serials.insert(s.clone()) {
                return s;
            }
        }
    }

    /// A unique MAC address with the locally-administered bit set (first octet
    /// 0x02) and the group bit clear. Real pumps carry their Wi-Fi module maker's
    /// OUI; a locally-administered address can never be one of those, so the
    /// sample impersonates no vendor and cannot clash with a real device on a
    /// test network.
    fn mac(&mut self, vendor: Vendor) -> String {
        loop {
            let r = self.rng.next_u64().to_be_bytes();
            let m = [0x02, vendor.mac_octet(), r[0], r[1], r[2], r[3]];
            if self.macs.insert(m) {
                return m
                    .iter()
                    .map(|o| format!("{o:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
            }
        }
    }

    /// Next free host address in a subnet, skipping .0–.9 and .251–.255 of every /24.
    fn host(next: &mut u32, network: Ipv4Addr) -> Ipv4Addr {
        loop {
            let a = u32::from(network) + *next;
            *next += 1;
            if (10..=250).contains(&(a & 0xff)) {
                return Ipv4Addr::from(a);
            }
        }
    }

    fn area_ip(&mut self, area: usize) -> Ipv4Addr {
        Self::host(&mut self.next_host[area], area_subnet(area))
    }

    fn bedside(&mut self, area: usize) -> String {
        let (unit, word, n) = self.rng.pick(AREA_SPOTS[area]);
        if self.rng.percent(12) {
            format!("{unit}, Clean utility room")
        } else {
            format!("{unit}, {word} {}", self.rng.between(1, n))
        }
    }

    fn last_seen(&mut self, state: LifecycleState) -> Option<u32> {
        use LifecycleState::*;
        const MINUTE: u64 = 60;
        const HOUR: u64 = 3600;
        const DAY: u64 = 86_400;
        let r = &mut self.rng;
        let secs = match state {
            Procured | Received | Provisioned => return None,
            InService => match r.below(100) {
                0..=1 => return None,
                2..=9 => r.between(2 * DAY, 45 * DAY),
                _ => r.between(5, 30 * MINUTE),
            },
            Maintenance => r.between(HOUR, 10 * DAY),
            Quarantined => r.between(10 * MINUTE, 2 * DAY),
            Decommissioned => r.between(20 * DAY, 400 * DAY),
            Disposed => r.between(300 * DAY, 900 * DAY),
        };
        Some(secs as u32)
    }

    fn push(&mut self, p: Parts, state: LifecycleState, last_seen: Option<u32>) {
        let vendor = p.model.vendor();
        let serial = self.serial(p.model);
        let udi = p.udi.then(|| format!("(01){}(21){serial}", p.model.gtin()));
        let mac = self.mac(vendor);
        self.models.insert(p.model);
        let spec = AssetSpec {
            asset_id: p.asset_id.parse().expect("sample asset ids are valid"),
            kind: p.model.kind(),
            manufacturer: vendor.name().to_owned(),
            model: p.model.name().to_owned(),
            device_type: p.device_type,
            serial_number: serial,
            udi,
            firmware_version: p.firmware.to_owned(),
            software: p.software,
            cpe: Vec::new(),
            mac_address: Some(mac.parse().expect("sample MAC addresses are unicast")),
            ip_address: p.ip.map(IpAddr::V4),
            hostname: p.hostname,
            location: p.location,
            care_area: p.care_area.map(|a| CARE_AREAS[a].to_owned()),
            zone: Some(p.zone.to_owned()),
            owner: Some(OWNER.to_owned()),
            vendor_support_contact: Some(vendor.support().to_owned()),
            end_of_support: p.model.end_of_support(),
            phi_stored: p.phi,
            credential_state: p.credential_state,
            notes: p.notes,
        };
        self.assets.push(SampleAsset {
            spec,
            lifecycle_state: state,
            last_seen_secs_ago: last_seen,
        });
    }

    // -- pumps -------------------------------------------------------------

    fn pumps(&mut self) {
        // Oldest asset tags first: retired pumps, then the fleet in use, then arrivals.
        let mut retired = Vec::new();
        for &(area, model, vintage, n) in &RETIRED {
            for _ in 0..n {
                retired.push(Plan {
                    model,
                    area,
                    state: LifecycleState::Decommissioned,
                    vintage,
                });
            }
        }
        self.rng.shuffle(&mut retired);
        let plum_a_plus = retired
            .iter_mut()
            .filter(|p| p.model == Model::PlumAPlus)
            .take(DISPOSED);
        for p in plum_a_plus {
            p.state = LifecycleState::Disposed;
        }

        let mut active = Vec::new();
        for &(area, mix) in &ACTIVE_FLEET {
            for &(model, n) in mix {
                for _ in 0..n {
                    active.push(Plan {
                        model,
                        area,
                        state: LifecycleState::InService,
                        vintage: Vintage::InUse,
                    });
                }
            }
        }
        self.rng.shuffle(&mut active);
        let mut order: Vec<usize> = (0..active.len()).collect();
        self.rng.shuffle(&mut order);
        for (k, &i) in order.iter().take(IN_MAINTENANCE + QUARANTINED).enumerate() {
            active[i].state = if k < IN_MAINTENANCE {
                LifecycleState::Maintenance
            } else {
                LifecycleState::Quarantined
            };
        }

        let mut arriving = Vec::new();
        for &(area, model, state, n) in &ARRIVING {
            for _ in 0..n {
                arriving.push(Plan {
                    model,
                    area,
                    state,
                    vintage: Vintage::Arriving,
                });
            }
        }

        for plan in retired.iter().chain(&active).chain(&arriving) {
            self.pump(plan);
        }
    }

    fn pump(&mut self, plan: &Plan) {
        use LifecycleState::*;
        let id = format!("PUMP-{:05}", self.next_pump);
        self.next_pump += 1;
        let build = self.pump_build(plan.model, plan.area, plan.vintage);
        let state = plan.state;

        let on_network = matches!(state, Provisioned | InService | Maintenance | Quarantined);
        let ip = on_network.then(|| self.area_ip(plan.area));
        let hostname = on_network.then(|| format!("{}.pumps.{DOMAIN}", id.to_ascii_lowercase()));
        let location = match state {
            Procured => None,
            Received | Provisioned | Maintenance => Some(BIOMED_WORKSHOP.to_owned()),
            InService | Quarantined => Some(self.bedside(plan.area)),
            Decommissioned => Some(BIOMED_STORAGE.to_owned()),
            Disposed => None,
        };
        let care_area = (state != Disposed).then_some(plan.area);
        let last_seen = self.last_seen(state);

        let credential_state = if build.hard_coded {
            CredentialState::HardCodedKnown
        } else if matches!(state, Procured | Received) || self.rng.percent(5) {
            // Not yet provisioned, or missed at provisioning.
            CredentialState::DefaultUnchanged
        } else {
            CredentialState::Changed
        };
        let phi = if build.device_type == Some(DeviceType::Pca) {
            Answer::Yes
        } else if self.rng.percent(45) {
            Answer::No
        } else {
            Answer::Unknown
        };
        // UDIs are scanned at receiving since the hospital started doing so; older
        // records often lack one.
        let udi = plan.vintage == Vintage::Arriving || self.rng.percent(40);

        let mut notes: Vec<String> = build.note.into_iter().collect();
        match state {
            Maintenance => notes.push(self.rng.pick(MAINTENANCE_REASONS).to_owned()),
            Quarantined => notes.push(self.rng.pick(QUARANTINE_REASONS).to_owned()),
            Decommissioned => notes.push(
                if matches!(plan.model, Model::PlumAPlus | Model::PlumAPlus3) {
                    "Replaced by Plum 360. Awaiting PHI wipe and vendor take-back."
                } else {
                    "Retired at end of service life. PHI wipe completed by Clinical Engineering."
                }
                .to_owned(),
            ),
            Disposed => notes.push(
                "Returned to the vendor for recycling; PHI wipe certificate on file.".to_owned(),
            ),
            InService if last_seen.is_none() => notes.push(
                "Has not connected to the gateway since onboarding; check its Wi-Fi profile."
                    .to_owned(),
            ),
            InService if self.rng.percent(4) => {
                notes.push(self.rng.pick(IN_SERVICE_NOTES).to_owned())
            }
            Procured => notes.push("On order; delivery expected next month.".to_owned()),
            _ => {}
        }

        let parts = Parts {
            asset_id: id,
            model: plan.model,
            device_type: build.device_type,
            udi,
            firmware: build.firmware,
            software: build.software,
            ip,
            hostname,
            location,
            care_area,
            zone: ZONE_PUMPS,
            phi,
            credential_state,
            notes: (!notes.is_empty()).then(|| notes.join("\n")),
        };
        self.push(parts, state, last_seen);
    }

    fn pump_build(&mut self, model: Model, area: usize, vintage: Vintage) -> PumpBuild {
        let rng = &mut self.rng;
        let mut b = PumpBuild {
            firmware: "",
            software: Vec::new(),
            device_type: model.device_type(),
            hard_coded: false,
            note: None,
        };
        match model {
            Model::AlarisPcu => {
                let fw = version(rng, ALARIS_PCU, vintage);
                let (syringe, pca) = match area {
                    ICU => (45, 0),
                    MED_SURG => (0, 15),
                    ONCOLOGY => (0, 25),
                    PEDIATRICS => (50, 0),
                    _ => (0, 0),
                };
                b.software.push(comp("Alaris Pump Module 8100", fw));
                if rng.percent(syringe) {
                    b.software.push(comp("Alaris Syringe Module 8110", fw));
                }
                let has_pca = rng.percent(pca);
                if has_pca {
                    b.software.push(comp("Alaris PCA Module 8120", fw));
                }
                if ALARIS_WB40N_4_4_97.contains(&fw) {
                    b.software.push(comp("Laird WB40N Linux kernel", "4.4.97"));
                }
                b.device_type = Some(if has_pca {
                    DeviceType::Pca
                } else {
                    DeviceType::Lvp
                });
                if ALARIS_END_OF_LIFE.contains(&fw) {
                    b.note = Some(
                        "Alaris System software below 9.19 is end of life (BD, per ICSMA-17-017-02); upgrade scheduled."
                            .to_owned(),
                    );
                }
                b.firmware = fw;
            }
            Model::SigmaSpectrum | Model::SigmaSpectrum8 | Model::SpectrumIq => {
                let (fw, wbm) = match model {
                    Model::SigmaSpectrum => (SIGMA_SPECTRUM_6, WBM_V6),
                    Model::SigmaSpectrum8 => (SIGMA_SPECTRUM_8, WBM_V8),
                    _ => (SPECTRUM_IQ, WBM_IQ),
                };
                b.firmware = version(rng, fw, vintage);
                b.software
                    .push(comp("Wireless Battery Module", version(rng, wbm, vintage)));
            }
            Model::InfusomatSpace | Model::PerfusorSpace => {
                let fw = if model == Model::InfusomatSpace {
                    INFUSOMAT_SPACE
                } else {
                    PERFUSOR_SPACE
                };
                b.firmware = version(rng, fw, vintage);
                let battery = version(rng, BBRAUN_BATTERY, vintage);
                b.software.push(comp("Battery Pack SP with Wi-Fi", battery));
                if rng.percent(25) {
                    let sn = if battery.starts_with("028U") {
                        rng.between(100_000, 138_852)
                    } else {
                        rng.between(138_853, 199_999)
                    };
                    b.note = Some(format!("Battery Pack SP with Wi-Fi serial number {sn}."));
                }
            }
            Model::Plum360 => b.firmware = version(rng, PLUM_360, vintage),
            Model::PlumAPlus | Model::PlumAPlus3 => {
                let fw = if model == Model::PlumAPlus {
                    PLUM_A_PLUS
                } else {
                    PLUM_A_PLUS_3
                };
                b.firmware = version(rng, fw, vintage);
                // ICSA-15-161-01: hard-coded accounts in every version up to 13.4 / 13.6.
                b.hard_coded = true;
            }
            Model::LifeCarePca => {
                let fw = version(rng, LIFECARE_PCA, vintage);
                if fw == "5.07" {
                    b.software.push(comp("Communication Engine", "1.0"));
                }
                // ICSA-15-125-01B: hard-coded password up to 5.0; 7.0 removes it.
                b.hard_coded = fw == "5.0";
                b.firmware = fw;
            }
            Model::Medfusion4000 => {
                let fw = version(rng, MEDFUSION_4000, vintage);
                b.hard_coded = MEDFUSION_HARD_CODED.contains(&fw);
                if MEDFUSION_2020_RECALL.contains(&fw) && rng.percent(30) {
                    b.note = Some(
                        "Covered by Smiths Medical's 2020 bolus/loading-dose recall notice (firmware 1.5.0 to 1.7.0); clinician instructions posted on the unit."
                            .to_owned(),
                    );
                }
                b.firmware = fw;
            }
            Model::CaddSolis => b.firmware = version(rng, CADD_SOLIS, vintage),
            Model::AgiliaVp | Model::AgiliaSp => {
                b.firmware = version(rng, AGILIA, vintage);
                b.software.push(comp(
                    "Agilia Connect WiFi module",
                    version(rng, AGILIA_WIFI, vintage),
                ));
            }
            _ => unreachable!("{model:?} is not a pump"),
        }
        b
    }

    // -- gateways, servers, workstations -----------------------------------

    fn fixed(&mut self, f: Fixed, zone: &'static str, ip: Option<Ipv4Addr>) {
        let last_seen = match f.state {
            LifecycleState::InService => Some(self.rng.between(2, 90) as u32),
            s => self.last_seen(s),
        };
        let phi = match f.model.kind() {
            AssetKind::PumpServer => Answer::Yes,
            _ => Answer::Unknown,
        };
        let parts = Parts {
            asset_id: f.id,
            model: f.model,
            device_type: None,
            udi: false,
            firmware: f.firmware,
            software: f.software.iter().map(|&(n, v)| comp(n, v)).collect(),
            hostname: ip.map(|_| format!("{}.{DOMAIN}", f.host)),
            ip,
            location: Some(f.location),
            care_area: f.care_area,
            zone,
            phi,
            credential_state: if f.hard_coded {
                CredentialState::HardCodedKnown
            } else {
                CredentialState::Changed
            },
            notes: f.note.map(str::to_owned),
        };
        self.push(parts, f.state, last_seen);
    }

    fn gateways(&mut self) {
        // Docking stations that connect the pumps in them to the pump servers.
        const PLAN: [(Model, usize, &str, &str, u64, usize); 4] = [
            (
                Model::SpaceStation,
                OR,
                "Building C, 1st Floor",
                "OR",
                12,
                4,
            ),
            (
                Model::SpaceStation,
                NICU,
                "Building C, 2 South",
                "Bay",
                30,
                2,
            ),
            (
                Model::LinkPlusAgilia,
                OR,
                "Building C, 1st Floor",
                "OR",
                12,
                2,
            ),
            (
                Model::LinkPlusAgilia,
                LABOR,
                "Building C, 3 South",
                "LDR",
                14,
                2,
            ),
        ];
        let mut n = 1;
        for (model, area, unit, word, spots, count) in PLAN {
            for _ in 0..count {
                let table = if model == Model::SpaceStation {
                    SPACECOM_2
                } else {
                    LINK_PLUS_AGILIA
                };
                let spot = self.rng.between(1, spots);
                let f = Fixed {
                    id: format!("GW-{n:03}"),
                    model,
                    firmware: version(&mut self.rng, table, Vintage::InUse),
                    software: &[],
                    host: format!("gw-{n:03}.pumps"),
                    location: format!("{unit}, {word} {spot}"),
                    care_area: Some(area),
                    state: LifecycleState::InService,
                    hard_coded: false,
                    note: None,
                };
                let ip = self.area_ip(area);
                self.fixed(f, ZONE_PUMPS, Some(ip));
                n += 1;
            }
        }
    }

    fn servers(&mut self) {
        use LifecycleState::{Decommissioned, InService};
        #[allow(clippy::type_complexity)]
        const PLAN: [(
            Model,
            &str,
            &[(&str, &str)],
            &str,
            &str,
            LifecycleState,
            bool,
            Option<&str>,
        ); 7] = [
            (
                Model::AlarisSystemsManager,
                "12.1.2",
                &[
                    ("Guardrails Editor", "12.1.2"),
                    ("CQI Reporter", "10.17"),
                    ("Calculation Services", "1.0"),
                ],
                "alaris-sm01",
                "Data Center 1, Rack C4",
                InService,
                false,
                None,
            ),
            (
                Model::MedNet,
                "6.1",
                &[],
                "mednet01",
                "Data Center 1, Rack C4",
                InService,
                false,
                None,
            ),
            (
                Model::MedNet,
                "5.8",
                &[],
                "mednet-legacy",
                "Data Center 1, Rack C2 (powered off)",
                Decommissioned,
                // ICSA-15-090-03: 6.1 "no longer uses hard-coded passwords".
                true,
                Some("Replaced by the MedNet 6.1 server mednet01; disk wipe pending."),
            ),
            (
                Model::OnlineSuite,
                "AP 3.0",
                &[],
                "bbraun-os01",
                "Data Center 1, Rack C5",
                InService,
                false,
                None,
            ),
            (
                Model::CareEverywhere,
                "2.0",
                &[],
                "baxter-ce01",
                "Data Center 1, Rack C5",
                InService,
                false,
                None,
            ),
            (
                Model::CaddSolisMss,
                "3.1",
                &[],
                "cadd-mss01",
                "Data Center 1, Rack C6",
                InService,
                false,
                Some("Upgrade to 3.2 requested from Smiths Medical."),
            ),
            (
                Model::VigilantCenterium,
                "1.0",
                &[],
                "vigilant01",
                "Data Center 1, Rack C6",
                InService,
                false,
                None,
            ),
        ];
        for (i, (model, firmware, software, host, location, state, hard_coded, note)) in
            PLAN.into_iter().enumerate()
        {
            let f = Fixed {
                id: format!("SRV-{:03}", i + 1),
                model,
                firmware,
                software,
                host: host.to_owned(),
                location: location.to_owned(),
                care_area: None,
                state,
                hard_coded,
                note,
            };
            let ip =
                (state == InService).then(|| Self::host(&mut self.next_server_host, SERVER_SUBNET));
            self.fixed(f, ZONE_SERVERS, ip);
        }
    }

    fn workstations(&mut self) {
        const SOFTWARE: [&[(&str, &str)]; 3] = [&[("Agilia Partner", "3.3.0")], &[], &[]];
        for (i, software) in SOFTWARE.into_iter().enumerate() {
            let n = i + 1;
            let f = Fixed {
                id: format!("WS-{n:03}"),
                model: Model::OptiPlex,
                firmware: "Windows 10 Enterprise LTSC 2021",
                software,
                host: format!("biomed-ws{n:02}"),
                location: BIOMED_WORKSHOP.to_owned(),
                care_area: None,
                state: LifecycleState::InService,
                hard_coded: false,
                note: None,
            };
            let ip = Self::host(&mut self.next_biomed_host, BIOMED_SUBNET);
            self.fixed(f, ZONE_BIOMED, Some(ip));
        }
    }

    fn finish(self) -> SampleHospital {
        let models = self
            .models
            .iter()
            .map(|m| {
                DeviceModel::new(
                    m.vendor().name(),
                    m.name(),
                    m.device_type(),
                    m.capabilities(),
                )
                .expect("sample model names are valid")
            })
            .collect();
        let mut subnets = vec![
            SampleSubnet {
                name: "Pump servers".to_owned(),
                zone: ZONE_SERVERS.to_owned(),
                care_area: None,
                network: SERVER_SUBNET,
                prefix_len: 24,
            },
            SampleSubnet {
                name: "Biomed workstations".to_owned(),
                zone: ZONE_BIOMED.to_owned(),
                care_area: None,
                network: BIOMED_SUBNET,
                prefix_len: 24,
            },
        ];
        for (i, area) in CARE_AREAS.iter().enumerate() {
            subnets.push(SampleSubnet {
                name: format!("{area} pumps"),
                zone: ZONE_PUMPS.to_owned(),
                care_area: Some((*area).to_owned()),
                network: area_subnet(i),
                prefix_len: 22,
            });
        }
        SampleHospital {
            name: HOSPITAL_NAME.to_owned(),
            care_areas: CARE_AREAS.iter().map(|&a| a.to_owned()).collect(),
            models,
            assets: self.assets,
            subnets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    const SEEDS: [u64; 4] = [DEFAULT_SEED, 0, 1, u64::MAX];

    fn count(h: &SampleHospital, state: LifecycleState) -> usize {
        h.pumps().filter(|a| a.lifecycle_state == state).count()
    }

    #[test]
    fn same_seed_same_hospital_other_seed_other_hospital() {
        let a = sample_hospital(42);
        assert_eq!(a, sample_hospital(42));
        let b = sample_hospital(43);
        assert_ne!(a, b);
        let serials = |h: &SampleHospital| -> Vec<String> {
            h.assets
                .iter()
                .map(|a| a.spec.serial_number.clone())
                .collect()
        };
        assert_ne!(serials(&a), serials(&b));
    }

    #[test]
    fn hundreds_of_pumps_from_at_least_six_manufacturers() {
        for seed in SEEDS {
            let h = sample_hospital(seed);
            assert!(h.pumps().count() >= 500, "{}", h.pumps().count());
            let makers: BTreeSet<&str> = h.pumps().map(|a| a.spec.manufacturer.as_str()).collect();
            assert!(makers.len() >= 6, "{makers:?}");
            for m in [
                "BD",
                "Baxter",
                "B. Braun",
                "ICU Medical",
                "Smiths Medical",
                "Fresenius Kabi",
            ] {
                assert!(makers.contains(m), "{m}");
            }
        }
    }

    #[test]
    fn every_spec_revalidates_to_itself() {
        for seed in SEEDS {
            for a in &sample_hospital(seed).assets {
                assert_eq!(
                    AssetSpec::validate(&a.spec.to_draft()),
                    Ok(a.spec.clone()),
                    "{}",
                    a.spec.asset_id
                );
            }
        }
    }

    #[test]
    fn catalogue_has_exactly_the_models_in_use() {
        for seed in SEEDS {
            let h = sample_hospital(seed);
            let catalogue: Vec<(&str, &str)> = h
                .models
                .iter()
                .map(|m| (m.manufacturer.as_str(), m.model.as_str()))
                .collect();
            let unique: HashSet<_> = catalogue.iter().collect();
            assert_eq!(unique.len(), catalogue.len(), "duplicate catalogue entry");
            let used: HashSet<(&str, &str)> = h
                .assets
                .iter()
                .map(|a| (a.spec.manufacturer.as_str(), a.spec.model.as_str()))
                .collect();
            assert_eq!(used, catalogue.iter().copied().collect::<HashSet<_>>());
            for m in &h.models {
                // No capability is claimed for a pump: nothing about them is on file.
                if m.manufacturer != "Dell" {
                    assert_eq!(m.capabilities, Capabilities::default(), "{}", m.model);
                }
            }
        }
    }

    #[test]
    fn identifiers_are_unique() {
        for seed in SEEDS {
            let h = sample_hospital(seed);
            let mut ids = HashSet::new();
            let mut serials = HashSet::new();
            let mut macs = HashSet::new();
            let mut ips = HashSet::new();
            let mut hosts = HashSet::new();
            for a in &h.assets {
                let s = &a.spec;
                assert!(ids.insert(s.asset_id.clone()), "{}", s.asset_id);
                assert!(
                    serials.insert(s.serial_number.clone()),
                    "{}",
                    s.serial_number
                );
                if let Some(m) = s.mac_address {
                    assert!(macs.insert(m), "{m}");
                }
                if let Some(ip) = s.ip_address {
                    assert!(ips.insert(ip), "{ip}");
                }
                if let Some(hn) = &s.hostname {
                    assert!(hosts.insert(hn.clone()), "{hn}");
                }
            }
            assert!(h.pumps().all(|a| a.spec.mac_address.is_some()));
        }
    }

    #[test]
    fn macs_are_locally_administered_unicast() {
        for a in &sample_hospital(DEFAULT_SEED).assets {
            let o = a.spec.mac_address.unwrap().octets();
            assert_eq!(o[0], 0x02, "{}", a.spec.asset_id);
        }
    }

    #[test]
    fn addresses_follow_the_plan() {
        for seed in SEEDS {
            let h = sample_hospital(seed);
            for a in &h.assets {
                let s = &a.spec;
                let Some(IpAddr::V4(ip)) = s.ip_address else {
                    assert!(s.ip_address.is_none());
                    assert!(s.hostname.is_none(), "{}", s.asset_id);
                    continue;
                };
                assert_eq!(ip.octets()[0], 10);
                assert!(s.hostname.as_deref().unwrap().ends_with(DOMAIN));
                let subnet = h
                    .subnets
                    .iter()
                    .find(|n| n.contains(ip))
                    .unwrap_or_else(|| panic!("{ip} of {} is in no subnet", s.asset_id));
                assert_eq!(
                    Some(subnet.zone.as_str()),
                    s.zone.as_deref(),
                    "{}",
                    s.asset_id
                );
                if subnet.care_area.is_some() {
                    assert_eq!(subnet.care_area, s.care_area, "{}", s.asset_id);
                }
            }
        }
    }

    #[test]
    fn zones_by_kind() {
        for a in &sample_hospital(DEFAULT_SEED).assets {
            let want = match a.spec.kind {
                AssetKind::Pump | AssetKind::Gateway => ZONE_PUMPS,
                AssetKind::PumpServer => ZONE_SERVERS,
                AssetKind::Workstation => ZONE_BIOMED,
                AssetKind::Other => unreachable!(),
            };
            assert_eq!(a.spec.zone.as_deref(), Some(want), "{}", a.spec.asset_id);
        }
        let h = sample_hospital(DEFAULT_SEED);
        for kind in [
            AssetKind::PumpServer,
            AssetKind::Gateway,
            AssetKind::Workstation,
        ] {
            assert!(h.assets.iter().any(|a| a.spec.kind == kind), "{kind}");
        }
    }

    #[test]
    fn every_care_area_has_pumps_in_service() {
        for seed in SEEDS {
            let h = sample_hospital(seed);
            for area in &h.care_areas {
                assert!(
                    h.pumps().any(|a| a.spec.care_area.as_ref() == Some(area)
                        && a.lifecycle_state == LifecycleState::InService),
                    "{area}"
                );
            }
        }
    }

    #[test]
    fn lifecycle_mix() {
        use LifecycleState::*;
        for seed in SEEDS {
            let h = sample_hospital(seed);
            let n = h.pumps().count() as f64;
            let share = |s| count(&h, s) as f64 / n;
            assert!(
                (0.80..=0.90).contains(&share(InService)),
                "{}",
                share(InService)
            );
            assert!((0.02..=0.10).contains(&share(Maintenance)));
            assert!(count(&h, Quarantined) >= 1 && share(Quarantined) <= 0.02);
            for s in [Procured, Received, Provisioned] {
                assert!(count(&h, s) >= 1 && share(s) <= 0.03, "{s}");
            }
            assert!(count(&h, Decommissioned) >= 1 && share(Decommissioned) <= 0.06);
            assert!((1..=5).contains(&count(&h, Disposed)));
        }
    }

    #[test]
    fn last_seen_matches_state() {
        use LifecycleState::*;
        let h = sample_hospital(DEFAULT_SEED);
        let mut stale = 0;
        for a in h.pumps() {
            match a.lifecycle_state {
                Procured | Received | Provisioned => assert_eq!(a.last_seen_secs_ago, None),
                Maintenance | Quarantined | Decommissioned | Disposed => {
                    assert!(a.last_seen_secs_ago.is_some())
                }
                InService => {
                    if a.last_seen_secs_ago.is_some_and(|s| s > 86_400) {
                        stale += 1;
                    }
                }
            }
        }
        assert!(stale > 0);
        let fresh = h
            .pumps()
            .filter(|a| a.last_seen_secs_ago.is_some_and(|s| s <= 1800))
            .count();
        assert!(fresh as f64 > 0.7 * h.pumps().count() as f64);
    }

    #[test]
    fn credentials_and_phi() {
        for seed in SEEDS {
            let h = sample_hospital(seed);
            let n = h.pumps().count() as f64;
            let default = h
                .pumps()
                .filter(|a| a.spec.credential_state == CredentialState::DefaultUnchanged)
                .count() as f64;
            assert!((0.02..=0.10).contains(&(default / n)), "{}", default / n);
            for a in &h.assets {
                let s = &a.spec;
                if s.credential_state == CredentialState::HardCodedKnown {
                    let ok = match s.model.as_str() {
                        "Plum A+" | "Plum A+3" => true,
                        "LifeCare PCA" => s.firmware_version == "5.0",
                        "Medfusion 4000" => {
                            MEDFUSION_HARD_CODED.contains(&s.firmware_version.as_str())
                        }
                        "MedNet" => s.firmware_version == "5.8",
                        _ => false,
                    };
                    assert!(ok, "{} {} {}", s.model, s.firmware_version, s.asset_id);
                }
                if s.device_type == Some(DeviceType::Pca) || s.kind == AssetKind::PumpServer {
                    assert_eq!(s.phi_stored, Answer::Yes, "{}", s.asset_id);
                }
            }
            let hard = h
                .pumps()
                .filter(|a| {
                    a.spec.credential_state == CredentialState::HardCodedKnown
                        && a.lifecycle_state == LifecycleState::InService
                })
                .count();
            assert!(hard >= 1 && (hard as f64) < 0.05 * n, "{hard}");
        }
    }

    #[test]
    fn vulnerable_and_fixed_versions_are_mixed() {
        let h = sample_hospital(DEFAULT_SEED);
        let versions = |model: &str| -> BTreeSet<String> {
            h.pumps()
                .filter(|a| a.spec.model == model)
                .map(|a| a.spec.firmware_version.clone())
                .collect()
        };
        // ICSMA-20-317-01: Alaris PC Unit up to 9.33.1.
        let alaris = versions("Alaris 8015 PC Unit");
        assert!(
            alaris.contains("9.33.1") && alaris.contains("12.1.3"),
            "{alaris:?}"
        );
        // ICSMA-17-250-02A: Medfusion 4000 fixed in 1.6.1.
        let medfusion = versions("Medfusion 4000");
        assert!(
            medfusion.contains("1.6.0") && medfusion.contains("1.7.0"),
            "{medfusion:?}"
        );
        // ICSMA-20-296-02: Battery Pack SP with Wi-Fi up to U61, fixed in 093.
        let batteries: BTreeSet<&str> = h
            .pumps()
            .flat_map(|a| &a.spec.software)
            .filter(|c| c.name == "Battery Pack SP with Wi-Fi")
            .map(|c| c.version.as_str())
            .collect();
        assert!(batteries.contains("028U000061") && batteries.contains("054U000093"));
        let wbm = h
            .pumps()
            .flat_map(|a| &a.spec.software)
            .any(|c| c.name == "Wireless Battery Module" && c.version == "v22D28");
        assert!(wbm);
    }

    #[test]
    fn udis_are_gs1_with_the_assets_serial() {
        let h = sample_hospital(DEFAULT_SEED);
        let with_udi: Vec<_> = h.pumps().filter(|a| a.spec.udi.is_some()).collect();
        assert!(with_udi.len() > 100 && with_udi.len() < h.pumps().count());
        let mut gtin_per_model: HashMap<&str, &str> = HashMap::new();
        for a in with_udi {
            let udi = a.spec.udi.as_deref().unwrap();
            let rest = udi.strip_prefix("(01)").unwrap();
            let (gtin, serial) = rest.split_once("(21)").unwrap();
            assert_eq!(gtin.len(), 14);
            assert!(
                gtin.starts_with("02"),
                "restricted-circulation range: {gtin}"
            );
            assert_eq!(
                gs1_check_digit(&gtin[..13]),
                gtin[13..].parse::<u32>().unwrap()
            );
            assert_eq!(serial, a.spec.serial_number);
            assert_eq!(
                *gtin_per_model.entry(a.spec.model.as_str()).or_insert(gtin),
                gtin
            );
        }
    }

    #[test]
    fn gs1_check_digit_known_values() {
        // GS1's worked examples: GTIN-13 4006381333931, GTIN-12 036000291452.
        assert_eq!(gs1_check_digit("400638133393"), 1);
        assert_eq!(gs1_check_digit("03600029145"), 2);
    }

    #[test]
    fn some_end_of_support_dates_already_passed() {
        let h = sample_hospital(DEFAULT_SEED);
        let cutoff = date!(2026 - 11 - 01);
        let past = h
            .pumps()
            .filter(|a| a.lifecycle_state == LifecycleState::InService)
            .filter(|a| a.spec.end_of_support.is_some_and(|d| d < cutoff))
            .count();
        assert!(past >= 1, "{past}");
        assert!(h
            .pumps()
            .any(|a| a.spec.end_of_support.is_some_and(|d| d > cutoff)));
        assert!(h.pumps().any(|a| a.spec.end_of_support.is_none()));
    }

    #[test]
    fn vendor_contacts_name_no_phone_numbers() {
        for a in &sample_hospital(DEFAULT_SEED).assets {
            let c = a.spec.vendor_support_contact.as_deref().unwrap();
            assert!(!c.chars().any(|ch| ch.is_ascii_digit()), "{c}");
            assert_eq!(a.spec.owner.as_deref(), Some(OWNER));
        }
    }

    /// Prints the counts the report quotes: `cargo test -p pumpward-core demo::tests::summary -- --nocapture`.
    #[test]
    fn summary() {
        let h = sample_hospital(DEFAULT_SEED);
        let mut by_model: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
        for a in &h.assets {
            *by_model
                .entry((a.spec.manufacturer.clone(), a.spec.model.clone()))
                .or_default()
                .entry(a.lifecycle_state.to_string())
                .or_default() += 1;
        }
        for ((maker, model), states) in &by_model {
            let total: usize = states.values().sum();
            println!("{maker} | {model} | {total} | {states:?}");
        }
        for s in LifecycleState::ALL {
            println!("{s}: {}", count(&h, *s));
        }
        let mut versions: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut tallies: BTreeMap<String, usize> = BTreeMap::new();
        for a in h.pumps() {
            let s = &a.spec;
            *versions
                .entry(s.model.clone())
                .or_default()
                .entry(s.firmware_version.clone())
                .or_default() += 1;
            for c in &s.software {
                *versions
                    .entry(format!("{} / {}", s.model, c.name))
                    .or_default()
                    .entry(c.version.clone())
                    .or_default() += 1;
            }
            for key in [
                format!("credential {}", s.credential_state),
                format!("phi {}", s.phi_stored),
                format!("udi {}", s.udi.is_some()),
                format!(
                    "last seen {}",
                    match a.last_seen_secs_ago {
                        None => "never",
                        Some(0..=1800) => "minutes",
                        Some(1801..=86_400) => "hours",
                        Some(_) => "days",
                    }
                ),
                format!(
                    "end of support {}",
                    match s.end_of_support {
                        None => "none",
                        Some(d) if d < date!(2026 - 11 - 26) => "passed",
                        Some(_) => "future",
                    }
                ),
            ] {
                *tallies.entry(key).or_default() += 1;
            }
        }
        for (model, v) in &versions {
            println!("{model}: {v:?}");
        }
        for (k, n) in &tallies {
            println!("{k}: {n}");
        }
        println!("pumps: {}, assets: {}", h.pumps().count(), h.assets.len());
    }
}
