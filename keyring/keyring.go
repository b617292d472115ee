// Package keyring is keyward's key model on top of hsm: roles (master,
// join, signing), versioned labels "keyward/<role>/v<N>", the usages each
// role gets, and the ceremonies that put keys into the device.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/keyward/keyward/hsm"
)

// Role is what a key is for.
type Role string

const (
	Master  Role = "master"  // AES-GCM of shared data
	Join    Role = "join"    // derives the token-signing HMAC keys
	Signing Role = "signing" // key pair for asymmetric tokens
)

// Roles lists the roles in display order.
var Roles = []Role{Master, Join, Signing}

// ErrRole is an unknown role name.
var ErrRole = errors.New("unknown key role")

// ParseRole reads "master", "join" or "signing".
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w %q: use master, join or signing", ErrRole, s)
}

// Usage is what a role's key may do in the device, and nothing more: only
// the join key may derive (a derive-capable key is an AES-ECB oracle).
func (r Role) Usage() hsm.Usage {
	switch r {
	case Master:
		return hsm.UsageEncrypt | hsm.UsageDecrypt
	case Join:
		return hsm.UsageDerive
	}
	return hsm.UsageSign
}

const labelPrefix = "keyward/"

// Label is the device label of version v of role r.
func Label(r Role, v int) string { return fmt.Sprintf("%s%s/v%d", labelPrefix, r, v) }

// ParseLabel splits "keyward/<role>/v<N>"; ok is false for other labels.
func ParseLabel(label string) (r Role, v int, ok bool) {
	rest, found := strings.CutPrefix(label, labelPrefix)
	if !found {
		return "", 0, false
	}
	name, ver, found := strings.Cut(rest, "/v")
	if !found {
		return "", 0, false
	}
	role, err := ParseRole(name)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(ver)
	if err != nil || n < 1 || strconv.Itoa(n) != ver {
		return "", 0, false
	}
	return role, n, true
}

// Origin says where a key's value came from.
type Origin string

const (
	Generated Origin = "generated" // made in the device (CKA_LOCAL)
	Imported  Origin = "imported"  // created from a value (CKA_LOCAL false)
	Received  Origin = "received"  // unwrapped from a copy another device wrapped for this one
)

// Entry is one keyward key in the device.
type Entry struct {
	Role    Role   `json:"role"`
	Version int    `json:"version"`
	Label   string `json:"label"`
	Type    string `json:"type"`
	Bits    int    `json:"bits"`
	KCV     string `json:"kcv"`
	Origin  Origin `json:"origin"`
	// Policy is local (never leaves the device) or transferable (leaves
	// only wrapped for a device whose security officer trusted it).
	Policy      hsm.Policy `json:"policy"`
	Sensitive   bool       `json:"sensitive"`
	Extractable bool       `json:"extractable"`
}

// DisplayKCV is the entry's KCV for people: "unavailable" for an AES key
// whose KCV neither keyward nor the device can tell, "-" for a key pair.
func (e Entry) DisplayKCV() string {
	switch {
	case e.KCV != "":
		return e.KCV
	case e.Type == hsm.TypeAES.String():
		return "unavailable"
	}
	return "-"
}

func entryOf(info hsm.KeyInfo) (Entry, bool) {
	role, v, ok := ParseLabel(info.Label)
	if !ok {
		return Entry{}, false
	}
	origin := Imported
	switch {
	case info.Received:
		origin = Received
	case info.Local:
		origin = Generated
	}
	return Entry{Role: role, Version: v, Label: info.Label, Type: info.Type.String(), Bits: info.Bits,
		KCV: info.KCV, Origin: origin, Policy: info.Policy, Sensitive: info.Sensitive, Extractable: info.Extractable}, true
}

// Ring is the keyward keys of one token.
type Ring struct {
	tok *hsm.Token
}

// New returns the ring of tok.
func New(tok *hsm.Token) *Ring { return &Ring{tok: tok} }

// Token is the device the ring lives in.
func (r *Ring) Token() *hsm.Token { return r.tok }

// List returns every keyward key, by role then version.
func (r *Ring) List(ctx context.Context) ([]Entry, error) {
	infos, err := r.tok.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, info := range infos {
		if e, ok := entryOf(info); ok {
			out = append(out, e)
		}
	}
	order := map[Role]int{Master: 0, Join: 1, Signing: 2}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return order[out[i].Role] < order[out[j].Role]
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// Latest returns the newest version of role, or ErrNoKey.
func (r *Ring) Latest(ctx context.Context, role Role) (Entry, error) {
	entries, err := r.List(ctx)
	if err != nil {
		return Entry{}, err
	}
	var latest *Entry
	for i := range entries {
		if entries[i].Role == role {
			latest = &entries[i]
		}
	}
	if latest == nil {
		return Entry{}, fmt.Errorf("%w: no %s key on token %q", ErrNoKey, role, r.tok.Label())
	}
	return *latest, nil
}

// ErrNoKey means a role has no key (or not that version) in the device.
var ErrNoKey = errors.New("key not in the device")

// Get returns version v of role (0: the newest) and its entry.
func (r *Ring) Get(ctx context.Context, role Role, v int) (*hsm.Key, Entry, error) {
	var e Entry
	if v == 0 {
		var err error
		if e, err = r.Latest(ctx, role); err != nil {
			return nil, Entry{}, err
		}
		v = e.Version
	}
	k, err := r.tok.Find(ctx, Label(role, v))
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return nil, Entry{}, fmt.Errorf("%w: %s key v%d (%s) is not on token %q", ErrNoKey, role, v, Label(role, v), r.tok.Label())
	}
	if err != nil {
		return nil, Entry{}, err
	}
	info, err := k.Info(ctx)
	if err != nil {
		return nil, Entry{}, err
	}
	e, _ = entryOf(info)
	return k, e, nil
}

