package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// One node may run several keyward processes on its device at once:
// keyward serve syncs every second while keyward node accept or node sync
// runs a round of its own. Receiving a copy looks whether its label is
// free, then unwraps it; two processes doing that at once both unwrap it,
// and the device holds two objects under one label that no lookup can
// tell apart. A mutex holds one process only, so the processes of a node
// take turns through a file lock in the node's home directory, which
// they share (its default database is there too). flock, not a lock
// file: the kernel drops it with the process, so a crash leaves nothing
// to clean up. Two objects left by a process that does not take the lock
// (an older keyward, another home directory) are mended by
// hsm's DropDuplicateCopies.

// lockFile is the lock's file in the node's home directory.
const lockFile = "cluster.lock"

// lockEvery is how often a process waiting for its turn looks again.
const lockEvery = 20 * time.Millisecond

// turn waits, as long as ctx lets it, until no other process of this
// node holds the lock, and takes it; unlock gives it back. The caller
// holds c.mu.
func (c *Cluster) turn(ctx context.Context) (unlock func(), err error) {
	if c.home == "" {
		return func() {}, nil
	}
	path := filepath.Join(c.home, lockFile)
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		return nil, fmt.Errorf("cluster lock %s: %w; every keyward process of this node must be able to write in its home directory", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster lock %s: %w; every keyward process of this node must be able to write in its home directory", path, err)
	}
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cluster lock %s: %w", path, err)
		}
		if ok {
			return func() { f.Close() }, nil // closing the file drops the lock
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockEvery):
		}
	}
}
