package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/tokens"
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

// classify maps an error from the library packages to the API's answer.
func classify(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "TOO_LARGE", "the request body is larger than the %d bytes allowed", mbe.Limit)
	case errors.Is(err, keystore.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "TOO_LARGE", "%v", err)
	case errors.Is(err, keystore.ErrRecordName):
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "%v", err)
	case errors.Is(err, keystore.ErrTokenUsed):
		return errorf(http.StatusConflict, "ALREADY_USED", "%v", err)
	case errors.Is(err, tokens.ErrInvalid), errors.Is(err, tokens.ErrRevoked), errors.Is(err, tokens.ErrExpired):
		return errorf(http.StatusUnauthorized, "INVALID_TOKEN", "%v", err)
	case errors.Is(err, tokens.ErrRequest), errors.Is(err, tokens.ErrAlgorithm), errors.Is(err, tokens.ErrScopeWidened):
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "%v", err)
	case errors.Is(err, keystore.ErrNotFound), errors.Is(err, keystore.ErrTokenUnknown):
		return errorf(http.StatusNotFound, "NOT_FOUND", "%v", err)
	case errors.Is(err, hsm.ErrAuthentication), errors.Is(err, keystore.ErrFormat):
		return errorf(http.StatusBadRequest, "BAD_CIPHERTEXT", "%v", err)
	case errors.Is(err, keystore.ErrKeyMissing), errors.Is(err, keystore.ErrKeyRetired), errors.Is(err, keystore.ErrKeyMismatch), errors.Is(err, keystore.ErrKeyState), errors.Is(err, keyring.ErrNoKey):
		return errorf(http.StatusConflict, "KEY_STATE", "%v", err)
	case errors.Is(err, keystore.ErrDatabase):
		return errorf(http.StatusServiceUnavailable, "DATABASE_UNAVAILABLE", "the database cannot be reached; try again later")
	case errors.Is(err, hsm.ErrDevice), errors.Is(err, hsm.ErrClosed), errors.Is(err, hsm.ErrPINIncorrect), errors.Is(err, hsm.ErrPINLocked):
		return errorf(http.StatusServiceUnavailable, "DEVICE_UNAVAILABLE", "the PKCS#11 device cannot be used; try again later")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorf(http.StatusServiceUnavailable, "UNAVAILABLE", "the request timed out; try again later")
	}
	return errorf(http.StatusInternalServerError, "INTERNAL", "internal error")
}

type errorBody struct {
	Errors []errorItem `json:"errors"`
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
	writeJSON(w, ae.status, errorBody{Errors: []errorItem{{Code: ae.code, Message: ae.msg}}})
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
		buf.WriteString(`{"errors":[{"code":"INTERNAL","message":"internal error"}]}` + "\n")
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if _, ok := h["Cache-Control"]; !ok {
		h["Cache-Control"] = noStore
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
