//! Users, sessions, API tokens, first-start setup tokens, MFA policy and
//! login-failure records.
//!
//! The store never sees a password, a session cookie or a token in clear: it
//! keeps argon2id hashes of passwords and SHA-256 hashes of the high-entropy
//! random tokens (a slow hash adds nothing for 256-bit random values).

use crate::{Actor, Result, Store, StoreError};
use pumpward_core::access::{Permission, Role};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    /// Base32 TOTP secret once enrolled.
    #[serde(skip)]
    pub totp_secret: Option<String>,
    pub disabled: bool,
    pub created_at: String,
}

impl User {
    pub fn mfa_enrolled(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// How far a browser session has come through login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStage {
    /// Password accepted; a TOTP code is still due.
    MfaPending,
    /// Password accepted; the role requires MFA and the user must enrol now.
    MfaEnroll,
    /// Fully logged in.
    Active,
}

impl SessionStage {
    fn as_str(self) -> &'static str {
        match self {
            SessionStage::MfaPending => "mfa_pending",
            SessionStage::MfaEnroll => "mfa_enroll",
            SessionStage::Active => "active",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "mfa_pending" => SessionStage::MfaPending,
            "mfa_enroll" => SessionStage::MfaEnroll,
            "active" => SessionStage::Active,
            other => {
                return Err(StoreError::Invalid(format!(
                    "unknown session stage {other:?}"
                )))
            }
        })
    }
}

/// A browser session, with its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub user: User,
    pub stage: SessionStage,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What is needed to open a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: i64,
    pub stage: SessionStage,
    pub csrf_token: String,
    pub source: Option<String>,
    pub expires_at: OffsetDateTime,
}

/// An API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub scopes: Vec<Permission>,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.password_hash, u.totp_secret, u.disabled, u.created_at";

fn user_from_row(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: r
            .try_get::<String, _>("role")?
            .parse()
            .map_err(|e| StoreError::Invalid(format!("stored user has an invalid role: {e}")))?,
        password_hash: r.try_get("password_hash")?,
        totp_secret: r.try_get("totp_secret")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn token_from_row(r: &AnyRow) -> Result<ApiToken> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        scopes: scopes
            .split_whitespace()
            .map(|s| {
                s.parse()
                    .map_err(|e| StoreError::Invalid(format!("stored token scope: {e}")))
            })
            .collect::<Result<_>>()?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn parse_time(s: String) -> Result<OffsetDateTime> {
    timefmt::parse(&s).map_err(|e| StoreError::Invalid(format!("stored time {s:?}: {e}")))
}

/// The username of user `id`, inside a transaction.
async fn username_of(conn: &mut crate::Conn, id: i64) -> Result<String> {
    Ok(sqlx::query("SELECT username FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("user {id}"),
        })?
        .try_get("username")?)
}

