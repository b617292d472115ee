//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import (
	"errors"
	"os"
)

// echoOff is not available here: secrets come from files, the
// environment or standard input instead.
func echoOff(*os.File) (func(), error) {
	return nil, errors.New("hidden prompts need a Unix terminal; use a file or env: source")
}
