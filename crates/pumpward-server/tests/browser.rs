//! The web UI in a real browser: Debian's headless Chromium driven through
//! chromedriver (W3C WebDriver over plain JSON), against the real server over
//! TLS on a free local port.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium` and `chromium-driver`). Without them the tests print SKIPPED
//! and pass, except under `CI=true`, where they fail.
//!
//! Set `PUMPWARD_SCREENSHOT_DIR` to a directory to get PNG screenshots of the
//! dashboard and of an asset page.

use pumpward_core::access::{password, totp, Role};
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState, SoftwareField};
use pumpward_server::state::{AppState, ServerSettings};
use pumpward_server::tls;
use pumpward_store::{Actor, Store};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const ADMIN_PASSWORD: &str = "Infusion-Safety-2025!";
const BIOMED_PASSWORD: &str = "Syringe-Driver-Check-77";

/// Whether the browser is installed; decides SKIPPED vs FAIL when not.
fn browser_available() -> bool {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{CHROMIUM} or {CHROMEDRIVER} is missing; CI must install chromium and chromium-driver");
        }
        println!("SKIPPED: chromium/chromedriver not installed (apt-get install chromium chromium-driver)");
    }
    present
}

// ------------------------------------------------------------------ the server

/// The seeded fleet: (id, manufacturer, model, care area, zone, state).
const SEED: &[(&str, &str, &str, &str, &str, LifecycleState)] = &[
    (
        "PUMP-0001",
        "Baxter",
        "Sigma Spectrum",
        "Adult ICU",
        "pumps-icu",
        LifecycleState::InService,
    ),
    (
        "PUMP-0002",
        "Baxter",
        "Sigma Spectrum",
        "Adult ICU",
        "pumps-icu",
        LifecycleState::InService,
    ),
    (
        "PUMP-0003",
        "B. Braun",
        "Infusomat Space",
        "Oncology",
        "pumps-onc",
        LifecycleState::InService,
    ),
    (
        "PUMP-0004",
        "B. Braun",
        "Perfusor Space",
        "Oncology",
        "pumps-onc",
        LifecycleState::Maintenance,
    ),
    (
        "PUMP-0005",
        "ICU Medical",
        "Plum 360",
        "Pediatrics",
        "pumps-peds",
        LifecycleState::Received,
    ),
];

fn spec(id: &str, manufacturer: &str, model: &str, care_area: &str, zone: &str) -> AssetSpec {
    AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        manufacturer: manufacturer.into(),
        model: model.into(),
        device_type: Some("lvp".into()),
        serial_number: format!("SN-{id}"),
        firmware_version: "8.00.01".into(),
        software: Some(SoftwareField::Text(
            "Wireless Battery Module=v22D28;Linux kernel=4.4.97".into(),
        )),
        care_area: Some(care_area.into()),
        zone: Some(zone.into()),
        location: Some(format!("{care_area}, bay {}", &id[id.len() - 1..])),
        phi_stored: Some("no".into()),
        ..Default::default()
    })
    .expect("seed assets are valid")
}

