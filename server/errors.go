package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/keyward/keyward/node"
)

// apiError is an error with the HTTP status and code the API answers.
type apiError struct {
	status int
	code   string
	msg    string
	allow  string // the Allow header of a 405
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

var (
	errNoCredentials = errorf(http.StatusUnauthorized, "UNAUTHORIZED", "no credentials: send a token in the Authorization header (Bearer)")
	errForbidden     = func(need string) *apiError {
		return errorf(http.StatusForbidden, "FORBIDDEN", "the token's scope does not allow this: it needs %s", need)
	}
)

// answers maps node's error kinds to the API's status and code; msg, when
// set, replaces the error's own message (which may name a database or
// device detail the caller has no use for).
var answers = map[node.Kind]struct {
	status    int
	code, msg string
}{
	node.KindUsage:               {http.StatusBadRequest, "BAD_REQUEST", ""},
	node.KindInvalid:             {http.StatusBadRequest, "BAD_REQUEST", ""},
	node.KindTooLarge:            {http.StatusRequestEntityTooLarge, "TOO_LARGE", ""},
	node.KindNotFound:            {http.StatusNotFound, "NOT_FOUND", ""},
	node.KindNotSupported:        {http.StatusBadRequest, "NOT_SUPPORTED", ""},
	node.KindKeyState:            {http.StatusConflict, "KEY_STATE", ""},
	node.KindKeyMismatch:         {http.StatusConflict, "KEY_STATE", ""},
	node.KindBadCiphertext:       {http.StatusBadRequest, "BAD_CIPHERTEXT", ""},
	node.KindInvalidToken:        {http.StatusUnauthorized, "INVALID_TOKEN", ""},
	node.KindAlreadyUsed:         {http.StatusConflict, "ALREADY_USED", ""},
	node.KindDatabaseUnavailable: {http.StatusServiceUnavailable, "DATABASE_UNAVAILABLE", "the database cannot be reached; try again later"},
	node.KindDeviceUnavailable:   {http.StatusServiceUnavailable, "DEVICE_UNAVAILABLE", "the PKCS#11 device cannot be used; try again later"},
	node.KindTimeout:             {http.StatusServiceUnavailable, "UNAVAILABLE", "the request timed out; try again later"},
	node.KindInternal:            {http.StatusInternalServerError, "INTERNAL", "internal error"},
}

// classify maps an error to the API's answer: the server's own errors
// as they are, a body over its limit as 413, a body that cannot be read
// as 400, and the library's by node.KindOf.
func classify(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	var be *bodyError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "TOO_LARGE", "the request body is larger than the %d bytes allowed", mbe.Limit)
	case errors.As(err, &be):
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "%s", be.Error())
	}
	a := answers[node.KindOf(err)]
	msg := a.msg
	if msg == "" {
		msg = err.Error()
	}
	return &apiError{status: a.status, code: a.code, msg: msg}
}

// errorBody is every error's answer: RFC 6749 §5.2's error and
// error_description (what OAuth clients read), and JFrog's errors list.
type errorBody struct {
	Error       string      `json:"error"`
	Description string      `json:"error_description"`
	Errors      []errorItem `json:"errors"`
}

// oauthCodes are the RFC 6749 §5.2 (and RFC 6750 §3.1) error codes of the
// API's own; any other 4xx is invalid_request.
var oauthCodes = map[string]string{
	"INVALID_GRANT":          "invalid_grant",
	"INVALID_SCOPE":          "invalid_scope",
	"UNSUPPORTED_GRANT_TYPE": "unsupported_grant_type",
	"UNAUTHORIZED":           "invalid_token",
	"INVALID_TOKEN":          "invalid_token",
	"FORBIDDEN":              "insufficient_scope",
	"INTERNAL":               "server_error",
}

// oauthCode is the RFC 6749 error code of an answer.
func oauthCode(ae *apiError) string {
	if c, ok := oauthCodes[ae.code]; ok {
		return c
	}
	if ae.status >= 500 {
		return "temporarily_unavailable"
	}
	return "invalid_request"
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail answers err; a 500 is logged with its detail (which the caller is
// not shown), a 503 carries Retry-After.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	switch ae.status {
	case http.StatusInternalServerError:
		s.log.Error("request failed", "route", r.Pattern, "error", err.Error())
	case http.StatusServiceUnavailable:
		s.log.Warn("unavailable", "route", r.Pattern, "error", err.Error())
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", ae.allow)
	case http.StatusUnauthorized:
		s.metrics.authFailures.Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyward"`)
	}
	writeJSON(w, ae.status, errorBody{Error: oauthCode(ae), Description: ae.msg, Errors: []errorItem{{Code: ae.code, Message: ae.msg}}})
}

// Header values writeJSON shares between responses (net/http only reads
// them).
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// jsonBuffers holds writeJSON's buffers.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			jsonBuffers.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil { // json.Marshal's bytes and a newline
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"server_error","error_description":"internal error","errors":[{"code":"INTERNAL","message":"internal error"}]}` + "\n")
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if _, ok := h["Cache-Control"]; !ok {
		h["Cache-Control"] = noStore
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
