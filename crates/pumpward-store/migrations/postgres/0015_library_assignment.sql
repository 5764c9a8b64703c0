-- Drug-library assignment (issue 4, item 5): a library is assigned to care
-- areas and/or pump groups; a rollout then addresses, and the compliance
-- view counts, only the in-service and maintenance pumps in that scope. A
-- library without any assignment row addresses the whole fleet.

-- A pump group: a named list of pumps (biomed's, e.g. "Oncology infusion
-- center" or "loaner pool"), independent of the inventory's care area.
CREATE TABLE pump_groups (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE pump_group_members (
    group_name TEXT NOT NULL REFERENCES pump_groups (name),
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    PRIMARY KEY (group_name, asset_id)
);
CREATE INDEX pump_group_members_asset ON pump_group_members (asset_id);

-- One row per assigned target: kind 'care_area' (the care area as the
-- inventory names it; compared trimmed and case-insensitively) or
-- 'pump_group' (a pump_groups name).
CREATE TABLE library_assignments (
    library_id TEXT NOT NULL REFERENCES drug_libraries (library_id),
    kind TEXT NOT NULL CHECK (kind IN ('care_area', 'pump_group')),
    target TEXT NOT NULL,
    assigned_by TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (library_id, kind, target)
);
