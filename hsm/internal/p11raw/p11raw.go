// Package p11raw makes the one PKCS#11 call keyward cannot make through
// miekg/pkcs11: C_Encrypt into a buffer keyward sizes. miekg's Encrypt
// asks the device for the output size first, and NSS softokn's answer for
// AES-GCM leaves out the tag, so the call then fails with
// CKR_BUFFER_TOO_SMALL (and ends the operation; softokn has no multi-part
// AES-GCM either). Making the call needs the function list miekg
// initialized, which only its private context holds: this package reads
// that context's C layout, through unsafe. It is fenced: Load hands out
// the list only in a binary that links miekg/pkcs11 exactly at Pinned,
// the version whose layout it reads. All of keyward's cgo and unsafe for
// this lives here.
package p11raw

/*
#cgo CFLAGS: -I${SRCDIR}/include
#include <stdlib.h>

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

// kw_function_list reads the function list out of miekg/pkcs11's context
// (struct ctx { void *handle; CK_FUNCTION_LIST_PTR sym; } in v1.1.2):
// the very list miekg/pkcs11 initialized. A list got anew from the module
// is not always the same one: p11-kit-proxy gives each C_GetFunctionList
// call a list of its own, uninitialized.
struct kw_miekg_ctx { void *handle; CK_FUNCTION_LIST_PTR sym; };

static CK_FUNCTION_LIST_PTR kw_function_list(void *miekg_ctx) {
	if (miekg_ctx == NULL) return NULL;
	CK_FUNCTION_LIST_PTR fl = ((struct kw_miekg_ctx *) miekg_ctx)->sym;
	if (fl == NULL || fl->version.major < 2 || fl->C_Encrypt == NULL) return NULL;
	return fl;
}

static CK_RV kw_encrypt(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen) {
	return fl->C_Encrypt(s, in, inlen, out, outlen);
}
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// FunctionList is a module's PKCS#11 function list, as miekg/pkcs11
// initialized it.
type FunctionList struct{ fl C.CK_FUNCTION_LIST_PTR }

// Load returns the function list c calls the module through, or nil and
// why not: this build does not link the miekg/pkcs11 whose layout Load
// reads, or the list is not there.
func Load(c *pkcs11.Ctx) (*FunctionList, error) {
	if err := fenceOnce(); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("no miekg/pkcs11 context")
	}
	// pkcs11.Ctx is struct { ctx *C.struct_ctx }: its first word.
	fl := C.kw_function_list(*(*unsafe.Pointer)(unsafe.Pointer(c)))
	if fl == nil {
		return nil, errors.New("the module's function list lacks C_Encrypt")
	}
	return &FunctionList{fl}, nil
}

// Encrypt is C_Encrypt of in into out, sized by the caller (AES-GCM:
// plaintext + tag), not the size the device reports. A buffer still too
// small is grown to what the device asks and the call made again (the
// operation stays active, PKCS#11 §5.2). The error is the CKR_* value, for
// the caller to wrap.
func (f *FunctionList) Encrypt(s pkcs11.SessionHandle, in, out []byte) ([]byte, error) {
	if len(in) == 0 {
		in = make([]byte, 0, 1) // a valid pointer: SoftHSM2 refuses NULL even for no data
	}
	if len(out) == 0 {
		out = make([]byte, 1)
	}
	inPtr := (C.CK_BYTE_PTR)(unsafe.Pointer(unsafe.SliceData(in)))
	for range 2 {
		n := C.CK_ULONG(len(out))
		rv := C.kw_encrypt(f.fl, C.CK_SESSION_HANDLE(s), inPtr, C.CK_ULONG(len(in)), (C.CK_BYTE_PTR)(unsafe.Pointer(&out[0])), &n)
		if rv == C.CKR_BUFFER_TOO_SMALL && int(n) > len(out) {
			out = make([]byte, int(n))
			continue
		}
		if rv != C.CKR_OK {
			return nil, pkcs11.Error(rv)
		}
		return out[:int(n)], nil
	}
	return nil, pkcs11.Error(pkcs11.CKR_BUFFER_TOO_SMALL)
}
