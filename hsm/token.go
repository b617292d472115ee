package hsm

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Token is an open, logged-in PKCS#11 token. It is safe for concurrent use.
// Two Opens of one token in a process share one login, one session pool and
// one key cache; each must be closed.
type Token struct {
	st       *tokenState
	closed   atomic.Bool
	warnings []string
}

// tokenState is what every Token handle on one slot shares.
type tokenState struct {
	mod                 *module
	slot                uint
	label               string
	serial              string
	manufacturer, model string
	observe             func(op string, d time.Duration, err error) // Config.Observe of the first Open
	refs                int                                         // guarded by modules.mu

	pool *pool

	loginMu  sync.Mutex
	pin      []byte // kept to log in again after the login is lost
	loginErr error  // sticky: a refused PIN is never tried again

	// gen counts logins; a cached object handle is valid only for the
	// generation it was found in (handles die with the login).
	gen atomic.Uint64

	keysMu sync.Mutex
	keys   map[string]*Key // Find's cache, by label

	quirks   quirks // how the device departs from the standard (quirks.go)
	hmacGate *gate  // HMAC verifications one at a time (HMACContends); nil: side by side

	health health // whether the device answers (health.go)

	caps *capabilities // what the device can do, read once at Open

	// verifyBySign: this device's C_Verify reported a wrong MAC as a
	// device fault once; HMACs are checked by signing and comparing.
	verifyBySign atomic.Bool
}

// Open loads the module (once per process), finds the token, reads the PIN
// from cfg.PIN and logs in (once per token), and warms one session.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	max := cfg.MaxSessions
	if max == 0 {
		max = 2 * runtime.GOMAXPROCS(0)
		if max < 4 {
			max = 4
		}
	}
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m, err := loadModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	slot, err := m.findSlot(cfg)
	if err != nil {
		releaseModule(m)
		return nil, err
	}
	pin, err := cfg.PIN.ReadPIN(ctx)
	if err != nil {
		releaseModule(m)
		return nil, fmt.Errorf("token %s: %w", cfg.tokenName(), err)
	}
	warnings := pinFileWarnings(cfg.PIN)
	if st, ok := m.tokens[slot]; ok {
		// Already logged in: a second C_Login would answer "already logged
		// in" even for a wrong PIN, so compare with the PIN that worked.
		same := subtle.ConstantTimeCompare(pin, st.pin) == 1
		clear(pin)
		if !same {
			releaseModule(m)
			return nil, fmt.Errorf("token %s: %w: this process already has the token open with another PIN", cfg.tokenName(), ErrPINIncorrect)
		}
		st.refs++
		return &Token{st: st, warnings: warnings}, nil
	}
	info, err := m.ctx.GetTokenInfo(slot)
	if err != nil {
		clear(pin)
		releaseModule(m)
		return nil, call("C_GetTokenInfo", err)
	}
	q := quirksFor(info.ManufacturerID, info.Model)
	st := &tokenState{mod: m, slot: slot, label: info.Label, serial: info.SerialNumber, manufacturer: info.ManufacturerID, model: info.Model, observe: cfg.Observe, refs: 1, pin: pin, keys: map[string]*Key{},
		quirks: q, hmacGate: q.hmacGate(), caps: readCapabilities(m.ctx, slot)}
	st.health.notify = cfg.OnHealth
	st.pool = newPool(max, st.openSession, st.closeSession)
	// Warm one session; this also logs in and reports a wrong PIN now.
	s, err := st.pool.get(ctx)
	if err != nil {
		st.pool.closeAll()
		clear(pin)
		releaseModule(m)
		return nil, fmt.Errorf("token %s: %w", cfg.tokenName(), err)
	}
	st.pool.put(s)
	m.tokens[slot] = st
	return &Token{st: st, warnings: warnings}, nil
}

// Warnings are what Open found worth saying that did not stop it: a PIN
// file others can read.
func (t *Token) Warnings() []string { return t.warnings }

// pinFileWarnings warns of a PIN file readable or writable by group or
// others, as ssh does of a private key.
func pinFileWarnings(src PINSource) []string {
	f, ok := src.(filePIN)
	if !ok {
		return nil
	}
	st, err := os.Stat(string(f))
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return []string{fmt.Sprintf("PIN file %s is accessible to group or others (mode %04o): chmod 600 %s", string(f), st.Mode().Perm(), string(f))}
}

// Manufacturer is the token's manufacturer ID ("SoftHSM project", …).
func (t *Token) Manufacturer() string { return t.st.manufacturer }

// SoftHSM says the token is SoftHSM2's.
func (t *Token) SoftHSM() bool { return t.st.quirks.Name == "SoftHSM2" }

