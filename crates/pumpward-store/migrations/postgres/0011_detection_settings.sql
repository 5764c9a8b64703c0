-- Detection rule settings edited in the UI (issue 7): one row holding the
-- overrides as TOML text in the format of `pumpward detect rules`, laid over
-- the server's rules file and the shipped defaults when the engine starts
-- and whenever they change. Kept as text so that what an analyst saved is
-- what the engine reads and what the audit trail describes.
CREATE TABLE detection_settings (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    rules TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
