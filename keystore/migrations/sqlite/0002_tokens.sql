CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    consumed_at INTEGER,
    family      TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
-- A grant's first token is its own family (family = id), and only the tokens
-- refreshes add are indexed, so issuing a plain token writes one index.
CREATE INDEX tokens_family ON tokens (family) WHERE family <> id;

CREATE TABLE refresh_tokens (
    hash        BLOB    PRIMARY KEY,
    family      TEXT    NOT NULL,
    access_id   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    alg         TEXT    NOT NULL,
    access_ttl  INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
-- Revoking an access token revokes the refresh token issued with it.
CREATE INDEX refresh_tokens_access ON refresh_tokens (access_id);

CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
