-- Key versions are local (never leave their device) or transferable
-- (leave only wrapped for a device whose security officer trusted it).
ALTER TABLE keys ADD COLUMN policy TEXT NOT NULL DEFAULT 'local';

-- The cluster's nodes: each one's transfer key and node signing key
-- (public halves), how people check them (fingerprint), its state
-- (pending, admitted, revoked), and what its device held when it last
-- looked (holds: "role/vN=KCV" words).
CREATE TABLE nodes (
    id           TEXT    PRIMARY KEY,
    state        TEXT    NOT NULL,
    token_label  TEXT    NOT NULL,
    manufacturer TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    serial       TEXT    NOT NULL,
    public_key   BLOB    NOT NULL,
    signing_key  BLOB    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    changed_at   INTEGER NOT NULL,
    seen_at      INTEGER NOT NULL,
    holds        TEXT    NOT NULL DEFAULT ''
);

-- Copies of keys wrapped for one node's device, waiting for it: a key
-- version (kind key), or the sender's transport key for key pairs (kind
-- transport). Each copy opens only in the device of to_node, which takes
-- it only when signed by a sender its own device lists.
CREATE TABLE transfers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    to_node        TEXT    NOT NULL,
    to_fingerprint TEXT    NOT NULL,
    from_node      TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    role           TEXT    NOT NULL DEFAULT '',
    version        INTEGER NOT NULL DEFAULT 0,
    kcv            TEXT    NOT NULL DEFAULT '',
    policy         TEXT    NOT NULL DEFAULT 'transferable',
    public_key     BLOB,
    challenge      BLOB,
    proof          BLOB,
    wrapped        BLOB    NOT NULL,
    signature      BLOB    NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX transfers_once ON transfers (to_node, from_node, kind, role, version);
