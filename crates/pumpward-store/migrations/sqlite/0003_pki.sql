-- The built-in certificate authority (pumpward-pki): its material, every
-- certificate it issued, revocations, CRLs and one-time enrollment codes.
-- Private keys appear only sealed under a key-encryption key that is not in
-- the database (see pumpward_pki::seal).

CREATE TABLE ca_material (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    issuing_cert_pem TEXT NOT NULL,
    issuing_key_sealed TEXT NOT NULL,
    chain_pem TEXT NOT NULL,
    root_key_sealed TEXT,
    -- 'created' (Pumpward made its own root) or 'imported' (hospital CA).
    origin TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE certificates (
    serial TEXT PRIMARY KEY NOT NULL,
    -- 'device' or 'server'.
    kind TEXT NOT NULL,
    asset_id TEXT REFERENCES assets (asset_id),
    subject TEXT NOT NULL,
    device_serial TEXT,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    pem TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    revocation_reason TEXT,
    revoked_by TEXT
);
CREATE INDEX certificates_asset ON certificates (asset_id, not_after);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

-- Every CRL published; the newest is served. crl_number increases by one.
CREATE TABLE crls (
    crl_number BIGINT PRIMARY KEY NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    pem TEXT NOT NULL
);

-- One-time bootstrap codes for EST enrollment. Only a hash of the code is
-- kept; the code is shown once to the biomedical engineer who made it.
CREATE TABLE enrollment_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash TEXT NOT NULL UNIQUE,
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    device_serial TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    certificate_serial TEXT REFERENCES certificates (serial)
);
CREATE INDEX enrollment_codes_asset ON enrollment_codes (asset_id);
