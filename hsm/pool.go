package hsm

import (
	"context"

	"github.com/miekg/pkcs11"
)

// pool hands out sessions, one goroutine per session at a time. It opens
// sessions on demand up to max and keeps them open: closing the last session
// of a token logs it out and invalidates every object handle.
type pool struct {
	idle  chan pkcs11.SessionHandle // open sessions nobody uses
	slots chan struct{}             // one entry per open session; cap is the bound
	open  func() (pkcs11.SessionHandle, error)
	close func(pkcs11.SessionHandle)
}

func newPool(max int, open func() (pkcs11.SessionHandle, error), close func(pkcs11.SessionHandle)) *pool {
	return &pool{
		idle:  make(chan pkcs11.SessionHandle, max),
		slots: make(chan struct{}, max),
		open:  open,
		close: close,
	}
}

// get returns an idle session, opens a new one while under the bound, or
// waits for one to be put back until ctx is done.
func (p *pool) get(ctx context.Context) (pkcs11.SessionHandle, error) {
	select {
	case s := <-p.idle:
		return s, nil
	default:
	}
	select {
	case s := <-p.idle:
		return s, nil
	case p.slots <- struct{}{}:
		s, err := p.open()
		if err != nil {
			<-p.slots
			return 0, err
		}
		return s, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// put returns a healthy session to the pool.
func (p *pool) put(s pkcs11.SessionHandle) { p.idle <- s }

// drop closes a broken session and frees its place.
func (p *pool) drop(s pkcs11.SessionHandle) {
	p.close(s)
	<-p.slots
}

// closeAll closes every idle session. Sessions in use are the callers'
// business; Token.Close waits for none.
func (p *pool) closeAll() {
	for {
		select {
		case s := <-p.idle:
			p.drop(s)
		default:
			return
		}
	}
}
