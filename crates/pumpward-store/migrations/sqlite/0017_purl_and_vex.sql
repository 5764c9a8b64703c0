-- Issue 5: advisories' product purls matched to SBOM components, and the
-- CycloneDX VEX statements of attached SBOMs (embedded, or a VEX BOM of
-- its own attached to the same model and firmware version).

-- CSAF product_identification_helper.purl of the product, as the advisory
-- wrote it (NULL: none). Matched to the purls of SBOM components.
ALTER TABLE vuln_product_statuses ADD COLUMN purl TEXT;

-- The bom-ref of the component the SBOM describes (metadata.component):
-- a VEX statement that affects it speaks of the device itself.
ALTER TABLE model_sboms ADD COLUMN subject_ref TEXT;

-- One vulnerabilities[] entry of a CycloneDX BOM, with its analysis.
CREATE TABLE sbom_vex_statements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sbom_id BIGINT NOT NULL REFERENCES model_sboms (id),
    -- The vulnerability id as written, upper-cased (CVE-…).
    vulnerability TEXT NOT NULL,
    -- analysis.state: not_affected, false_positive, resolved,
    -- resolved_with_pedigree, exploitable, in_triage (NULL: none given).
    state TEXT,
    justification TEXT,
    -- JSON array of analysis.response.
    responses TEXT NOT NULL,
    detail TEXT,
    -- JSON array of affects[].ref as written (bom-refs or urn:cdx BOM-Links).
    affects TEXT NOT NULL
);
CREATE INDEX sbom_vex_statements_sbom ON sbom_vex_statements (sbom_id);
