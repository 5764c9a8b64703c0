-- What a matching run reads of an asset (see `vuln_match.rs`), from the
-- index alone and by model: a run after an advisory import reads the
-- assets of the models the advisory names, which without it is a scan of
-- the whole inventory, and with an index on the model alone one lookup
-- into the table per asset.
CREATE INDEX assets_match ON assets (model_id, kind, manufacturer, model, firmware_version, software, lifecycle_state, device_type, care_area, zone, ip_address, mac_address, asset_id);
-- The assets that record software components, grouped by manufacturer and
-- components (a partial index: most pumps record none).
CREATE INDEX assets_with_software ON assets (manufacturer, software, asset_id) WHERE software <> '[]';
