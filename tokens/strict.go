package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// checkStrict holds a token's header and payload to what RFC 7515, 7519
// and 8725 ask and encoding/json (so golang-jwt) lets through: each must
// be one JSON object of valid UTF-8 — no invalid bytes, no unpaired
// surrogate escapes — with no member repeated at any depth and nothing
// after it; the header may not carry crit (keyward understands no JWS
// extension, RFC 7515 §4.1.11) and its alg, kid and typ are strings; the
// payload's exp, nbf and iat are numbers.
//
// Every token golang-jwt reads passes here first; the direct codec
// (decodeClaims) accepts a subset of what passes, which FuzzDifferential
// checks.
func checkStrict(token string) error {
	hdrSeg, rest, ok := strings.Cut(token, ".")
	payloadSeg, _, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return errors.New("a JWS compact token has three parts separated by dots")
	}
	hdr, err := b64url.DecodeString(hdrSeg)
	if err != nil {
		return fmt.Errorf("the header is not unpadded base64url: %w", err)
	}
	members, err := strictObject(hdr)
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if _, ok := members["crit"]; ok {
		return errors.New(`header: "crit" names extensions keyward does not understand (RFC 7515 §4.1.11)`)
	}
	for _, name := range []string{"alg", "kid", "typ"} {
		if kind, ok := members[name]; ok && kind != jsonString {
			return fmt.Errorf("header: %q is not a string", name)
		}
	}
	payload, err := b64url.DecodeString(payloadSeg)
	if err != nil {
		return fmt.Errorf("the payload is not unpadded base64url: %w", err)
	}
	if members, err = strictObject(payload); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if kind, ok := members[name]; ok && kind != jsonNumber {
			return fmt.Errorf("claims: %q is not a number", name)
		}
	}
	return nil
}

// jsonKind is what a top-level member holds.
type jsonKind int

const (
	jsonOther jsonKind = iota
	jsonString
	jsonNumber
)

// strictObject checks that text is one JSON object of valid UTF-8 without
// repeated members, and returns the kinds of its top-level members.
func strictObject(text []byte) (map[string]jsonKind, error) {
	if !utf8.Valid(text) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := pairedSurrogates(text); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	top := map[string]jsonKind{}
	if err := walkObject(dec, top, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return top, nil
}

// maxDepth bounds nesting (a token is at most MaxTokenSize bytes anyway).
const maxDepth = 32

// walkObject reads the members of an object whose '{' was read, refusing
// repeated names; kinds (non-nil at the top level) gets each member's kind.
func walkObject(dec *json.Decoder, kinds map[string]jsonKind, depth int) error {
	seen := map[string]bool{}
	for {
		t, err := dec.Token()
		if err != nil {
			return errors.New("not valid JSON")
		}
		if t == json.Delim('}') {
			return nil
		}
		name := t.(string) // the decoder only yields strings as names
		if seen[name] {
			return fmt.Errorf("member %q appears twice", name)
		}
		seen[name] = true
		kind, err := walkValue(dec, depth)
		if err != nil {
			return err
		}
		if kinds != nil {
			kinds[name] = kind
		}
	}
}

func walkValue(dec *json.Decoder, depth int) (jsonKind, error) {
	t, err := dec.Token()
	if err != nil {
		return 0, errors.New("not valid JSON")
	}
	switch v := t.(type) {
	case string:
		return jsonString, nil
	case json.Number:
		return jsonNumber, nil
	case json.Delim:
		if depth >= maxDepth {
			return 0, errors.New("nested too deeply")
		}
		if v == '{' {
			return jsonOther, walkObject(dec, nil, depth+1)
		}
		for dec.More() {
			if _, err := walkValue(dec, depth+1); err != nil {
				return 0, err
			}
		}
		if t, err := dec.Token(); err != nil || t != json.Delim(']') {
			return 0, errors.New("not valid JSON")
		}
	}
	return jsonOther, nil
}

// pairedSurrogates refuses \uD800–\uDFFF escapes that are not a high
// surrogate followed by a low one: they stand for no character, and
// encoding/json would silently turn them into U+FFFD.
func pairedSurrogates(text []byte) error {
	inString := false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(text):
			i++
			if text[i] != 'u' {
				continue
			}
			r, ok := hex4(text, i+1)
			if !ok {
				return nil // not valid JSON; the decoder says so
			}
			i += 4
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return errors.New("an unpaired surrogate escape is not valid UTF-8")
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(text) || text[i+1] != '\\' || text[i+2] != 'u' {
					return errors.New("an unpaired surrogate escape is not valid UTF-8")
				}
				low, ok := hex4(text, i+3)
				if !ok || low < 0xDC00 || low > 0xDFFF {
					return errors.New("an unpaired surrogate escape is not valid UTF-8")
				}
				i += 6
			}
		}
	}
	return nil
}

func hex4(text []byte, at int) (rune, bool) {
	if at+4 > len(text) {
		return 0, false
	}
	var r rune
	for _, c := range text[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
