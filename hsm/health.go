package hsm

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// A device goes away: a network HSM restarts, its connection drops, the
// library loses its state. keyward rides through: a call that finds the
// device gone fails at once (ErrDevice, which callers answer 503); lost
// sessions and logins are repaired by do, and a library that must be
// initialized again is finalized and initialized (reinit). Health says
// whether the device answers, and Config.OnHealth hears each change once.

// Health is whether the device answers.
type Health struct {
	Up         bool
	Since      time.Time // when it went down or came back
	Err        error     // why it is down
	Reconnects uint64    // times the module was finalized and initialized again
}

// health is a token's Health, changed by do.
type health struct {
	down       atomic.Bool
	downs      atomic.Uint64 // times it went down: a call that began before the last did not see it come back
	mu         sync.Mutex
	since      time.Time
	err        error
	reconnects atomic.Uint64
	notify     func(Health) // Config.OnHealth of the first Open
}

// Health is the device's state as the last calls found it.
func (t *Token) Health() Health {
	h := &t.st.health
	h.mu.Lock()
	defer h.mu.Unlock()
	return Health{Up: !h.down.Load(), Since: h.since, Err: h.err, Reconnects: h.reconnects.Load()}
}

// up notes a call that worked, begun when h.downs was began; on the way
// back from down it tells the observer, once. A call begun before the
// device went down (its session already open) may still finish well: it
// says nothing of the device now, and would make one outage read as two.
func (h *health) up(began uint64) {
	if !h.down.Load() {
		return // the hot path: one atomic load
	}
	h.mu.Lock()
	if !h.down.Load() || began != h.downs.Load() {
		h.mu.Unlock()
		return
	}
	h.down.Store(false)
	h.since, h.err = time.Now(), nil
	s := Health{Up: true, Since: h.since, Reconnects: h.reconnects.Load()}
	h.mu.Unlock()
	if h.notify != nil {
		h.notify(s)
	}
}

// fault notes a call that failed because of the device; on the way down
// it tells the observer, once.
func (h *health) fault(err error) {
	h.mu.Lock()
	if h.down.Load() {
		h.err = err
		h.mu.Unlock()
		return
	}
	h.down.Store(true)
	h.downs.Add(1)
	h.since, h.err = time.Now(), err
	s := Health{Since: h.since, Err: err, Reconnects: h.reconnects.Load()}
	h.mu.Unlock()
	if h.notify != nil {
		h.notify(s)
	}
}

// deviceFault says err means the device (or its library) cannot be used
// now, as opposed to a refusal of this call.
func deviceFault(err error) bool {
	switch codeOf(err) {
	case pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_SESSION_COUNT, pkcs11.CKR_HOST_MEMORY:
		return true
	}
	return false
}

// reinit finalizes and initializes the module again, for a library that
// lost its state (CKR_CRYPTOKI_NOT_INITIALIZED); every session is gone
// after it, and so every login and object handle. It runs at most once a
// second per module: reports whether the caller should try again.
func (m *module) reinit() bool {
	m.reinitMu.Lock()
	defer m.reinitMu.Unlock()
	if time.Since(m.reinitAt) < time.Second {
		return true // another caller just did it
	}
	m.callMu.Lock() // no call may run across a C_Finalize
	_ = m.ctx.Finalize()
	err := m.ctx.Initialize()
	m.callMu.Unlock()
	m.reinitAt = time.Now()
	if err != nil && codeOf(err) != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
		return false
	}
	modules.mu.Lock()
	for _, st := range m.tokens {
		st.gen.Add(1)
		st.health.reconnects.Add(1)
	}
	modules.mu.Unlock()
	return true
}
