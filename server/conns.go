package server

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// Connections cost a descriptor each, and so do the device's files (a
// software token's object files, a network HSM's sockets) and the
// database's. A flood of connections that reaches the process's limit
// makes the device fail from inside: so the server raises its soft limit
// to the hard one, keeps a reserve below it, and accepts no more
// connections than the rest; the ones over wait in the kernel's backlog.
// Connections that send nothing, or send slowly, are closed within
// seconds (the timeouts in Run).

// Connection timeouts: a client that has not sent its headers, its body or
// another request by then is cut off.
const (
	headerTimeout = 5 * time.Second
	bodyTimeout   = 15 * time.Second
	writeTimeout  = 30 * time.Second
	idleTimeout   = 30 * time.Second
)

// descriptorReserve is what is kept for the device, the database and the
// log out of the descriptor limit: an eighth, at least 64.
func descriptorReserve(limit uint64) uint64 { return max(64, limit/8) }

// maxConnections raises the soft descriptor limit to the hard one and
// returns how many connections may be open at once below it.
func maxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	if lim.Cur <= 2*descriptorReserve(lim.Cur) {
		return max(int(lim.Cur/2), 1)
	}
	return int(lim.Cur - descriptorReserve(lim.Cur))
}

// limitListener accepts at most cap(slots) connections open at once.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n)}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// open is how many accepted connections are open.
func (l *limitListener) open() int { return len(l.slots) }

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
