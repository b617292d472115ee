#!/usr/bin/env bash
# Makes sure the system packages keyward's tests and demo need are here:
# SoftHSM2 (the PKCS#11 device), OpenSC (pkcs11-tool, for cross-checks), the
# PostgreSQL server binaries (the HA tests start throwaway clusters), and
# curl and jq (the demo and the API examples). "deps.sh nss" also wants
# what make test-nss needs: p11-kit and its proxy module (p11-kit,
# p11-kit-modules), NSS's softokn (libnss3) and certutil (libnss3-tools).
# As root it installs them with apt-get; otherwise it prints the command.
set -euo pipefail

missing=()
softhsm_found=
for p in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so; do
	[ -f "$p" ] && softhsm_found=1 && break
done
[ -n "$softhsm_found" ] || missing+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
# The demo and docs/API.md's examples call keyward serve with curl and jq.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# The tests start throwaway PostgreSQL clusters from the server binaries.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${1:-}" = nss ]; then
	command -v p11-kit >/dev/null 2>&1 || missing+=(p11-kit)
	compgen -G '/usr/lib*/p11-kit-proxy.so' >/dev/null || compgen -G '/usr/lib/*/p11-kit-proxy.so' >/dev/null || missing+=(p11-kit-modules)
	compgen -G '/usr/lib*/libsoftokn3.so' >/dev/null || compgen -G '/usr/lib/*/libsoftokn3.so' >/dev/null || missing+=(libnss3)
	command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
	exit 0
fi
echo "deps: missing ${missing[*]}; install them with:" >&2
echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
exit 1
