//! The worked examples of `docs/vulnerability-priority.md`, recomputed: the
//! document must contain each example's factor table exactly as the code
//! computes it, so the published formula and the code cannot drift apart.

use pumpward_vuln::priority::{
    priority, tenths, CareAcuity, Control, Cvss, DeviceClass, Epss, Exposure, PriorityInput,
    RemoteAccess,
};
use std::collections::BTreeSet;

fn table(i: &PriorityInput) -> String {
    let p = priority(i);
    let mut s = String::from("| factor | input | points |\n|---|---|---:|\n");
    for f in &p.factors {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            f.factor,
            f.input,
            tenths(f.points)
        ));
    }
    s.push_str(&format!("| **priority** | | **{}** |\n", p));
    s
}

fn examples() -> Vec<(&'static str, PriorityInput)> {
    vec![
        (
            "Example 1",
            // A PCA pump in the NICU, known exploited, no zone recorded.
            PriorityInput {
                cvss: Cvss::newest([("3.1", 9.8), ("2.0", 10.0)]),
                kev: true,
                epss: Epss::from_probability(0.0421),
                device: DeviceClass::from_inventory(Some("pca"), true),
                care: CareAcuity::from_care_area(Some("NICU")),
                exposure: Exposure {
                    zone_unrecorded: true,
                    network_reachable: true,
                    wireless: true,
                    remote_access: RemoteAccess::from_inventory(Some("vendor_cloud")),
                },
                controls: BTreeSet::new(),
            },
        ),
        (
            "Example 2",
            // A large-volume pump on a med-surg ward, in its zone.
            PriorityInput {
                cvss: Cvss::newest([("3.0", 6.5)]),
                kev: false,
                epss: Epss::from_probability(0.0009),
                device: DeviceClass::from_inventory(Some("lvp"), true),
                care: CareAcuity::from_care_area(Some("Med-Surg")),
                exposure: Exposure {
                    zone_unrecorded: false,
                    network_reachable: true,
                    wireless: true,
                    remote_access: RemoteAccess::from_inventory(Some("unknown")),
                },
                controls: BTreeSet::new(),
            },
        ),
        (
            "Example 3",
            // The same PCA pump as example 1 with its controls recorded.
            PriorityInput {
                cvss: Cvss::newest([("4.0", 9.3), ("3.1", 9.8)]),
                kev: true,
                epss: Epss::from_probability(0.0421),
                device: DeviceClass::from_inventory(Some("pca"), true),
                care: CareAcuity::from_care_area(Some("NICU")),
                exposure: Exposure {
                    zone_unrecorded: false,
                    network_reachable: true,
                    wireless: true,
                    remote_access: RemoteAccess::from_inventory(Some("vendor_cloud")),
                },
                controls: [
                    Control::NetworkIsolated,
                    Control::VendorAccessDisabled,
                    Control::Monitored,
                ]
                .into_iter()
                .collect(),
            },
        ),
        (
            "Example 4",
            // A pump server with no published score, in the server zone.
            PriorityInput {
                cvss: None,
                kev: false,
                epss: None,
                device: DeviceClass::from_inventory(None, false),
                care: CareAcuity::from_care_area(None),
                exposure: Exposure {
                    zone_unrecorded: false,
                    network_reachable: true,
                    wireless: false,
                    remote_access: RemoteAccess::from_inventory(Some("vpn")),
                },
                controls: BTreeSet::new(),
            },
        ),
    ]
}

#[test]
fn the_documented_worked_examples_are_what_the_code_computes() {
    let doc = include_str!("../../../docs/vulnerability-priority.md");
    let mut drifted = Vec::new();
    for (name, input) in examples() {
        let t = table(&input);
        println!("### {name}\n\n{t}");
        if !doc.contains(&t) {
            drifted.push(name);
        }
    }
    assert!(
        drifted.is_empty(),
        "docs/vulnerability-priority.md does not show {drifted:?} as computed (printed above)"
    );
}