struct Server {
    base: String,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        for &(id, man, model, area, zone, state) in SEED {
            store
                .create_asset(
                    &spec(id, man, model, area, zone),
                    Some(state),
                    &Actor::cli(),
                )
                .await
                .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let identity =
            tls::load_or_create_identity(dir.path(), &["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let cfg = tls::server_config(identity).unwrap();
        // A real CA (in a test, its key-encryption key may sit in the data directory), for
        // the fleet, certificate and enrollment pages.
        let ca = pumpward_server::pki::CaService::open(
            store.clone(),
            pumpward_server::pki::PkiSettings::new(pumpward_server::pki::KekSource::KeyFile {
                path: dir.path().join("test-ca.kek"),
                create: true,
            }),
            true,
        )
        .await
        .unwrap();
        // PUMP-0002 has a device certificate.
        let (_key, csr) = pumpward_pki::make_device_csr(
            pumpward_pki::KeyAlgorithm::default(),
            "PUMP-0002",
            "SN-PUMP-0002",
        )
        .unwrap();
        ca.issue_for_asset("PUMP-0002", &csr, &Actor::cli())
            .await
            .unwrap();
        let app = pumpward_server::app(
            AppState::new(store.clone(), ServerSettings::default()).with_pki(ca),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tls::serve(listener, cfg, app, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            store,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.task).await;
        self.store.close().await;
    }
}

// ------------------------------------------------------------------ WebDriver

/// A chromedriver process and one browser session, spoken to in W3C
/// WebDriver JSON. Dropping it ends the session and the driver even when a
/// test fails half-way, so no Chromium is left running.
struct Browser {
    http: reqwest::Client,
    driver_port: u16,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    async fn launch() -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(&status).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--ignore-certificate-errors".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        }}});
        let mut b = Browser {
            http,
            driver_port: port,
            session: String::new(),
            driver,
            _profile: profile,
        };
        let v = b.raw("POST", "/session", Some(caps)).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_owned();
        b
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.driver_port);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let ok = res.status().is_success();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(ok, "WebDriver {method} {path} failed: {v}");
        v["value"].clone()
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn path(&self) -> String {
        let u = self.url().await;
        let after_host = u.splitn(4, '/').nth(3).unwrap_or("");
        format!("/{after_host}")
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                let here = self.url().await;
                let body = self.text("body").await;
                panic!("no element {css:?} on {here}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Picks the `<option>` with `value` in the `<select>` `css`.
    async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        match self.find_all(css).await.into_iter().next() {
            Some(e) => self
                .cmd("GET", &format!("/element/{e}/text"), None)
                .await
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            None => String::new(),
        }
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await;
        self.cmd("GET", &format!("/element/{e}/attribute/{name}"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// Runs a script in the page (WebDriver's own channel, not subject to the CSP).
    async fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": [] })),
        )
        .await
    }

    /// Waits until the text of `css` contains `want` (after a form post the
    /// old page may still be showing for a moment).
    async fn expect_text(&self, css: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.text(css).await.contains(want) {
                return;
            }
            if Instant::now() > deadline {
                let body = self.text("body").await;
                panic!("expected {css:?} to say {want:?}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's path (with query) satisfies `ok`.
    async fn wait_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.path().await;
            if ok(&p) {
                return p;
            }
            if Instant::now() > deadline {
                let body = self.text("body").await;
                panic!("expected to be on {what}, but am on {p}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The rows of a table's body as text cells (`th` and `td`).
    async fn table(&self, css: &str) -> Vec<Vec<String>> {
        let js = format!(
            "return Array.from(document.querySelectorAll({css:?} + ' tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent.trim()));"
        );
        serde_json::from_value(self.script(&js).await).unwrap_or_default()
    }

    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("PUMPWARD_SCREENSHOT_DIR") else {
            return;
        };
        use base64::Engine;
        // Grow the window to the page's height so the picture shows all of it.
        let height = self
            .script("return document.documentElement.scrollHeight;")
            .await
            .as_i64()
            .unwrap_or(1000);
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": 1280, "height": height.clamp(600, 4000) + 140 })),
        )
        .await;
        let b64 = self.cmd("GET", "/screenshot", None).await;
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": 1280, "height": 1000 })),
        )
        .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap();
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }

    /// Ends the session (closing Chromium) and the driver.
    async fn quit(mut self) {
        self.cmd("DELETE", "", None).await;
        self.session.clear();
    }

    /// The session cookie the browser holds (HttpOnly cookies included).
    async fn cookie(&self, name: &str) -> Option<String> {
        let v = self.cmd("GET", "/cookie", None).await;
        v.as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str())
            .map(str::to_owned)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Blocking, dependency-free DELETE /session/{id}: chromedriver then
        // closes Chromium. Works from Drop, even during a panic.
        if !self.session.is_empty() {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.driver_port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let req = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session, self.driver_port
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    // The answer comes once the browser is closed.
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf);
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An HTTPS client that trusts the test server's self-signed certificate
/// and does not follow redirects, for checking statuses the browser hides.
fn https_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn totp_code(secret_text: &str) -> String {
    let b32: String = secret_text.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = totp::TotpSecret::from_base32(&b32).expect("the page shows a valid base32 secret");
    totp::code_at(
        secret.as_bytes(),
        time::OffsetDateTime::now_utc().unix_timestamp(),
        totp::DIGITS,
    )
}

fn counts<'a>(rows: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for k in rows {
        *m.entry(k.to_owned()).or_insert(0usize) += 1;
    }
    m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

// ------------------------------------------------------------------ the tests

/// The first administrator's whole first session: setup link, TOTP
/// enrolment, dashboard, asset list and filter, a lifecycle transition,
/// adding a user, the audit trail and its chain, logging out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sets_up_and_manages_the_fleet() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();
    let srv = Server::start().await;
    let link = pumpward_server::setup_link(&srv.store, &srv.base)
        .await
        .unwrap()
        .expect("no users yet, so a link");
    let b = Browser::launch().await;

    // First-start setup creates the administrator and asks for TOTP.
    b.goto(&link).await;
    assert_eq!(b.text("h1").await, "Create the first administrator");
    b.fill("#username", "ada.admin").await;
    b.fill("#display_name", "Ada Admin").await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.fill("#password_confirm", ADMIN_PASSWORD).await;
    b.click("#create-admin").await;
    b.wait_path("/mfa/enroll", |p| p == "/mfa/enroll").await;
    assert!(b
        .text("#totp-uri")
        .await
        .starts_with("otpauth://totp/Pumpward:ada.admin?secret="));
    // A wrong code is refused in the page, not as JSON.
    b.fill("#code", "000000").await;
    b.click("#enroll").await;
    b.expect_text("[role=alert]", "code is wrong").await;
    let secret = b.text("#totp-secret").await;
    b.fill("#code", &totp_code(&secret)).await;
    b.click("#enroll").await;
    b.wait_path("the dashboard", |p| p == "/").await;
    let admin = srv.store.user_by_name("ada.admin").await.unwrap().unwrap();
    assert!(admin.mfa_enrolled(), "the enrolment was stored");

    // Dashboard: the counts are the seeded fleet's.
    assert_eq!(b.text("h1").await, "Fleet dashboard");
    assert_eq!(b.text("#total-assets").await, SEED.len().to_string());
    let by_area: BTreeMap<String, String> = b
        .table("#by-care-area")
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(by_area, counts(SEED.iter().map(|s| s.3)));
    let by_state: BTreeMap<String, String> = b
        .table("#by-state")
        .await
        .into_iter()
        .filter(|r| r[1] != "0")
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(by_state, counts(SEED.iter().map(|s| s.5.as_str())));
    let nav: Vec<String> = serde_json::from_value(
        b.script("return Array.from(document.querySelectorAll('header nav a')).map(a => a.textContent.trim());").await,
    )
    .unwrap();
    assert_eq!(
        nav,
        [
            "Dashboard",
            "Assets",
            "Fleet",
            "Findings",
            "Alerts",
            "Incidents",
            "Network",
            "Quarantine",
            "Libraries",
            "Library rollout",
            "Pump groups",
            "CQI report",
            "Users",
            "Audit",
            "Account"
        ]
    );
    b.screenshot("pumpward-dashboard.png").await;

    // Asset list, then filtered by care area.
    b.click("header nav a[href='/assets']").await;
    b.wait_path("/assets", |p| p == "/assets").await;
    assert_eq!(b.table("#assets").await.len(), SEED.len());
    b.select("#f-care_area", "Oncology").await;
    b.click("#apply-filters").await;
    b.wait_path("the filtered list", |p| p.contains("care_area=Oncology"))
        .await;
    let rows = b.table("#assets").await;
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["PUMP-0003", "PUMP-0004"]);
    assert!(rows.iter().all(|r| r[6] == "Oncology"));
    assert_eq!(
        b.attr("#f-care_area option[value='Oncology']", "selected")
            .await
            .as_deref(),
        Some("true")
    );

    // Cursor paging keeps the filters.
    b.goto(&srv.url("/assets?limit=2&manufacturer=Baxter"))
        .await;
    assert!(
        b.find_all("#next-page").await.is_empty(),
        "two Baxter pumps fit on one page of two"
    );
    b.goto(&srv.url("/assets?limit=2")).await;
    b.click("#next-page").await;
    b.wait_path("page two", |p| p.contains("cursor=PUMP-0002"))
        .await;
    let page2: Vec<String> = b
        .table("#assets")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(page2, ["PUMP-0003", "PUMP-0004"]);

    // An asset: its fields, components and history; then quarantine it.
    b.goto(&srv.url("/assets?care_area=Oncology")).await;
    b.click("#assets a[href='/assets/PUMP-0003']").await;
    b.wait_path("the asset page", |p| p == "/assets/PUMP-0003")
        .await;
    assert!(b.text("h1").await.starts_with("PUMP-0003"));
    let fields: BTreeMap<String, String> = b
        .table("#asset-fields")
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(fields["Serial number"], "SN-PUMP-0003");
    assert_eq!(fields["Care area"], "Oncology");
    assert_eq!(fields["Lifecycle state"], "in_service");
    assert_eq!(b.table("#software").await.len(), 2);
    assert_eq!(b.table("#history").await.len(), 1, "created in service");
    b.screenshot("pumpward-asset.png").await;
    let reason = "Unexpected outbound traffic to the internet; isolating <pending review>";
    b.select("#to", "quarantined").await;
    b.fill("#reason", reason).await;
    b.click("#transition").await;
    b.wait_path("the asset page after the change", |p| {
        p.starts_with("/assets/PUMP-0003?done=")
    })
    .await;
    assert_eq!(b.text("#asset-state").await, "quarantined");
    assert_eq!(
        b.text("[role=status]").await,
        "The lifecycle state was changed."
    );
    let history = b.table("#history").await;
    let last = history.last().unwrap();
    assert_eq!(
        &last[1..],
        ["in_service", "quarantined", "user:ada.admin", reason],
        "{history:?}"
    );

    // The fleet: every pump, none connected; an enrollment code with its QR
    // code for a pump; the certificate list.
    b.click("header nav a[href='/fleet']").await;
    b.wait_path("/fleet", |p| p == "/fleet").await;
    assert_eq!(b.text("h1").await, "Pump fleet");
    assert_eq!(b.text("#count-connected").await, "0");
    assert_eq!(b.text("#count-disconnected").await, SEED.len().to_string());
    let fleet = b.table("#fleet").await;
    assert_eq!(fleet.len(), SEED.len());
    assert!(fleet[1][6].contains("valid, expires in"), "{fleet:?}");
    b.screenshot("pumpward-fleet.png").await;
    // Revoke PUMP-0002's certificate through the form.
    b.click("#fleet a[href^='/certificates/']").await;
    b.wait_path("the certificate", |p| p.starts_with("/certificates/"))
        .await;
    assert_eq!(b.text("h1").await, "Device certificate");
    assert_eq!(b.text("#cert-asset").await, "PUMP-0002");
    b.screenshot("pumpward-certificate.png").await;
    b.select("#reason", "key-compromise").await;
    b.click("#confirm").await;
    b.click("#revoke").await;
    b.wait_path("the revoked certificate", |p| {
        p.ends_with("?done=certificate-revoked")
    })
    .await;
    assert_eq!(b.text("#revocation-reason").await, "key-compromise");
    assert_eq!(b.text("#cert-status").await, "revoked (key-compromise)");
    b.goto(&srv.url("/assets/PUMP-0001")).await;
    b.click("#make-enrollment-code").await;
    b.wait_path("the enrollment code", |p| {
        p == "/assets/PUMP-0001/enrollment-code"
    })
    .await;
    assert!(b
        .text("#qr-payload")
        .await
        .starts_with("PUMPWARD-ENROLL:v1:PUMP-0001:"));
    assert_eq!(b.find_all("svg.qr").await.len(), 1);
    b.screenshot("pumpward-enrollment-code.png").await;
    b.goto(&srv.url("/certificates")).await;
    assert_eq!(b.text("h1").await, "Certificates");

    // Add a user.
    b.click("header nav a[href='/users']").await;
    b.wait_path("/users", |p| p == "/users").await;
    b.fill("#new-username", "bob.biomed").await;
    b.fill("#new-display", "Bob Biomed").await;
    b.select("#new-role", "biomed").await;
    b.fill("#new-password", BIOMED_PASSWORD).await;
    b.click("#add-user-submit").await;
    b.wait_path("/users after adding", |p| p == "/users?done=user-added")
        .await;
    assert_eq!(b.text("[role=status]").await, "The user was added.");
    let users = b.table("#users").await;
    assert!(
        users
            .iter()
            .any(|r| r[0] == "bob.biomed" && r[2] == "biomed"),
        "{users:?}"
    );
    // A weak password is refused in the page.
    b.fill("#new-username", "carol").await;
    b.fill("#new-password", "password1234").await;
    b.click("#add-user-submit").await;
    b.expect_text("[role=alert]", "password: this password is too common")
        .await;

    // The audit trail lists the transition and the chain verifies.
    b.click("header nav a[href='/audit']").await;
    b.wait_path("/audit", |p| p == "/audit").await;
    assert_eq!(
        b.attr("#chain-status", "data-intact").await.as_deref(),
        Some("true")
    );
    assert!(b.text("#chain-status").await.starts_with("Chain intact"));
    let audit = b.table("#audit").await;
    let moved = audit
        .iter()
        .find(|r| r[3] == "asset.transition" && r[4] == "asset:PUMP-0003")
        .unwrap_or_else(|| panic!("no transition in {audit:?}"));
    assert_eq!(
        (moved[2].as_str(), moved[5].as_str(), moved[6].as_str()),
        ("user:ada.admin", "success", reason)
    );
    assert!(audit
        .iter()
        .any(|r| r[3] == "user.create" && r[4] == "user:bob.biomed"));
    let seqs: Vec<i64> = audit.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    // Filtered by action prefix.
    b.fill("#a-action", "asset.transition").await;
    b.click("#apply-audit-filters").await;
    b.wait_path("the filtered audit", |p| {
        p.contains("action=asset.transition")
    })
    .await;
    assert_eq!(b.table("#audit").await.len(), 1);

    // Log out; pages then send the browser to the login page.
    b.click("#logout").await;
    b.wait_path("/login", |p| p == "/login").await;
    b.goto(&srv.url("/assets")).await;
    b.wait_path("/login", |p| p == "/login").await;
    assert_eq!(b.text("h1").await, "Log in");

    b.quit().await;
    srv.stop().await;
    println!(
        "admin browser walk-through took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A biomedical engineer sees no Users link, and /users is an HTML 403 page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn biomed_sees_no_user_admin_and_gets_a_403_page() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();
    let srv = Server::start().await;
    srv.store
        .create_user(
            "bob.biomed",
            "Bob Biomed",
            Role::Biomed,
            &password::hash_password(BIOMED_PASSWORD),
            false,
            &Actor::cli(),
        )
        .await
        .unwrap();
    let b = Browser::launch().await;

    b.goto(&srv.url("/users")).await;
    b.wait_path("/login", |p| p == "/login").await;
    b.fill("#username", "bob.biomed").await;
    b.fill("#password", "not the password at all").await;
    b.click("#login").await;
    b.expect_text("[role=alert]", "The username or password is wrong.")
        .await;
    b.fill("#password", BIOMED_PASSWORD).await;
    b.click("#login").await;
    b.wait_path("the dashboard", |p| p == "/").await;
    assert_eq!(b.text("#current-user").await, "bob.biomed");

    let nav: Vec<String> = serde_json::from_value(
        b.script("return Array.from(document.querySelectorAll('header nav a')).map(a => a.getAttribute('href'));").await,
    )
    .unwrap();
    assert_eq!(
        nav,
        [
            "/",
            "/assets",
            "/fleet",
            "/findings",
            "/alerts",
            "/incidents",
            "/network",
            "/responses",
            "/libraries",
            "/rollout",
            "/pump-groups",
            "/reports/cqi",
            "/account"
        ],
        "biomed sees neither Users nor Audit"
    );

    b.goto(&srv.url("/users")).await;
    assert_eq!(b.text("h1").await, "Access denied");
    assert!(b.text("[role=alert]").await.contains("users.manage"));
    assert!(
        !b.find_all("header nav").await.is_empty(),
        "the 403 page keeps the navigation"
    );

    // The status and type the browser does not show.
    let session = b
        .cookie(pumpward_server::auth::SESSION_COOKIE)
        .await
        .expect("logged in");
    let r = https_client()
        .get(srv.url("/users"))
        .header(
            "cookie",
            format!("{}={session}", pumpward_server::auth::SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let missing = https_client()
        .get(srv.url("/no-such-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let anonymous = https_client().get(srv.url("/assets")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login");

    // Biomed may move assets: the form is there.
    b.goto(&srv.url("/assets/PUMP-0005")).await;
    assert!(!b.find_all("#transition").await.is_empty());

    b.quit().await;
    srv.stop().await;
    println!(
        "biomed browser test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
