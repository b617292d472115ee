#!/usr/bin/env bash
# nss-token.sh: set up (or tear down) an NSS softokn token so keyward's tests
# can run on a second PKCS#11 implementation besides SoftHSM2.
#
#   eval "$(scripts/nss-token.sh up DIR)"   # NSS database in DIR, prints exports
#   go test ./hsm ...                       # softhsmtest uses the external token
#   scripts/nss-token.sh down DIR           # removes what "up" wrote
#
# softokn (libsoftokn3.so) will not start without the database location in
# C_Initialize's pReserved string, which keyward (like most PKCS#11 callers)
# never passes. p11-kit-proxy does: its module config carries x-init-reserved.
# As root p11-kit reads only its system config, /etc/pkcs11/modules, so the
# config goes there; every other module is hidden by an override file of the
# same name, so the proxy shows nothing but the NSS slots. DIR records what
# was written (p11-kit-files, p11-kit-backup/, p11-kit-dirs) for "down".
set -euo pipefail

prog=$0
sysdir=/etc/pkcs11/modules
pkgdir=/usr/share/p11-kit/modules
own=$sysdir/keyward-nss.module
softokn=${NSS_SOFTOKN:-/usr/lib/x86_64-linux-gnu/libsoftokn3.so}
token_label="NSS Certificate DB"

die() { echo "nss-token.sh: $*" >&2; exit 1; }

usage() {
	echo "usage: $prog up DIR | down DIR" >&2
	exit 2
}

proxy_path() {
	local p
	for p in "${P11_KIT_PROXY:-}" \
		/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so \
		/usr/lib64/p11-kit-proxy.so /usr/lib/p11-kit-proxy.so; do
		if [[ -n $p && -f $p ]]; then
			echo "$p"
			return
		fi
	done
	die "p11-kit-proxy.so not found (apt-get install p11-kit-modules, or set P11_KIT_PROXY)"
}

# The system config is root's; say exactly what to run instead of failing
# half-way with EACCES.
need_write() {
	local d=$sysdir
	while [[ ! -e $d ]]; do d=$(dirname "$d"); done
	if [[ $EUID -ne 0 && ! -w $d ]]; then
		die "writing p11-kit's system config ($sysdir) needs root; run: sudo $prog $1 $2"
	fi
}

