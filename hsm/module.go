package hsm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/hsm/internal/p11raw"
	"github.com/miekg/pkcs11"
)

// module is one loaded PKCS#11 library. A process loads and initializes each
// library once (a second C_Initialize is refused by most modules) and shares
// it between every Token opened on it.
type module struct {
	path     string
	ctx      *pkcs11.Ctx
	refs     int  // guarded by modules.mu
	ownsInit bool // we called C_Initialize, so we call C_Finalize

	// functions is the module's function list, for C_Encrypt into a
	// buffer keyward sizes (p11raw); nil where this build may not read it,
	// and noFunctions says why.
	functions   *p11raw.FunctionList
	noFunctions error

	// tokens holds the open tokens of this module by slot, so that two Opens
	// of one token share one login and one session pool. Guarded by modules.mu.
	tokens map[uint]*tokenState

	// adminMu serializes token initialization (which slot is free is racy).
	adminMu sync.Mutex

	// reinitMu and reinitAt pace reinit: once a second at most.
	reinitMu sync.Mutex
	reinitAt time.Time
	// callMu makes C_Login, C_Finalize and C_Initialize exclusive: every
	// other call holds it to read. SoftHSM2 crashed (SIGSEGV in
	// C_FindObjectsInit) when a login or a reinit ran beside another
	// session's call after its token directory came back (DEVICES.md row
	// 14). Those are rare: nothing waits in steady state.
	callMu sync.RWMutex
}

var modules = struct {
	mu     sync.Mutex
	byPath map[string]*module
}{byPath: map[string]*module{}}

// loadModule returns the process's module for path, loading and
// initializing it on first use. Callers must releaseModule it.
// modules.mu must be held.
func loadModule(path string) (*module, error) {
	if m, ok := modules.byPath[path]; ok {
		m.refs++
		return m, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v; install the library (SoftHSM2: apt-get install softhsm2) or name another", ErrModule, path, errors.Unwrap(err))
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory, not a PKCS#11 library", ErrModule, path)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: %s could not be loaded (not a shared library for this platform, or a dependency is missing: try ldd %s)", ErrModule, path, path)
	}
	m := &module{path: path, ctx: ctx, refs: 1, ownsInit: true, tokens: map[uint]*tokenState{}}
	if err := ctx.Initialize(); err != nil {
		if codeOf(err) != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			ctx.Destroy()
			return nil, fmt.Errorf("%w: %s: %w", ErrModule, path, call("C_Initialize", err))
		}
		// Someone else in this process initialized it; they finalize it.
		m.ownsInit = false
	}
	m.functions, m.noFunctions = p11raw.Load(ctx)
	modules.byPath[path] = m
	return m, nil
}

// releaseModule drops one reference; the last one finalizes and unloads.
// modules.mu must be held.
func releaseModule(m *module) {
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.byPath, m.path)
	if m.ownsInit {
		_ = m.ctx.Finalize()
	}
	m.ctx.Destroy()
}

// findSlot returns the slot of the token chosen by cfg.
func (m *module) findSlot(cfg Config) (uint, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, call("C_GetSlotList", err)
	}
	for _, s := range slots {
		if cfg.Slot != nil {
			if s == *cfg.Slot {
				return s, nil
			}
			continue
		}
		info, err := m.ctx.GetTokenInfo(s)
		if err != nil {
			continue // a slot whose token went away meanwhile
		}
		if info.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		if (cfg.TokenLabel != "" && info.Label == cfg.TokenLabel) ||
			(cfg.TokenSerial != "" && info.SerialNumber == cfg.TokenSerial) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: no initialized token with %s in %s (%d slots with a token); list them with: pkcs11-tool --module %s --list-slots",
		ErrTokenNotFound, cfg.tokenName(), m.path, len(slots), m.path)
}

// Module is a loaded PKCS#11 library, for work on the module itself rather
// than on one token: listing tokens, initializing one. Holding a Module also
// keeps the library loaded between Opens and Closes of its tokens.
type Module struct {
	m      *module
	closed atomic.Bool
}

// LoadModule loads (once per process) the PKCS#11 library at path.
func LoadModule(path string) (*Module, error) {
	if err := (Config{ModulePath: path, TokenLabel: "-", PIN: envPIN("-")}).validate(); err != nil {
		return nil, err
	}
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m, err := loadModule(path)
	if err != nil {
		return nil, err
	}
	return &Module{m: m}, nil
}

