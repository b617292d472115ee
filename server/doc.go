// Package server is `keyward serve`: keyward's token service and
// encryption service over HTTP, for the services of a cluster.
//
// A Server wraps one opened node (package node): its device, the shared
// database and its token service. Several servers, each with its own
// device holding the same keys, on one PostgreSQL database act as one:
// tokens verify on every server, a revocation on one reaches the others
// through the database's revocation log within RevocationRefresh (250 ms
// by default), and single-use tokens are consumed by one atomic database
// update whichever server is asked.
//
// # Routes
//
// Field names follow the JFrog Access tokens API; bodies are JSON, or
// application/x-www-form-urlencoded where JFrog Access accepts forms.
// docs/API.md and docs/openapi.yaml describe every route; Routes lists
// what is served. Callers authenticate with a Bearer token in the
// Authorization header and nowhere else; scopes decide what they may do
// (admin, introspect, store:read, store:write).
//
// # Errors
//
// Every error is {"errors":[{"code":…,"message":…}]} with its status. The
// library's errors are classified once, by node.KindOf (the CLI's exit
// codes come from the same classification), and errors.go maps each kind
// to a status and code: 400 bad input, 401 no or bad credentials, 403 not
// allowed, 404, 409 a single-use token used again or keys not as needed,
// 413 too large, 503 device or database down (with Retry-After). Messages
// never hold a token, a PIN, a key or a body; a 500 says only "internal
// error" and the detail goes to the log.
//
// # Concurrency
//
// A Server is safe for concurrent use: every request runs on its own
// goroutine, the device's session pool gives each device call a session
// of its own, and the database pool does the same for queries. Run
// listens, serves until its context ends, then stops accepting, lets the
// requests in flight finish (up to ShutdownTimeout) and returns; the
// caller then closes the node, which commits queued token records.
package server
