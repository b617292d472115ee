CREATE TABLE keys (
    role         TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    label        TEXT    NOT NULL,
    kcv          TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    encryptions  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (role, version)
);

CREATE TABLE records (
    name         TEXT    PRIMARY KEY,
    key_version  INTEGER NOT NULL,
    ciphertext   BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT ''
);
