-- Network zone policy (issue 6): every saved version of the policy document,
-- kept whole. The current policy is the highest version; saving never
-- changes an older row, so any version can be shown, diffed or exported
-- again. The text is the TOML as its author wrote it (comments included);
-- it was checked (pumpward-net's check) before it was stored.

CREATE TABLE network_policies (
    version BIGINT PRIMARY KEY NOT NULL,
    -- The TOML text of the policy document.
    body TEXT NOT NULL,
    -- The policy's own name (from the document), for lists.
    name TEXT NOT NULL,
    -- SHA-256 of body, hex: tells identical versions apart at a glance.
    digest TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL,
    comment TEXT NOT NULL
);
