-- An asset's own CPE 2.3 names (hardware, firmware), canonical and
-- separated by a space; '' when it carries none (most pumps).
ALTER TABLE assets ADD COLUMN cpe TEXT NOT NULL DEFAULT '';
-- The matching run groups assets by their CPE names too (they are a match
-- input, `vuln_match.rs`): the covering index of migration 0018 with `cpe`
-- after `software`, so that the run still reads its groups off the index.
DROP INDEX assets_match;
CREATE INDEX assets_match ON assets (model_id, kind, manufacturer, model, firmware_version, software, cpe, lifecycle_state, device_type, care_area, zone, ip_address, mac_address, asset_id);
-- The assets that carry CPE names (a partial index: most carry none): a run
-- after an import that names products by CPE adds them, and a run loads
-- NVD configurations for them only when there is one.
CREATE INDEX assets_with_cpe ON assets (asset_id) WHERE cpe <> '';
