-- Free-text search over assets.search_text with an FTS5 trigram index, so
-- that a substring search does not scan the whole table.
--
-- The index covers exactly the assets whose rowid is at most
-- asset_search_state.indexed_upto, always with their current text. Triggers
-- keep it so for single-asset writes. A bulk import sets `deferring` for the
-- length of its transaction: its new rows land above the watermark and are
-- indexed afterwards in small transactions (Store::catch_up_search_index).
-- Searches read rows above the watermark by scanning that tail, so results
-- are complete whether or not the index has caught up.
--
-- detail=none keeps the index small (no positions); a trigram AND query finds
-- candidates and the LIKE on assets.search_text decides.

CREATE VIRTUAL TABLE asset_search USING fts5 (
    search_text,
    content = 'assets',
    content_rowid = 'rowid',
    tokenize = 'trigram',
    detail = 'none',
    columnsize = 0
);

CREATE TABLE asset_search_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL,
    deferring INTEGER NOT NULL
);
INSERT INTO asset_search_state (id, indexed_upto, deferring) VALUES (1, 0, 0);

CREATE TRIGGER asset_search_insert AFTER INSERT ON assets
WHEN (SELECT deferring FROM asset_search_state) = 0
 AND new.rowid = (SELECT indexed_upto FROM asset_search_state) + 1
BEGIN
    INSERT INTO asset_search (rowid, search_text) VALUES (new.rowid, new.search_text);
    UPDATE asset_search_state SET indexed_upto = new.rowid;
END;

CREATE TRIGGER asset_search_update AFTER UPDATE OF search_text ON assets
WHEN old.rowid <= (SELECT indexed_upto FROM asset_search_state)
BEGIN
    INSERT INTO asset_search (asset_search, rowid, search_text)
        VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO asset_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE TRIGGER asset_search_delete AFTER DELETE ON assets
WHEN old.rowid <= (SELECT indexed_upto FROM asset_search_state)
BEGIN
    INSERT INTO asset_search (asset_search, rowid, search_text)
        VALUES ('delete', old.rowid, old.search_text);
END;

-- Assets stored before this migration: left above the watermark (0), so the
-- first catch-up indexes them.

-- The dashboard's and the fleet view's common pair of filters.
CREATE INDEX assets_care_area_state ON assets (care_area, lifecycle_state, asset_id);