up() {
	local dir=$1 m name pin
	command -v certutil >/dev/null || die "certutil not found (apt-get install libnss3-tools)"
	[[ -f $softokn ]] || die "$softokn not found (apt-get install libnss3, or set NSS_SOFTOKN)"
	local proxy
	proxy=$(proxy_path)
	need_write up "$dir"
	if [[ -e $own ]]; then
		local other
		other=$(sed -n "s/^x-init-reserved: configdir='sql:\([^']*\)'.*/\1/p" "$own")
		die "$own exists: an NSS token is already up; run: $prog down ${other:-DIR}"
	fi

	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# The path is quoted with ' inside x-init-reserved and the config is line based.
	if [[ $dir == *"'"* || $dir == *$'\n'* ]]; then
		die "DIR must not contain ' or a newline: $dir"
	fi
	if [[ -e $dir/cert9.db || -e $dir/key4.db || -e $dir/p11-kit-files ]]; then
		die "$dir already holds an NSS database; run '$prog down $dir' first"
	fi

	trap 'echo "nss-token.sh: up failed; undo with: $prog down $dir" >&2' ERR

	umask 077 # key database and PIN are for root (or the caller) only
	certutil -N -d "sql:$dir" --empty-password
	# A new database has an empty user PIN, so C_InitPIN (after SO login)
	# fails; change the PIN from empty with certutil -W instead. certutil
	# reads an empty password file as "no data", but a lone newline as "".
	pin=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$pin" >"$dir/pin"
	printf '\n' >"$dir/empty.pw"
	certutil -W -d "sql:$dir" -f "$dir/empty.pw" -@ "$dir/pin" >/dev/null
	rm -f "$dir/empty.pw"

	# Record each path before writing it, so "down" can undo a partial "up".
	: >"$dir/p11-kit-files"
	: >"$dir/p11-kit-dirs"
	mkdir -p "$dir/p11-kit-backup"
	local d missing=()
	for d in /etc/pkcs11 "$sysdir"; do [[ -d $d ]] || missing+=("$d"); done
	if ((${#missing[@]})); then
		printf '%s\n' "${missing[@]}" >"$dir/p11-kit-dirs"
		umask 022
		mkdir -p "$sysdir"
	fi
	umask 022 # p11-kit config must stay readable by everyone

	# A config in /etc/pkcs11/modules overrides the packaged one of the same
	# file name; enable-in with a program name nobody has disables a module
	# everywhere (proxy and p11-kit list-modules alike). Existing system
	# configs are moved to DIR and restored by "down".
	for m in "$pkgdir"/*.module "$sysdir"/*.module; do
		[[ -e $m ]] || continue
		name=${m##*/}
		if [[ $name == "${own##*/}" ]] || grep -qxF "$sysdir/$name" "$dir/p11-kit-files"; then
			continue
		fi
		if [[ -e $sysdir/$name ]]; then
			cp -p "$sysdir/$name" "$dir/p11-kit-backup/$name"
		fi
		echo "$sysdir/$name" >>"$dir/p11-kit-files"
		printf '# Written by keyward scripts/nss-token.sh (undo: %s down %s)\n# Hides this module while the NSS test token is up.\nenable-in: x-nothing\n' \
			"$prog" "$dir" >"$sysdir/$name"
	done

	echo "$own" >>"$dir/p11-kit-files"
	cat >"$own" <<EOF
# Written by keyward scripts/nss-token.sh (undo: $prog down $dir)
# NSS softokn needs its database location in C_Initialize's reserved string.
module: $softokn
x-init-reserved: configdir='sql:$dir' certPrefix='' keyPrefix='' secmod='secmod.db' flags=''
EOF
	trap - ERR

	# Per-user configs (read when not root) would override ours; check what
	# the proxy will really load.
	if command -v p11-kit >/dev/null; then
		local mods
		mods=$(p11-kit list-modules 2>/dev/null | grep -E '^[^[:space:]]' | cut -d: -f1 | tr '\n' ' ' || true)
		[[ $mods == "keyward-nss " ]] ||
			echo "nss-token.sh: warning: p11-kit lists modules: $mods(want only keyward-nss)" >&2
	fi

	echo "export KEYWARD_TEST_PKCS11_MODULE='$proxy'"
	echo "export KEYWARD_TEST_PKCS11_TOKEN='$token_label'"
	echo "export KEYWARD_TEST_PKCS11_PIN='$pin'"
}

down() {
	local dir=$1 f b
	[[ -d $dir ]] || die "$dir: no such directory"
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/p11-kit-files ]]; then
		need_write down "$dir"
		while IFS= read -r f; do
			# Only ever touch the p11-kit config directory.
			if [[ $f == "$sysdir"/*.module ]]; then rm -f -- "$f"; fi
		done <"$dir/p11-kit-files"
		for b in "$dir"/p11-kit-backup/*.module; do
			if [[ -e $b ]]; then mv -f -- "$b" "$sysdir/${b##*/}"; fi
		done
		# Directories "up" created, deepest first, and only if now empty.
		if [[ -f $dir/p11-kit-dirs ]]; then
			tac "$dir/p11-kit-dirs" | while IFS= read -r f; do
				if [[ $f == /etc/pkcs11* ]]; then rmdir --ignore-fail-on-non-empty -- "$f"; fi
			done
		fi
	fi
	rm -rf -- "$dir/p11-kit-backup"
	rm -f -- "$dir"/{cert9.db,key4.db,pkcs11.txt,pin,empty.pw,p11-kit-files,p11-kit-dirs}
	rmdir --ignore-fail-on-non-empty -- "$dir"
}

[[ $# -eq 2 && -n $2 ]] || usage
case $1 in
up) up "$2" ;;
down) down "$2" ;;
*) usage ;;
esac
