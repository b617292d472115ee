package keystore

import (
	"context"
	"fmt"
	"time"
)

// The cluster's nodes and the copies of keys waiting for them. The rules
// of who may receive what live in package cluster; this is their storage.

// Node states.
const (
	NodePending  = "pending"  // registered by the node itself; receives nothing
	NodeAdmitted = "admitted" // a holder's security officer trusted its transfer key
	NodeRevoked  = "revoked"  // receives nothing more
)

// NodeRecord is one node of the cluster as the database knows it.
type NodeRecord struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	TokenLabel   string    `json:"token_label"`
	Manufacturer string    `json:"manufacturer"`
	Model        string    `json:"model"`
	Serial       string    `json:"serial"`
	PublicKey    []byte    `json:"-"` // the transfer key's public half, PKIX DER
	SigningKey   []byte    `json:"-"` // the node signing key's public half, PKIX DER
	Fingerprint  string    `json:"fingerprint"`
	Created      time.Time `json:"created"`
	Changed      time.Time `json:"changed"`
	Seen         time.Time `json:"last_seen"`
	Holds        string    `json:"holds"` // "role/vN=KCV" words: what its device held when it last looked
}

const nodeColumns = `id, state, token_label, manufacturer, model, serial, public_key, signing_key, fingerprint, created_at, changed_at, seen_at, holds`

func scanNode(row interface{ Scan(...any) error }) (NodeRecord, error) {
	var n NodeRecord
	var created, changed, seen int64
	err := row.Scan(&n.ID, &n.State, &n.TokenLabel, &n.Manufacturer, &n.Model, &n.Serial, &n.PublicKey, &n.SigningKey, &n.Fingerprint, &created, &changed, &seen, &n.Holds)
	n.Created, n.Changed, n.Seen = time.UnixMilli(created).UTC(), time.UnixMilli(changed).UTC(), time.UnixMilli(seen).UTC()
	return n, err
}

// RegisterNode records n as pending unless its id is known; a known node
// keeps its state and public key (a key under a known id that differs is
// ErrKeyMismatch) and is marked seen. It returns the record as stored.
func (s *Store) RegisterNode(ctx context.Context, n NodeRecord) (NodeRecord, error) {
	t := now()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO nodes (`+nodeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')
		ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`),
		n.ID, NodePending, n.TokenLabel, n.Manufacturer, n.Model, n.Serial, n.PublicKey, n.SigningKey, n.Fingerprint, t, t, t)
	if err != nil {
		return NodeRecord{}, s.dbErr("register node", err)
	}
	stored, err := s.Node(ctx, n.ID)
	if err != nil {
		return NodeRecord{}, err
	}
	if stored.Fingerprint != n.Fingerprint {
		return NodeRecord{}, fmt.Errorf("%w: node %s is registered with transfer key %s, this device holds %s", ErrKeyMismatch, n.ID, stored.Fingerprint, n.Fingerprint)
	}
	return stored, s.Audit(ctx, "node.register", n.ID, n.Fingerprint)
}

// Node returns node id, or ErrNodeUnknown.
func (s *Store) Node(ctx context.Context, id string) (NodeRecord, error) {
	n, err := scanNode(s.db.QueryRowContext(ctx, s.q(`SELECT `+nodeColumns+` FROM nodes WHERE id = ?`), id))
	if isNoRows(err) {
		return NodeRecord{}, fmt.Errorf("%w: %q", ErrNodeUnknown, id)
	}
	return n, s.dbErr("read node", err)
}

// Nodes lists every node, by id.
func (s *Store) Nodes(ctx context.Context) ([]NodeRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY id`)
	if err != nil {
		return nil, s.dbErr("list nodes", err)
	}
	defer rows.Close()
	var out []NodeRecord
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, s.dbErr("list nodes", err)
		}
		out = append(out, n)
	}
	return out, s.dbErr("list nodes", rows.Err())
}

// SetNodeState changes node id's state and audits it.
func (s *Store) SetNodeState(ctx context.Context, id, state string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE nodes SET state = ?, changed_at = ? WHERE id = ?`), state, now(), id)
	if err != nil {
		return s.dbErr("set node state", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrNodeUnknown, id)
	}
	return s.Audit(ctx, "node."+state, id, "")
}

