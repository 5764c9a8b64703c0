//! Drug-library assignment (issue 4, item 5): which pumps a library is for.
//!
//! A library is assigned to care areas (as the inventory names them) and/or
//! pump groups (a named list of pumps that biomed keeps, for pumps whose
//! care area does not say it, e.g. a loaner pool). Its scope is the
//! in-service and maintenance pumps in any of those; a library without
//! any assignment is for the whole fleet. A rollout addresses only the
//! pumps in scope when it is created, and the compliance view counts only
//! those ([`in_scope`] is the one statement of "in scope" both use).
//!
//! An assigned care area must be a care area of the library's newest
//! published version (the pump installs a library only if it has a profile
//! for the pump's care area, so a care area the library lacks would make
//! every pump there refuse it); a rollout checks the same against the
//! version it sends.
//!
//! A group a library is assigned to cannot be deleted: that library, if
//! assigned to the group alone, would silently go to the whole fleet.

use crate::{Actor, Backend, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// Longest care area or group name.
pub const MAX_TARGET_CHARS: usize = 200;
/// Longest group description.
pub const MAX_GROUP_DESCRIPTION_CHARS: usize = 500;
/// Most pumps in one group.
pub const MAX_GROUP_MEMBERS: usize = 20_000;
/// Most care areas or groups in one assignment.
pub const MAX_ASSIGNED: usize = 200;

/// SQL condition: the asset `a` is in the scope of library `$1`.
///
/// A care area matches ignoring surrounding space and ASCII case only, as
/// the pump's own [`pumpward_druglib::Library::resolve_care_area`] does:
/// SQLite's `LOWER` folds ASCII only, and PostgreSQL's does the same under
/// the "C" collation. (With Unicode folding on PostgreSQL, a rollout would
/// address pumps that then refuse the library as not for their care area,
/// and they would stay stale.)
pub(crate) fn in_scope(backend: Backend) -> String {
    let fold = |x: &str| match backend {
        Backend::Sqlite => format!("LOWER(TRIM({x}))"),
        Backend::Postgres => format!("LOWER(TRIM({x}) COLLATE \"C\")"),
    };
    format!(
        "(NOT EXISTS (SELECT 1 FROM library_assignments la0 WHERE la0.library_id = $1) \
         OR EXISTS (SELECT 1 FROM library_assignments la1 WHERE la1.library_id = $1 \
            AND la1.kind = 'care_area' AND {} = {}) \
         OR EXISTS (SELECT 1 FROM library_assignments la2 JOIN pump_group_members m \
            ON m.group_name = la2.target WHERE la2.library_id = $1 AND la2.kind = 'pump_group' \
            AND m.asset_id = a.asset_id))",
        fold("la1.target"),
        fold("a.care_area")
    )
}

/// A named list of pumps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PumpGroup {
    pub name: String,
    pub description: String,
    /// Asset ids, sorted.
    pub members: Vec<String>,
    pub updated_by: String,
    pub updated_at: String,
}

/// A pump of a group with what the inventory says of it (the pump-groups
/// page lists these, so biomed sees a retired or moved pump in a group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPump {
    pub asset_id: String,
    pub manufacturer: String,
    pub model: String,
    pub care_area: Option<String>,
    pub lifecycle_state: String,
}

/// Where a library goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LibraryAssignment {
    pub library_id: String,
    /// Care areas, as given, sorted.
    pub care_areas: Vec<String>,
    /// Pump group names, sorted.
    pub pump_groups: Vec<String>,
    /// Who set it and when (none: never assigned).
    pub assigned_by: Option<String>,
    pub assigned_at: Option<String>,
}

impl LibraryAssignment {
    /// No care area and no group: the library is for every pump.
    pub fn whole_fleet(&self) -> bool {
        self.care_areas.is_empty() && self.pump_groups.is_empty()
    }
}

/// A name or care area: trimmed, 1 to [`MAX_TARGET_CHARS`] characters, no
/// control characters.
fn target(what: &str, s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > MAX_TARGET_CHARS {
        return Err(StoreError::Invalid(format!(
            "{what} {:?}: 1 to {MAX_TARGET_CHARS} characters",
            t.chars().take(40).collect::<String>()
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} {:?}: control characters are not allowed",
            t.chars().take(40).collect::<String>()
        )));
    }
    Ok(t.to_owned())
}

