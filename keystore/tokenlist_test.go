package keystore_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// seedTime is when the seeded tokens were issued.
var seedTime = time.Now().Add(-time.Hour).Truncate(time.Millisecond)

// seedID is the id of seeded token i: ids sort as i does, as UUIDv7s
// sort by time of issue.
func seedID(i int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012x", i) }

// seedToken is token i of a listing test: three subjects in turn, two
// descriptions, and every tenth token expired.
func seedToken(i int) keystore.TokenRecord {
	exp := seedTime.Add(2*time.Hour + time.Duration(i%13)*time.Minute)
	if i%10 == 0 {
		exp = seedTime.Add(time.Minute)
	}
	return keystore.TokenRecord{ID: seedID(i), Kind: "access", Subject: []string{"alice", "bob", "carol"}[i%3], Scope: "s",
		Issued: seedTime.Add(time.Duration(i) * time.Millisecond), Expires: exp, Family: seedID(i), Description: fmt.Sprintf("batch-%d", i%2)}
}

// collect pages through f and returns the ids listed, failing t unless
// every page but the last is full and has a next cursor.
func collect(t *testing.T, s *keystore.Store, f keystore.TokenFilter, limit int) []string {
	t.Helper()
	f.Limit = limit
	var ids []string
	for pages := 0; ; pages++ {
		p, err := s.Tokens(t.Context(), f, time.Now())
		if err != nil {
			t.Fatalf("page %d of %+v: %v", pages, f, err)
		}
		for _, r := range p.Tokens {
			ids = append(ids, r.ID)
		}
		if p.Next == "" {
			return ids
		}
		if len(p.Tokens) != limit {
			t.Fatalf("page %d of %+v: %d records and a next cursor, want %d", pages, f, len(p.Tokens), limit)
		}
		f.Cursor = p.Next
	}
}

// want is the ids of the seeded tokens keep selects, in the order sort
// puts the records (by id, oldest first, when sort is nil).
func want(count int, keep func(keystore.TokenRecord) bool, cmp func(a, b keystore.TokenRecord) int, desc bool) []string {
	var recs []keystore.TokenRecord
	for i := range count {
		if r := seedToken(i); keep(r) {
			recs = append(recs, r)
		}
	}
	if cmp != nil {
		slices.SortStableFunc(recs, cmp)
	}
	if desc {
		slices.Reverse(recs)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func live(r keystore.TokenRecord) bool { return r.Expires.After(time.Now()) }
func every(keystore.TokenRecord) bool  { return true }

func TestTokenPages(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		const count = 2500
		s, err := keystore.Open(t.Context(), newDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.SeedTokens(t.Context(), count, seedToken); err != nil {
			t.Fatal(err)
		}
		bySubject := func(a, b keystore.TokenRecord) int { return strings.Compare(a.Subject, b.Subject) }
		byExpiry := func(a, b keystore.TokenRecord) int { return a.Expires.Compare(b.Expires) }
		bob := func(r keystore.TokenRecord) bool { return r.Subject == "bob" && live(r) }
		for _, c := range []struct {
			name string
			f    keystore.TokenFilter
			want []string
		}{
			{"all newest first", keystore.TokenFilter{All: true, Descending: true}, want(count, every, nil, true)},
			{"all oldest first", keystore.TokenFilter{All: true}, want(count, every, nil, false)},
			{"live", keystore.TokenFilter{Descending: true}, want(count, live, nil, true)},
			{"by username", keystore.TokenFilter{Subject: "bob", Descending: true}, want(count, bob, nil, true)},
			{"by username and description", keystore.TokenFilter{Subject: "bob", Description: "batch-1*", All: true},
				want(count, func(r keystore.TokenRecord) bool { return r.Subject == "bob" && r.Description == "batch-1" }, nil, false)},
			{"by description", keystore.TokenFilter{Description: "batch-0", Descending: true},
				want(count, func(r keystore.TokenRecord) bool { return r.Description == "batch-0" && live(r) }, nil, true)},
			{"in subject order", keystore.TokenFilter{OrderBy: "subject", All: true, Descending: true}, want(count, every, bySubject, true)},
			{"one subject in subject order", keystore.TokenFilter{OrderBy: "subject", Subject: "carol", All: true, Descending: true},
				want(count, func(r keystore.TokenRecord) bool { return r.Subject == "carol" }, nil, true)},
			{"in expiry order", keystore.TokenFilter{OrderBy: "expiry", Descending: false}, want(count, live, byExpiry, false)},
			{"one token", keystore.TokenFilter{ID: seedID(77), All: true}, []string{seedID(77)}},
		} {
			t.Run(c.name, func(t *testing.T) {
				for _, limit := range []int{keystore.MaxTokenPage, 7} {
					if got := collect(t, s, c.f, limit); !slices.Equal(got, c.want) {
						t.Fatalf("limit %d: %d ids listed, want %d (first %v, want %v)", limit, len(got), len(c.want), got[:min(3, len(got))], c.want[:min(3, len(c.want))])
					}
				}
			})
		}
		p, err := s.Tokens(t.Context(), keystore.TokenFilter{All: true}, time.Now())
		if err != nil || len(p.Tokens) != keystore.DefaultTokenPage || p.Next == "" {
			t.Fatalf("default page: %d records, next %q: %v", len(p.Tokens), p.Next, err)
		}
	})
}

func TestTokenPageRefusals(t *testing.T) {
	s, err := keystore.Open(t.Context(), dbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SeedTokens(t.Context(), 20, seedToken); err != nil {
		t.Fatal(err)
	}
	p, err := s.Tokens(t.Context(), keystore.TokenFilter{All: true, Limit: 5, Descending: true}, time.Now())
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %+v %v", p, err)
	}
	for _, c := range []struct {
		f    keystore.TokenFilter
		name string
	}{
		{keystore.TokenFilter{Limit: -1}, "limit"},
		{keystore.TokenFilter{Limit: keystore.MaxTokenPage + 1}, "limit"},
		{keystore.TokenFilter{Cursor: "not a cursor"}, "cursor"},
		{keystore.TokenFilter{Cursor: strings.Repeat("A", 5000)}, "cursor"},
		{keystore.TokenFilter{Cursor: p.Next}, "cursor"},                                       // another direction
		{keystore.TokenFilter{Cursor: p.Next, Descending: true, OrderBy: "subject"}, "cursor"}, // another order
		{keystore.TokenFilter{OrderBy: "name"}, "order"},
	} {
		_, err := s.Tokens(t.Context(), c.f, time.Now())
		if !errors.Is(err, keystore.ErrTokenFilter) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%+v: %v, want a bad filter naming %s", c.f, err, c.name)
		}
	}
	// A cursor of token_id order is good for created: the same order.
	if _, err := s.Tokens(t.Context(), keystore.TokenFilter{All: true, Cursor: p.Next, Descending: true, OrderBy: "token_id"}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// Every page query but expiry order's reads along an index: no sort.
func TestTokenPagePlans(t *testing.T) {
	s, err := keystore.Open(t.Context(), dbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SeedTokens(t.Context(), 300, seedToken); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	no := false // none is refreshable
	for _, f := range []keystore.TokenFilter{
		{Descending: true}, {All: true}, {Subject: "bob", Descending: true}, {Subject: "bob", All: true},
		{Description: "batch-1*", Descending: true}, {Refreshable: &no, Subject: "bob"},
		{OrderBy: "subject", Descending: true}, {OrderBy: "subject", Subject: "bob"}, {OrderBy: "token_id"},
	} {
		for _, next := range []bool{false, true} {
			if next {
				f.Limit = 7
				p, err := s.Tokens(t.Context(), f, now)
				if err != nil || p.Next == "" {
					t.Fatalf("%+v: %v %v", f, p.Next, err)
				}
				f.Cursor = p.Next
			}
			plan, err := s.ExplainTokens(t.Context(), f, now)
			if err != nil {
				t.Fatal(err)
			}
			// A scan of a WITHOUT ROWID table is in primary key order.
			read := "SCAN tokens"
			switch {
			case f.Subject != "" && f.Cursor != "":
				read = "SEARCH tokens USING INDEX tokens_subject (subject=? AND id"
			case f.Subject != "":
				read = "SEARCH tokens USING INDEX tokens_subject (subject=?)"
			case f.OrderBy == "subject" && f.Cursor != "":
				read = "SEARCH tokens USING INDEX tokens_subject ((subject,id)<"
			case f.OrderBy == "subject":
				read = "SCAN tokens USING INDEX tokens_subject"
			case f.Cursor != "":
				read = "SEARCH tokens USING PRIMARY KEY (id"
			}
			if strings.Contains(plan, "TEMP B-TREE") || !strings.HasPrefix(plan, read) {
				t.Errorf("%+v: the plan does not begin %q, or sorts:\n%s", f, read, plan)
			}
		}
	}
}