// NodeSeen notes that node id looked now, holding holds.
func (s *Store) NodeSeen(ctx context.Context, id, holds string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE nodes SET seen_at = ?, holds = ? WHERE id = ?`), now(), holds, id)
	return s.dbErr("note node seen", err)
}

// Transfer kinds.
const (
	TransferKey       = "key"       // a key version (AES) or key pair, wrapped for one node
	TransferTransport = "transport" // the sender's transport key, which key pairs come wrapped under
)

// Transfer is a copy of a key wrapped for one node's device.
type Transfer struct {
	ID            int64
	To            string // the node it is for
	ToFingerprint string // that node's transfer key, as the sender wrapped for it
	From          string
	Kind          string
	Role          string // a key: master, join or signing
	Version       int
	KCV           string // an AES key's, from the registry
	Policy        string
	PublicKey     []byte // a key pair's public half, PKIX DER
	Challenge     []byte // a derive-only key: the sender's proof of which key it is
	Proof         []byte
	Wrapped       []byte
	Signature     []byte // the sender's node signing key over the rest (package cluster)
	Created       time.Time
}

// AddTransfer stores t unless the same copy (to, from, kind, role,
// version) is waiting already; added says which.
func (s *Store) AddTransfer(ctx context.Context, t Transfer) (added bool, err error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO transfers (to_node, to_fingerprint, from_node, kind, role, version, kcv, policy, public_key, challenge, proof, wrapped, signature, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		t.To, t.ToFingerprint, t.From, t.Kind, t.Role, t.Version, t.KCV, t.Policy, t.PublicKey, t.Challenge, t.Proof, t.Wrapped, t.Signature, now())
	if err != nil {
		return false, s.dbErr("store transfer", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// TransfersTo lists the copies waiting for node to, transport keys first.
func (s *Store) TransfersTo(ctx context.Context, to string) ([]Transfer, error) {
	return s.transfers(ctx, `WHERE to_node = ? ORDER BY kind DESC, id`, to)
}

// TransfersFrom lists the copies node from sent that still wait.
func (s *Store) TransfersFrom(ctx context.Context, from string) ([]Transfer, error) {
	return s.transfers(ctx, `WHERE from_node = ? ORDER BY id`, from)
}

func (s *Store) transfers(ctx context.Context, where string, arg string) ([]Transfer, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, to_node, to_fingerprint, from_node, kind, role, version, kcv, policy, public_key, challenge, proof, wrapped, signature, created_at
		FROM transfers `+where), arg)
	if err != nil {
		return nil, s.dbErr("list transfers", err)
	}
	defer rows.Close()
	var out []Transfer
	for rows.Next() {
		var t Transfer
		var created int64
		if err := rows.Scan(&t.ID, &t.To, &t.ToFingerprint, &t.From, &t.Kind, &t.Role, &t.Version, &t.KCV, &t.Policy, &t.PublicKey, &t.Challenge, &t.Proof, &t.Wrapped, &t.Signature, &created); err != nil {
			return nil, s.dbErr("list transfers", err)
		}
		t.Created = time.UnixMilli(created).UTC()
		out = append(out, t)
	}
	return out, s.dbErr("list transfers", rows.Err())
}

// DeleteTransfer removes copy id: delivered, or refused (audited with why).
func (s *Store) DeleteTransfer(ctx context.Context, id int64, refused string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM transfers WHERE id = ?`), id); err != nil {
		return s.dbErr("delete transfer", err)
	}
	if refused != "" {
		return s.Audit(ctx, "transfer.refused", fmt.Sprint(id), refused)
	}
	return nil
}

// DeleteTransfersTo removes every copy waiting for node to, and says how
// many there were.
func (s *Store) DeleteTransfersTo(ctx context.Context, to string) (int, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM transfers WHERE to_node = ?`), to)
	if err != nil {
		return 0, s.dbErr("delete transfers", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
