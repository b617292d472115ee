package server

import "slices"

// JFrog Access scope words, and what each means to keyward. A token may
// carry either form; the API checks keyward's. (docs/API.md, "JFrog
// scopes".)
const (
	jfrogAdmin = "applied-permissions/admin"
	jfrogUser  = "applied-permissions/user" // JFrog's default scope
)

// jfrogScopes maps a JFrog scope word onto the keyward scope it grants:
// admin is admin; user and groups authenticate their subject and grant no
// keyward permission (keyward has no users or groups to apply).
var jfrogScopes = map[string]string{jfrogAdmin: ScopeAdmin}

// grants says a token's scope words grant scope, in keyward's words or
// JFrog's.
func grants(words []string, scope string) bool {
	for _, w := range words {
		if w == scope || jfrogScopes[w] == scope {
			return true
		}
	}
	return false
}

// within says every word of asked is granted by held: what a caller
// without admin may put in a token for itself.
func within(asked, held []string) bool {
	for _, w := range asked {
		if w != jfrogUser && !slices.Contains(held, w) && !grants(held, w) {
			return false
		}
	}
	return true
}
