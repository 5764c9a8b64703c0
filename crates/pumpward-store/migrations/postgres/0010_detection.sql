-- Detection (issue 7): the security events that do not come from pumps
-- (pump events stay in device_events, stored before they are acknowledged),
-- the alerts the rules raise, incidents, and the engine's saved state.
--
-- Alerts and incidents are stored as the documents pumpward-detect defines
-- (AlertCase, Incident: workflow, owner, comments, checklist, timeline) in
-- `body`, with the columns that lists filter and sort on beside them. An
-- alert's id is deterministic (its rule, subject and window), so the same
-- alert raised again after a restart lands on the same row.

CREATE TABLE security_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    asset_id TEXT,
    -- The event envelope, JSON (pumpward-detect's Event).
    body TEXT NOT NULL
);
CREATE INDEX security_events_asset ON security_events (asset_id, occurred_at);
CREATE INDEX security_events_kind ON security_events (kind, occurred_at);
CREATE INDEX security_events_time ON security_events (occurred_at);

CREATE TABLE alerts (
    id TEXT PRIMARY KEY NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    asset_id TEXT,
    care_area TEXT,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    incident_id TEXT,
    raised_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- JSON: pumpward-detect's AlertCase.
    body TEXT NOT NULL
);
CREATE INDEX alerts_state ON alerts (state, raised_at);
CREATE INDEX alerts_asset ON alerts (asset_id, raised_at);
CREATE INDEX alerts_raised ON alerts (raised_at);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- JSON: pumpward-detect's Incident.
    body TEXT NOT NULL
);
CREATE INDEX incidents_state ON incidents (state, opened_at);

-- The engine's state (windows, baselines, watermark), saved periodically so
-- that a restart replays only the events after the watermark.
CREATE TABLE detection_state (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    saved_at TEXT NOT NULL,
    snapshot TEXT NOT NULL
);
