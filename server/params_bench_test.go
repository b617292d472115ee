package server

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkReadParams is readParams alone on the bodies of a create (the
// benchmark's) and of a JFrog refresh, JSON and form: it is on every
// request that has a body.
//
//	go test -run '^$' -bench ReadParams -count 3 ./server
func BenchmarkReadParams(b *testing.B) {
	for _, tc := range []struct{ name, ct, body string }{
		{"json_create", "application/json", `{"subject":"bench","scope":"read"}`},
		{"json_refresh", "application/json", `{"grant_type":"refresh_token","refresh_token":"kwr_` + strings.Repeat("A", 43) +
			`","expires_in":600,"refreshable":true,"audience":["jfrt@*","jfac@*"]}`},
		{"form_refresh", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=kwr_" + strings.Repeat("A", 43) + "&scope=read+write"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest("POST", "/access/api/v1/tokens", nil)
			r.Header.Set("Content-Type", tc.ct)
			r.ContentLength = int64(len(tc.body))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r.Body = io.NopCloser(strings.NewReader(tc.body))
				if _, err := readParams(w, r, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
