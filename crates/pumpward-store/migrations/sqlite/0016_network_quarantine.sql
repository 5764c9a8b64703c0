-- Network quarantine (issue 6): devices kept off the network by their MAC
-- and the addresses they were seen at, typically unknown devices found in
-- a device zone. The enforcement exports (nftables, FreeRADIUS MAB, Cisco
-- ISE, ACL table) refuse every device quarantined and not released.
-- Releasing keeps the row (who, when, why), so the list is its own
-- history; a MAC may be quarantined again after a release.

CREATE TABLE network_quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Lower-case aa:bb:cc:dd:ee:ff (a unicast MAC).
    mac TEXT NOT NULL,
    -- JSON array of the addresses (text) the device was seen at.
    addresses TEXT NOT NULL,
    -- The zone it was seen in, when known.
    zone TEXT,
    reason TEXT NOT NULL,
    quarantined_by TEXT NOT NULL,
    quarantined_at TEXT NOT NULL,
    released_by TEXT,
    released_at TEXT,
    release_reason TEXT
);
-- At most one quarantine in force per MAC.
CREATE UNIQUE INDEX network_quarantine_in_force ON network_quarantine (mac) WHERE released_at IS NULL;
