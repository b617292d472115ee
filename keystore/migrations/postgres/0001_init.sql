CREATE TABLE keys (
    role         TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    label        TEXT    NOT NULL,
    kcv          TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    encryptions  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (role, version)
);

CREATE TABLE records (
    name         TEXT    PRIMARY KEY,
    key_version  BIGINT  NOT NULL,
    ciphertext   BYTEA   NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
) WITH (fillfactor = 60);

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT ''
);
