//! The route table: every API route and page, with the permission it needs.
//!
//! This table is the single statement of access rules per route. The router
//! in [`crate::app`] must register exactly these routes; the OpenAPI
//! document is generated from the API half, and `tests/rbac.rs` walks every
//! entry with a user of every role and checks allow/deny against
//! `Role::allows`.

use pumpward_core::access::Permission;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without logging in.
    Public,
    /// Any fully logged-in user.
    Authenticated,
    /// A logged-in user whose role (and token scopes) allow this.
    Perm(Permission),
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Request body media type, if any.
    pub body: Option<&'static str>,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    tag: &'static str,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        summary,
        tag,
        body: None,
    }
}

const fn b(
    method: &'static str,
    path: &'static str,
    access: Access,
    tag: &'static str,
    summary: &'static str,
    body: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        summary,
        tag,
        body: Some(body),
    }
}

use Access::*;
use Permission::*;

const JSON: &str = "application/json";

/// The REST API.
pub const API_ROUTES: &[RouteSpec] = &[
    r(
        "GET",
        "/healthz",
        Public,
        "operations",
        "Liveness: the process answers",
    ),
    r(
        "GET",
        "/readyz",
        Public,
        "operations",
        "Readiness: the store answers",
    ),
    r(
        "GET",
        "/metrics",
        Perm(MetricsRead),
        "operations",
        "Prometheus metrics",
    ),
    r(
        "GET",
        "/api/openapi.json",
        Public,
        "operations",
        "This OpenAPI document",
    ),
    r(
        "GET",
        "/pki/ca.pem",
        Public,
        "pki",
        "The issuing CA and its chain (PEM)",
    ),
    r("GET", "/pki/crl", Public, "pki", "The current CRL (DER)"),
    r(
        "GET",
        "/pki/crl.pem",
        Public,
        "pki",
        "The current CRL (PEM)",
    ),
    r(
        "GET",
        "/pki/library-signing.pem",
        Public,
        "pki",
        "The drug-library signing certificate (PEM; EKU codeSigning)",
    ),
    r(
        "GET",
        "/api/v1/libraries",
        Perm(LibraryRead),
        "library",
        "List drug libraries with their latest published version",
    ),
    b(
        "POST",
        "/api/v1/libraries",
        Perm(LibraryAuthor),
        "library",
        "Create a draft (of a new or existing library) from the library's JSON, or text/csv; ?replaces=REV replaces an own draft or rejected revision",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/libraries/{id}",
        Perm(LibraryRead),
        "library",
        "A library and its revisions (state, author, reviewers, versions)",
    ),
    r(
        "GET",
        "/api/v1/libraries/{id}/diff",
        Perm(LibraryRead),
        "library",
        "Diff between two revisions (from, to: a revision number or vN for version N; format json|text)",
    ),
    b(
        "POST",
        "/api/v1/libraries/{id}/rollback",
        Perm(LibraryPublish),
        "library",
        "Publish an earlier version's content again as a new, higher version (re-signed)",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/libraries/{id}/revisions/{rev}",
        Perm(LibraryRead),
        "library",
        "One revision with its library JSON and validation problems",
    ),
    r(
        "GET",
        "/api/v1/libraries/{id}/revisions/{rev}/export",
        Perm(LibraryRead),
        "library",
        "Export a revision as canonical JSON or CSV (format json|csv)",
    ),
    r(
        "POST",
        "/api/v1/libraries/{id}/revisions/{rev}/submit",
        Perm(LibraryAuthor),
        "library",
        "Submit a valid draft for review (422 lists every validation problem)",
    ),
    b(
        "POST",
        "/api/v1/libraries/{id}/revisions/{rev}/approve",
        Perm(LibraryApprove),
        "library",
        "Approve a submitted revision: a pharmacist other than the author, re-authenticating with password (and TOTP code)",
        JSON,
    ),
    b(
        "POST",
        "/api/v1/libraries/{id}/revisions/{rev}/reject",
        Perm(LibraryApprove),
        "library",
        "Reject a submitted revision with a comment for the author",
        JSON,
    ),
    r(
        "POST",
        "/api/v1/libraries/{id}/revisions/{rev}/publish",
        Perm(LibraryPublish),
        "library",
        "Sign an approved revision and publish it as the next version",
    ),
    r(
        "GET",
        "/api/v1/libraries/{id}/versions/{version}/envelope",
        Perm(LibraryRead),
        "library",
        "The published version's COSE_Sign1 envelope (application/cose)",
    ),
    b(
        "POST",
        "/api/v1/libraries/{id}/rollouts",
        Perm(LibraryPublish),
        "library",
        "Start a staged rollout of a published version (pilot_care_area or pilot_percent, then everyone)",
        JSON,
    ),
    r("GET", "/api/v1/libraries/{id}/rollouts", Perm(LibraryRead), "library", "A library's rollouts with per-state pump counts"),
    r("GET", "/api/v1/libraries/{id}/rollouts/{rollout}", Perm(LibraryRead), "library", "A rollout and each pump's state as the pump reported it (?state=)"),
    r("POST", "/api/v1/libraries/{id}/rollouts/{rollout}/pause", Perm(LibraryPublish), "library", "Pause a rollout (nothing more is announced)"),
    r("POST", "/api/v1/libraries/{id}/rollouts/{rollout}/resume", Perm(LibraryPublish), "library", "Resume a paused rollout"),
    r("POST", "/api/v1/libraries/{id}/rollouts/{rollout}/advance", Perm(LibraryPublish), "library", "Extend a rollout from its pilot to every pump"),
    r("GET", "/api/v1/libraries/{id}/compliance", Perm(LibraryRead), "library", "Share of pumps on the current version per care area, and the stale pumps"),
    r("GET", "/api/v1/reports/cqi", Perm(LibraryRead), "library", "CQI report: dose checks per care area and drug over a period (from, to; format json|csv)"),
    r("GET", "/api/v1/libraries/{id}/assignment", Perm(LibraryRead), "library", "Where the library goes: care areas and pump groups (none: the whole fleet)"),
    b("PUT", "/api/v1/libraries/{id}/assignment", Perm(LibraryPublish), "library", "Assign the library ({\"care_areas\": […], \"pump_groups\": […]}, both empty: the whole fleet); later rollouts address, and compliance counts, only those pumps", JSON),
    r("GET", "/api/v1/pump-groups", Perm(InventoryRead), "library", "Pump groups (named lists of pumps) with their members"),
    b("PUT", "/api/v1/pump-groups/{name}", Perm(InventoryWrite), "library", "Create or replace a pump group ({\"description\": …, \"members\": [asset ids]})", JSON),
    r("DELETE", "/api/v1/pump-groups/{name}", Perm(InventoryWrite), "library", "Delete a pump group; 409 naming the libraries while any is assigned to it"),
    r(
        "GET",
        "/api/v1/certificates",
        Perm(PkiRead),
        "pki",
        "List certificates (filters: asset_id, kind, revoked, expiring_days)",
    ),
    r(
        "GET",
        "/api/v1/certificates/{serial}",
        Perm(PkiRead),
        "pki",
        "One certificate, with its PEM",
    ),
    b(
        "POST",
        "/api/v1/certificates/{serial}/revoke",
        Perm(PkiRevoke),
        "pki",
        "Revoke a certificate with an RFC 5280 reason; publishes a new CRL",
        JSON,
    ),
    b(
        "POST",
        "/api/v1/assets/{id}/enrollment-codes",
        Perm(PkiEnroll),
        "pki",
        "Create a one-time EST enrollment code for an asset (shown once)",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/network/policy",
        Perm(NetworkRead),
        "network",
        "The network zone policy in force: the current version's TOML (or the starter policy when none was saved)",
    ),
    b(
        "PUT",
        "/api/v1/network/policy",
        Perm(NetworkManage),
        "network",
        "Save a new policy version ({\"toml\": …, \"comment\": …, \"base_version\": n}); checked against the inventory first, 422 with each error's line when it has errors, 409 when base_version is not the current version",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/network/policy/versions",
        Perm(NetworkRead),
        "network",
        "Every saved policy version, newest first (author, time, comment, digest)",
    ),
    r(
        "GET",
        "/api/v1/network/policy/versions/{version}",
        Perm(NetworkRead),
        "network",
        "One saved policy version with its TOML",
    ),
    r(
        "GET",
        "/api/v1/network/observed",
        Perm(NetworkRead),
        "network",
        "Observed conduits (zone pair, transport, port: flows, bytes, allowed by, violations) and unknown devices from the live collectors",
    ),
    r(
        "GET",
        "/api/v1/network/quarantine",
        Perm(NetworkRead),
        "network",
        "The network quarantine list in force: MACs and addresses the enforcement exports refuse (?released=true: with the released entries)",
    ),
    b(
        "POST",
        "/api/v1/network/quarantine",
        Perm(NetworkManage),
        "network",
        "Quarantine a device ({\"mac\": …, \"reason\": …, \"addresses\": […], \"zone\": …}; addresses and zone default to where the collectors saw the MAC); 409 when the MAC is already quarantined. Audited",
        JSON,
    ),
    b(
        "POST",
        "/api/v1/network/quarantine/{id}/release",
        Perm(NetworkManage),
        "network",
        "Release a quarantined device ({\"reason\": …}); the entry stays as history. Audited",
        JSON,
    ),
    r(
        "POST",
        "/api/v1/assets/{id}/baseline/reset",
        Perm(DetectionConfigure),
        "alerts",
        "Forget the asset's learned baseline (event rates, destinations, active hours); detection learns it again from the next events. Audited",
    ),
    r(
        "GET",
        "/api/v1/events",
        Perm(AlertsRead),
        "alerts",
        "Stored events, newest first: ?stream=security (default; the typed envelope: gateway, network, vulnerability, admin) or pump (each pump's queue as sent); filters asset_id, type, from, to (RFC 3339); paged with before=next_cursor",
    ),
    r(
        "GET",
        "/api/v1/alerts",
        Perm(AlertsRead),
        "alerts",
        "List alerts, newest first (filters: state, severity, rule, asset_id; cursor before)",
    ),
    r(
        "GET",
        "/api/v1/alerts/{id}",
        Perm(AlertsRead),
        "alerts",
        "One alert with its evidence, state, owner and comments",
    ),
    b(
        "POST",
        "/api/v1/alerts/{id}",
        Perm(AlertsManage),
        "alerts",
        "A workflow step on an alert ({\"action\": acknowledge|resolve|false_positive|comment, \"note\": …}); 422 when the workflow refuses it",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/incidents",
        Perm(AlertsRead),
        "incidents",
        "List incidents, newest first (filter: state open|contained|closed; cursor before)",
    ),
    b(
        "POST",
        "/api/v1/incidents",
        Perm(AlertsManage),
        "incidents",
        "Open an incident from alerts ({\"title\": …, \"alerts\": [ids], \"severity\": optional}); 422 when an alert is unknown or already in an incident",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/incidents/{id}",
        Perm(AlertsRead),
        "incidents",
        "One incident with its alerts, playbook checklist and timeline",
    ),
    b(
        "POST",
        "/api/v1/incidents/{id}",
        Perm(AlertsManage),
        "incidents",
        "A step on an incident ({\"action\": add_alert|complete_step|note|contain|close, …}); 422 when the workflow refuses it",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/responses",
        Perm(InventoryRead),
        "responses",
        "Responses (quarantines), newest first (filters: asset_id, state pending|applied|released|refused)",
    ),
    r(
        "GET",
        "/api/v1/responses/{id}",
        Perm(InventoryRead),
        "responses",
        "One response",
    ),
    r(
        "POST",
        "/api/v1/responses/{id}/confirm",
        Perm(ResponseManage),
        "responses",
        "Confirm a pending response (never one's own request) and apply it",
    ),
    b(
        "POST",
        "/api/v1/responses/{id}/refuse",
        Perm(ResponseManage),
        "responses",
        "Refuse a pending response ({\"reason\": …})",
        JSON,
    ),
    b(
        "POST",
        "/api/v1/assets/{id}/quarantine",
        Perm(ResponseManage),
        "responses",
        "Quarantine an asset: off the network, never touching therapy ({\"reason\", \"alert_id\"?, \"two_person\"?})",
        JSON,
    ),
    b(
        "POST",
        "/api/v1/assets/{id}/release",
        Perm(ResponseManage),
        "responses",
        "Release an asset's quarantine: back to its previous state ({\"reason\": …})",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/findings",
        Perm(FindingsRead),
        "findings",
        "List findings, newest first (filters: state open|resolved|all, kind, asset_id; cursor before)",
    ),
    r(
        "GET",
        "/api/v1/findings/export",
        Perm(FindingsRead),
        "findings",
        "Export findings as CSV, highest priority first (same filters as the list); formula-safe cells",
    ),
    r(
        "GET",
        "/api/v1/findings/vex",
        Perm(FindingsRead),
        "findings",
        "The fleet's vulnerability status as a CSAF 2.0 VEX document (query: publisher, namespace)",
    ),
    r(
        "GET",
        "/api/v1/findings/{id}",
        Perm(FindingsRead),
        "findings",
        "One finding with its evidence; a vulnerability finding also with its advisories (page and API links) and, resolved, the remediations that applied",
    ),
    b(
        "POST",
        "/api/v1/findings/{id}/remediation",
        Perm(VulnRemediate),
        "findings",
        "Take a remediation step on a vulnerability finding ({\"to\": …} with the step's fields; patch_validated also needs vuln.validate_patch)",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/assets/{id}/controls",
        Perm(FindingsRead),
        "findings",
        "The compensating controls recorded on an asset",
    ),
    b(
        "POST",
        "/api/v1/assets/{id}/controls",
        Perm(VulnRemediate),
        "findings",
        "Record a compensating control on an asset ({control, note}); lowers its findings' priority at the next match",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/advisories",
        Perm(VulnRead),
        "vulnerabilities",
        "List imported advisories, newest first (filters: format, state current|superseded|all, cve, product_key)",
    ),
    b(
        "POST",
        "/api/v1/advisories",
        Perm(VulnManage),
        "vulnerabilities",
        "Import one document (CSAF, KEV, NVD, CVE 5, EPSS; detected from content), then re-match the assets it concerns",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/advisories/{id}",
        Perm(VulnRead),
        "vulnerabilities",
        "One advisory with its vulnerabilities and product statuses",
    ),
    r(
        "GET",
        "/api/v1/sboms",
        Perm(VulnRead),
        "vulnerabilities",
        "List the SBOMs attached to device models and firmware versions, with component counts",
    ),
    b(
        "POST",
        "/api/v1/sboms",
        Perm(VulnManage),
        "vulnerabilities",
        "Attach an SBOM (the file's bytes; CycloneDX JSON/XML, SPDX JSON/tag-value, detected from content) to ?manufacturer=&model=&version= (&source= file name), then re-match the pumps of that model and version; 201 attached, 200 already attached, 422 not an SBOM (nothing stored)",
        "application/octet-stream",
    ),
    r(
        "GET",
        "/api/v1/sboms/{id}",
        Perm(VulnRead),
        "vulnerabilities",
        "One attached SBOM with its components, CycloneDX VEX statements and the open findings they decided",
    ),
    r(
        "GET",
        "/api/v1/fleet",
        Perm(PkiRead),
        "pki",
        "Pumps connected to the gateway now",
    ),
    b(
        "POST",
        "/api/v1/fleet/{id}/commands",
        Perm(PkiEnroll),
        "pki",
        "Send a connected pump a command: request_status or renew_certificate",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/me",
        Authenticated,
        "access",
        "The calling user",
    ),
    r(
        "GET",
        "/api/v1/dashboard",
        Perm(InventoryRead),
        "inventory",
        "Fleet counts by lifecycle state and care area",
    ),
    r(
        "GET",
        "/api/v1/assets",
        Perm(InventoryRead),
        "inventory",
        "List assets with filters and cursor paging",
    ),
    b(
        "POST",
        "/api/v1/assets",
        Perm(InventoryWrite),
        "inventory",
        "Create an asset",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/assets/export",
        Perm(InventoryRead),
        "inventory",
        "Export all assets as CSV",
    ),
    b(
        "POST",
        "/api/v1/assets/import",
        Perm(InventoryWrite),
        "inventory",
        "Import assets from CSV (upsert by asset_id)",
        "text/csv",
    ),
    r(
        "GET",
        "/api/v1/assets/{id}",
        Perm(InventoryRead),
        "inventory",
        "Read an asset",
    ),
    b(
        "PUT",
        "/api/v1/assets/{id}",
        Perm(InventoryWrite),
        "inventory",
        "Replace an asset's fields (optimistic locking by version)",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/assets/{id}/history",
        Perm(InventoryRead),
        "inventory",
        "An asset's lifecycle history",
    ),
    b(
        "POST",
        "/api/v1/assets/{id}/transition",
        Perm(InventoryTransition),
        "inventory",
        "Move an asset through its lifecycle",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/models",
        Perm(InventoryRead),
        "inventory",
        "The device-model catalogue",
    ),
    b(
        "PUT",
        "/api/v1/models",
        Perm(InventoryWrite),
        "inventory",
        "Create or replace a device model",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/users",
        Perm(UsersManage),
        "access",
        "List users",
    ),
    b(
        "POST",
        "/api/v1/users",
        Perm(UsersManage),
        "access",
        "Create a user",
        JSON,
    ),
    b(
        "PATCH",
        "/api/v1/users/{id}",
        Perm(UsersManage),
        "access",
        "Change a user's role or disable them",
        JSON,
    ),
    r(
        "POST",
        "/api/v1/users/{id}/mfa-reset",
        Perm(UsersManage),
        "access",
        "Remove a user's TOTP enrolment",
    ),
    r(
        "GET",
        "/api/v1/mfa-policy",
        Perm(UsersManage),
        "access",
        "Which roles must use MFA",
    ),
    b(
        "PUT",
        "/api/v1/mfa-policy",
        Perm(UsersManage),
        "access",
        "Require or waive MFA for a role",
        JSON,
    ),
    r(
        "GET",
        "/api/v1/tokens",
        Perm(TokensOwn),
        "access",
        "The caller's API tokens",
    ),
    b(
        "POST",
        "/api/v1/tokens",
        Perm(TokensOwn),
        "access",
        "Create an API token (from a browser session only)",
        JSON,
    ),
    r(
        "DELETE",
        "/api/v1/tokens/{id}",
        Perm(TokensOwn),
        "access",
        "Revoke one of the caller's API tokens",
    ),
    r(
        "GET",
        "/api/v1/audit",
        Perm(AuditRead),
        "audit",
        "Audit records, newest first, with filters",
    ),
    r(
        "GET",
        "/api/v1/audit/verify",
        Perm(AuditRead),
        "audit",
        "Verify the audit hash chain",
    ),
];

