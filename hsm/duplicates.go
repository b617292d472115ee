package hsm

import (
	"bytes"
	"context"
	"sort"

	"github.com/miekg/pkcs11"
)

// Two processes that receive one copy at once can both find its label
// free and both unwrap it: two objects of one key under one label, which
// no lookup by label tells apart (findOne: ErrKeyExists). keyward's
// callers take turns so that this does not happen (cluster locks a file);
// DropDuplicateCopies mends what an older keyward, or processes that do
// not share the lock, left behind.

// DropDuplicateCopies destroys all but one object of every label and
// class held only by received copies of one key, and returns the label of
// each object it destroyed. Copies under one label are of one key: an AES
// key proved the KCV its CKA_ID records (compared here), a key pair
// version is the one key its first holder made, and a transport key is
// made once per sender and receiver. So one is as good as another; the
// one kept is the lowest CKA_ID (random, recorded at unwrap), so that
// processes doing this at once keep the same one. Objects keyward did
// not receive are never touched: two of those under one label still fail
// every lookup, for a person to sort out.
func (t *Token) DropDuplicateCopies(ctx context.Context) ([]string, error) {
	var dropped []string
	err := t.do(ctx, "drop_duplicates", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		dropped = dropped[:0]
		for _, class := range []KeyClass{ClassSecret, ClassPrivate, ClassPublic} {
			groups, err := t.st.receivedByLabel(s, class)
			if err != nil {
				return err
			}
			for label, objs := range groups {
				if len(objs) < 2 || !sameCopies(objs) {
					continue
				}
				sort.Slice(objs, func(i, j int) bool { return bytes.Compare(objs[i].id, objs[j].id) < 0 })
				for _, o := range objs[1:] {
					err := call("C_DestroyObject", t.st.mod.ctx.DestroyObject(s, o.h))
					if t.st.gone(s, o.h, err) {
						continue // another process dropped it first
					}
					if err != nil {
						return err
					}
					dropped = append(dropped, label)
				}
			}
		}
		return nil
	})
	t.st.keysMu.Lock()
	for _, label := range dropped {
		delete(t.st.keys, label) // its cached handle may be one destroyed
	}
	t.st.keysMu.Unlock()
	return dropped, err
}

// copyObject is a token object found by DropDuplicateCopies.
type copyObject struct {
	h       pkcs11.ObjectHandle
	id      []byte
	keyType []byte
}

// receivedByLabel groups the token objects of class by label; a label
// any object of which keyward did not receive is left out.
func (st *tokenState) receivedByLabel(s pkcs11.SessionHandle, class KeyClass) (map[string][]copyObject, error) {
	hs, err := st.findObjects(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, uint(class)),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
	})
	if err != nil {
		return nil, err
	}
	groups := map[string][]copyObject{}
	foreign := map[string]bool{}
	for _, h := range hs {
		a, err := st.attrs(s, h, pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_KEY_TYPE)
		if st.gone(s, h, err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		label := string(a[pkcs11.CKA_LABEL])
		if rec, ours := parseID(a[pkcs11.CKA_ID]); !ours || rec.origin != originReceived {
			foreign[label] = true
			continue
		}
		groups[label] = append(groups[label], copyObject{h: h, id: a[pkcs11.CKA_ID], keyType: a[pkcs11.CKA_KEY_TYPE]})
	}
	for label := range foreign {
		delete(groups, label)
	}
	return groups, nil
}

// sameCopies says objs are copies of one key: one key type and one
// record after the random part of CKA_ID (origin, and the KCV an AES key
// proved to have).
func sameCopies(objs []copyObject) bool {
	for _, o := range objs[1:] {
		if !bytes.Equal(o.keyType, objs[0].keyType) || !bytes.Equal(o.id[8:], objs[0].id[8:]) {
			return false
		}
	}
	return true
}

// gone says that err, from a call on object h, is h destroyed since it
// was found (by another process dropping the same copies). An object
// destroyed while the call ran can answer another code (SoftHSM2:
// CKR_GENERAL_ERROR), so h is asked about once more.
func (st *tokenState) gone(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, err error) bool {
	if err == nil {
		return false
	}
	if codeOf(err) != pkcs11.CKR_OBJECT_HANDLE_INVALID {
		_, err = st.attrs(s, h, pkcs11.CKA_CLASS)
	}
	return codeOf(err) == pkcs11.CKR_OBJECT_HANDLE_INVALID
}
