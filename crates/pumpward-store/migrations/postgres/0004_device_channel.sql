-- The device channel (gateway): what each pump last said, the events it
-- sent (stored before they are acknowledged), sequence gaps, and the
-- firmware image digests expected per model and version.

CREATE TABLE device_channel (
    asset_id TEXT PRIMARY KEY NOT NULL REFERENCES assets (asset_id),
    -- Highest sequence number durably stored (acknowledged or about to be).
    last_seq BIGINT NOT NULL,
    certificate_serial TEXT,
    protocol_version BIGINT,
    firmware_version TEXT,
    firmware_digest TEXT,
    library_version TEXT,
    -- The network identity of the last hello, JSON.
    network TEXT,
    source TEXT,
    connected_at TEXT,
    disconnected_at TEXT,
    last_heartbeat TEXT
);

CREATE TABLE device_events (
    asset_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- The event as the pump sent it, JSON.
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (asset_id, seq)
);
CREATE INDEX device_events_kind ON device_events (kind, received_at);
CREATE INDEX device_events_received ON device_events (received_at);

CREATE TABLE device_gaps (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id TEXT NOT NULL,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    detected_at TEXT NOT NULL
);
CREATE INDEX device_gaps_asset ON device_gaps (asset_id, id);

CREATE TABLE firmware_digests (
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (manufacturer, model, firmware_version)
);
