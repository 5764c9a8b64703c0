//! The demo's drug-library storyline, played once the simulated fleet is
//! up (issue 4, "done when"):
//!
//! 1. the simulator's scenarios (the rules' alerts), one after the other;
//! 2. pharmacist A drafts a change to the published library (tighter
//!    heparin hard maximum in the Adult ICU) and submits it; pharmacist B
//!    approves it, re-authenticating with her password, and publishes it
//!    signed — all through the REST API, with each pharmacist's own token;
//! 3. a staged rollout of the new version: a pilot share first, then, once
//!    the pilot's pumps have answered, everyone;
//! 4. the demo waits until the compliance view — every pump the library is
//!    assigned to, here the whole fleet, all of it simulated — shows 100 %
//!    on the new version, and prints it;
//! 5. tampered envelopes (a flipped byte, a lower version, an untrusted
//!    key) are offered to every pump through its service port; each refuses
//!    and keeps its library, and the refusals arrive as `library_rejected`
//!    events and alerts;
//! 6. the CQI report of the run, with the simulator's overrides.
//!
//! Each step prints one line (`Story: …`) so that a person watching the
//! terminal can follow; everything it changes goes through the same API a
//! pharmacist's client would use.

use anyhow::{anyhow, bail, Context, Result};
use pumpward_druglib::json::{parse_library_json, to_canonical_json};
use pumpward_druglib::quantity::Dec;
use pumpward_pump::sim::{Scenario, ScenarioRequester};
use pumpward_store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Pharmacist A's change: heparin's new hard maximum (units/kg/h).
const NEW_HEPARIN_HARD_MAX: &str = "35";
/// Share of the fleet in the pilot wave.
const PILOT_PERCENT: u8 = 25;
/// The longest the storyline waits for the pilot, and for everyone.
const ROLLOUT_WAIT: Duration = Duration::from_secs(600);

/// A demo pharmacist: their API token, and their password for the
/// re-authentication an approval asks for.
pub(crate) struct Pharmacist {
    pub name: String,
    pub password: String,
    pub token: String,
}

/// What the storyline needs.
pub(crate) struct Story {
    pub store: Store,
    /// `https://host:port` of the demo's API.
    pub base_url: String,
    /// The server's CA chain (PEM file), to trust its TLS certificate.
    pub ca_file: PathBuf,
    pub library_id: String,
    pub author: Pharmacist,
    pub approver: Pharmacist,
    pub scenarios: ScenarioRequester,
    pub started: time::OffsetDateTime,
}

/// A pharmacist's API client.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                text.chars().take(500).collect::<String>()
            );
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: reply"))
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Result<Value> {
        self.call(reqwest::Method::POST, path, body).await
    }
}

fn int(v: &Value, path: &[&str]) -> Result<i64> {
    let mut x = v;
    for k in path {
        x = x
            .get(k)
            .ok_or_else(|| anyhow!("reply without {}", path.join(".")))?;
    }
    x.as_i64()
        .ok_or_else(|| anyhow!("reply: {} is not a number", path.join(".")))
}

fn story(line: impl std::fmt::Display) {
    println!("Story: {line}");
    tracing::info!("demo story: {line}");
}

