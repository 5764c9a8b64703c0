-- Drug-library distribution (issue 4): a rollout sends one published
-- version to the pumps in waves (wave 1: a pilot care area or a share of
-- the fleet; wave 2: everyone else), can be paused, and follows each pump
-- by what the pump reports (library_installed / library_rejected events).

CREATE TABLE library_rollouts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    library_id TEXT NOT NULL REFERENCES drug_libraries (library_id),
    version BIGINT NOT NULL,
    -- SHA-256 of the published envelope (what the gateway announces and
    -- serves at /device/v1/library/<digest>), lower-case hex, and its size.
    envelope_sha256 TEXT NOT NULL,
    envelope_size BIGINT NOT NULL,
    -- Wave 1: the pumps of this care area, or else pilot_percent % of the
    -- fleet (chosen by a stable hash of the asset id).
    pilot_care_area TEXT,
    pilot_percent BIGINT NOT NULL CHECK (pilot_percent BETWEEN 0 AND 100),
    -- The highest wave announced so far (1 or 2).
    current_wave BIGINT NOT NULL CHECK (current_wave IN (1, 2)),
    state TEXT NOT NULL CHECK (state IN ('active', 'paused', 'superseded')),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX library_rollouts_library ON library_rollouts (library_id, id);
CREATE INDEX library_rollouts_digest ON library_rollouts (envelope_sha256);

CREATE TABLE library_rollout_pumps (
    rollout_id BIGINT NOT NULL REFERENCES library_rollouts (id),
    asset_id TEXT NOT NULL,
    -- The asset's care area when the rollout was created.
    care_area TEXT,
    wave BIGINT NOT NULL CHECK (wave IN (1, 2)),
    state TEXT NOT NULL CHECK (state IN ('pending', 'announced', 'deferred', 'installed', 'rejected')),
    announced_at TEXT,
    reported_at TEXT,
    -- What the pump reported: the version it installed, or why it refused.
    reported_version TEXT,
    reason TEXT,
    PRIMARY KEY (rollout_id, asset_id)
);
CREATE INDEX library_rollout_pumps_due ON library_rollout_pumps (rollout_id, state, wave);
CREATE INDEX library_rollout_pumps_asset ON library_rollout_pumps (asset_id);
