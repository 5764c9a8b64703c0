//! The network zone policy as versioned documents (issue 6).
//!
//! Each save adds a version; none is ever changed, so the version list is
//! the policy's history and any version can be exported again. The current
//! policy is the highest version; when none is stored, callers use the
//! starter policy shipped with `pumpward-net`.
//!
//! Invariants:
//! - A stored text always parses as a consistent policy document
//!   (`PolicyDocument::from_toml`); the check against the inventory
//!   (`pumpward_net::review`) is the caller's gate, since it needs the
//!   caller's view of what an error is worth showing.
//! - Saving is audited (`network.policy.save`) in the same transaction, and
//!   a save based on an older version than the current one is refused, so
//!   two editors never silently overwrite each other.

use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::inventory::DeviceModel;
use pumpward_core::timefmt;
use pumpward_net::{AssetIdentity, PolicyDocument};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Longest comment kept with a version.
pub const MAX_POLICY_COMMENT: usize = 500;

/// One stored version of the policy, with its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyVersion {
    pub version: i64,
    /// The policy's own name.
    pub name: String,
    /// SHA-256 of the text, hex.
    pub digest: String,
    /// `user:<name>`, `cli:<os user>`, …
    pub author: String,
    pub created_at: String,
    pub comment: String,
    /// The TOML text as saved.
    pub toml: String,
}

fn version_from_row(r: &AnyRow) -> Result<PolicyVersion> {
    Ok(PolicyVersion {
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        digest: r.try_get("digest")?,
        author: r.try_get("author")?,
        created_at: r.try_get("created_at")?,
        comment: r.try_get("comment")?,
        toml: r.try_get("body")?,
    })
}

const COLUMNS: &str = "version, name, digest, author, created_at, comment, body";

impl Store {
    /// Saves `toml` as the next version of the network policy. `base` is the
    /// version the author started from (None: from the starter policy, when
    /// none was stored); a save on an outdated base is a conflict.
    pub async fn save_network_policy(
        &self,
        toml: &str,
        comment: &str,
        base: Option<i64>,
        actor: &Actor,
    ) -> Result<PolicyVersion> {
        let doc = PolicyDocument::from_toml(toml)
            .map_err(|e| StoreError::Invalid(format!("the policy is not valid: {e}")))?;
        let comment = comment.trim();
        if comment.chars().count() > MAX_POLICY_COMMENT {
            return Err(StoreError::Invalid(format!(
                "comment: at most {MAX_POLICY_COMMENT} characters"
            )));
        }
        let now = crate::now();
        let digest = hex::encode(Sha256::digest(toml.as_bytes()));
        let mut tx = self.write_tx().await?;
        let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM network_policies")
            .fetch_one(&mut *tx)
            .await?
            .try_get("v")?;
        if current != base {
            return Err(StoreError::Conflict(format!(
                "the policy was changed meanwhile: the current version is {}, this edit started from {}",
                current.map_or("the starter policy".to_owned(), |v| v.to_string()),
                base.map_or("the starter policy".to_owned(), |v| v.to_string()),
            )));
        }
        let v = PolicyVersion {
            version: current.unwrap_or(0) + 1,
            name: doc.policy.name.clone(),
            digest,
            author: actor.id.clone(),
            created_at: timefmt::format(now),
            comment: comment.to_owned(),
            toml: toml.to_owned(),
        };
        sqlx::query(
            "INSERT INTO network_policies (version, body, name, digest, author, created_at, comment) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(v.version)
        .bind(v.toml.clone())
        .bind(v.name.clone())
        .bind(v.digest.clone())
        .bind(v.author.clone())
        .bind(v.created_at.clone())
        .bind(v.comment.clone())
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("network.policy.save", Outcome::Success)
            .object(format!("network-policy:{}", v.version))
            .details(&serde_json::json!({
                "version": v.version,
                "name": v.name,
                "digest": v.digest,
                "comment": v.comment,
                "zones": doc.policy.zones.len(),
                "conduits": doc.policy.conduits.len(),
            }));
        tx.commit_audited(vec![entry], now).await?;
        Ok(v)
    }

    /// The current (highest) version, if any was saved.
    pub async fn current_network_policy(&self) -> Result<Option<PolicyVersion>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM network_policies ORDER BY version DESC LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    /// One version.
    pub async fn network_policy_version(&self, version: i64) -> Result<PolicyVersion> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM network_policies WHERE version = $1"
        ))
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("network policy version {version}"),
        })?;
        version_from_row(&row)
    }

    /// Every version, newest first (the text is left empty: lists do not
    /// need it).
    pub async fn network_policy_versions(&self) -> Result<Vec<PolicyVersion>> {
        let rows = sqlx::query(
            "SELECT version, name, digest, author, created_at, comment, '' AS body \
             FROM network_policies ORDER BY version DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// The inventory's network identities (assets with a zone) and the device
    /// catalogue, for checking and evaluating the policy.
    pub async fn network_identities(
        &self,
        listing: pumpward_net::inventory::Listing,
    ) -> Result<(Vec<AssetIdentity>, Vec<DeviceModel>)> {
        let models: Vec<DeviceModel> = self
            .list_models()
            .await?
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let mut assets = Vec::new();
        let mut f = crate::AssetFilter {
            limit: 500,
            ..Default::default()
        };
        loop {
            let page = self.list_assets(&f).await?;
            assets.extend(page.items);
            match page.next_cursor {
                Some(c) => f.after = Some(c),
                None => break,
            }
        }
        Ok((
            pumpward_net::inventory::identities(&assets, &models, listing),
            models,
        ))
    }
}
