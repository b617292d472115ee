package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// SyncReport is what one Sync did.
type SyncReport struct {
	Member    bool     // this node has an identity (else Sync did nothing)
	Delivered []string // keys taken into this device ("master/v2")
	Refused   []string // copies refused, and why (they are deleted)
	Waiting   []string // copies left waiting, and why
	Sent      int      // copies wrapped here for other nodes
	Dropped   []string // labels of extra objects of one received key destroyed (hsm.Token.DropDuplicateCopies)
}

// seenEvery bounds how often an unchanged node writes that it was seen.
const seenEvery = 30 * time.Second

// Sync is a node's round of key transfer: it takes the copies waiting for
// it (each one signed by a sender this device accepted, addressed to its
// transfer key, and proved to be the key the registry names before it
// stays), says what its device now holds, and wraps its transferable keys
// for every admitted node its device trusts that lacks them. keyward
// serve runs it every second; keyward node sync once. The processes of a
// node take turns (lock.go). A process's first round, and a round that
// meets a label twice, drop the extra objects of received keys that
// processes which did not take turns left (the latter then goes again);
// not every round: that reads every object in the device, about as dear
// as a List.
func (c *Cluster) Sync(ctx context.Context) (SyncReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	self, ok, err := c.identity(ctx)
	if err != nil || !ok {
		return SyncReport{}, err
	}
	unlock, err := c.turn(ctx)
	if err != nil {
		return SyncReport{}, err
	}
	defer unlock()
	rep := SyncReport{Member: true}
	mendedNow := false
	if !c.mended {
		if rep.Dropped, err = c.tok.DropDuplicateCopies(ctx); err != nil {
			return rep, err
		}
		c.mended, mendedNow = true, true
	}
	err = c.round(ctx, self, &rep)
	if errors.Is(err, hsm.ErrKeyExists) && !mendedNow {
		// Two objects under a label a lookup needed one of, left since
		// this process last looked (by one that does not take turns):
		// drop the extras and go again, rather than fail this round.
		dropped, derr := c.tok.DropDuplicateCopies(ctx)
		rep.Dropped = append(rep.Dropped, dropped...)
		if derr != nil {
			return rep, derr
		}
		err = c.round(ctx, self, &rep)
	}
	if errors.Is(err, hsm.ErrKeyExists) {
		c.mended = false
	}
	return rep, err
}

// round is Sync's work, in its turn.
func (c *Cluster) round(ctx context.Context, self Identity, rep *SyncReport) error {
	me, err := c.store.Node(ctx, self.ID)
	if errors.Is(err, keystore.ErrNodeUnknown) {
		me, err = c.store.RegisterNode(ctx, c.record(self))
	}
	if err != nil {
		return err
	}
	if me.State != keystore.NodeRevoked {
		if err := c.deliver(ctx, self, rep); err != nil {
			return err
		}
	}
	if len(rep.Delivered) > 0 {
		if err := c.vault.Reconcile(ctx); err != nil {
			return err
		}
	}
	holds, err := c.holds(ctx)
	if err != nil {
		return err
	}
	if holds != c.reported || time.Since(c.seen) > seenEvery {
		if err := c.store.NodeSeen(ctx, self.ID, holds); err != nil {
			return err
		}
		c.reported, c.seen = holds, time.Now()
	}
	if me.State == keystore.NodeRevoked {
		return nil
	}
	nodes, err := c.store.Nodes(ctx)
	if err != nil {
		return err
	}
	rep.Sent, err = c.push(ctx, self, nodes)
	return err
}