/// The web UI's pages and form targets.
pub const UI_ROUTES: &[RouteSpec] = &[
    r("GET", "/", Perm(InventoryRead), "ui", "Dashboard"),
    r("GET", "/setup", Public, "ui", "First-start setup form"),
    b(
        "POST",
        "/setup",
        Public,
        "ui",
        "Create the first administrator",
        "application/x-www-form-urlencoded",
    ),
    r("GET", "/login", Public, "ui", "Login form"),
    b(
        "POST",
        "/login",
        Public,
        "ui",
        "Log in",
        "application/x-www-form-urlencoded",
    ),
    r("GET", "/login/mfa", Public, "ui", "TOTP code form"),
    b(
        "POST",
        "/login/mfa",
        Public,
        "ui",
        "Submit a TOTP code",
        "application/x-www-form-urlencoded",
    ),
    r("GET", "/mfa/enroll", Public, "ui", "TOTP enrolment"),
    b(
        "POST",
        "/mfa/enroll",
        Public,
        "ui",
        "Confirm TOTP enrolment",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/logout",
        Public,
        "ui",
        "Log out",
        "application/x-www-form-urlencoded",
    ),
    r("GET", "/assets", Perm(InventoryRead), "ui", "Asset list"),
    r(
        "GET",
        "/assets/{id}",
        Perm(InventoryRead),
        "ui",
        "Asset detail",
    ),
    b(
        "POST",
        "/assets/{id}/transition",
        Perm(InventoryTransition),
        "ui",
        "Lifecycle transition",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/assets/{id}/enrollment-code",
        Perm(PkiEnroll),
        "ui",
        "Create a one-time enrollment code for an asset (shown once, with a QR code)",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/fleet",
        Perm(PkiRead),
        "ui",
        "Fleet: pump connections and certificate expiry",
    ),
    r(
        "GET",
        "/findings",
        Perm(FindingsRead),
        "ui",
        "Findings list",
    ),
    r(
        "GET",
        "/advisories/{id}",
        Perm(FindingsRead),
        "ui",
        "An advisory: revisions, the rules in its own words, remediations, the assets it affects",
    ),
    r(
        "GET",
        "/sboms",
        Perm(VulnRead),
        "ui",
        "SBOMs attached to device models and firmware versions, and the attach form",
    ),
    b(
        "POST",
        "/sboms",
        Perm(VulnManage),
        "ui",
        "Attach an uploaded SBOM to a model and firmware version; re-matches their pumps",
        "multipart/form-data",
    ),
    r(
        "GET",
        "/sboms/{id}",
        Perm(VulnRead),
        "ui",
        "One SBOM: components, VEX statements, the findings its components decided",
    ),
    r("GET", "/alerts", Perm(AlertsRead), "ui", "Alerts list"),
    b(
        "POST",
        "/alerts/bulk",
        Perm(AlertsManage),
        "ui",
        "One step on the selected alerts (acknowledge, resolve, false positive) or an incident from them",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/alerts/{id}",
        Perm(AlertsRead),
        "ui",
        "Alert detail: evidence, related events, comments",
    ),
    b(
        "POST",
        "/alerts/{id}",
        Perm(AlertsManage),
        "ui",
        "A workflow step on an alert",
        "application/x-www-form-urlencoded",
    ),
    r("GET", "/incidents", Perm(AlertsRead), "ui", "Incidents list"),
    r(
        "GET",
        "/incidents/{id}",
        Perm(AlertsRead),
        "ui",
        "Incident: alerts, playbook checklist, timeline",
    ),
    b(
        "POST",
        "/incidents/{id}",
        Perm(AlertsManage),
        "ui",
        "A step on an incident (checklist, note, contain, close, add alert)",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/detection/rules",
        Perm(AlertsRead),
        "ui",
        "Detection rules with their settings",
    ),
    b(
        "POST",
        "/detection/rules/{rule}",
        Perm(DetectionConfigure),
        "ui",
        "Change or reset one rule's settings",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/network",
        Perm(NetworkRead),
        "ui",
        "Network: observed conduits beside the allowed ones (zone diagram), unknown devices",
    ),
    r(
        "GET",
        "/network/violations",
        Perm(NetworkRead),
        "ui",
        "Network violations and unknown devices reported by the live collectors, with filters and the flow as evidence",
    ),
    r(
        "GET",
        "/network/policy",
        Perm(NetworkRead),
        "ui",
        "Network policy: zones, conduits, versions and the editor",
    ),
    b(
        "POST",
        "/network/policy",
        Perm(NetworkManage),
        "ui",
        "Check and save a new network policy version",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/network/quarantine",
        Perm(NetworkManage),
        "ui",
        "Quarantine an unknown device (its MAC and the addresses it was seen at)",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/network/quarantine/{id}/release",
        Perm(NetworkManage),
        "ui",
        "Release a quarantined device",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/network/unknown/register",
        Perm(InventoryWrite),
        "ui",
        "Register an unknown device as an asset: the form, prefilled from the sighting",
    ),
    b(
        "POST",
        "/network/unknown/register",
        Perm(InventoryWrite),
        "ui",
        "Register an unknown device as an asset",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/responses",
        Perm(ResponseManage),
        "ui",
        "Quarantine and swap work list",
    ),
    b(
        "POST",
        "/responses/{id}/confirm",
        Perm(ResponseManage),
        "ui",
        "Confirm a pending quarantine",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/responses/{id}/refuse",
        Perm(ResponseManage),
        "ui",
        "Refuse a pending quarantine",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/assets/{id}/quarantine",
        Perm(ResponseManage),
        "ui",
        "Quarantine an asset",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/assets/{id}/baseline/reset",
        Perm(DetectionConfigure),
        "ui",
        "Reset the asset's learned detection baseline",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/assets/{id}/release",
        Perm(ResponseManage),
        "ui",
        "Release an asset's quarantine",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/certificates",
        Perm(PkiRead),
        "ui",
        "Certificate list",
    ),
    r(
        "GET",
        "/certificates/{serial}",
        Perm(PkiRead),
        "ui",
        "Certificate detail",
    ),
    b(
        "POST",
        "/certificates/{serial}/revoke",
        Perm(PkiRevoke),
        "ui",
        "Revoke a certificate",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/users",
        Perm(UsersManage),
        "ui",
        "User administration",
    ),
    b(
        "POST",
        "/users",
        Perm(UsersManage),
        "ui",
        "Add a user",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/users/{id}",
        Perm(UsersManage),
        "ui",
        "Change a user",
        "application/x-www-form-urlencoded",
    ),
    r("GET", "/audit", Perm(AuditRead), "ui", "Audit log"),
    r(
        "GET",
        "/rollout",
        Perm(LibraryRead),
        "ui",
        "Drug library rollout and compliance",
    ),
    b(
        "POST",
        "/rollout",
        Perm(LibraryPublish),
        "ui",
        "Start a library rollout",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/rollout/assignment",
        Perm(LibraryPublish),
        "ui",
        "Assign a library to care areas and pump groups (none: the whole fleet)",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/rollout/{rollout}",
        Perm(LibraryPublish),
        "ui",
        "Pause, resume or advance a rollout",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/reports/cqi",
        Perm(LibraryRead),
        "ui",
        "CQI report of dose checks with a chart",
    ),
    r(
        "GET",
        "/pump-groups",
        Perm(InventoryRead),
        "ui",
        "Pump groups: members, the libraries assigned to each; the create/replace form (?edit=NAME fills it)",
    ),
    b(
        "POST",
        "/pump-groups",
        Perm(InventoryWrite),
        "ui",
        "Create or replace a pump group (name, description, asset ids)",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/pump-groups/{name}/delete",
        Perm(InventoryWrite),
        "ui",
        "Delete a pump group (refused while a library is assigned to it)",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/libraries",
        Perm(LibraryRead),
        "ui",
        "Drug libraries: versions, revisions awaiting review, draft upload",
    ),
    b(
        "POST",
        "/libraries",
        Perm(LibraryAuthor),
        "ui",
        "Upload a JSON or CSV file as a new draft",
        "multipart/form-data",
    ),
    r(
        "GET",
        "/libraries/{id}",
        Perm(LibraryRead),
        "ui",
        "A library's revisions and publications, export, rollback",
    ),
    b(
        "POST",
        "/libraries/{id}/drafts",
        Perm(LibraryAuthor),
        "ui",
        "New draft from the latest published version",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/libraries/{id}/rollback",
        Perm(LibraryPublish),
        "ui",
        "Publish an older version again as a new version (confirmed)",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/libraries/{id}/diff",
        Perm(LibraryRead),
        "ui",
        "The per-care-area diff between any two versions or revisions (from, to)",
    ),
    r(
        "GET",
        "/libraries/{id}/revisions/{rev}/edit",
        Perm(LibraryAuthor),
        "ui",
        "The library editor of an own draft: care areas and entries, problems inline",
    ),
    b(
        "POST",
        "/libraries/{id}/revisions/{rev}/edit",
        Perm(LibraryAuthor),
        "ui",
        "Add, change or remove a care area or an entry; saved as a new draft replacing this one",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/libraries/{id}/revisions/{rev}",
        Perm(LibraryRead),
        "ui",
        "A revision's content; for a submitted one the review (diff against the published version)",
    ),
    b(
        "POST",
        "/libraries/{id}/revisions/{rev}/submit",
        Perm(LibraryAuthor),
        "ui",
        "Submit a draft for review",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/libraries/{id}/revisions/{rev}/approve",
        Perm(LibraryApprove),
        "ui",
        "Approve (second pharmacist, password and TOTP code)",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/libraries/{id}/revisions/{rev}/reject",
        Perm(LibraryApprove),
        "ui",
        "Reject with a comment",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/libraries/{id}/revisions/{rev}/publish",
        Perm(LibraryPublish),
        "ui",
        "Sign and publish an approved revision",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/account",
        Authenticated,
        "ui",
        "Own account: password, MFA, tokens",
    ),
    b(
        "POST",
        "/account/password",
        Authenticated,
        "ui",
        "Change own password",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/account/tokens",
        Perm(TokensOwn),
        "ui",
        "Create an own API token (secret shown once)",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/account/tokens/{id}/revoke",
        Perm(TokensOwn),
        "ui",
        "Revoke an own API token",
        "application/x-www-form-urlencoded",
    ),
    b(
        "POST",
        "/users/mfa-policy",
        Perm(UsersManage),
        "ui",
        "Set which roles must use MFA",
        "application/x-www-form-urlencoded",
    ),
    r(
        "GET",
        "/static/pumpward.css",
        Public,
        "ui",
        "The UI's style sheet",
    ),
];

