package keystore

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Token listings come a page at a time, by keyset: each page is the next
// Limit records after the cursor in the listing's order, read along an
// index (the primary key for the id orders, tokens_subject for a subject
// or the subject order), so a page costs the same on page 1 and page
// 10,000 and the database never sorts the whole table.

// Page sizes of a token listing.
const (
	DefaultTokenPage = 100
	MaxTokenPage     = 1000
)

// TokenFilter says which token records Tokens lists, and which page; the
// zero filter lists the first DefaultTokenPage live tokens, oldest first.
type TokenFilter struct {
	Subject string
	ID      string
	// Description matches exactly, or, ending in "*", by its prefix (the
	// JFrog wildcard).
	Description string
	Refreshable *bool // only the tokens with (or without) a live refresh token
	All         bool  // expired, revoked and used tokens too
	// OrderBy is created (the default), token_id, subject or expiry;
	// largest (newest) first when Descending. Ids are UUIDv7, made from
	// the time of issue, so created and token_id are one order: by id.
	OrderBy    string
	Descending bool
	// Cursor resumes the listing after the page whose Next it is (in the
	// same order); "" starts at the first record.
	Cursor string
	// Limit is the page size, 1 to MaxTokenPage; 0 is DefaultTokenPage.
	Limit int
}

// TokenPage is one page of a token listing.
type TokenPage struct {
	Tokens []TokenRecord
	// Next is the Cursor of the following page; "" on the last page.
	Next string
}

// TokenOrders are the orders TokenFilter.OrderBy takes, and the column
// each sorts by (then by id).
var TokenOrders = map[string]string{"created": "id", "token_id": "id", "subject": "subject", "expiry": "expires_at"}

// Tokens returns the page of token records f selects.
func (s *Store) Tokens(ctx context.Context, f TokenFilter, now time.Time) (TokenPage, error) {
	q, args, err := f.query(now)
	if err != nil {
		return TokenPage{}, err
	}
	list, err := s.listTokens(ctx, q, args)
	limit, order, _ := f.check()
	if err != nil || len(list) <= limit {
		return TokenPage{Tokens: list}, err
	}
	list = list[:limit]
	return TokenPage{Tokens: list, Next: cursorAt(list[limit-1], order, f.Descending).encode()}, nil
}

// query is the SQL of f's page and its arguments: one record more than
// the page holds, whose coming says there is a next page.
func (f TokenFilter) query(now time.Time) (string, []any, error) {
	limit, order, err := f.check()
	if err != nil {
		return "", nil, err
	}
	q, args := f.where(now)
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor, order, f.Descending)
		if err != nil {
			return "", nil, err
		}
		k, kargs := c.after(f.Descending)
		q, args = q+k, append(args, kargs...)
	}
	dir := " ASC"
	if f.Descending {
		dir = " DESC"
	}
	q += ` ORDER BY ` + order + dir
	if order != "id" {
		q += `, id` + dir
	}
	return q + ` LIMIT ?`, append(args, limit+1), nil
}

// check returns f's page size and sort column, or why f cannot be listed.
func (f TokenFilter) check() (limit int, order string, err error) {
	limit = f.Limit
	if limit == 0 {
		limit = DefaultTokenPage
	}
	if limit < 1 || limit > MaxTokenPage {
		return 0, "", fmt.Errorf("%w: limit %d is not from 1 to %d", ErrTokenFilter, f.Limit, MaxTokenPage)
	}
	if f.OrderBy == "" {
		return limit, "id", nil
	}
	order, ok := TokenOrders[f.OrderBy]
	if !ok {
		return 0, "", fmt.Errorf("%w: order %q is not one of created, token_id, subject, expiry", ErrTokenFilter, f.OrderBy)
	}
	if order == "subject" && f.Subject != "" {
		// One subject's tokens in subject order are in id order, which
		// the index reads as a range after the cursor.
		order = "id"
	}
	return limit, order, nil
}

// where is the listing's query up to its filters, and their arguments.
func (f TokenFilter) where(now time.Time) (string, []any) {
	q := `SELECT ` + tokenColumns + `, ` + refreshableColumn + ` AS refreshable FROM tokens WHERE 1 = 1`
	args := []any{ms(now)}
	if f.Subject != "" {
		q += ` AND subject = ?`
		args = append(args, f.Subject)
	}
	if f.ID != "" {
		q += ` AND id = ?`
		args = append(args, f.ID)
	}
	if prefix, ok := strings.CutSuffix(f.Description, "*"); ok {
		// A prefix, compared as text: no LIKE, whose own wildcards a
		// description may hold.
		q += ` AND substr(description, 1, ?) = ?`
		args = append(args, len([]rune(prefix)), prefix)
	} else if f.Description != "" {
		q += ` AND description = ?`
		args = append(args, f.Description)
	}
	if !f.All {
		q += ` AND revoked_at IS NULL AND consumed_at IS NULL AND expires_at > ?`
		args = append(args, ms(now))
	}
	if f.Refreshable != nil {
		not := ""
		if !*f.Refreshable {
			not = "NOT "
		}
		q += ` AND ` + not + refreshableColumn
		args = append(args, ms(now))
	}
	return q, args
}

func (s *Store) listTokens(ctx context.Context, q string, args []any) ([]TokenRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, s.dbErr("list tokens", err)
	}
	defer rows.Close()
	var out []TokenRecord
	for rows.Next() {
		var refreshable bool
		t, err := scanToken(rows, &refreshable)
		if err != nil {
			return nil, s.dbErr("list tokens", err)
		}
		t.Refreshable = refreshable
		out = append(out, t)
	}
	return out, s.dbErr("list tokens", rows.Err())
}