// deliver takes the copies waiting for this node.
func (c *Cluster) deliver(ctx context.Context, self Identity, rep *SyncReport) error {
	copies, err := c.store.TransfersTo(ctx, self.ID)
	if err != nil || len(copies) == 0 {
		return err
	}
	regs, err := c.store.Keys(ctx)
	if err != nil {
		return err
	}
	for _, t := range copies {
		name := t.Kind
		if t.Kind == keystore.TransferKey {
			name = t.Role + "/v" + strconv.Itoa(t.Version)
		}
		name += " from node " + t.From
		refused, wait, err := c.receive(ctx, self, t, regs)
		switch {
		case err != nil:
			return fmt.Errorf("receive %s: %w", name, err)
		case wait != "":
			rep.Waiting = append(rep.Waiting, name+": "+wait)
		case refused != "":
			rep.Refused = append(rep.Refused, name+": "+refused)
			if err := c.store.DeleteTransfer(ctx, t.ID, name+": "+refused); err != nil {
				return err
			}
		default:
			if t.Kind == keystore.TransferKey {
				rep.Delivered = append(rep.Delivered, t.Role+"/v"+strconv.Itoa(t.Version))
			}
			if err := c.store.DeleteTransfer(ctx, t.ID, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// receive takes one copy into this device. A copy that must not be taken
// says why in refused; one that cannot be taken yet, in wait; err is a
// device or database failure (the copy is left for the next round).
func (c *Cluster) receive(ctx context.Context, self Identity, t keystore.Transfer, regs []keystore.KeyRecord) (refused, wait string, err error) {
	pub, err := c.tok.PublicKey(ctx, senderLabel(t.From))
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return "", "this node's operator has not accepted node " + t.From + " as a sender (keyward node accept)", nil
	}
	if err != nil {
		return "", "", err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || !verified(ec, t) {
		return "not signed by the signing key this device accepted for node " + t.From + " (forged or altered in the database)", "", nil
	}
	if t.To != self.ID || t.ToFingerprint != self.Fingerprint {
		return "addressed to another node's transfer key", "", nil
	}
	if t.Kind == keystore.TransferTransport {
		// A sender makes one transport key per node: one held is this one.
		if has, err := c.tok.HasObject(ctx, transportFromLabel(t.From), hsm.ClassSecret); err != nil || has {
			return "", "", err // taken before: nothing to do
		}
		err := c.tok.ReceiveTransportKey(ctx, TransferKeyLabel, t.Wrapped, transportFromLabel(t.From))
		return refusal(err)
	}
	if t.Kind != keystore.TransferKey {
		return "unknown kind of copy " + strconv.Quote(t.Kind), "", nil
	}
	role, err := keyring.ParseRole(t.Role)
	if err != nil || t.Version < 1 || hsm.Policy(t.Policy) != hsm.PolicyTransferable {
		return "not a transferable keyward key version", "", nil
	}
	label := keyring.Label(role, t.Version)
	if _, e, err := c.ring.Get(ctx, role, t.Version); err == nil {
		if role != keyring.Signing && e.KCV != t.KCV {
			return fmt.Sprintf("this device holds another %s (KCV %s, the copy KCV %s)", label, e.KCV, t.KCV), "", nil
		}
		return "", "", nil // taken before: nothing to do
	} else if !errors.Is(err, keyring.ErrNoKey) {
		return "", "", err
	}
	if role == keyring.Signing {
		has, err := c.tok.HasObject(ctx, transportFromLabel(t.From), hsm.ClassSecret)
		if err != nil || !has {
			return "", "the transport key of node " + t.From + " has not arrived yet", err
		}
		kp, err := x509.ParsePKIXPublicKey(t.PublicKey)
		if err != nil {
			return "the key pair's public key does not parse", "", nil
		}
		_, err = c.tok.ReceiveKeyPair(ctx, transportFromLabel(t.From), t.Wrapped, label, kp, hsm.PolicyTransferable)
		return refusal(err)
	}
	var reg *keystore.KeyRecord
	for i := range regs {
		if regs[i].Role == t.Role && regs[i].Version == t.Version {
			reg = &regs[i]
		}
	}
	switch {
	case reg == nil:
		return label + " is not in the key registry", "", nil
	case reg.KCV != t.KCV:
		return fmt.Sprintf("the registry says %s has KCV %s, the copy KCV %s", label, reg.KCV, t.KCV), "", nil
	case reg.State == keystore.StateRetired:
		return label + " is retired", "", nil
	}
	_, err = c.tok.ReceiveAES(ctx, TransferKeyLabel, t.Wrapped, label, role.Usage(), hsm.PolicyTransferable,
		hsm.Proof{KCV: reg.KCV, Challenge: t.Challenge, MAC: t.Proof})
	return refusal(err)
}

// refusal sorts the outcome of unwrapping a copy: a copy that does not
// prove is refused; a device or database failure is an error.
func refusal(err error) (refused, wait string, _ error) {
	switch {
	case err == nil:
		return "", "", nil
	case errors.Is(err, hsm.ErrBadCopy), errors.Is(err, hsm.ErrKeyExists):
		return err.Error(), "", nil
	}
	return "", "", err
}

// transferable is a key this device may send.
type transferable struct {
	entry keyring.Entry
	key   *hsm.Key
	word  string // its word in a node's holds
}

// holds says what this device holds, as words "role/vN=KCV" (a key
// pair: the first 6 hex digits of its public key's SHA-256) and
// "transport/ID" (a transport key received from node ID). It also
// returns the keys it may send.
func (c *Cluster) inventory(ctx context.Context) (words []string, send []transferable, err error) {
	infos, err := c.tok.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	labels := map[string]bool{}
	for _, info := range infos {
		if labels[info.Label] {
			c.mended = false // the next Sync drops what it can
		}
		labels[info.Label] = true
		if from, ok := strings.CutPrefix(info.Label, "keyward/transport-from/"); ok {
			words = append(words, "transport/"+from)
		}
	}
	entries, err := c.ring.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		word := string(e.Role) + "/v" + strconv.Itoa(e.Version) + "=" + e.KCV
		if e.Role == keyring.Signing {
			pub, err := c.tok.PublicKey(ctx, e.Label)
			if err != nil {
				return nil, nil, err
			}
			der, err := publicDER(pub)
			if err != nil {
				return nil, nil, err
			}
			sum := sha256.Sum256(der)
			word = string(e.Role) + "/v" + strconv.Itoa(e.Version) + "=" + strings.ToUpper(hex.EncodeToString(sum[:3]))
		}
		words = append(words, word)
		if e.Policy == hsm.PolicyTransferable {
			send = append(send, transferable{entry: e, word: word})
		}
	}
	sort.Strings(words)
	return words, send, nil
}

func (c *Cluster) holds(ctx context.Context) (string, error) {
	words, _, err := c.inventory(ctx)
	return strings.Join(words, " "), err
}

// push wraps, for each admitted node of nodes that this device trusts,
// the transferable keys it lacks and that are not waiting for it already,
// and stores the copies signed. It returns how many it stored.
func (c *Cluster) push(ctx context.Context, self Identity, nodes []keystore.NodeRecord) (int, error) {
	_, send, err := c.inventory(ctx)
	if err != nil || len(send) == 0 {
		return 0, err
	}
	regs, err := c.store.Keys(ctx)
	if err != nil {
		return 0, err
	}
	registered := map[string]keystore.KeyRecord{}
	for _, r := range regs {
		registered[r.Role+"/v"+strconv.Itoa(r.Version)] = r
	}
	pending, err := c.store.TransfersFrom(ctx, self.ID)
	if err != nil {
		return 0, err
	}
	waiting := map[string]bool{}
	for _, t := range pending {
		waiting[t.To+" "+t.Kind+" "+t.Role+"/v"+strconv.Itoa(t.Version)] = true
	}
	sent := 0
	for _, n := range nodes {
		if n.ID == self.ID || n.State != keystore.NodeAdmitted {
			continue
		}
		trusted, err := c.tok.HasObject(ctx, trustedLabel(n.ID), hsm.ClassPublic)
		if err != nil {
			return sent, err
		}
		if !trusted {
			continue // admitted by another node's SO, not this one's
		}
		idn, err := identityOfRecord(n)
		if err != nil {
			return sent, err
		}
		has := map[string]bool{}
		for _, w := range strings.Fields(n.Holds) {
			has[w] = true
		}
		for _, k := range send {
			name := string(k.entry.Role) + "/v" + strconv.Itoa(k.entry.Version)
			if has[k.word] || waiting[n.ID+" "+keystore.TransferKey+" "+name] {
				continue
			}
			t := keystore.Transfer{To: n.ID, ToFingerprint: idn.Fingerprint, From: self.ID, Kind: keystore.TransferKey,
				Role: string(k.entry.Role), Version: k.entry.Version, Policy: string(hsm.PolicyTransferable)}
			if k.entry.Role == keyring.Signing {
				if !has["transport/"+self.ID] && !waiting[n.ID+" "+keystore.TransferTransport+" /v0"] {
					if err := c.send(ctx, &keystore.Transfer{To: n.ID, ToFingerprint: idn.Fingerprint, From: self.ID, Kind: keystore.TransferTransport},
						transportLabel(n.ID), trustedLabel(n.ID), nil); err != nil {
						return sent, err
					}
					waiting[n.ID+" "+keystore.TransferTransport+" /v0"] = true
					sent++
				}
			} else {
				reg, ok := registered[name]
				if !ok || reg.KCV != k.entry.KCV || reg.State == keystore.StateRetired {
					continue // only what the registry names, as it names it
				}
				t.KCV = reg.KCV
			}
			if err := c.send(ctx, &t, "", trustedLabel(n.ID), &k); err != nil {
				return sent, err
			}
			sent++
		}
	}
	return sent, nil
}

// send wraps a key for t.To — k, or the secret key labelled label (a
// transport key) — under the wrapping key labelled under (the node's
// trusted transfer key; a key pair goes under this device's transport key
// for that node instead), adds the proof a derive-only key needs, signs
// and stores it.
func (c *Cluster) send(ctx context.Context, t *keystore.Transfer, label, under string, k *transferable) error {
	var err error
	switch {
	case k == nil:
		t.Wrapped, err = c.tok.WrapLabelled(ctx, label, under)
	case k.entry.Role == keyring.Signing:
		if k.key, _, err = c.ring.Get(ctx, k.entry.Role, k.entry.Version); err != nil {
			return err
		}
		pub, perr := c.tok.PublicKey(ctx, k.entry.Label)
		if perr != nil {
			return perr
		}
		if t.PublicKey, err = publicDER(pub); err != nil {
			return err
		}
		t.Wrapped, err = c.tok.Wrap(ctx, k.key, transportLabel(t.To))
	default:
		if k.key, _, err = c.ring.Get(ctx, k.entry.Role, k.entry.Version); err != nil {
			return err
		}
		if k.entry.Role.Usage()&hsm.UsageDerive != 0 {
			t.Challenge = make([]byte, 32)
			_, _ = rand.Read(t.Challenge)
			if t.Proof, err = k.key.TransferProof(ctx, t.Challenge); err != nil {
				return err
			}
		}
		t.Wrapped, err = c.tok.Wrap(ctx, k.key, under)
	}
	if err != nil {
		return err
	}
	if err := sign(ctx, c.signer, t); err != nil {
		return err
	}
	_, err = c.store.AddTransfer(ctx, *t)
	return err
}