// Close drops this reference; the last one finalizes the library.
func (mod *Module) Close() error {
	if mod.closed.CompareAndSwap(false, true) {
		modules.mu.Lock()
		releaseModule(mod.m)
		modules.mu.Unlock()
	}
	return nil
}

// Path is the library's path.
func (mod *Module) Path() string { return mod.m.path }

// TokenInfo describes a slot's token.
type TokenInfo struct {
	Slot         uint
	Label        string
	Serial       string
	Manufacturer string
	Model        string
	Initialized  bool
	// PINCounted: the token says it counts wrong PINs (one of
	// CKF_USER_PIN_COUNT_LOW, _FINAL_TRY, _LOCKED is set). A token that
	// counts without saying so sets none (NSS softokn never does).
	PINCounted bool
}

// Tokens lists the tokens present in the module's slots.
func (mod *Module) Tokens() ([]TokenInfo, error) {
	if mod.closed.Load() {
		return nil, ErrClosed
	}
	slots, err := mod.m.ctx.GetSlotList(true)
	if err != nil {
		return nil, call("C_GetSlotList", err)
	}
	var out []TokenInfo
	for _, s := range slots {
		info, err := mod.m.ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		out = append(out, TokenInfo{Slot: s, Label: info.Label, Serial: info.SerialNumber,
			Manufacturer: info.ManufacturerID, Model: info.Model,
			Initialized: info.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0,
			PINCounted:  info.Flags&(pkcs11.CKF_USER_PIN_COUNT_LOW|pkcs11.CKF_USER_PIN_FINAL_TRY|pkcs11.CKF_USER_PIN_LOCKED) != 0})
	}
	return out, nil
}

// InitToken initializes the first free (uninitialized) token of the module
// with label, SO PIN and user PIN, and returns its slot and serial number.
// It is meant for SoftHSM2 and test devices: on a real HSM, token
// initialization is the vendor's ceremony.
func (mod *Module) InitToken(label string, soPIN, userPIN []byte) (slot uint, serial string, err error) {
	if mod.closed.Load() {
		return 0, "", ErrClosed
	}
	if label == "" || len(label) > 32 {
		return 0, "", fmt.Errorf("%w: token label must be 1 to 32 bytes", ErrConfig)
	}
	if len(soPIN) == 0 || len(userPIN) == 0 {
		return 0, "", fmt.Errorf("%w: SO PIN and user PIN must not be empty", ErrConfig)
	}
	m := mod.m
	m.adminMu.Lock()
	defer m.adminMu.Unlock()
	tokens, err := mod.Tokens()
	if err != nil {
		return 0, "", err
	}
	free := -1
	for _, t := range tokens {
		if t.Label == label && t.Initialized {
			return 0, "", fmt.Errorf("%w: a token labelled %q already exists in %s", ErrConfig, label, m.path)
		}
		if !t.Initialized && free < 0 {
			free = int(t.Slot)
		}
	}
	if free < 0 {
		return 0, "", fmt.Errorf("%w: no uninitialized token left in %s", ErrTokenNotFound, m.path)
	}
	if err := m.ctx.InitToken(uint(free), string(soPIN), label); err != nil {
		return 0, "", call("C_InitToken", err)
	}
	// SoftHSM2 moves a freshly initialized token to a new slot id: find it
	// again by label.
	tokens, err = mod.Tokens()
	if err != nil {
		return 0, "", err
	}
	found := false
	for _, t := range tokens {
		if t.Initialized && t.Label == label {
			slot, serial, found = t.Slot, t.Serial, true
		}
	}
	if !found {
		return 0, "", fmt.Errorf("%w: token %q was initialized but cannot be found again", ErrTokenNotFound, label)
	}
	sh, err := m.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, "", call("C_OpenSession", err)
	}
	defer m.ctx.CloseSession(sh)
	if err := m.ctx.Login(sh, pkcs11.CKU_SO, string(soPIN)); err != nil {
		return 0, "", call("C_Login(SO)", err)
	}
	defer m.ctx.Logout(sh)
	if err := m.ctx.InitPIN(sh, string(userPIN)); err != nil {
		return 0, "", call("C_InitPIN", err)
	}
	return slot, serial, nil
}
