package server

import (
	"encoding/base64"
	"io"
	"net/http"
	"strconv"

	"github.com/keyward/keyward/keystore"
)

// recordName is the {name...} of a store route, its percent-escapes
// decoded: a "/" sent as %2F is part of the name (Handler judged the
// path's segments before decoding), so every stored name can be
// addressed. Reads and deletes take any name, as records from before
// the name rule are stored under names it refuses.
func recordName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name == "" {
		return "", errorf(http.StatusBadRequest, "BAD_REQUEST", "the record name is empty: give it after /api/v1/store/")
	}
	return name, nil
}

// newRecordName is recordName for a write: it must pass the name rule,
// checked before the body is read.
func newRecordName(r *http.Request) (string, error) {
	name, err := recordName(r)
	if err != nil {
		return "", err
	}
	if err := keystore.CheckRecordName(name); err != nil {
		return "", errorf(http.StatusBadRequest, "BAD_REQUEST", "%v", err)
	}
	return name, nil
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeStoreRead); err != nil {
		return err
	}
	recs, err := s.node.Records(r.Context())
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []keystore.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs})
	return nil
}

// putRecord is PUT /api/v1/store/{name...}: the body, raw, at most
// MaxRecord bytes, sealed in the device.
func (s *Server) putRecord(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeStoreWrite); err != nil {
		return err
	}
	name, err := newRecordName(r)
	if err != nil {
		return err
	}
	if r.ContentLength > s.node.MaxRecord() {
		return &http.MaxBytesError{Limit: s.node.MaxRecord()}
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.node.MaxRecord()))
	if err != nil {
		return err
	}
	defer clear(value)
	if err := s.node.Put(r.Context(), name, value); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "size": len(value)})
	return nil
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeStoreRead); err != nil {
		return err
	}
	name, err := recordName(r)
	if err != nil {
		return err
	}
	value, err := s.node.Get(r.Context(), name)
	if err != nil {
		return err
	}
	defer clear(value)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(value)))
	h.Set("Cache-Control", "no-store")
	w.Write(value)
	return nil
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeStoreWrite); err != nil {
		return err
	}
	name, err := recordName(r)
	if err != nil {
		return err
	}
	if err := s.node.Delete(r.Context(), name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "deleted": true})
	return nil
}

// transitBody bounds a transit request: base64 of MaxRecord bytes and
// room for the context.
func (s *Server) transitBody() int64 { return (s.node.MaxRecord()+64)/3*4 + 8<<10 }

// transitField reads a base64 field of a transit request; more than
// MaxRecord bytes is a 413.
func (s *Server) transitField(p params, field string) ([]byte, error) {
	v, ok := p[field]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "%s (base64) is required", field)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "%s must be standard base64", field)
	}
	if int64(len(b)) > keystore.SealedSize(s.node.MaxRecord()) {
		return nil, &http.MaxBytesError{Limit: s.node.MaxRecord()}
	}
	return b, nil
}

// encrypt is POST /api/v1/encrypt: {"plaintext": base64, "context": …} →
// {"ciphertext": base64}, sealed in the device with the active master key.
func (s *Server) encrypt(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeStoreWrite); err != nil {
		return err
	}
	p, err := readParams(w, r, s.transitBody())
	if err != nil {
		return err
	}
	pt, err := s.transitField(p, "plaintext")
	if err == nil && int64(len(pt)) > s.node.MaxRecord() {
		err = &http.MaxBytesError{Limit: s.node.MaxRecord()}
	}
	if err != nil {
		return err
	}
	defer clear(pt)
	ct, err := s.node.Seal(r.Context(), pt, p["context"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ciphertext": base64.StdEncoding.EncodeToString(ct)})
	return nil
}

// decrypt is POST /api/v1/decrypt: {"ciphertext": base64, "context": …} →
// {"plaintext": base64}, or 400 when it does not authenticate.
func (s *Server) decrypt(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeStoreRead); err != nil {
		return err
	}
	p, err := readParams(w, r, s.transitBody())
	if err != nil {
		return err
	}
	ct, err := s.transitField(p, "ciphertext")
	if err != nil {
		return err
	}
	pt, err := s.node.Unseal(r.Context(), ct, p["context"])
	if err != nil {
		return err
	}
	defer clear(pt)
	writeJSON(w, http.StatusOK, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)})
	return nil
}
