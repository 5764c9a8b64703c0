//! IPv4 and IPv6 prefixes (`10.20.0.0/16`, `fd00:20::/48`).
//!
//! A prefix is kept in its canonical form only: host bits set after the
//! length (`10.20.0.1/16`) are refused rather than silently cleared, because
//! in a zone definition they usually mean a typo in the length, and a
//! silently widened or narrowed zone changes what the firewall lets through.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address family's prefix: network address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cidr {
    V4 { net: u32, len: u8 },
    V6 { net: u128, len: u8 },
}

/// Why a prefix text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an address prefix (like 10.20.0.0/16 or fd00:20::/48)")]
    Syntax(String),
    #[error("{text:?}: prefix length {len} is longer than {max}")]
    Length { text: String, len: u32, max: u8 },
    #[error("{text:?} has host bits set after /{len}; did you mean {canonical}?")]
    HostBits {
        text: String,
        len: u8,
        canonical: String,
    },
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Cidr {
    /// The prefix of `len` bits containing `addr` (host bits cleared).
    pub fn containing(addr: IpAddr, len: u8) -> Option<Cidr> {
        match addr {
            IpAddr::V4(a) if len <= 32 => Some(Cidr::V4 {
                net: u32::from(a) & mask4(len),
                len,
            }),
            IpAddr::V6(a) if len <= 128 => Some(Cidr::V6 {
                net: u128::from(a) & mask6(len),
                len,
            }),
            _ => None,
        }
    }

    pub fn prefix_len(self) -> u8 {
        match self {
            Cidr::V4 { len, .. } | Cidr::V6 { len, .. } => len,
        }
    }

    pub fn is_v4(self) -> bool {
        matches!(self, Cidr::V4 { .. })
    }

    /// First and last address, as integers of the family.
    pub fn range_v4(self) -> Option<(u32, u32)> {
        match self {
            Cidr::V4 { net, len } => Some((net, net | !mask4(len))),
            Cidr::V6 { .. } => None,
        }
    }

    pub fn range_v6(self) -> Option<(u128, u128)> {
        match self {
            Cidr::V6 { net, len } => Some((net, net | !mask6(len))),
            Cidr::V4 { .. } => None,
        }
    }

    pub fn contains(self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Cidr::V4 { net, len }, IpAddr::V4(a)) => u32::from(a) & mask4(len) == net,
            (Cidr::V6 { net, len }, IpAddr::V6(a)) => u128::from(a) & mask6(len) == net,
            _ => false,
        }
    }

    /// Whether the two prefixes share at least one address.
    pub fn overlaps(self, other: Cidr) -> bool {
        match (self, other) {
            (Cidr::V4 { net: a, len: la }, Cidr::V4 { net: b, len: lb }) => {
                let m = mask4(la.min(lb));
                a & m == b & m
            }
            (Cidr::V6 { net: a, len: la }, Cidr::V6 { net: b, len: lb }) => {
                let m = mask6(la.min(lb));
                a & m == b & m
            }
            _ => false,
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(self, other: Cidr) -> bool {
        self.prefix_len() <= other.prefix_len() && self.overlaps(other)
    }

    pub fn network(self) -> IpAddr {
        match self {
            Cidr::V4 { net, .. } => IpAddr::V4(Ipv4Addr::from(net)),
            Cidr::V6 { net, .. } => IpAddr::V6(Ipv6Addr::from(net)),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let syntax = || CidrError::Syntax(text.chars().take(60).collect());
        let (addr, len) = text.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let len: u32 = len.parse().map_err(|_| syntax())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > u32::from(max) {
            return Err(CidrError::Length {
                text: text.to_owned(),
                len,
                max,
            });
        }
        let len = len as u8;
        let c = Cidr::containing(addr, len).ok_or_else(syntax)?;
        if c.network() != addr {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                len,
                canonical: c.to_string(),
            });
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix_len())
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Addresses that never leave a hospital's own network: RFC 1918, RFC 6598
/// shared space, loopback, link-local, ULA (fc00::/7). A destination outside
/// every zone and outside these is "the internet".
pub fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Destinations that stay on the local segment (broadcast, multicast): such
/// flows never cross a zone boundary, so the zone policy does not govern them.
pub fn is_local_segment(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        let c: Cidr = "10.20.0.0/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.20.0.0/16");
        assert!(c.contains("10.20.255.1".parse().unwrap()));
        assert!(!c.contains("10.21.0.1".parse().unwrap()));
        let v6: Cidr = "fd00:20::/48".parse().unwrap();
        assert!(v6.contains("fd00:20:0:1::5".parse().unwrap()));
        assert!(!v6.contains("10.20.0.1".parse().unwrap()));
    }

    #[test]
    fn refuses_host_bits_and_bad_lengths() {
        let e = "10.20.0.1/16".parse::<Cidr>().unwrap_err();
        assert!(e.to_string().contains("did you mean 10.20.0.0/16"), "{e}");
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Length { len: 33, .. })
        ));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
            "10.0.0.0/0008",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_and_cover() {
        let a: Cidr = "10.0.0.0/8".parse().unwrap();
        let b: Cidr = "10.20.0.0/16".parse().unwrap();
        let c: Cidr = "10.21.0.0/16".parse().unwrap();
        assert!(a.overlaps(b) && b.overlaps(a) && a.covers(b) && !b.covers(a));
        assert!(!b.overlaps(c));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().covers(c));
    }

    #[test]
    fn private_and_internet() {
        for p in [
            "10.1.2.3",
            "192.168.1.1",
            "172.31.0.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(a: u32, b: u128, l4 in 0u8..=32, l6 in 0u8..=128) {
            for c in [
                Cidr::containing(IpAddr::V4(a.into()), l4).unwrap(),
                Cidr::containing(IpAddr::V6(b.into()), l6).unwrap(),
            ] {
                prop_assert_eq!(c.to_string().parse::<Cidr>().unwrap(), c);
                prop_assert!(c.contains(c.network()));
            }
        }

        #[test]
        fn overlap_matches_ranges(a: u32, la in 0u8..=32, b: u32, lb in 0u8..=32) {
            let x = Cidr::containing(IpAddr::V4(a.into()), la).unwrap();
            let y = Cidr::containing(IpAddr::V4(b.into()), lb).unwrap();
            let (x0, x1) = x.range_v4().unwrap();
            let (y0, y1) = y.range_v4().unwrap();
            prop_assert_eq!(x.overlaps(y), x0 <= y1 && y0 <= x1);
            prop_assert_eq!(x.covers(y), x0 <= y0 && y1 <= x1);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,50}") {
            let _ = s.parse::<Cidr>();
        }
    }
}
