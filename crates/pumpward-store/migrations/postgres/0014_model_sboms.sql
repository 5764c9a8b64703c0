-- SBOMs per device model and firmware version (issue 5, item 7), and the
-- NVD CPE match configurations that match their components to CVEs.

-- NVD records only: the record's configurations in NVD API 2.0's shape,
-- {"configurations": [...]} (pumpward_vuln::nvd::configurations_json).
-- NULL for other documents and for records without configurations.
ALTER TABLE vuln_vulnerabilities ADD COLUMN cpe_configurations TEXT;

-- One SBOM attached to a model at a firmware version. The model is named as
-- the hospital writes it; model_key is how matching finds it: the alias
-- table's product key ("bd/alaris-pcu-8015"), or, for a model the table
-- does not know, "unidentified:" and the normalised manufacturer and model.
CREATE TABLE model_sboms (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    model_key TEXT NOT NULL,
    -- As the pump reports it; matched to an asset's firmware_version
    -- case-insensitively, trimmed.
    firmware_version TEXT NOT NULL,
    -- cyclonedx-json, cyclonedx-xml, spdx-json, spdx-tag-value.
    format TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    -- The component the SBOM describes, when it names one.
    subject TEXT,
    -- SHA-256 of the file's bytes: the same file twice is one attachment.
    sha256 TEXT NOT NULL,
    -- The file's name as given, for display.
    source TEXT NOT NULL,
    -- JSON array of the parser's warnings.
    warnings TEXT NOT NULL,
    attached_by TEXT NOT NULL,
    attached_at TEXT NOT NULL
);
CREATE UNIQUE INDEX model_sboms_once ON model_sboms (model_key, firmware_version, sha256);

CREATE TABLE sbom_components (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sbom_id BIGINT NOT NULL REFERENCES model_sboms (id),
    bom_ref TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    supplier TEXT,
    purl TEXT,
    -- JSON array of CPE 2.3 names.
    cpes TEXT NOT NULL
);
CREATE INDEX sbom_components_sbom ON sbom_components (sbom_id);

-- SHA-256 (hex) of a vulnerability finding's evidence text, written with
-- it by matching: a matching run compares digests instead of reading every
-- open finding's evidence back. NULL for other findings (and for evidence
-- written before this column: the next match rewrites it).
ALTER TABLE findings ADD COLUMN evidence_sha256 TEXT;

-- What a matching run reads of every open vulnerability finding (key,
-- digest, priority, last seen), from the index alone: without it, each row
-- is a lookup into the table, whose rows carry kilobytes of evidence.
CREATE INDEX findings_match ON findings (kind, state, subject, evidence_sha256, priority, last_seen_at);
