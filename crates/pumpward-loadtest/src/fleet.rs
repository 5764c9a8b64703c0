//! The benchmark fleet: assets in the store, the CA, enrollment codes, and
//! the pumps' identities (key + certificate files kept across runs).

use crate::util::Layout;
use anyhow::{anyhow, bail, Context, Result};
use pumpward_core::inventory::csv::ImportRow;
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_pki::Zeroizing;
use pumpward_pump::DeviceIdentity;
use pumpward_server::pki::{CaService, KekSource, PkiSettings};
use pumpward_store::{Actor, Store};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use std::time::Instant;

/// The firmware version in the inventory and in every hello (so a hello
/// changes nothing in the asset record).
pub const FIRMWARE_VERSION: &str = "8.00.01";
/// A SHA-256 (of "test"), the firmware digest every benchmark pump reports.
pub const FIRMWARE_DIGEST: &str =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The i-th benchmark pump's asset id.
pub fn asset_id(i: usize) -> String {
    format!("LT-{i:05}")
}

pub fn serial(i: usize) -> String {
    format!("LTSN{i:06}")
}

pub fn mac(i: usize) -> String {
    format!(
        "02:4c:54:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

pub fn settings(layout: &Layout) -> PkiSettings {
    PkiSettings::new(KekSource::KeyFile {
        path: layout.kek(),
        create: true,
    })
}

/// Creates (or tops up) the store: `pumps` in-service pumps `LT-00000…`
/// imported in one transaction, and the CA (root + issuing, CRL).
pub async fn setup(layout: &Layout, pumps: usize) -> Result<()> {
    std::fs::create_dir_all(layout.data())?;
    std::fs::create_dir_all(layout.pumps())?;
    let store = Store::open_sqlite(&layout.data()).await?;
    let t0 = Instant::now();
    let mut rows = Vec::with_capacity(pumps);
    for i in 0..pumps {
        let spec = AssetSpec::validate(&AssetDraft {
            asset_id: asset_id(i),
            kind: Some("pump".into()),
            manufacturer: "Baxter".into(),
            model: "Sigma Spectrum".into(),
            serial_number: serial(i),
            firmware_version: FIRMWARE_VERSION.into(),
            mac_address: Some(mac(i)),
            ip_address: Some("127.0.0.1".into()),
            care_area: Some(["Adult ICU", "Med-Surg", "Oncology", "Pediatrics"][i % 4].into()),
            ..Default::default()
        })
        .map_err(|e| anyhow!("asset {i}: {e}"))?;
        rows.push(ImportRow {
            line: i as u64 + 2,
            spec,
            lifecycle_state: Some(LifecycleState::InService),
        });
    }
    let sum = store.import_assets(&rows, false, &Actor::cli()).await?;
    if !sum.refused.is_empty() {
        bail!(
            "import refused rows: {:?}",
            &sum.refused[..sum.refused.len().min(3)]
        );
    }
    println!(
        "assets: {} created, {} unchanged, {} updated in {:.1} s",
        sum.created,
        sum.unchanged,
        sum.updated,
        t0.elapsed().as_secs_f64()
    );
    let ca = CaService::open(store.clone(), settings(layout), true).await?;
    ca.current_crl().await?;
    println!(
        "CA ready; key-encryption key file {}",
        layout.kek().display()
    );
    store.close().await;
    Ok(())
}

/// Creates one fresh one-time enrollment code for each asset through
/// `CaService::create_enrollment_code` (`concurrency` callers at a time),
/// returning `(asset, code)`. Untimed set-up.
pub async fn create_codes(
    layout: &Layout,
    assets: &[String],
    concurrency: usize,
) -> Result<Vec<(String, String)>> {
    let store = Store::open_sqlite(&layout.data()).await?;
    let ca = CaService::open(store.clone(), settings(layout), false).await?;
    let t0 = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let assets: Arc<Vec<String>> = Arc::new(assets.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (ca, next, assets) = (ca.clone(), next.clone(), assets.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(a) = assets.get(i) else { break };
                let (code, _) = ca
                    .create_enrollment_code(a, &Actor::cli())
                    .await
                    .map_err(|e| anyhow!("code for {a}: {e}"))?;
                out.push((i, a.clone(), code));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|x| x.0);
    println!(
        "enrollment codes: {} created in {:.1} s (set-up, not timed)",
        all.len(),
        t0.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(all.into_iter().map(|(_, a, c)| (a, c)).collect())
}

/// The stored sequence watermark of each asset, read before the server
/// starts, so that each session's hello states a `next_seq` that is not a
/// regression and its events continue without gaps.
pub async fn last_seqs(layout: &Layout, assets: &[String]) -> Result<Vec<u64>> {
    let store = Store::open_sqlite(&layout.data()).await?;
    let mut out = Vec::with_capacity(assets.len());
    for a in assets {
        out.push(store.device_last_seq(a).await?);
    }
    store.close().await;
    Ok(out)
}

/// `device_events` rows of the benchmark pumps (`LT-…`).
pub async fn stored_event_count(layout: &Layout) -> Result<i64> {
    let store = Store::open_sqlite(&layout.data()).await?;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM device_events WHERE asset_id LIKE 'LT-%'")
            .fetch_one(store.raw_pool())
            .await?;
    store.close().await;
    Ok(n)
}

/// `(gaps, duplicates stored)` sanity counts for the benchmark pumps.
pub async fn stored_gap_count(layout: &Layout) -> Result<i64> {
    let store = Store::open_sqlite(&layout.data()).await?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_gaps WHERE asset_id LIKE 'LT-%'")
        .fetch_one(store.raw_pool())
        .await?;
    store.close().await;
    Ok(n)
}

/// Writes a pump's key, certificate and chain (no fsync: benchmark state).
pub fn save_identity(layout: &Layout, asset: &str, key: &[u8], certs: &[Vec<u8>]) -> Result<()> {
    let mut text = pumpward_pki::pem_encode("PRIVATE KEY", key);
    for c in certs {
        text.push_str(&pumpward_pki::pem_encode("CERTIFICATE", c));
    }
    let path = layout.pumps().join(format!("{asset}.pem"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// A pump's TLS client identity.
#[derive(Clone)]
pub struct PumpId {
    pub asset: String,
    pub key: Arc<Zeroizing<Vec<u8>>>,
    /// The device certificate, then the issuing CA.
    pub chain: Vec<CertificateDer<'static>>,
}

impl PumpId {
    pub fn key(&self) -> rustls_pki_types::PrivateKeyDer<'static> {
        rustls_pki_types::PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()))
    }
}

/// Loads a pump's identity saved by [`save_identity`], checked by the
/// agent's own rules (`DeviceIdentity::from_parts`: the certificate names
/// this asset, the key is the certificate's).
pub fn load_identity(layout: &Layout, asset: &str) -> Result<PumpId> {
    let path = layout.pumps().join(format!("{asset}.pem"));
    let pem = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (enroll the fleet first: `pumpward-loadtest est`)",
            path.display()
        )
    })?;
    let key =
        PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let key = Zeroizing::new(key.secret_pkcs8_der().to_vec());
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    DeviceIdentity::from_parts(key.clone(), &certs, asset)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(PumpId {
        asset: asset.to_owned(),
        key: Arc::new(key),
        chain: certs.into_iter().map(CertificateDer::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_distinct() {
        assert_eq!(asset_id(7), "LT-00007");
        assert_eq!(mac(0x010203), "02:4c:54:01:02:03");
        assert_ne!(mac(1), mac(256));
        assert_eq!(serial(12), "LTSN000012");
    }
}
