package keystore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// A listing's cursor is the sort key of the last record of a page, with
// the order it was read in, as base64url JSON: opaque to callers (who only
// hand it back) and checked on return, so that a cursor of one order is
// never read as another's.
type cursor struct {
	Order   string `json:"o"`
	Desc    bool   `json:"d,omitempty"`
	ID      string `json:"i"`
	Subject string `json:"s,omitempty"`
	Expires int64  `json:"e,omitempty"`
}

// maxCursor bounds a cursor's length: a subject is at most a few hundred
// bytes, and nothing longer is decoded.
const maxCursor = 4096

func cursorAt(t TokenRecord, order string, desc bool) cursor {
	c := cursor{Order: order, Desc: desc, ID: t.ID}
	switch order {
	case "subject":
		c.Subject = t.Subject
	case "expires_at":
		c.Expires = ms(t.Expires)
	}
	return c
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// errCursor says a cursor was not made by this listing.
var errCursor = fmt.Errorf("%w: cursor was not given by a listing in this order and direction; start the listing again without a cursor", ErrTokenFilter)

func decodeCursor(s, order string, desc bool) (cursor, error) {
	var c cursor
	if len(s) > maxCursor {
		return c, errCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" || c.Order != order || c.Desc != desc {
		return c, errCursor
	}
	return c, nil
}

// after is the condition (and its arguments) that selects the records
// after c: a row-value comparison, which both databases read as a range
// of the index that the order follows.
func (c cursor) after(desc bool) (string, []any) {
	op := " > "
	if desc {
		op = " < "
	}
	switch c.Order {
	case "subject":
		return ` AND (subject, id)` + op + `(?, ?)`, []any{c.Subject, c.ID}
	case "expires_at":
		return ` AND (expires_at, id)` + op + `(?, ?)`, []any{c.Expires, c.ID}
	}
	return ` AND id` + op + `?`, []any{c.ID}
}
