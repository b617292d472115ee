//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cluster

import "os"

// tryLock takes no lock where flock is missing: there, two processes of
// one node may still unwrap one copy twice.
func tryLock(*os.File) (bool, error) { return true, nil }