/// Trimmed, checked and without repeats ignoring ASCII case, as a care
/// area is matched (first spelling kept), sorted.
fn targets(what: &str, list: &[String]) -> Result<Vec<String>> {
    if list.len() > MAX_ASSIGNED {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_ASSIGNED} {what}s per library ({} given)",
            list.len()
        )));
    }
    let mut seen = BTreeMap::new();
    for s in list {
        let t = target(what, s)?;
        seen.entry(t.to_ascii_lowercase()).or_insert(t);
    }
    let mut out: Vec<String> = seen.into_values().collect();
    out.sort();
    Ok(out)
}

fn parse_content(content: &str) -> Result<pumpward_druglib::Library> {
    pumpward_druglib::json::parse_library_json(content.as_bytes())
        .map_err(|e| StoreError::Invalid(format!("stored library content: {e}")))
}

/// The care areas of `care_areas` that library content `content` (canonical
/// JSON) has no profile for (by id or name, as the pump resolves them).
pub(crate) fn missing_care_areas(content: &str, care_areas: &[String]) -> Result<Vec<String>> {
    let lib = parse_content(content)?;
    Ok(care_areas
        .iter()
        .filter(|a| lib.resolve_care_area(a).is_none())
        .cloned()
        .collect())
}

/// `care_areas` as the library's profiles name them: the scope compares an
/// assignment with the care area the inventory records, which is a name,
/// so one given by the profile's id ("adult-icu") is kept as its name
/// ("Adult ICU"); otherwise it would match no pump. Every care area must
/// resolve ([`missing_care_areas`] is checked first).
fn profile_names(content: &str, care_areas: &[String]) -> Result<Vec<String>> {
    let lib = parse_content(content)?;
    let names: Vec<String> = care_areas
        .iter()
        .map(|a| {
            lib.resolve_care_area(a)
                .map_or_else(|| a.clone(), |c| c.name.clone())
        })
        .collect();
    targets("care area", &names)
}

/// A row-lock clause on PostgreSQL; SQLite's `BEGIN IMMEDIATE` write
/// transaction already excludes every other writer.
fn row_lock(conn: &sqlx::AnyConnection, clause: &'static str) -> &'static str {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        ""
    } else {
        clause
    }
}

