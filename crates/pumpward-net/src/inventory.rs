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

/// Which assets' identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every asset with a zone: the check and flow attribution (a
    /// quarantined pump's traffic must still be attributed to it).
    All,
    /// Only those an enforcement export lists as authorised (no quarantined
    /// or retired pump; see [`AssetIdentity::authorised`]).
    Authorised,
}

/// The network identities of the assets, in the given order.
pub fn identities(
    assets: &[Asset],
    models: &[DeviceModel],
    listing: Listing,
) -> Vec<AssetIdentity> {
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
            match listing {
                Listing::All => AssetIdentity::from_spec(&a.spec, admission(m)),
                Listing::Authorised => AssetIdentity::authorised(a, admission(m)),
            }
        })
        .collect()
}
