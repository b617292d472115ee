package hsm

/*
#include <stdlib.h>
#include <string.h>

// CK_KEY_DERIVATION_STRING_DATA with CK_ULONG as unsigned long, as on every
// Unix PKCS#11 ABI.
typedef struct {
	unsigned char *pData;
	unsigned long ulLen;
} kw_derivation_string_data;
*/
import "C"

import "unsafe"

// derivationParam is a CK_KEY_DERIVATION_STRING_DATA for data, with data
// copied to C memory (miekg/pkcs11 has no helper for it, and a Go pointer
// may not be handed to C inside a byte slice). free releases it after the
// call that used it.
func derivationParam(data []byte) (param []byte, free func()) {
	p := C.malloc(C.size_t(len(data)))
	C.memcpy(p, unsafe.Pointer(&data[0]), C.size_t(len(data)))
	s := C.kw_derivation_string_data{pData: (*C.uchar)(p), ulLen: C.ulong(len(data))}
	param = C.GoBytes(unsafe.Pointer(&s), C.int(unsafe.Sizeof(s)))
	return param, func() {
		C.memset(p, 0, C.size_t(len(data)))
		C.free(p)
	}
}
