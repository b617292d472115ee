package server

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// params are a request's fields, from a JSON object (parseJSON) or a form
// body (parseForm).
type params map[string]string

// readParams reads the body of r (at most max bytes) as JSON or as a form,
// by its Content-Type (JSON when there is none).
func readParams(w http.ResponseWriter, r *http.Request, max int64) (params, error) {
	body, err := readBody(w, r, max)
	if err != nil {
		return nil, err
	}
	ct := mediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		// curl -d '{…}' labels JSON as a form; no form starts with "{".
		ct = "application/json"
	}
	switch ct {
	case "application/x-www-form-urlencoded":
		return parseForm(string(body))
	case "", "application/json":
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "send application/json or application/x-www-form-urlencoded, not %s", ct)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params{}, nil
	}
	return parseJSON(body)
}

// mediaType is the media type of a Content-Type value as
// mime.ParseMediaType reads it ("" when it cannot), without its cost (a
// map for the parameters, a lower-case copy) for the two types the API
// reads.
func mediaType(v string) string {
	t, _, _ := strings.Cut(v, ";")
	if t = strings.TrimSpace(t); t == "application/json" || t == "application/x-www-form-urlencoded" || v == "" {
		return t
	}
	ct, _, _ := mime.ParseMediaType(v)
	return ct
}

// readBody reads the body of r, at most max bytes: in one allocation of
// the right size when the length is announced.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	n := r.ContentLength
	if n < 0 || n > max {
		return io.ReadAll(body)
	}
	buf := make([]byte, n+1) // one more: the end is seen without growing
	got, err := io.ReadFull(body, buf)
	switch err {
	case io.ErrUnexpectedEOF, io.EOF:
		return buf[:got], nil
	case nil:
		rest, err := io.ReadAll(body) // longer than announced: still bounded by max
		return append(buf, rest...), err
	}
	return nil, err
}

// parseForm is url.ParseQuery straight into params: the same errors, and
// a field given twice or not UTF-8 is refused.
func parseForm(form string) (params, error) {
	p := params{}
	for rest := form; rest != ""; {
		var kv string
		kv, rest, _ = strings.Cut(rest, "&")
		if strings.Contains(kv, ";") {
			return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "the form body cannot be read: invalid semicolon separator in query")
		}
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err == nil {
			v, err = url.QueryUnescape(v)
		}
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "the form body cannot be read: %v", err)
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			// url.QueryUnescape makes bytes of any %XX.
			return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "field %q is not UTF-8", k)
		}
		if _, dup := p[k]; dup {
			return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "field %q is given more than once", k)
		}
		p[k] = v
	}
	return p, nil
}

// words splits a list of words (scope, audience) at spaces, as RFC 6749
// §3.3 does: any other space or control character stays in a word, for
// the tokens library to refuse, naming the field.
func words(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' })
}

// seconds reads field k as a whole number of seconds, at least 1; absent
// is 0 (the default).
func (p params) seconds(k string) (time.Duration, error) {
	v, ok := p[k]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > 1<<33 {
		return 0, errorf(http.StatusBadRequest, "BAD_REQUEST", "%s must be a whole number of seconds, at least 1", k)
	}
	return time.Duration(n) * time.Second, nil
}

// bool reads field k as true or false; absent is false.
func (p params) bool(k string) (bool, error) {
	v, ok := p[k]
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "BAD_REQUEST", "%s must be true or false", k)
	}
	return b, nil
}

// required reads field k, which must be there.
func (p params) required(k string) (string, error) {
	v := strings.TrimSpace(p[k])
	if v == "" {
		return "", errorf(http.StatusBadRequest, "BAD_REQUEST", "%s is required", k)
	}
	return v, nil
}

// only refuses a field of p not in known: a request is never half read.
func (p params) only(known ...string) error {
	var unknown []string
	for k := range p {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return errorf(http.StatusBadRequest, "BAD_REQUEST", "unknown field %s: this route takes %s", quoteAll(unknown), strings.Join(known, ", "))
}

// query reads r's query string, refusing a parameter not in known (and
// one given twice): a filter is never silently ignored.
func query(r *http.Request, known ...string) (params, error) {
	if r.URL.RawQuery == "" {
		return params{}, nil
	}
	p, err := parseForm(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "the query string cannot be read: %v", strings.TrimPrefix(err.Error(), "the form body cannot be read: "))
	}
	var unknown []string
	for k := range p {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		takes := "no query parameters"
		if len(known) > 0 {
			takes = strings.Join(known, ", ")
		}
		return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "unknown query parameter %s: this route takes %s", quoteAll(unknown), takes)
	}
	return p, nil
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
