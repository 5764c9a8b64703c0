//! The inventory's assets as network identities: the one way the CLI and
//! the server turn assets and the device catalogue into [`AssetIdentity`]s
//! for the check, the evaluator and the exports.

use std::collections::BTreeMap;

use pumpward_core::inventory::{Answer, Asset, DeviceModel};

use crate::policy::{Admission, AssetIdentity};

/// The admission method an asset gets: EAP-TLS where its model's catalogue
/// entry says it can, MAC bypass otherwise (the inventory has no field of
/// its own for it yet).
pub fn admission(model: Option<&DeviceModel>) -> Admission {
    match model.map(|m| m.capabilities.eap_tls) {
        Some(Answer::Yes) => Admission::EapTls,
        _ => Admission::Mab,
    }
}

/// The network identity of every asset that has a zone, in the given order.
pub fn identities(assets: &[Asset], models: &[DeviceModel]) -> Vec<AssetIdentity> {
    let by_name: BTreeMap<(&str, &str), &DeviceModel> = models
        .iter()
        .map(|m| ((m.manufacturer.as_str(), m.model.as_str()), m))
        .collect();
    assets
        .iter()
        .filter_map(|a| {
            let m = by_name
                .get(&(a.spec.manufacturer.as_str(), a.spec.model.as_str()))
                .copied();
            AssetIdentity::from_spec(&a.spec, admission(m))
        })
        .collect()
}
