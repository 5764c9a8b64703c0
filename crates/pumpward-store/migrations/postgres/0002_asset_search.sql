-- Free-text search over assets.search_text: a trigram GIN index (pg_trgm,
-- a trusted extension since PostgreSQL 13, so the database owner may create
-- it) serves `search_text LIKE '%…%'`; the planner chooses between it and a
-- scan in asset_id order by the term's selectivity.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX assets_search_trgm ON assets USING gin (search_text gin_trgm_ops);

-- The dashboard's and the fleet view's common pair of filters.
CREATE INDEX assets_care_area_state ON assets (care_area, lifecycle_state, asset_id);
