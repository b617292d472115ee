package hsm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config says which module, which token and where the PIN comes from.
// It holds no secret: the PIN is read from its PINSource at Open, so a
// Config can be printed or logged as it is.
type Config struct {
	// ModulePath is the absolute path of the PKCS#11 library.
	ModulePath string

	// Exactly one of TokenLabel, TokenSerial and Slot picks the token.
	TokenLabel  string
	TokenSerial string
	Slot        *uint

	// PIN is where the user PIN comes from.
	PIN PINSource

	// MaxSessions bounds the session pool; 0 means 2×GOMAXPROCS (at least 4).
	MaxSessions int

	// Observe, when set, is told every device operation (seal, open, hmac,
	// hmac_verify, sign, find, …), how long it took and how it ended: the
	// server's metrics. The first Open of a token sets it for the process.
	Observe func(op string, d time.Duration, err error)
	// OnHealth, when set, is told each time the device stops answering
	// and each time it answers again (once each, not per call).
	OnHealth func(Health)
}

// String describes the configuration; it never contains a PIN.
func (c Config) String() string {
	pin := "none"
	if c.PIN != nil {
		pin = c.PIN.String()
	}
	return fmt.Sprintf("module=%s token=%s pin=%s", c.ModulePath, c.tokenName(), pin)
}

// LogValue makes slog print the same redacted description.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c Config) tokenName() string {
	switch {
	case c.TokenLabel != "":
		return fmt.Sprintf("label %q", c.TokenLabel)
	case c.TokenSerial != "":
		return fmt.Sprintf("serial %q", c.TokenSerial)
	case c.Slot != nil:
		return fmt.Sprintf("slot %d", *c.Slot)
	}
	return "(none)"
}

func (c Config) validate() error {
	if c.ModulePath == "" {
		return fmt.Errorf("%w: no PKCS#11 module path", ErrConfig)
	}
	if !filepath.IsAbs(c.ModulePath) {
		return fmt.Errorf("%w: module path %q is not absolute; give the full path of the library (a bare or relative name would be searched for by the dynamic loader)", ErrConfig, c.ModulePath)
	}
	n := 0
	for _, set := range []bool{c.TokenLabel != "", c.TokenSerial != "", c.Slot != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: choose the token by exactly one of label, serial or slot (got %d)", ErrConfig, n)
	}
	if c.PIN == nil {
		return fmt.Errorf("%w: no PIN source; use env:VAR, file:PATH or a prompt", ErrConfig)
	}
	if c.MaxSessions < 0 {
		return fmt.Errorf("%w: MaxSessions %d is negative", ErrConfig, c.MaxSessions)
	}
	return nil
}

// A PINSource yields the user PIN when the token is opened. Its String
// names the source ("env:KEYWARD_PIN"), never the PIN.
type PINSource interface {
	ReadPIN(ctx context.Context) ([]byte, error)
	String() string
}

// PINFromEnv reads the PIN from the environment variable name.
func PINFromEnv(name string) PINSource { return envPIN(name) }

// PINFromFile reads the PIN from the first line of the file at path.
func PINFromFile(path string) PINSource { return filePIN(path) }

// PromptFunc asks a person for a secret; the returned slice is the caller's.
type PromptFunc func(ctx context.Context, prompt string) ([]byte, error)

// PINFromPrompt asks for the PIN through prompt.
func PINFromPrompt(prompt PromptFunc) PINSource { return promptPIN{prompt} }

// ParsePINSource reads "env:VAR", "file:PATH" or "prompt". A bare value is
// refused, so a PIN can never be passed where a source is expected.
func ParsePINSource(spec string, prompt PromptFunc) (PINSource, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch {
	case kind == "env" && arg != "":
		return PINFromEnv(arg), nil
	case kind == "file" && arg != "":
		return PINFromFile(arg), nil
	case spec == "prompt":
		if prompt == nil {
			return nil, fmt.Errorf("%w: PIN source \"prompt\" needs a terminal; use env:VAR or file:PATH", ErrConfig)
		}
		return PINFromPrompt(prompt), nil
	}
	// Do not echo spec: a user may have typed the PIN itself here.
	return nil, fmt.Errorf("%w: PIN source must be env:VAR, file:PATH or prompt", ErrConfig)
}

type envPIN string

func (e envPIN) String() string { return "env:" + string(e) }
func (e envPIN) ReadPIN(context.Context) ([]byte, error) {
	v, ok := os.LookupEnv(string(e))
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: environment variable %s is not set", ErrPINSource, string(e))
	}
	return []byte(v), nil
}

type filePIN string

func (f filePIN) String() string { return "file:" + string(f) }
func (f filePIN) ReadPIN(context.Context) ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		// The *PathError names the file only.
		return nil, fmt.Errorf("%w: %v", ErrPINSource, err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pin := bytes.Clone(bytes.TrimRight(line, "\r"))
	clear(b)
	if len(pin) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrPINSource, string(f))
	}
	return pin, nil
}

type promptPIN struct{ prompt PromptFunc }

func (promptPIN) String() string { return "prompt" }
func (p promptPIN) ReadPIN(ctx context.Context) ([]byte, error) {
	pin, err := p.prompt(ctx, "PIN: ")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPINSource, err)
	}
	if len(pin) == 0 {
		return nil, fmt.Errorf("%w: empty PIN", ErrPINSource)
	}
	return pin, nil
}
