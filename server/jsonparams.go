package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

var errNotObject = errorf(http.StatusBadRequest, "BAD_REQUEST", "the body is not one JSON object")

// parseJSON reads body, one JSON object, into params. JSON numbers and
// booleans become their text; an array of strings is joined with spaces
// (an audience list); null is as if the member were not there.
//
// encoding/json keeps the last of a member given twice and mends a string
// with U+FFFD where it is not UTF-8: both are refused, naming the field.
// One pass over the bytes (a member count, utf8.Valid) tells when; only
// then are the members read one by one to find the field.
func parseJSON(body []byte) (params, error) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errNotObject
	}
	if n, whole := scanJSON(body); n != len(raw) || !whole || !utf8.Valid(body) {
		return nil, explainJSON(body)
	}
	p := make(params, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			p[k] = v
		case json.Number:
			p[k] = v.String()
		case bool:
			p[k] = strconv.FormatBool(v)
		case nil:
		case []any:
			words := make([]string, len(v))
			for i, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "field %q must be a list of strings", k)
				}
				words[i] = s
			}
			p[k] = strings.Join(words, " ")
		default:
			return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "field %q must be a string, number or boolean", k)
		}
	}
	return p, nil
}

// scanJSON counts the members of the object in b, valid JSON, and says
// whether its strings are whole: no \u escape of half a surrogate pair
// (which encoding/json reads as U+FFFD).
func scanJSON(b []byte) (members int, whole bool) {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++ // the escaped character: \" and \\ end nothing
			if r := uEscape(b, i); utf16.IsSurrogate(r) {
				if utf16.DecodeRune(r, uEscape(b, i+6)) == utf8.RuneError {
					return members, false
				}
				i += 6 // the pair's second half
			}
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ':' && depth == 1:
			members++
		}
	}
	return members, true
}

// uEscape is the code of the \u escape whose u is at b[i], or -1.
func uEscape(b []byte, i int) rune {
	if i+5 > len(b) || b[i] != 'u' {
		return -1
	}
	n, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(n)
}

// explainJSON names the member of body, a valid JSON object, that is
// given twice or is not UTF-8, reading the members one by one.
func explainJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	seen := map[string]bool{}
	if _, err := dec.Token(); err != nil { // the opening brace
		return errNotObject
	}
	for dec.More() {
		start := dec.InputOffset()
		t, err := dec.Token()
		k, _ := t.(string)
		var v json.RawMessage
		if err != nil || dec.Decode(&v) != nil {
			break
		}
		switch {
		case !wholeText(body[start:dec.InputOffset()-int64(len(v))]) || !wholeText(v):
			return errorf(http.StatusBadRequest, "BAD_REQUEST", "field %q is not UTF-8", k)
		case seen[k]:
			return errorf(http.StatusBadRequest, "BAD_REQUEST", "field %q is given more than once", k)
		}
		seen[k] = true
	}
	return errNotObject
}

// wholeText says JSON text b is UTF-8 and its strings are whole.
func wholeText(b []byte) bool {
	_, whole := scanJSON(b)
	return whole && utf8.Valid(b)
}
