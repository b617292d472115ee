/*
 * faultshim.c: a PKCS#11 module that forwards every call to another one
 * (SoftHSM2 in keyward's tests) and, on demand, fails or hangs like a
 * network HSM that went away. Built by package softhsm/faultshim with the
 * system's cc and the OASIS headers in hsm/internal/p11raw/include; loaded
 * like any module. The forwarding wrappers, one per PKCS#11 function, are
 * generated from pkcs11f.h into wrappers.h (go generate: gen.go).
 *
 * KW_FAULT_TARGET  the module forwarded to (read at C_GetFunctionList)
 * KW_FAULT_CONTROL a file holding the mode, read when it changes:
 *   (empty)  forward every call
 *   removed  every call answers CKR_DEVICE_REMOVED
 *   absent   every call answers CKR_TOKEN_NOT_PRESENT
 *   session  every call answers CKR_SESSION_HANDLE_INVALID
 *   error    every call answers CKR_DEVICE_ERROR
 *   reinit   every call answers CKR_DEVICE_REMOVED; once healed, every
 *            call answers CKR_CRYPTOKI_NOT_INITIALIZED until the caller
 *            finalizes and initializes the module again
 *   hang     every call blocks until the mode changes, then goes on
 * When a fault other than hang ends, the device has lost its state as a
 * restarted HSM would: every session is closed (and so the login).
 * C_Initialize, C_Finalize and C_GetFunctionList are always forwarded.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST shim;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char mode[32];
static struct timespec seen;
static off_t seen_size = -1;
static int need_init;

/* heal: the fault in was ends; the device lost its sessions (and login). */
static void heal(const char *was) {
	if (strcmp(was, "reinit") == 0) {
		need_init = 1;
		return;
	}
	CK_ULONG n = 0;
	if (real->C_GetSlotList(CK_TRUE, NULL_PTR, &n) != CKR_OK || n == 0) return;
	CK_SLOT_ID *slots = calloc(n, sizeof *slots);
	if (slots != NULL && real->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK) {
		for (CK_ULONG i = 0; i < n; i++) real->C_CloseAllSessions(slots[i]);
	}
	free(slots);
}

/* current reads the control file when it changed; mu is held. */
static void current(void) {
	const char *path = getenv("KW_FAULT_CONTROL");
	struct stat st;
	if (path == NULL || stat(path, &st) != 0) {
		st.st_size = 0;
		st.st_mtim.tv_sec = 0;
		st.st_mtim.tv_nsec = 0;
	}
	if (st.st_mtim.tv_sec == seen.tv_sec && st.st_mtim.tv_nsec == seen.tv_nsec && st.st_size == seen_size) return;
	seen = st.st_mtim;
	seen_size = st.st_size;
	char next[32] = "";
	FILE *f = path ? fopen(path, "r") : NULL;
	if (f != NULL) {
		if (fgets(next, sizeof next, f) == NULL) next[0] = 0;
		fclose(f);
	}
	next[strcspn(next, " \r\n")] = 0;
	if (mode[0] != 0 && strcmp(mode, "hang") != 0 && strcmp(next, mode) != 0) heal(mode);
	strcpy(mode, next);
}

/* fault is the answer of a call in the current mode; CKR_OK: forward. */
static CK_RV fault(void) {
	for (;;) {
		pthread_mutex_lock(&mu);
		current();
		char m[32];
		strcpy(m, mode);
		int reinit = need_init;
		pthread_mutex_unlock(&mu);
		if (strcmp(m, "hang") == 0) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (strcmp(m, "removed") == 0 || strcmp(m, "reinit") == 0) return CKR_DEVICE_REMOVED;
		if (strcmp(m, "absent") == 0) return CKR_TOKEN_NOT_PRESENT;
		if (strcmp(m, "session") == 0) return CKR_SESSION_HANDLE_INVALID;
		if (strcmp(m, "error") == 0) return CKR_DEVICE_ERROR;
		if (reinit) return CKR_CRYPTOKI_NOT_INITIALIZED;
		return CKR_OK;
	}
}

static CK_RV shim_C_Initialize(CK_VOID_PTR pInitArgs) {
	CK_RV rv = real->C_Initialize(pInitArgs);
	if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		pthread_mutex_lock(&mu);
		need_init = 0;
		pthread_mutex_unlock(&mu);
	}
	return rv;
}

static CK_RV shim_C_Finalize(CK_VOID_PTR pReserved) { return real->C_Finalize(pReserved); }

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR pp);

#include "wrappers.h"

static int load(void) {
	if (real != NULL) return 1;
	const char *target = getenv("KW_FAULT_TARGET");
	if (target == NULL) return 0;
	void *h = dlopen(target, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return 0;
	CK_C_GetFunctionList get = (CK_C_GetFunctionList) dlsym(h, "C_GetFunctionList");
	if (get == NULL || get(&real) != CKR_OK) return 0;
	shim.version = real->version;
	SHIM_TABLE
	return 1;
}

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR pp) {
	if (pp == NULL_PTR) return CKR_ARGUMENTS_BAD;
	if (!load()) return CKR_GENERAL_ERROR;
	*pp = &shim;
	return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR pp) { return shim_C_GetFunctionList(pp); }
