//! The network quarantine list: devices kept off the network by their MAC
//! (and the addresses they were seen at), typically unknown devices found
//! in a device zone. The exports honour it:
//!
//! - nftables drops everything from the MAC (`ether saddr`, where the
//!   router shares the device's segment) and everything from and to the
//!   addresses (the device behind another router), established connections
//!   included;
//! - FreeRADIUS MAB rejects the MAC, whatever else the file says (a MAC a
//!   registered asset also holds is rejected too: quarantine wins);
//! - Cisco ISE gets the MAC in the [`QUARANTINE_GROUP`] endpoint identity
//!   group, for an authorisation rule that denies it;
//! - the ACL table lists deny rows for it before every allow row.
//!
//! Why reject rather than a quarantine VLAN: a policy need not define one,
//! and a device nobody registered has nothing it needs to reach; a rejected
//! MAC also shows up in the switch's and the RADIUS server's logs.
//!
//! Registered pumps are quarantined through their lifecycle state instead
//! (`pumpward_store` responses): they leave the authorised lists.

use std::collections::BTreeMap;
use std::net::IpAddr;

use pumpward_core::inventory::MacAddress;
use serde::Serialize;

use crate::policy::check_name;

/// The Cisco ISE endpoint identity group of quarantined devices.
pub const QUARANTINE_GROUP: &str = "Pumpward-Quarantine";

/// Most addresses kept with one quarantined device: a device hopping
/// through a DHCP pool is stopped by its MAC; the addresses are for
/// routers that do not see it.
pub const MAX_QUARANTINE_ADDRESSES: usize = 16;

/// One quarantined device, as the exports need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedDevice {
    pub mac: MacAddress,
    /// The addresses it was seen at.
    pub addresses: Vec<IpAddr>,
    /// The zone it was seen in, when known.
    pub zone: Option<String>,
    /// Why, as the person who quarantined it wrote it (exports put it only
    /// in CSV cells, never in configuration text).
    pub reason: String,
}

impl QuarantinedDevice {
    /// What makes this entry unusable by the exports; None when it is fine.
    pub fn problem(&self) -> Option<String> {
        if self.addresses.len() > MAX_QUARANTINE_ADDRESSES {
            return Some(format!(
                "addresses: at most {MAX_QUARANTINE_ADDRESSES}, {} given",
                self.addresses.len()
            ));
        }
        if let Some(z) = &self.zone {
            if let Err(e) = check_name(z) {
                return Some(format!("zone: {e}"));
            }
        }
        None
    }

    /// The reason on one line (control characters and runs of white space
    /// as one space), for CSV cells that spreadsheets and ISE read.
    pub fn reason_line(&self) -> String {
        self.reason
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The list in the exports' one order: by MAC, one entry per MAC (the
/// addresses of entries with the same MAC merged, sorted and unique; the
/// first zone and reason kept), so the text does not depend on the order
/// the store returned them in.
pub fn canonical(list: &[QuarantinedDevice]) -> Vec<QuarantinedDevice> {
    let mut by_mac: BTreeMap<MacAddress, QuarantinedDevice> = BTreeMap::new();
    let mut sorted: Vec<&QuarantinedDevice> = list.iter().collect();
    // Among entries of one MAC, the first by (zone, reason) wins: still
    // independent of input order.
    sorted.sort_by(|a, b| (a.mac, &a.zone, &a.reason).cmp(&(b.mac, &b.zone, &b.reason)));
    for d in sorted {
        by_mac
            .entry(d.mac)
            .and_modify(|e| e.addresses.extend(d.addresses.iter().copied()))
            .or_insert_with(|| d.clone());
    }
    by_mac
        .into_values()
        .map(|mut d| {
            d.addresses.sort();
            d.addresses.dedup();
            d
        })
        .collect()
}

/// Whether `mac` is on the list.
pub fn contains(list: &[QuarantinedDevice], mac: MacAddress) -> bool {
    list.iter().any(|d| d.mac == mac)
}
