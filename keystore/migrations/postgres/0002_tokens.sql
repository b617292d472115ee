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
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    consumed_at BIGINT,
    family      TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT ''
);
-- A grant's first token is its own family (family = id), and only the tokens
-- refreshes add are indexed, so issuing a plain token writes one index.
CREATE INDEX tokens_family ON tokens (family) WHERE family <> id;

CREATE TABLE refresh_tokens (
    hash        BYTEA   PRIMARY KEY,
    family      TEXT    NOT NULL,
    access_id   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    alg         TEXT    NOT NULL,
    access_ttl  BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT 
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
-- Revoking an access token revokes the refresh token issued with it.
CREATE INDEX refresh_tokens_access ON refresh_tokens (access_id);

CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    token_id   TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    at         BIGINT NOT NULL
);