// Software names the software token the device is ("SoftHSM2", "NSS
// softokn"), whose keys are files on this machine's disk; "" for any other
// device (quirks.SoftwareToken).
func (t *Token) Software() string {
	if t.st.quirks.SoftwareToken {
		return t.st.quirks.Name
	}
	return ""
}

// Model is the token's model.
func (t *Token) Model() string { return t.st.model }

// SessionsInUse is the number of sessions taken from the pool now, and
// the pool's bound.
func (t *Token) SessionsInUse() (inUse, max int) {
	p := t.st.pool
	return len(p.slots) - len(p.idle), cap(p.slots)
}

// Ping checks that the token answers and is logged in, on a pooled
// session: what a readiness probe asks of the device.
func (t *Token) Ping(ctx context.Context) error {
	return t.do(ctx, "ping", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		info, err := t.st.mod.ctx.GetSessionInfo(s)
		if err != nil {
			return call("C_GetSessionInfo", err)
		}
		if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return call("C_GetSessionInfo", pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
		}
		return nil
	})
}

// Label is the token's label.
func (t *Token) Label() string { return t.st.label }

// Serial is the token's serial number.
func (t *Token) Serial() string { return t.st.serial }

// Slot is the token's slot id.
func (t *Token) Slot() uint { return t.st.slot }

// ModulePath is the PKCS#11 library the token is reached through.
func (t *Token) ModulePath() string { return t.st.mod.path }

// Close releases this handle. The last Close of a token closes its sessions
// (which logs out) and the last token of a module finalizes it. Keys found
// through a closed handle return ErrClosed.
func (t *Token) Close() error {
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	// A device that hangs would hold Close (closing sessions, finalizing)
	// and so the process's exit: it is waited for closeTimeout at most.
	done := make(chan struct{})
	go func() {
		defer close(done)
		modules.mu.Lock()
		defer modules.mu.Unlock()
		st := t.st
		st.refs--
		if st.refs == 0 {
			delete(st.mod.tokens, st.slot)
			st.pool.closeAll()
			st.loginMu.Lock()
			clear(st.pin)
			st.loginMu.Unlock()
			releaseModule(st.mod)
		}
	}()
	select {
	case <-done:
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("close %s: %w: it did not answer within %v; its sessions were left open", t.st.device(), ErrDevice, closeTimeout)
	}
}

// closeTimeout bounds Close.
const closeTimeout = 3 * time.Second

// openSession opens a session and makes sure the token is logged in: if it
// is not (first session, or every session was closed behind our back), it
// logs in and starts a new handle generation.
func (st *tokenState) openSession() (pkcs11.SessionHandle, error) {
	st.mod.callMu.RLock()
	s, err := st.mod.ctx.OpenSession(st.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	st.mod.callMu.RUnlock()
	if err != nil {
		return 0, call("C_OpenSession", err)
	}
	if err := st.ensureLogin(s); err != nil {
		st.closeSession(s)
		return 0, err
	}
	return s, nil
}

func (st *tokenState) closeSession(s pkcs11.SessionHandle) {
	st.mod.callMu.RLock()
	defer st.mod.callMu.RUnlock()
	_ = st.mod.ctx.CloseSession(s)
}

// ensureLogin logs in through session s unless the token already is.
// It never tries a PIN the token refused before.
func (st *tokenState) ensureLogin(s pkcs11.SessionHandle) error {
	st.loginMu.Lock()
	defer st.loginMu.Unlock()
	if st.loginErr != nil {
		return st.loginErr
	}
	st.mod.callMu.RLock()
	info, err := st.mod.ctx.GetSessionInfo(s)
	st.mod.callMu.RUnlock()
	if err != nil {
		return call("C_GetSessionInfo", err)
	}
	if info.State == pkcs11.CKS_RW_USER_FUNCTIONS || info.State == pkcs11.CKS_RO_USER_FUNCTIONS {
		return nil
	}
	st.mod.callMu.Lock()
	err = st.mod.ctx.Login(s, pkcs11.CKU_USER, string(st.pin))
	st.mod.callMu.Unlock()
	if err != nil && codeOf(err) != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
		err = call("C_Login", err)
		if errors.Is(err, ErrPINIncorrect) {
			err = st.withRetryWarning(err)
		}
		if errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked) {
			st.loginErr = err
			clear(st.pin)
		}
		return err
	}
	st.gen.Add(1)
	return nil
}

