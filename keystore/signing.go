package keystore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/keyring"
)

// A signing key pair is not in the key registry (it encrypts nothing and
// has no KCV); what the cluster must know of it lives in meta rows:
//
//	signing/vN signed-until  the latest expiry of any token it signed, or later
//	signing/vN retired       when it was retired: it signs no more
//
// The bound lets a retired key pair stay published until every token it
// signed has expired, on every node, without a per-token write: the token
// service raises it in coarse steps before it hands out a token that
// outlives it.

// SigningState is what the cluster recorded of signing key pair Version.
type SigningState struct {
	Version     int
	SignedUntil time.Time // zero: it signed nothing keyward recorded
	Retired     time.Time // zero: not retired
}

const (
	signedUntilSuffix = " signed-until"
	retiredSuffix     = " retired"
)

func signingMeta(v int, suffix string) string {
	return keyring.Label(keyring.Signing, v) + suffix
}

// unixText writes t as zero-padded seconds, so that comparing the text
// compares the times on SQLite and PostgreSQL alike.
func unixText(t time.Time) string { return fmt.Sprintf("%020d", t.Unix()) }

// SigningStates reads what the cluster recorded of its signing key pairs.
func (s *Store) SigningStates(ctx context.Context) (map[int]SigningState, error) {
	prefix := strings.TrimSuffix(keyring.Label(keyring.Signing, 0), "0") // "keyward/signing/v"
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name, value FROM meta WHERE substr(name, 1, ?) = ?`), len(prefix), prefix)
	if err != nil {
		return nil, s.dbErr("read signing key states", err)
	}
	defer rows.Close()
	out := map[int]SigningState{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, s.dbErr("read signing key states", err)
		}
		label, what, ok := strings.Cut(name, " ")
		role, v, okLabel := keyring.ParseLabel(label)
		secs, errNum := strconv.ParseInt(value, 10, 64)
		if !ok || !okLabel || role != keyring.Signing || errNum != nil {
			continue // not a row of this file's
		}
		st := out[v]
		st.Version = v
		switch " " + what {
		case signedUntilSuffix:
			st.SignedUntil = time.Unix(secs, 0)
		case retiredSuffix:
			st.Retired = time.Unix(secs, 0)
		}
		out[v] = st
	}
	return out, s.dbErr("read signing key states", rows.Err())
}

// RaiseSignedUntil records that signing key pair v signed a token valid
// until `until`: the bound only ever grows, whichever node writes.
func (s *Store) RaiseSignedUntil(ctx context.Context, v int, until time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE meta.value < excluded.value`),
		signingMeta(v, signedUntilSuffix), unixText(until))
	return s.dbErr("record a signing key's use", err)
}

// retireSigning marks signing key pair v retired: it signs no more, and
// stays published until the tokens it signed have expired. Retiring it
// again keeps the first time.
func (vt *Vault) retireSigning(ctx context.Context, v int) error {
	_, e, err := vt.ring.Get(ctx, keyring.Signing, v)
	if err != nil {
		return err
	}
	s := vt.store
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
		signingMeta(v, retiredSuffix), unixText(time.Now())); err != nil {
		return s.dbErr("retire a signing key", err)
	}
	return s.Audit(ctx, "key.retire", e.Label, "")
}

// SigningLiveUntil refuses a signing key pair that was not retired (so no
// node signs with it while it goes) and otherwise says until when tokens
// it signed may be valid (zero: none is). Destroying it makes those fail
// at once, which is what a compromised key needs.
func (vt *Vault) SigningLiveUntil(ctx context.Context, v int) (time.Time, error) {
	states, err := vt.store.SigningStates(ctx)
	if err != nil {
		return time.Time{}, err
	}
	st := states[v]
	if st.Retired.IsZero() {
		return time.Time{}, fmt.Errorf("%w: %s is not retired (it may still sign on a node); retire it first", ErrKeyInUse, keyring.Label(keyring.Signing, v))
	}
	if st.SignedUntil.After(time.Now()) {
		return st.SignedUntil, nil
	}
	return time.Time{}, nil
}
