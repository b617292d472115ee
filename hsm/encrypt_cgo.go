package hsm

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
// (struct ctx { void *handle; CK_FUNCTION_LIST_PTR sym; } in v1.1, which
// go.mod pins): the very list miekg/pkcs11 initialized. A list got anew
// from the module is not always the same one: p11-kit-proxy gives each
// C_GetFunctionList call a list of its own, uninitialized.
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
	"unsafe"

	"github.com/miekg/pkcs11"
)

// functionList is the module's PKCS#11 function list, for the calls
// miekg/pkcs11 cannot make as keyward needs; nil where it cannot be had.
type functionList struct{ fl C.CK_FUNCTION_LIST_PTR }

func loadFunctionList(c *pkcs11.Ctx) *functionList {
	// pkcs11.Ctx is struct { ctx *C.struct_ctx }: its first word.
	fl := C.kw_function_list(*(*unsafe.Pointer)(unsafe.Pointer(c)))
	if fl == nil {
		return nil
	}
	return &functionList{fl}
}

// encrypt is C_Encrypt into a buffer keyward sizes itself (out's length),
// not the size the device reports: NSS softokn's size query for AES-GCM
// leaves out the tag, and the call then fails with CKR_BUFFER_TOO_SMALL. A
// buffer still too small is grown to what the device asks and the call
// made again (the operation stays active, PKCS#11 §5.2).
func (f *functionList) encrypt(s pkcs11.SessionHandle, in, out []byte) ([]byte, error) {
	if len(in) == 0 {
		in = make([]byte, 0, 1) // a valid pointer: SoftHSM2 refuses NULL even for no data
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
