package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestListAll: the listing follows next until it is absent, and against
// a server without pagination (today's keyward refuses limit) lists in
// one call. No keyward runs: a fake answers as each would.
func TestListAll(t *testing.T) {
	const total = 2500
	page := func(w http.ResponseWriter, from, to int, next string) {
		var b strings.Builder
		b.WriteString(`{"tokens":[`)
		for i := from; i < to; i++ {
			if i > from {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"token_id":"t%d","subject":"s"}`, i)
		}
		b.WriteString("]")
		if next != "" {
			b.WriteString(`,"next":"` + next + `"`)
		}
		b.WriteString("}")
		w.Write([]byte(b.String()))
	}
	paginated := func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		from, _ := strconv.Atoi(q.Get("cursor"))
		to, next := min(from+limit, total), ""
		if to < total {
			next = strconv.Itoa(to)
		}
		page(w, from, to, next)
	}
	unpaginated := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("limit") {
			http.Error(w, `{"errors":[{"code":"BAD_REQUEST","message":"unknown query parameter \"limit\": this route takes all"}]}`, http.StatusBadRequest)
			return
		}
		page(w, 0, total, "")
	}
	self, err := os.FindProcess(os.Getpid()) // its RSS is sampled
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		h         http.HandlerFunc
		pages     int
		paginated bool
	}{{"paginated", paginated, 3, true}, {"unpaginated", unpaginated, 1, false}} {
		t.Run(c.name, func(t *testing.T) {
			ts := httptest.NewServer(c.h)
			defer ts.Close()
			s := &server{cmd: &exec.Cmd{Process: self}, url: ts.URL, client: ts.Client()}
			got, err := s.listAll(1000)
			if err != nil {
				t.Fatal(err)
			}
			if got.tokens != total || got.pages != c.pages || got.paginated != c.paginated || got.peakRSS == 0 {
				t.Errorf("listing: %+v, want %d tokens in %d pages, paginated %t, a peak RSS", got, total, c.pages, c.paginated)
			}
		})
	}
}
