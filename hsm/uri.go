package hsm

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// URI is a parsed RFC 7512 PKCS#11 URI, limited to what keyward uses.
type URI struct {
	Token      string // path attribute "token": the token label
	Serial     string // "serial"
	SlotID     *uint  // "slot-id"
	Object     string // "object": the object label
	ID         []byte // "id": CKA_ID
	Type       string // "type": public, private, cert, secret-key or data
	ModulePath string // query attribute "module-path"
	PINSource  string // query attribute "pin-source" (env:VAR or file:PATH)
}

// ParseURI reads a "pkcs11:" URI. It refuses "pin-value": a PIN inside a
// URI ends up in shell history, process lists and logs.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: not a PKCS#11 URI (it must start with \"pkcs11:\")", ErrConfig)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	parse := func(part, sep string, set func(k, v string) error) error {
		if part == "" {
			return nil
		}
		for _, attr := range strings.Split(part, sep) {
			k, raw, ok := strings.Cut(attr, "=")
			if !ok || k == "" {
				return fmt.Errorf("%w: PKCS#11 URI attribute %q has no value", ErrConfig, k)
			}
			if k == "pin-value" {
				return fmt.Errorf("%w: PKCS#11 URI carries pin-value; a PIN in a URI leaks into shell history and logs: use pin-source=env:VAR or pin-source=file:PATH", ErrConfig)
			}
			if seen[k] {
				return fmt.Errorf("%w: PKCS#11 URI attribute %q appears twice", ErrConfig, k)
			}
			seen[k] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return fmt.Errorf("%w: PKCS#11 URI attribute %q: bad percent-encoding", ErrConfig, k)
			}
			if err := set(k, v); err != nil {
				return err
			}
		}
		return nil
	}
	err := parse(path, ";", func(k, v string) error {
		switch k {
		case "token":
			u.Token = v
		case "serial":
			u.Serial = v
		case "slot-id":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("%w: PKCS#11 URI slot-id %q is not a number", ErrConfig, v)
			}
			id := uint(n)
			u.SlotID = &id
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type":
			switch v {
			case "public", "private", "cert", "secret-key", "data":
				u.Type = v
			default:
				return fmt.Errorf("%w: PKCS#11 URI type %q is not public, private, cert, secret-key or data", ErrConfig, v)
			}
		}
		// Other standard attributes (manufacturer, model, library-*, slot-*)
		// do not pick anything keyward needs; RFC 7512 lets us ignore them.
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = parse(query, "&", func(k, v string) error {
		switch k {
		case "module-path":
			u.ModulePath = v
		case "pin-source":
			if strings.HasPrefix(v, "/") {
				v = "file:" + v // RFC 7512 allows a bare path
			}
			u.PINSource = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// ApplyTo sets the token choice, module path and PIN source of cfg from the
// URI. A URI may name a token several ways; the most specific one is used:
// serial, then slot-id, then label.
func (u *URI) ApplyTo(cfg *Config, prompt PromptFunc) error {
	cfg.TokenLabel, cfg.TokenSerial, cfg.Slot = "", "", nil
	switch {
	case u.Serial != "":
		cfg.TokenSerial = u.Serial
	case u.SlotID != nil:
		cfg.Slot = u.SlotID
	case u.Token != "":
		cfg.TokenLabel = u.Token
	default:
		return fmt.Errorf("%w: PKCS#11 URI names no token (token=, serial= or slot-id=)", ErrConfig)
	}
	if u.ModulePath != "" {
		cfg.ModulePath = u.ModulePath
	}
	if u.PINSource != "" {
		src, err := ParsePINSource(u.PINSource, prompt)
		if err != nil {
			return err
		}
		cfg.PIN = src
	}
	return nil
}
