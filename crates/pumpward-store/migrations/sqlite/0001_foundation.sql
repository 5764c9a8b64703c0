-- Foundation schema: inventory, access, audit. SQLite dialect.
-- Times are canonical UTC text (see pumpward_core::timefmt); booleans are 0/1.

CREATE TABLE device_models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    device_type TEXT,
    eap_tls TEXT NOT NULL,
    client_certificates TEXT NOT NULL,
    encryption_at_rest TEXT NOT NULL,
    removable_media TEXT NOT NULL,
    remote_service TEXT NOT NULL,
    mds2_on_file BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (manufacturer, model)
);

CREATE TABLE assets (
    asset_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    model_id BIGINT NOT NULL REFERENCES device_models (id),
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    device_type TEXT,
    serial_number TEXT NOT NULL,
    udi TEXT,
    firmware_version TEXT NOT NULL,
    software TEXT NOT NULL,
    mac_address TEXT,
    ip_address TEXT,
    hostname TEXT,
    location TEXT,
    care_area TEXT,
    zone TEXT,
    owner TEXT,
    vendor_support_contact TEXT,
    end_of_support TEXT,
    phi_stored TEXT NOT NULL,
    credential_state TEXT NOT NULL,
    lifecycle_state TEXT NOT NULL,
    last_seen TEXT,
    notes TEXT,
    search_text TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX assets_serial ON assets (manufacturer, serial_number);
CREATE UNIQUE INDEX assets_mac ON assets (mac_address) WHERE mac_address IS NOT NULL;
CREATE INDEX assets_care_area ON assets (care_area, asset_id);
CREATE INDEX assets_state ON assets (lifecycle_state, asset_id);
CREATE INDEX assets_manufacturer ON assets (manufacturer, asset_id);
CREATE INDEX assets_model ON assets (model, asset_id);
CREATE INDEX assets_zone ON assets (zone, asset_id);

CREATE TABLE lifecycle_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX lifecycle_events_asset ON lifecycle_events (asset_id, id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step BIGINT,
    disabled BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_user ON login_failures (username, at);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    source TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT
);

CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);

CREATE TABLE mfa_policy (
    role TEXT PRIMARY KEY NOT NULL,
    required BIGINT NOT NULL
);
INSERT INTO mfa_policy (role, required) VALUES
    ('admin', 1), ('security', 1), ('biomed', 0), ('pharmacist', 0),
    ('clinician', 0), ('auditor', 0), ('vendor', 0);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    source TEXT,
    details TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_object ON audit_log (object, seq);

-- The chain head, kept apart so that deleting the newest records is detected.
-- Updating this single row also serialises appenders on PostgreSQL.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