/// The table entry for a request, by method and the router's matched path.
pub fn lookup(method: &str, matched_path: &str) -> Option<&'static RouteSpec> {
    API_ROUTES
        .iter()
        .chain(UI_ROUTES)
        .find(|r| r.method == method && r.path == matched_path)
        .or_else(|| {
            // HEAD is answered by GET handlers.
            (method == "HEAD")
                .then(|| lookup("GET", matched_path))
                .flatten()
        })
}

/// The OpenAPI 3.1 document for [`API_ROUTES`].
pub fn openapi() -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut paths = Map::new();
    for rt in API_ROUTES {
        let mut op = json!({
            "summary": rt.summary,
            "tags": [rt.tag],
            "operationId": operation_id(rt),
            "responses": {
                "200": { "description": "Success" },
                "default": {
                    "description": "An RFC 9457 problem",
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            }
        });
        let params: Vec<Value> = rt
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(media) = rt.body {
            let schema = if media == JSON {
                json!({ "type": "object" })
            } else {
                json!({ "type": "string" })
            };
            op["requestBody"] =
                json!({ "required": true, "content": { media: { "schema": schema } } });
        }
        match rt.access {
            Public => op["security"] = json!([]),
            Authenticated => op["description"] = json!("Requires a logged-in user."),
            Perm(p) => {
                op["description"] = json!(format!("Requires the `{}` permission.", p.as_str()))
            }
        }
        let entry = paths
            .entry(rt.path.to_string())
            .or_insert_with(|| json!({}));
        entry[rt.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Pumpward API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Infusion-pump fleet security (NIST SP 1800-8). Errors are RFC 9457 problems; \
                            cookie-authenticated state changes need the X-CSRF-Token header."
        },
        "security": [ { "bearer": [] }, { "session": [] } ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API token (pw_…)" },
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": { "type": "string", "format": "uri" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "errors": { "type": "array", "items": { "type": "object",
                            "properties": { "field": { "type": "string" }, "message": { "type": "string" } } } }
                    }
                }
            }
        }
    })
}

fn operation_id(rt: &RouteSpec) -> String {
    let mut s = rt.method.to_ascii_lowercase();
    for seg in rt
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
    {
        s.push('_');
        s.push_str(&seg.replace(['{', '}'], "").replace(['.', '-'], "_"));
    }
    s
}