impl Store {
    /// Creates or replaces a pump group (its description and members);
    /// every member must be a pump in the inventory. Audited.
    pub async fn set_pump_group(
        &self,
        name: &str,
        description: &str,
        members: &[String],
        actor: &Actor,
    ) -> Result<PumpGroup> {
        let name = target("pump group name", name)?;
        let description = description.trim().to_owned();
        if description.chars().count() > MAX_GROUP_DESCRIPTION_CHARS {
            return Err(StoreError::Invalid(format!(
                "the description is longer than {MAX_GROUP_DESCRIPTION_CHARS} characters"
            )));
        }
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_GROUP_MEMBERS} pumps per group ({} given)",
                members.len()
            )));
        }
        let mut ids: Vec<String> = members.iter().map(|m| m.trim().to_owned()).collect();
        ids.sort();
        ids.dedup();
        let now = crate::now();
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        for chunk in ids.chunks(500) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let sql =
                format!("SELECT asset_id FROM assets WHERE kind = 'pump' AND asset_id IN ({list})");
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for a in chunk {
                q = q.bind(a.clone());
            }
            let found: std::collections::BTreeSet<String> =
                q.fetch_all(&mut *tx).await?.into_iter().collect();
            let unknown: Vec<&str> = chunk
                .iter()
                .filter(|a| !found.contains(*a))
                .map(String::as_str)
                .take(10)
                .collect();
            if !unknown.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "not pumps in the inventory: {}",
                    unknown.join(", ")
                )));
            }
        }
        let existed = sqlx::query("SELECT 1 AS x FROM pump_groups WHERE name = $1")
            .bind(name.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if existed {
            sqlx::query(
                "UPDATE pump_groups SET description = $1, updated_by = $2, updated_at = $3 \
                 WHERE name = $4",
            )
            .bind(description.clone())
            .bind(actor.id.clone())
            .bind(now_s.clone())
            .bind(name.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM pump_group_members WHERE group_name = $1")
                .bind(name.clone())
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO pump_groups (name, description, updated_by, updated_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(name.clone())
            .bind(description.clone())
            .bind(actor.id.clone())
            .bind(now_s.clone())
            .execute(&mut *tx)
            .await?;
        }
        for chunk in ids.chunks(200) {
            let values = (0..chunk.len())
                .map(|i| format!("($1, ${})", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql =
                format!("INSERT INTO pump_group_members (group_name, asset_id) VALUES {values}");
            let mut q = sqlx::query(&sql).bind(name.clone());
            for a in chunk {
                q = q.bind(a.clone());
            }
            q.execute(&mut *tx).await?;
        }
        let entry = actor
            .entry("pump_group.set", Outcome::Success)
            .object(format!("pump_group:{name}"))
            .details(&serde_json::json!({
                "created": !existed, "description": description, "pumps": ids.len(),
            }));
        tx.commit_audited(vec![entry], now).await?;
        self.pump_group(&name).await
    }

    /// One pump group with its members.
    pub async fn pump_group(&self, name: &str) -> Result<PumpGroup> {
        let row = sqlx::query(
            "SELECT name, description, updated_by, updated_at FROM pump_groups WHERE name = $1",
        )
        .bind(name.trim().to_owned())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("pump group {name:?}"),
        })?;
        let name: String = row.try_get("name")?;
        let members = sqlx::query_scalar(
            "SELECT asset_id FROM pump_group_members WHERE group_name = $1 ORDER BY asset_id",
        )
        .bind(name.clone())
        .fetch_all(self.pool())
        .await?;
        Ok(PumpGroup {
            name,
            description: row.try_get("description")?,
            members,
            updated_by: row.try_get("updated_by")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Every pump group, by name, with its members.
    pub async fn pump_groups(&self) -> Result<Vec<PumpGroup>> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pump_groups ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.push(self.pump_group(&n).await?);
        }
        Ok(out)
    }

    /// The first `limit` pumps of group `name` by asset id, with their
    /// model, care area and lifecycle state.
    pub async fn pump_group_pumps(&self, name: &str, limit: i64) -> Result<Vec<GroupPump>> {
        let rows = sqlx::query(
            "SELECT a.asset_id, a.manufacturer, a.model, a.care_area, a.lifecycle_state \
             FROM pump_group_members m JOIN assets a ON a.asset_id = m.asset_id \
             WHERE m.group_name = $1 ORDER BY a.asset_id LIMIT $2",
        )
        .bind(name.trim().to_owned())
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GroupPump {
                    asset_id: r.try_get("asset_id")?,
                    manufacturer: r.try_get("manufacturer")?,
                    model: r.try_get("model")?,
                    care_area: r.try_get("care_area")?,
                    lifecycle_state: r.try_get("lifecycle_state")?,
                })
            })
            .collect()
    }

    /// The libraries assigned to each pump group: group name → library
    /// ids, sorted (a group no library names is absent).
    pub async fn pump_group_libraries(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let rows = sqlx::query(
            "SELECT target, library_id FROM library_assignments WHERE kind = 'pump_group' \
             ORDER BY target, library_id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &rows {
            out.entry(r.try_get("target")?)
                .or_default()
                .push(r.try_get("library_id")?);
        }
        Ok(out)
    }

    /// Deletes a pump group. Refused (`Conflict`, naming them) while a
    /// library is assigned to it: with the group gone, a library assigned
    /// to it alone would silently widen to the whole fleet. Audited.
    pub async fn delete_pump_group(&self, name: &str, actor: &Actor) -> Result<()> {
        let name = name.trim().to_owned();
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        // Locked, so that an assignment naming the group concurrently
        // either lands first (and is seen below) or finds it gone.
        let sql = format!(
            "SELECT description FROM pump_groups WHERE name = $1{}",
            row_lock(&tx, " FOR UPDATE")
        );
        let description: String = sqlx::query_scalar(&sql)
            .bind(name.clone())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("pump group {name:?}"),
            })?;
        let libraries: Vec<String> = sqlx::query_scalar(
            "SELECT library_id FROM library_assignments WHERE kind = 'pump_group' \
             AND target = $1 ORDER BY library_id",
        )
        .bind(name.clone())
        .fetch_all(&mut *tx)
        .await?;
        if !libraries.is_empty() {
            return Err(StoreError::Conflict(format!(
                "pump group {name:?} is still assigned to these drug libraries: {}; \
                 remove it from their assignment first",
                libraries.join(", ")
            )));
        }
        let pumps: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pump_group_members WHERE group_name = $1")
                .bind(name.clone())
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM pump_group_members WHERE group_name = $1")
            .bind(name.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pump_groups WHERE name = $1")
            .bind(name.clone())
            .execute(&mut *tx)
            .await?;
        let entry = actor
            .entry("pump_group.delete", Outcome::Success)
            .object(format!("pump_group:{name}"))
            .details(&serde_json::json!({ "description": description, "pumps": pumps }));
        tx.commit_audited(vec![entry], now).await?;
        Ok(())
    }

    /// Where a library is assigned (empty: the whole fleet).
    pub async fn library_assignment(&self, library_id: &str) -> Result<LibraryAssignment> {
        let exists = sqlx::query("SELECT 1 AS x FROM drug_libraries WHERE library_id = $1")
            .bind(library_id.to_owned())
            .fetch_optional(self.pool())
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound {
                what: format!("library {library_id}"),
            });
        }
        let rows = sqlx::query(
            "SELECT kind, target, assigned_by, assigned_at FROM library_assignments \
             WHERE library_id = $1 ORDER BY kind, target",
        )
        .bind(library_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut a = LibraryAssignment {
            library_id: library_id.to_owned(),
            ..Default::default()
        };
        for r in &rows {
            let (kind, t): (String, String) = (r.try_get("kind")?, r.try_get("target")?);
            if kind == "care_area" {
                a.care_areas.push(t);
            } else {
                a.pump_groups.push(t);
            }
            a.assigned_by = Some(r.try_get("assigned_by")?);
            a.assigned_at = Some(r.try_get("assigned_at")?);
        }
        Ok(a)
    }

    /// Replaces a library's assignment (both lists empty: the whole fleet).
    /// Groups must exist; care areas must be in the newest published
    /// version. Applies to rollouts created from now on. Audited with the
    /// old and the new assignment.
    pub async fn set_library_assignment(
        &self,
        library_id: &str,
        care_areas: &[String],
        pump_groups: &[String],
        actor: &Actor,
    ) -> Result<LibraryAssignment> {
        let old = self.library_assignment(library_id).await?;
        let mut areas = targets("care area", care_areas)?;
        let groups = targets("pump group", pump_groups)?;
        let now = crate::now();
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        // Shared lock: a concurrent delete of the group waits for this
        // assignment and then refuses, or wins and this finds no group.
        let sql = format!(
            "SELECT 1 AS x FROM pump_groups WHERE name = $1{}",
            row_lock(&tx, " FOR SHARE")
        );
        for g in &groups {
            let found = sqlx::query(&sql)
                .bind(g.clone())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !found {
                return Err(StoreError::Invalid(format!("no pump group {g:?}")));
            }
        }
        let newest: Option<(i64, String)> = sqlx::query(
            "SELECT version, content FROM drug_library_revisions WHERE library_id = $1 \
             AND state = 'published' ORDER BY version DESC LIMIT 1",
        )
        .bind(library_id.to_owned())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| Ok::<_, StoreError>((r.try_get("version")?, r.try_get("content")?)))
        .transpose()?;
        if let Some((v, content)) = &newest {
            let missing = missing_care_areas(content, &areas)?;
            if !missing.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "version {v} of library {library_id} has no care area {}: its pumps would refuse it",
                    missing.join(", ")
                )));
            }
            areas = profile_names(content, &areas)?;
        }
        sqlx::query("DELETE FROM library_assignments WHERE library_id = $1")
            .bind(library_id.to_owned())
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(&str, &String)> = areas
            .iter()
            .map(|a| ("care_area", a))
            .chain(groups.iter().map(|g| ("pump_group", g)))
            .collect();
        for (kind, t) in rows {
            sqlx::query(
                "INSERT INTO library_assignments (library_id, kind, target, assigned_by, \
                 assigned_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(library_id.to_owned())
            .bind(kind.to_owned())
            .bind(t.clone())
            .bind(actor.id.clone())
            .bind(now_s.clone())
            .execute(&mut *tx)
            .await?;
        }
        let entry = actor
            .entry("library.assignment.set", Outcome::Success)
            .object(format!("library:{library_id}"))
            .details(&serde_json::json!({
                "care_areas": areas, "pump_groups": groups,
                "previous": { "care_areas": old.care_areas, "pump_groups": old.pump_groups },
            }));
        tx.commit_audited(vec![entry], now).await?;
        self.library_assignment(library_id).await
    }
}
