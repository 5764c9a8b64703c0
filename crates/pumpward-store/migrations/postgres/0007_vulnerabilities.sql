-- Vulnerability intelligence (issue 5): the documents Pumpward has imported
-- (CSAF advisories, the KEV catalog, NVD and CVE 5 records, EPSS scores),
-- the vulnerabilities they describe and, for CSAF, the status of each
-- product they name. Matching reads only advisories in state `current`; a
-- later revision of the same advisory marks the earlier one `superseded`
-- (its rows are kept for the audit, not matched).

CREATE TABLE vuln_advisories (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- `csaf`, `kev`, `nvd`, `cve5`, `epss`.
    format TEXT NOT NULL,
    -- The document's own id: CSAF tracking id, CVE id, `CISA-KEV`, …
    tracking_id TEXT NOT NULL,
    -- Revisions of one advisory share a family (CISA's update letters:
    -- ICSA-15-125-01 and ICSA-15-125-01B are one family).
    family TEXT NOT NULL,
    -- CISA update letter, when the id carries one.
    update_letter TEXT,
    revision TEXT NOT NULL,
    title TEXT NOT NULL,
    publisher TEXT NOT NULL,
    current_release_date TEXT,
    -- SHA-256 of the bytes imported: the same document twice is one import.
    sha256 TEXT NOT NULL,
    -- JSON: what was parsed, for display (notes, references, counts).
    essentials TEXT NOT NULL,
    -- `current` or `superseded`.
    state TEXT NOT NULL,
    superseded_by BIGINT REFERENCES vuln_advisories (id),
    imported_at TEXT NOT NULL
);
CREATE UNIQUE INDEX vuln_advisories_sha ON vuln_advisories (sha256);
CREATE INDEX vuln_advisories_family ON vuln_advisories (format, family, state);

CREATE TABLE vuln_vulnerabilities (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    advisory_id BIGINT NOT NULL REFERENCES vuln_advisories (id),
    -- Upper case; NULL for a CSAF vulnerability without a CVE.
    cve TEXT,
    cwe TEXT,
    title TEXT,
    -- The newest CVSS base score the document gives, and its version.
    base_score DOUBLE PRECISION,
    cvss_version TEXT,
    -- JSON: every score, [{version, base_score, vector}].
    cvss TEXT NOT NULL
);
CREATE INDEX vuln_vulnerabilities_advisory ON vuln_vulnerabilities (advisory_id);
CREATE INDEX vuln_vulnerabilities_cve ON vuln_vulnerabilities (cve);

CREATE TABLE vuln_product_statuses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    advisory_id BIGINT NOT NULL REFERENCES vuln_advisories (id),
    vulnerability_id BIGINT NOT NULL REFERENCES vuln_vulnerabilities (id),
    product_id TEXT NOT NULL,
    full_name TEXT NOT NULL,
    vendor TEXT,
    product_name TEXT,
    -- From the alias table; NULL when the names map to no known product
    -- (kept: the alias table may learn the name later).
    product_key TEXT,
    -- The version branch's text as the advisory wrote it (NULL: none).
    version_text TEXT,
    -- Its parsed form, printed (`Unparsed(…)` when it could not be read).
    version_rule TEXT NOT NULL,
    -- known_affected, fixed, known_not_affected, under_investigation, …
    status TEXT NOT NULL,
    -- JSON: [{category, details, url}] applying to this product.
    remediations TEXT NOT NULL
);
CREATE INDEX vuln_product_statuses_advisory ON vuln_product_statuses (advisory_id);
CREATE INDEX vuln_product_statuses_key ON vuln_product_statuses (product_key);

CREATE TABLE vuln_kev (
    advisory_id BIGINT NOT NULL REFERENCES vuln_advisories (id),
    cve TEXT NOT NULL,
    vendor_project TEXT NOT NULL,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    date_added TEXT NOT NULL,
    due_date TEXT NOT NULL,
    -- `known`, `unknown`.
    ransomware TEXT NOT NULL,
    PRIMARY KEY (advisory_id, cve)
);
CREATE INDEX vuln_kev_cve ON vuln_kev (cve);

CREATE TABLE vuln_epss (
    advisory_id BIGINT NOT NULL REFERENCES vuln_advisories (id),
    cve TEXT NOT NULL,
    epss DOUBLE PRECISION NOT NULL,
    percentile DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (advisory_id, cve)
);
CREATE INDEX vuln_epss_cve ON vuln_epss (cve);
