-- A verifier starting up reads only the revocations of tokens that may
-- still verify (expires_at past now), and pruning deletes the rest.
CREATE INDEX revocations_expires ON revocations (expires_at);