// NextVersion is one above the highest version of role in the device.
func (r *Ring) NextVersion(ctx context.Context, role Role) (int, error) {
	entries, err := r.List(ctx)
	if err != nil {
		return 0, err
	}
	next := 1
	for _, e := range entries {
		if e.Role == role && e.Version >= next {
			next = e.Version + 1
		}
	}
	return next, nil
}

// Generate makes the next version of an AES role key inside the device.
func (r *Ring) Generate(ctx context.Context, role Role, bits int, policy hsm.Policy) (Entry, error) {
	v, err := r.NextVersion(ctx, role)
	if err != nil {
		return Entry{}, err
	}
	return r.GenerateVersion(ctx, role, v, bits, policy)
}

// GenerateVersion makes version v of an AES role key inside the device.
func (r *Ring) GenerateVersion(ctx context.Context, role Role, v, bits int, policy hsm.Policy) (Entry, error) {
	if role == Signing {
		return Entry{}, fmt.Errorf("%w: signing keys are key pairs; use GenerateSigning", ErrRole)
	}
	if role == Join && bits == 192 {
		return Entry{}, fmt.Errorf("%w: the join key is AES-128 or AES-256", hsm.ErrInvalidKey)
	}
	k, err := r.tok.GenerateAES(ctx, Label(role, v), bits, role.Usage(), policy)
	if err != nil {
		return Entry{}, err
	}
	return r.entry(ctx, k)
}

// GenerateSigning makes the next version of the signing key pair.
func (r *Ring) GenerateSigning(ctx context.Context, kind hsm.KeyPairType, policy hsm.Policy) (Entry, error) {
	v, err := r.NextVersion(ctx, Signing)
	if err != nil {
		return Entry{}, err
	}
	k, err := r.tok.GenerateKeyPair(ctx, Label(Signing, v), kind, policy)
	if err != nil {
		return Entry{}, err
	}
	return r.entry(ctx, k)
}

// Import puts value (16, 24 or 32 bytes; cleared afterwards) into the device
// as the next version of role. With expectKCV set, a key whose KCV differs
// is refused and nothing is imported.
func (r *Ring) Import(ctx context.Context, role Role, value []byte, policy hsm.Policy, expectKCV string) (Entry, error) {
	defer clear(value)
	v, err := r.NextVersion(ctx, role)
	if err != nil {
		return Entry{}, err
	}
	return r.ImportVersion(ctx, role, v, value, policy, expectKCV)
}

// ErrWeakKey is a key value no one should use: all zero, or so few
// distinct bytes that it was not drawn at random.
var ErrWeakKey = errors.New("weak key refused")

// CheckStrength refuses a key of all zero bytes (what two identical
// components XOR to) or with fewer distinct byte values than half its
// length: a random 16-byte key has about 15.5, a 32-byte one about 30, and
// fewer than half happens by chance with probability below 2^-60.
func CheckStrength(value []byte) error {
	var seen [256]bool
	distinct, zero := 0, true
	for _, b := range value {
		zero = zero && b == 0
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	switch {
	case zero:
		return fmt.Errorf("%w: all %d bytes are zero (identical components cancel out); make a key with: openssl rand -hex %d", ErrWeakKey, len(value), len(value))
	case distinct < len(value)/2:
		return fmt.Errorf("%w: only %d distinct byte values in %d bytes, not a random key; make one with: openssl rand -hex %d", ErrWeakKey, distinct, len(value), len(value))
	}
	return nil
}

// ImportVersion is Import as version v. A weak key (CheckStrength) is
// refused before it reaches the device.
func (r *Ring) ImportVersion(ctx context.Context, role Role, v int, value []byte, policy hsm.Policy, expectKCV string) (Entry, error) {
	defer clear(value)
	if role == Signing {
		return Entry{}, fmt.Errorf("%w: signing keys cannot be imported as hex; generate them in the device", ErrRole)
	}
	if role == Join && len(value) == 24 {
		return Entry{}, fmt.Errorf("%w: the join key is AES-128 or AES-256 (32 or 64 hex digits), got 48 hex digits", hsm.ErrInvalidKey)
	}
	if err := CheckStrength(value); err != nil {
		return Entry{}, err
	}
	k, err := r.tok.ImportAES(ctx, Label(role, v), value, role.Usage(), policy, expectKCV)
	if err != nil {
		return Entry{}, err
	}
	return r.entry(ctx, k)
}

func (r *Ring) entry(ctx context.Context, k *hsm.Key) (Entry, error) {
	info, err := k.Info(ctx)
	if err != nil {
		return Entry{}, err
	}
	e, _ := entryOf(info)
	return e, nil
}
