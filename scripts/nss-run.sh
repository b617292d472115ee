#!/usr/bin/env bash
# nss-run.sh CMD [ARG...]: runs CMD with keyward's tests pointed at a second
# PKCS#11 implementation, NSS softokn behind p11-kit-proxy (make test-nss,
# make bench-nss). The token is made by nss-token.sh in a temporary
# directory and removed, with its p11-kit config, however the run ends.
# Writing p11-kit's system config needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d "${TMPDIR:-/tmp}/keyward-nss.XXXXXX")
trap 'scripts/nss-token.sh down "$dir"' EXIT
exports=$(scripts/nss-token.sh up "$dir")
eval "$exports"
echo "nss-run: NSS softokn token \"$KEYWARD_TEST_PKCS11_TOKEN\" via $KEYWARD_TEST_PKCS11_MODULE" >&2
"$@"
