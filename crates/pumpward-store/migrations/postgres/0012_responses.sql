-- Responses (issue 7, item 5): what Pumpward did, or was asked to do, about
-- an asset: today a quarantine. A manual response is applied at once; an
-- automatic one (the detection engine, actor `system`) waits `pending` for
-- a person's confirmation. `previous_state` is the lifecycle state the
-- asset left when the response was applied, so that a release returns it
-- there. At most one open (pending or applied) response per asset.

CREATE TABLE responses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    alert_id TEXT,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    confirmed_by TEXT,
    confirmed_at TEXT,
    previous_state TEXT,
    -- Who released or refused it, when and why.
    closed_by TEXT,
    closed_at TEXT,
    close_reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX responses_asset ON responses (asset_id, id);
CREATE INDEX responses_state ON responses (state, id);
CREATE UNIQUE INDEX responses_one_open ON responses (asset_id) WHERE state IN ('pending', 'applied');
