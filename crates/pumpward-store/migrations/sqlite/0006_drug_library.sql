-- Drug libraries (issue 4): every revision a pharmacist authored, its
-- review, and once published its COSE_Sign1 envelope. A revision moves
-- draft → submitted → approved → published, or submitted → rejected;
-- a replaced draft becomes superseded. Published revisions are immutable
-- (the triggers below refuse any change) and carry the library's version
-- number, unique and increasing per library.

CREATE TABLE drug_libraries (
    library_id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE drug_library_revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    library_id TEXT NOT NULL REFERENCES drug_libraries (library_id),
    state TEXT NOT NULL CHECK (state IN
        ('draft', 'submitted', 'approved', 'published', 'rejected', 'superseded')),
    -- The library's canonical JSON (pumpward_druglib::json); once published,
    -- exactly the signed payload (with `version` set to the version below).
    content TEXT NOT NULL,
    -- SHA-256 of `content`, lower-case hex.
    sha256 TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- The draft or rejected revision this one replaces, if any.
    replaces BIGINT REFERENCES drug_library_revisions (id),
    submitted_by TEXT,
    submitted_at TEXT,
    approved_by TEXT,
    approved_at TEXT,
    rejected_by TEXT,
    rejected_at TEXT,
    reject_comment TEXT,
    -- Set at publication: 1, 2, 3 … per library.
    version BIGINT,
    published_by TEXT,
    published_at TEXT,
    -- The COSE_Sign1 envelope, base64 (standard alphabet).
    envelope TEXT,
    -- Key id in the envelope: hex SHA-256 of the signing key's SPKI.
    signing_key_id TEXT,
    -- A rollback republishes this earlier version's content.
    rollback_of BIGINT,
    CHECK ((state = 'published') = (version IS NOT NULL AND envelope IS NOT NULL))
);
CREATE UNIQUE INDEX drug_library_versions ON drug_library_revisions (library_id, version)
    WHERE version IS NOT NULL;
CREATE INDEX drug_library_revisions_library ON drug_library_revisions (library_id, id);

CREATE TRIGGER drug_library_published_immutable
BEFORE UPDATE ON drug_library_revisions WHEN OLD.state = 'published'
BEGIN
    SELECT RAISE(ABORT, 'a published drug library version is immutable');
END;

CREATE TRIGGER drug_library_published_undeletable
BEFORE DELETE ON drug_library_revisions WHEN OLD.state = 'published'
BEGIN
    SELECT RAISE(ABORT, 'a published drug library version is immutable');
END;

-- The one library-signing key: its certificate (issued by the CA) and its
-- private key sealed under the CA's key-encryption key.
CREATE TABLE library_signing_key (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    cert_pem TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
