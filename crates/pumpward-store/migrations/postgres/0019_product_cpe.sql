-- Issue 5: advisories' product CPE names matched to SBOM components, as
-- their purls are (0017).

-- CSAF product_identification_helper.cpe of the product, as the advisory
-- wrote it (NULL: none). Matched to the CPE names of SBOM components.
-- Advisories imported before this migration have NULL here: importing the
-- same file again fills it (the import's same-bytes path), and their
-- assets are matched again.
ALTER TABLE vuln_product_statuses ADD COLUMN cpe TEXT;