// withRetryWarning adds to a refused login what the token says of the
// attempts left (PKCS#11 token flags), so the operator stops before the
// token locks.
func (st *tokenState) withRetryWarning(err error) error {
	info, ierr := st.mod.ctx.GetTokenInfo(st.slot)
	switch {
	case ierr != nil:
		return err
	case info.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0:
		return fmt.Errorf("%w; the token has now locked the user PIN (CKF_USER_PIN_LOCKED)", ErrPINLocked)
	case info.Flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0:
		return fmt.Errorf("%w; warning: one more wrong PIN locks the token (CKF_USER_PIN_FINAL_TRY)", err)
	case info.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0:
		return fmt.Errorf("%w; warning: the token has counted wrong PINs and locks after a few more (CKF_USER_PIN_COUNT_LOW)", err)
	}
	return err
}

// maxAttempts bounds do's loop: every idle session may turn out broken,
// plus one retry after a lost login.
func (st *tokenState) maxAttempts() int { return cap(st.pool.slots) + 2 }

// do runs fn on a pooled session, with the object handle of k when k is not
// nil. A broken session is dropped and the call tried on another; a lost
// login or a stale handle is repaired (log in, find k again) and the call
// tried once more; a library that lost its state is initialized again
// (reinit). The call itself runs on the caller's goroutine: a device that
// hangs holds it (the server answers such a request 503 at its deadline
// from another goroutine, and the CLI exits); waiting for a session
// honours ctx. fn must wrap PKCS#11 errors with call.
func (t *Token) do(ctx context.Context, op string, k *Key, fn func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error) (err error) {
	if t.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err // nothing asked of the device for a caller already gone
	}
	st := t.st
	if obs := st.observe; obs != nil {
		start := time.Now()
		defer func() { obs(op, time.Since(start), err) }()
	}
	began := st.health.downs.Load()
	defer func() {
		switch {
		case err == nil:
			st.health.up(began)
		case deviceFault(err):
			st.health.fault(err)
		}
	}()
	repaired, reinited := false, false
	for range st.maxAttempts() {
		var s pkcs11.SessionHandle
		if s, err = st.pool.get(ctx); err != nil {
			if codeOf(err) == pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED && !reinited && st.mod.reinit() {
				reinited = true
				continue
			}
			return err
		}
		res := st.attempt(s, k, fn, !repaired)
		err, repaired = res.err, repaired || res.relogged
		switch {
		case err == nil:
			return nil
		case codeOf(err) == pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED && !reinited && st.mod.reinit():
			reinited = true
		case k != nil && k.found.Load() && isNotFound(err) && !reinited && st.mod.reinit():
			// A key this process used is gone: SoftHSM2 that ran out of
			// descriptors forgets its objects until it is initialized
			// again. Once more after a reinit; then it is really gone.
			reinited = true
			k.forget()
		case !res.retry:
			return err
		}
	}
	return err
}

// attemptResult is how one attempt ended: its error, whether another
// attempt may succeed, and whether it logged in again.
type attemptResult struct {
	err      error
	retry    bool
	relogged bool
}

// attempt runs fn once on session s, which it owns: it puts s back in the
// pool, or drops it when broken, however it ends.
func (st *tokenState) attempt(s pkcs11.SessionHandle, k *Key, fn func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error, mayRelogin bool) attemptResult {
	var h pkcs11.ObjectHandle
	var err error
	st.mod.callMu.RLock()
	if k != nil {
		h, err = k.handle(s)
	}
	if err == nil {
		err = fn(s, h)
	}
	st.mod.callMu.RUnlock()
	switch {
	case err == nil:
		st.pool.put(s)
		return attemptResult{}
	case sessionBroken(err) || codeOf(err) == pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:
		st.pool.drop(s)
		return attemptResult{err: err, retry: true}
	case needsRelogin(err) && mayRelogin:
		if k != nil {
			k.forget()
		}
		lerr := st.ensureLogin(s)
		if lerr != nil && sessionBroken(lerr) {
			st.pool.drop(s)
		} else {
			st.pool.put(s)
		}
		if lerr != nil && !sessionBroken(lerr) {
			return attemptResult{err: lerr, relogged: true}
		}
		return attemptResult{err: err, retry: true, relogged: true}
	}
	st.pool.put(s)
	return attemptResult{err: err}
}

// findObjects returns the handles of every object matching template.
func (st *tokenState) findObjects(s pkcs11.SessionHandle, template []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	ctx := st.mod.ctx
	if err := ctx.FindObjectsInit(s, template); err != nil {
		return nil, call("C_FindObjectsInit", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := ctx.FindObjects(s, 64)
		if err != nil {
			_ = ctx.FindObjectsFinal(s)
			return nil, call("C_FindObjects", err)
		}
		all = append(all, hs...)
		if len(hs) < 64 {
			break
		}
	}
	if err := ctx.FindObjectsFinal(s); err != nil {
		return nil, call("C_FindObjectsFinal", err)
	}
	return all, nil
}
