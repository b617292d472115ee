package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
)

// answeringPath is where a token request waits while it is answered. It
// is moved there before it is read, so a request written meanwhile (an
// installer that asks again as soon as token.json appears) is a new
// generate.token.json, answered next, never one removed unread.
func answeringPath(home string) string {
	return filepath.Join(keysDir(home), ".generate.token.json.answering")
}

// claim moves generate.token.json aside to be answered and returns where
// it now is. One left aside by a process stopped before it removed it is
// answered first (again, if token.json was written).
func claim(home string) (string, error) {
	if _, err := os.Stat(answeringPath(home)); err == nil {
		return answeringPath(home), nil
	}
	if err := os.Rename(requestPath(home), answeringPath(home)); err != nil {
		return "", err
	}
	return answeringPath(home), nil
}

// unclaim puts a request that cannot be answered back where its writer
// looks, unless a newer one was written meanwhile: that one wins (link,
// unlike rename, never replaces it).
func unclaim(home string) {
	err := os.Link(answeringPath(home), requestPath(home))
	if err != nil && !errors.Is(err, os.ErrExist) {
		os.Rename(answeringPath(home), requestPath(home)) // no hard links here
		return
	}
	os.Remove(answeringPath(home))
}
