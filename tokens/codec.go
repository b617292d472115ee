package tokens

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The token codec: what golang-jwt does with reflection, done directly for
// keyward's own claim set. A token costs one device call (~15 µs); encoding
// and decoding it through encoding/json cost half as much again, so both
// directions have a direct path here. The bytes are exactly golang-jwt's
// (a test compares them), and decoding falls back to encoding/json for
// anything keyward does not write itself.

var b64url = base64.RawURLEncoding.Strict()

// headerSegment is the encoded JOSE header of a keyward token, byte for
// byte what jwt.NewWithClaims writes: {"alg":…,"kid":…,"typ":"JWT"}.
func headerSegment(alg, kid string) string {
	h := make([]byte, 0, 64)
	h = append(h, `{"alg":`...)
	h = appendJSONString(h, alg)
	h = append(h, `,"kid":`...)
	h = appendJSONString(h, kid)
	h = append(h, `,"typ":"JWT"}`...)
	return b64url.EncodeToString(h)
}

// appendClaims appends c as JSON, as json.Marshal(c) writes it (the same
// member order, omitempty, aud always an array).
func appendClaims(b []byte, c *Claims) []byte {
	b = append(b, '{')
	first := true
	member := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	str := func(name, v string) {
		if v != "" {
			member(name)
			b = appendJSONString(b, v)
		}
	}
	date := func(name string, d *jwt.NumericDate) {
		if d != nil {
			member(name)
			b = strconv.AppendInt(b, d.Truncate(jwt.TimePrecision).Unix(), 10)
		}
	}
	str("iss", c.Issuer)
	str("sub", c.Subject)
	if len(c.Audience) > 0 {
		member("aud")
		b = append(b, '[')
		for i, a := range c.Audience {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	date("exp", c.ExpiresAt)
	date("nbf", c.NotBefore)
	date("iat", c.IssuedAt)
	str("jti", c.ID)
	str("scp", c.Scope)
	member("knd")
	b = appendJSONString(b, c.Kind)
	str("ext", c.Ext)
	return append(b, '}')
}

// plainJSON says s needs no escaping in JSON as encoding/json writes it
// (which also escapes <, > and &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendJSONString(b []byte, s string) []byte {
	if plainJSON(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// decodeClaims reads a payload of the shape keyward writes: one object of
// known members whose strings need no escapes and whose dates are
// integers. It reports false for anything else (escapes, non-ASCII,
// floats, unknown or repeated members, …): the caller then decodes with
// encoding/json, so both paths read every payload the same way.
func decodeClaims(p string) (*Claims, bool) {
	// One allocation holds the claims, their dates and a first audience;
	// the strings are substrings of the payload.
	box := &struct {
		Claims
		dates [3]jwt.NumericDate
		aud   [1]string
	}{}
	c, dates := &box.Claims, &box.dates
	d := decoder{s: p, aud: box.aud[:0]}
	if !d.byte('{') {
		return nil, false
	}
	var seen uint16
	for {
		name, ok := d.str()
		if !ok || !d.byte(':') {
			return nil, false
		}
		var bit uint16
		switch name {
		case "iss":
			bit = 1 << 0
			c.Issuer, ok = d.str()
		case "sub":
			bit = 1 << 1
			c.Subject, ok = d.str()
		case "aud":
			bit = 1 << 2
			c.Audience, ok = d.strings()
		case "exp":
			bit = 1 << 3
			c.ExpiresAt, ok = d.date(&dates[0])
		case "nbf":
			bit = 1 << 4
			c.NotBefore, ok = d.date(&dates[1])
		case "iat":
			bit = 1 << 5
			c.IssuedAt, ok = d.date(&dates[2])
		case "jti":
			bit = 1 << 6
			c.ID, ok = d.str()
		case "scp":
			bit = 1 << 7
			c.Scope, ok = d.str()
		case "knd":
			bit = 1 << 8
			c.Kind, ok = d.str()
		case "ext":
			bit = 1 << 9
			c.Ext, ok = d.str()
		default:
			return nil, false
		}
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		if d.byte(',') {
			continue
		}
		if !d.byte('}') {
			return nil, false
		}
		d.space()
		return c, d.i == len(d.s)
	}
}

type decoder struct {
	s   string
	i   int
	aud []string // room for the audience
}

func (d *decoder) space() {
	for d.i < len(d.s) && (d.s[d.i] == ' ' || d.s[d.i] == '\t' || d.s[d.i] == '\n' || d.s[d.i] == '\r') {
		d.i++
	}
}

// byte skips white space and then c, if c is next.
func (d *decoder) byte(c byte) bool {
	d.space()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (d *decoder) str() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '"' {
			d.i++
			return d.s[start : d.i-1], true
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return "", false
		}
		d.i++
	}
	return "", false
}

// strings reads a string, or a non-empty array of strings.
func (d *decoder) strings() (jwt.ClaimStrings, bool) {
	d.space()
	out := jwt.ClaimStrings(d.aud)
	if d.i < len(d.s) && d.s[d.i] == '"' {
		s, ok := d.str()
		return append(out, s), ok
	}
	if !d.byte('[') {
		return nil, false
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if d.byte(',') {
			continue
		}
		return out, d.byte(']')
	}
}

// date reads into nd a NumericDate written as a plain integer of at most
// 15 digits (exact in a float64, as encoding/json reads it).
func (d *decoder) date(nd *jwt.NumericDate) (*jwt.NumericDate, bool) {
	d.space()
	start := d.i
	var n int64
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		n = n*10 + int64(d.s[d.i]-'0')
		d.i++
	}
	digits := d.i - start
	if digits == 0 || digits > 15 || (digits > 1 && d.s[start] == '0') {
		return nil, false
	}
	if d.i < len(d.s) && (d.s[d.i] == '.' || d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		return nil, false
	}
	nd.Time = time.Unix(n, 0)
	return nd, true
}
