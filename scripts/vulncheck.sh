#!/usr/bin/env bash
# vulncheck.sh GOVULNCHECK: runs govulncheck on the module; where its
# database (vuln.go.dev) cannot be reached, as on CI machines with no
# network but the module proxy, it says so and why, and passes. Known
# vulnerabilities, or any other failure, fail.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(go run "$1" ./... 2>&1)
rc=$?
if [[ $rc -ne 0 ]] && grep -q '^govulncheck: fetching vulnerabilities' <<<"$out"; then
	echo "govulncheck skipped: its vulnerability database cannot be reached ($(grep -m1 '^govulncheck: fetching vulnerabilities' <<<"$out"))"
	exit 0
fi
echo "$out"
exit $rc