impl Story {
    fn client(&self, who: &Pharmacist) -> Result<Client> {
        let pem = std::fs::read(&self.ca_file)
            .with_context(|| format!("reading {}", self.ca_file.display()))?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Client {
            http,
            base: self.base_url.clone(),
            token: who.token.clone(),
        })
    }

    /// Plays the storyline; an error ends it (the demo keeps running).
    pub(crate) async fn play(self) {
        if let Err(e) = self.play_inner().await {
            story(format!("stopped: {e:#}"));
        }
    }

    async fn play_inner(&self) -> Result<()> {
        for s in Scenario::ALL {
            if s == Scenario::TamperedLibrary {
                continue;
            }
            self.scenario(s).await?;
        }
        let version = self.change_library().await?;
        self.staged_rollout(version).await?;
        self.scenario(Scenario::TamperedLibrary).await?;
        self.rejections_recorded().await?;
        self.cqi_summary().await?;
        story("done; the demo keeps running until interrupted (Ctrl-C).");
        Ok(())
    }

    async fn scenario(&self, s: Scenario) -> Result<()> {
        let out = self
            .scenarios
            .play(s)
            .await
            .ok_or_else(|| anyhow!("the simulated fleet stopped"))?;
        story(format!(
            "scenario {s}: {} — {}",
            if out.passed {
                "as expected"
            } else {
                "NOT as expected"
            },
            out.observed
        ));
        Ok(())
    }

    /// Pharmacist A drafts and submits a change; pharmacist B approves it
    /// (re-authenticating) and publishes it. Returns the new version.
    async fn change_library(&self) -> Result<i64> {
        let (a, b) = (self.client(&self.author)?, self.client(&self.approver)?);
        let id = &self.library_id;
        // The newest published version, as A exports it.
        let lib = a.get(&format!("/api/v1/libraries/{id}")).await?;
        let current = lib
            .get("revisions")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter(|r| r.get("state").and_then(|s| s.as_str()) == Some("published"))
            .filter_map(|r| Some((r.get("version")?.as_i64()?, r.get("id")?.as_i64()?)))
            .max()
            .ok_or_else(|| anyhow!("library {id} has no published version"))?;
        let export = a
            .http
            .get(format!(
                "{}/api/v1/libraries/{id}/revisions/{}/export?format=json",
                a.base, current.1
            ))
            .bearer_auth(&a.token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let mut library = parse_library_json(&export)?;
        let (area, old, new) = tighten_heparin(&mut library)?;
        let draft = a
            .post(
                "/api/v1/libraries",
                Some(serde_json::from_slice::<Value>(&to_canonical_json(
                    &library,
                ))?),
            )
            .await?;
        let rev = int(&draft, &["revision", "id"])?;
        story(format!(
            "pharmacist {} drafted revision {rev} of {id} from version {}: heparin hard maximum in {area} {old} → {new} units/kg/h",
            self.author.name, current.0
        ));
        a.post(
            &format!("/api/v1/libraries/{id}/revisions/{rev}/submit"),
            None,
        )
        .await?;
        story(format!(
            "pharmacist {} submitted it for review",
            self.author.name
        ));
        let diff = b
            .get(&format!(
                "/api/v1/libraries/{id}/diff?from=v{}&to={rev}&format=json",
                current.0
            ))
            .await?;
        let text = diff.get("text").and_then(|t| t.as_str()).unwrap_or("");
        story(format!(
            "pharmacist {} reviews the diff: {}",
            self.approver.name,
            text.lines().map(str::trim).collect::<Vec<_>>().join(" | ")
        ));
        b.post(
            &format!("/api/v1/libraries/{id}/revisions/{rev}/approve"),
            Some(json!({ "password": self.approver.password })),
        )
        .await?;
        story(format!(
            "pharmacist {} approved it, re-authenticating with her password",
            self.approver.name
        ));
        let published = b
            .post(
                &format!("/api/v1/libraries/{id}/revisions/{rev}/publish"),
                None,
            )
            .await?;
        let version = int(&published, &["revision", "version"])?;
        story(format!(
            "published as version {version}, signed with the library-signing key (COSE_Sign1)"
        ));
        Ok(version)
    }

    /// Pilot first, then everyone; waits until every pump the gateway
    /// reached runs `version`, and prints the compliance view.
    async fn staged_rollout(&self, version: i64) -> Result<()> {
        let b = self.client(&self.approver)?;
        let id = &self.library_id;
        let r = b
            .post(
                &format!("/api/v1/libraries/{id}/rollouts"),
                Some(json!({ "version": version, "pilot_percent": PILOT_PERCENT })),
            )
            .await?;
        let rollout = int(&r, &["rollout", "id"])?;
        story(format!(
            "rollout {rollout} of version {version}: pilot of {PILOT_PERCENT}% of the pumps ({} pumps) first",
            int(&r, &["rollout", "pilot", "total"])?
        ));
        let path = format!("/api/v1/libraries/{id}/rollouts/{rollout}");
        // The pilot is done when every pilot pump the gateway announced to
        // has installed it (pumps never connected stay pending).
        let pilot = self
            .wait_rollout(&b, &path, 1, "the pilot")
            .await
            .context("waiting for the pilot")?;
        story(format!(
            "pilot: {pilot} pumps installed version {version}; advancing to every pump"
        ));
        b.post(&format!("{path}/advance"), None).await?;
        let all = self
            .wait_rollout(&b, &path, 2, "everyone")
            .await
            .context("waiting for everyone")?;
        story(format!(
            "every pump the gateway reached answered: {all} installed version {version}"
        ));
        self.compliance_complete(&b, version).await
    }

    /// Waits until the compliance view (which counts every pump the library
    /// is assigned to, simulated or not) shows every one on `version`, and
    /// prints it; says which pumps are stale if that does not happen.
    async fn compliance_complete(&self, b: &Client, version: i64) -> Result<()> {
        let id = &self.library_id;
        let deadline = tokio::time::Instant::now() + ROLLOUT_WAIT;
        loop {
            let c = b.get(&format!("/api/v1/libraries/{id}/compliance")).await?;
            let (pumps, current) = (int(&c, &["pumps"])?, int(&c, &["current"])?);
            let scope = if c["assignment"]["care_areas"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                || c["assignment"]["pump_groups"]
                    .as_array()
                    .is_some_and(|g| !g.is_empty())
            {
                "the pumps the library is assigned to"
            } else {
                "the whole fleet (every in-service and maintenance pump)"
            };
            let percent = c.get("percent").and_then(|p| p.as_f64()).unwrap_or(0.0);
            if pumps > 0 && current == pumps && int(&c, &["current_version"])? == version {
                story(format!(
                    "compliance: {percent}% — all {pumps} pumps of {scope} run version {version}"
                ));
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let stale: Vec<String> = c["stale"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(10)
                    .filter_map(|s| s["asset_id"].as_str().map(str::to_owned))
                    .collect();
                bail!(
                    "compliance stays at {percent}% ({current} of {pumps} pumps of {scope}); stale: {}",
                    stale.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }

    /// Waits until no pump of waves up to `wave` is announced or deferred
    /// (each connected pump installed the version), printing progress;
    /// returns how many installed.
    async fn wait_rollout(&self, b: &Client, path: &str, wave: i64, what: &str) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + ROLLOUT_WAIT;
        let mut last_print = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let r = b.get(path).await?;
            let pumps = r
                .get("pumps")
                .and_then(|p| p.as_array())
                .cloned()
                .unwrap_or_default();
            // Pumps of the waves started so far (`up_to`) or of this wave.
            let count = |state: &str, up_to: bool| {
                pumps
                    .iter()
                    .filter(|p| {
                        let w = p.get("wave").and_then(|w| w.as_i64()).unwrap_or(0);
                        if up_to {
                            w <= wave
                        } else {
                            w == wave
                        }
                    })
                    .filter(|p| p.get("state").and_then(|s| s.as_str()) == Some(state))
                    .count()
            };
            let (installed, waiting, deferred, rejected) = (
                count("installed", true),
                count("announced", true),
                count("deferred", true),
                count("rejected", true),
            );
            // This wave has been announced (some of its pumps answered) and
            // no pump the gateway reached is still to install it.
            if count("installed", false) > 0 && waiting == 0 && deferred == 0 {
                if rejected > 0 {
                    story(format!("{what}: {rejected} pumps refused the version"));
                }
                return Ok(installed);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{what}: {installed} installed, {waiting} not answered, {deferred} waiting for an infusion to end");
            }
            if last_print.elapsed() >= Duration::from_secs(10) {
                last_print = tokio::time::Instant::now();
                story(format!(
                    "{what}: {installed} installed, {deferred} waiting for their infusion to end, {waiting} not answered yet"
                ));
            }
        }
    }

    /// Counts the pumps' `library_rejected` reports of the tampered
    /// envelopes (waiting a little for them to be delivered) and the alerts.
    async fn rejections_recorded(&self) -> Result<()> {
        let mut pumps = 0;
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            pumps = self
                .store
                .device_event_counts("library_rejected", self.started)
                .await?
                .len();
            if pumps > 0 {
                break;
            }
        }
        let (alerts, _) = self
            .store
            .list_alerts(&pumpward_store::AlertFilter {
                rule: Some("library_rejected".into()),
                limit: 500,
                ..Default::default()
            })
            .await?;
        story(format!(
            "the server recorded library_rejected events from {pumps} pumps; {} library_rejected alerts are open",
            alerts.len()
        ));
        Ok(())
    }

    async fn cqi_summary(&self) -> Result<()> {
        // The simulated pumps' clocks run faster than the wall clock.
        let (from, to) = (
            self.started - time::Duration::days(1),
            time::OffsetDateTime::now_utc() + time::Duration::days(365),
        );
        let r = self.store.cqi_report(from, to).await?;
        let sum = |f: fn(&pumpward_store::CqiRow) -> i64| r.rows.iter().map(f).sum::<i64>();
        let mut reasons: std::collections::BTreeMap<&str, i64> = Default::default();
        for row in &r.rows {
            for (why, n) in &row.override_reasons {
                *reasons.entry(why.as_str()).or_default() += n;
            }
        }
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        story(format!(
            "CQI report: {} programmings, {} within limits, {} soft overrides, {} hard-limit blocks, {} basic infusions over {} drug × care-area rows; top override reasons: {}",
            sum(|x| x.programmings),
            sum(|x| x.within_limits),
            sum(|x| x.soft_overrides),
            sum(|x| x.hard_blocks),
            sum(|x| x.basic_infusions),
            r.rows.len(),
            reasons
                .iter()
                .take(3)
                .map(|(w, n)| format!("{w} ({n})"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        Ok(())
    }
}

/// The change pharmacist A makes: the first heparin hard maximum above
/// [`NEW_HEPARIN_HARD_MAX`] (the sample's Adult ICU: 40 units/kg/h) is
/// tightened to it, still above the soft maximum. Returns (care area, old,
/// new).
fn tighten_heparin(lib: &mut pumpward_druglib::Library) -> Result<(String, Dec, Dec)> {
    let new: Dec = NEW_HEPARIN_HARD_MAX
        .parse()
        .map_err(|e| anyhow!("{NEW_HEPARIN_HARD_MAX}: {e}"))?;
    for area in &mut lib.care_areas {
        for e in &mut area.entries {
            let (Some(hard), Some(soft)) = (e.hard_max, e.soft_max) else {
                continue;
            };
            if e.drug.eq_ignore_ascii_case("heparin") && hard > new && soft < new {
                e.hard_max = Some(new);
                return Ok((area.name.clone(), hard, new));
            }
        }
    }
    bail!("the library has no heparin entry whose hard maximum can be tightened to {new}")
}
