-- Findings: conditions about an asset that someone has to act on, raised by
-- Pumpward's own checks (first: a device certificate about to expire; later
-- vulnerability matches and network policy violations). A check raises a
-- finding once per (kind, subject) while it is open and resolves it when
-- the condition has gone; both are audited.

CREATE TABLE findings (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What kind of condition, e.g. `certificate.expiring`.
    kind TEXT NOT NULL,
    -- What it is about, unique per kind among open findings,
    -- e.g. `certificate:1A2B…`.
    subject TEXT NOT NULL,
    asset_id TEXT,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    -- JSON: what the check saw.
    evidence TEXT NOT NULL,
    state TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    resolved_at TEXT,
    resolution TEXT
);
CREATE UNIQUE INDEX findings_open ON findings (kind, subject) WHERE state = 'open';
CREATE INDEX findings_state ON findings (state, id);
CREATE INDEX findings_asset ON findings (asset_id, id);