impl Store {
    pub async fn user_count(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get("n")?)
    }

    /// How many administrators exist. First-start setup stays open until
    /// there is one: service accounts (such as the demo's simulated fleet)
    /// do not close it.
    pub async fn admin_count(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get("n")?)
    }

    /// Creates a user. With `only_if_none`, refuses unless there are no users
    /// yet (the first-start setup path), checked inside the same transaction.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        password_hash: &str,
        only_if_none: bool,
        actor: &Actor,
    ) -> Result<User> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        if only_if_none {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if n > 0 {
                return Err(StoreError::Conflict(
                    "an administrator already exists; setup is closed".into(),
                ));
            }
        }
        if sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "user {username} already exists"
            )));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO users (username, display_name, role, password_hash, totp_secret, totp_last_step, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, NULL, NULL, 0, $5, $5) RETURNING id",
        )
        .bind(username.to_owned())
        .bind(display_name.to_owned())
        .bind(role.as_str())
        .bind(password_hash.to_owned())
        .bind(timefmt::format(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit_audited(
            vec![actor
                .entry("user.create", Outcome::Success)
                .object(format!("user:{username}"))
                .details(&serde_json::json!({ "role": role, "display_name": display_name }))],
            now,
        )
        .await?;
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user".into(),
            })
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1"
        ))
        .bind(username.to_owned())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.username"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Changes role and/or the disabled flag; disabling ends the user's sessions.
    pub async fn update_user(
        &self,
        id: i64,
        role: Role,
        disabled: bool,
        actor: &Actor,
    ) -> Result<User> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let old = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("user {id}"),
        })?;
        if old.role == role && old.disabled == disabled {
            return Ok(old);
        }
        if old.role == Role::Admin && (role != Role::Admin || disabled) {
            let admins: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0",
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if admins <= 1 && !old.disabled {
                return Err(StoreError::Conflict(
                    "this is the last active administrator; add another first".into(),
                ));
            }
        }
        sqlx::query("UPDATE users SET role = $1, disabled = $2, updated_at = $3 WHERE id = $4")
            .bind(role.as_str())
            .bind(disabled as i64)
            .bind(timefmt::format(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if disabled || role != old.role {
            // A changed role must not keep the old role's open sessions.
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit_audited(
            vec![actor
                .entry("user.update", Outcome::Success)
                .object(format!("user:{}", old.username))
                .details(&serde_json::json!({
                    "role": [old.role, role], "disabled": [old.disabled, disabled]
                }))],
            now,
        )
        .await?;
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user".into(),
            })
    }

    /// Replaces a password hash and ends the user's other sessions.
    pub async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        keep_session: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let name = username_of(&mut tx, id).await?;
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash.to_owned())
            .bind(timefmt::format(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(id)
            .bind(keep_session.unwrap_or("").to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit_audited(
            vec![actor
                .entry("user.password", Outcome::Success)
                .object(format!("user:{name}"))],
            now,
        )
        .await?;
        Ok(())
    }

    /// Stores (or with `None` removes) a user's TOTP secret. `used_step` is
    /// the time step of the code that proved the enrolment; it counts as used.
    pub async fn set_totp(
        &self,
        id: i64,
        secret_b32: Option<&str>,
        used_step: Option<i64>,
        actor: &Actor,
    ) -> Result<()> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let name = username_of(&mut tx, id).await?;
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_last_step = $4, updated_at = $2 WHERE id = $3",
        )
        .bind(secret_b32.map(str::to_owned))
        .bind(timefmt::format(now))
        .bind(id)
        .bind(used_step)
        .execute(&mut *tx)
        .await?;
        let action = if secret_b32.is_some() {
            "user.mfa_enrol"
        } else {
            "user.mfa_reset"
        };
        tx.commit_audited(
            vec![actor
                .entry(action, Outcome::Success)
                .object(format!("user:{name}"))],
            now,
        )
        .await?;
        Ok(())
    }

    /// Claims a TOTP time step for a user; false if it (or a later one) was
    /// already used. The compare-and-set makes a code single-use even when two
    /// logins race with it.
    pub async fn claim_totp_step(&self, id: i64, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn totp_last_step(&self, id: i64) -> Result<Option<i64>> {
        let r = sqlx::query("SELECT totp_last_step FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get("totp_last_step")?)
    }

    pub async fn record_login_failure(&self, username: &str, at: OffsetDateTime) -> Result<()> {
        sqlx::query("INSERT INTO login_failures (username, at) VALUES ($1, $2)")
            .bind(username.to_owned())
            .bind(timefmt::format(at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Failed logins for `username` since `since`.
    pub async fn login_failures_since(
        &self,
        username: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>> {
        let rows = sqlx::query(
            "SELECT at FROM login_failures WHERE username = $1 AND at >= $2 ORDER BY at",
        )
        .bind(username.to_owned())
        .bind(timefmt::format(since))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| parse_time(r.try_get("at")?))
            .collect()
    }

    pub async fn clear_login_failures(&self, username: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE username = $1")
            .bind(username.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn create_session(&self, s: &NewSession) -> Result<()> {
        let now = timefmt::format(crate::now());
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, stage, csrf_token, source, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(s.token_hash.clone())
        .bind(s.user_id)
        .bind(s.stage.as_str())
        .bind(s.csrf_token.clone())
        .bind(s.source.clone())
        .bind(now)
        .bind(timefmt::format(s.expires_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let Some(r) = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.token_hash, s.stage, s.csrf_token, s.created_at AS s_created, \
             s.last_seen_at, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
        ))
        .bind(token_hash.to_owned())
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(Session {
            token_hash: r.try_get("token_hash")?,
            user: user_from_row(&r)?,
            stage: SessionStage::parse(&r.try_get::<String, _>("stage")?)?,
            csrf_token: r.try_get("csrf_token")?,
            created_at: parse_time(r.try_get("s_created")?)?,
            last_seen_at: parse_time(r.try_get("last_seen_at")?)?,
            expires_at: parse_time(r.try_get("expires_at")?)?,
        }))
    }

    pub async fn touch_session(&self, token_hash: &str, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(timefmt::format(at))
            .bind(token_hash.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_session_stage(&self, token_hash: &str, stage: SessionStage) -> Result<()> {
        sqlx::query("UPDATE sessions SET stage = $1 WHERE token_hash = $2")
            .bind(stage.as_str())
            .bind(token_hash.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes sessions past their absolute expiry or idle since `idle_before`.
    pub async fn purge_sessions(
        &self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(timefmt::format(now))
            .bind(timefmt::format(idle_before))
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn create_api_token(
        &self,
        user: &User,
        name: &str,
        token_hash: &str,
        scopes: &[Permission],
        expires_at: OffsetDateTime,
        actor: &Actor,
    ) -> Result<ApiToken> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let scopes_s = scopes
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let id: i64 = sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at, expires_at, revoked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) RETURNING id",
        )
        .bind(user.id)
        .bind(name.to_owned())
        .bind(token_hash.to_owned())
        .bind(scopes_s.clone())
        .bind(timefmt::format(now))
        .bind(timefmt::format(expires_at))
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit_audited(
            vec![actor
                .entry("token.create", Outcome::Success)
                .object(format!("token:{id}"))
                .details(&serde_json::json!({
                    "owner": user.username, "name": name, "scopes": scopes_s,
                    "expires_at": timefmt::format(expires_at)
                }))],
            now,
        )
        .await?;
        self.api_token(id).await
    }

    pub async fn api_token(&self, id: i64) -> Result<ApiToken> {
        sqlx::query("SELECT * FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("token {id}"),
            })
    }

    /// The token with this hash and its owner, whatever its state (the
    /// caller checks expiry and revocation so that it can say which).
    pub async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<(ApiToken, User)>> {
        let Some(r) = sqlx::query("SELECT * FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let t = token_from_row(&r)?;
        let u = self
            .user_by_id(t.user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "token owner".into(),
            })?;
        Ok(Some((t, u)))
    }

    pub async fn touch_api_token(&self, id: i64, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(timefmt::format(at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn list_api_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>> {
        let rows = match user_id {
            Some(u) => {
                sqlx::query("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY id")
                    .bind(u)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM api_tokens ORDER BY id")
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; with `owner`, only if it belongs to that user.
    pub async fn revoke_api_token(&self, id: i64, owner: Option<i64>, actor: &Actor) -> Result<()> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3 = 0 OR user_id = $3)",
        )
        .bind(timefmt::format(now))
        .bind(id)
        .bind(owner.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound {
                what: format!("active token {id}"),
            });
        }
        tx.commit_audited(
            vec![actor
                .entry("token.revoke", Outcome::Success)
                .object(format!("token:{id}"))],
            now,
        )
        .await?;
        Ok(())
    }

    pub async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("INSERT INTO setup_tokens (token_hash, created_at, expires_at, used_at) VALUES ($1, $2, $3, NULL)")
            .bind(token_hash.to_owned())
            .bind(timefmt::format(crate::now()))
            .bind(timefmt::format(expires_at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether a setup token is unused and unexpired (without using it).
    pub async fn setup_token_valid(&self, token_hash: &str, now: OffsetDateTime) -> Result<bool> {
        let r = sqlx::query("SELECT 1 AS ok FROM setup_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(token_hash.to_owned())
            .bind(timefmt::format(now))
            .fetch_optional(self.pool())
            .await?;
        Ok(r.is_some())
    }

    /// Uses a setup token and creates the first administrator, atomically:
    /// the token is spent only if the account is created.
    pub async fn complete_setup(
        &self,
        token_hash: &str,
        username: &str,
        display_name: &str,
        password_hash: &str,
        source: Option<String>,
    ) -> Result<User> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let used = sqlx::query("UPDATE setup_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1")
            .bind(timefmt::format(now))
            .bind(token_hash.to_owned())
            .execute(&mut *tx)
            .await?;
        if used.rows_affected() != 1 {
            return Err(StoreError::Invalid(
                "this setup link is invalid, expired or already used".into(),
            ));
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if n > 0 {
            return Err(StoreError::Conflict(
                "an administrator already exists; setup is closed".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO users (username, display_name, role, password_hash, totp_secret, totp_last_step, disabled, created_at, updated_at) \
             VALUES ($1, $2, 'admin', $3, NULL, NULL, 0, $4, $4)",
        )
        .bind(username.to_owned())
        .bind(display_name.to_owned())
        .bind(password_hash.to_owned())
        .bind(timefmt::format(now))
        .execute(&mut *tx)
        .await?;
        let actor = Actor {
            id: format!("setup:{username}"),
            source,
        };
        tx.commit_audited(
            vec![actor
                .entry("user.create", Outcome::Success)
                .object(format!("user:{username}"))
                .reason("first administrator, created with the one-time setup link")
                .details(&serde_json::json!({ "role": "admin" }))],
            now,
        )
        .await?;
        self.user_by_name(username)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user".into(),
            })
    }

    /// Which roles must use MFA.
    pub async fn mfa_policy(&self) -> Result<Vec<(Role, bool)>> {
        let rows = sqlx::query("SELECT role, required FROM mfa_policy ORDER BY role")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(role) = r.try_get::<String, _>("role")?.parse::<Role>() {
                out.push((role, r.try_get::<i64, _>("required")? != 0));
            }
        }
        Ok(out)
    }

    pub async fn mfa_required(&self, role: Role) -> Result<bool> {
        let r = sqlx::query("SELECT required FROM mfa_policy WHERE role = $1")
            .bind(role.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<i64, _>("required")? != 0,
            None => role.mfa_required_by_default(),
        })
    }

    pub async fn set_mfa_required(&self, role: Role, required: bool, actor: &Actor) -> Result<()> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE mfa_policy SET required = $1 WHERE role = $2")
            .bind(required as i64)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit_audited(
            vec![actor
                .entry("policy.mfa", Outcome::Success)
                .object(format!("role:{role}"))
                .details(&serde_json::json!({ "required": required }))],
            now,
        )
        .await?;
        Ok(())
    }
}
