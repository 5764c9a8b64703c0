-- Vulnerability findings get a published priority and a remediation
-- workflow (issue 5), and assets their compensating controls.

-- The priority score in tenths (0–1000, see docs/vulnerability-priority.md),
-- kept as a column to sort by; its factors are in the evidence JSON
-- (`priority`). NULL for findings that are not vulnerabilities.
ALTER TABLE findings ADD COLUMN priority BIGINT;
-- Where the remediation stands: open, vendor_patch_available,
-- patch_validated, scheduled, deployed, risk_accepted (see
-- pumpward_vuln::remediation). NULL for findings that are not
-- vulnerabilities.
ALTER TABLE findings ADD COLUMN remediation TEXT;
-- JSON: what the last transition recorded (validation reference, schedule,
-- owner, review date, compensating controls, …).
ALTER TABLE findings ADD COLUMN remediation_details TEXT;
CREATE INDEX findings_priority ON findings (priority);

-- Compensating controls recorded on an asset (pumpward_vuln::priority::Control),
-- which lower the priority of its vulnerability findings.
CREATE TABLE asset_controls (
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    control TEXT NOT NULL,
    note TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (asset_id, control)
);
