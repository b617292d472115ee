#!/usr/bin/env bash
# Checks docs/openapi.yaml with two OpenAPI tools nobody here wrote, from
# npm at pinned versions: @redocly/cli lint (errors fail, warnings are
# shown) and @apidevtools/swagger-parser validate. They are installed once
# into .cache/openapi-lint (git ignores it). Node.js 20.19 or later and npm
# are needed: as root they are installed with apt-get, otherwise the
# command is printed.
set -euo pipefail

spec=${1:-docs/openapi.yaml}
dir=${KEYWARD_OPENAPI_LINT_DIR:-.cache/openapi-lint}
redocly=@redocly/cli@2.77.0
parser=@apidevtools/swagger-parser@13.1.0

if ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "openapi-lint: installing nodejs and npm" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq nodejs npm >/dev/null
	else
		echo "openapi-lint: npm is missing; install it with:" >&2
		echo "    sudo apt-get update && sudo apt-get install -y nodejs npm" >&2
		exit 1
	fi
fi
mkdir -p "$dir"
stamp="$dir/.installed-$redocly-$parser"
stamp=${stamp//\//_}
stamp="$dir/$(basename "$stamp")"
if [ ! -f "$stamp" ]; then
	npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$redocly" "$parser" >&2
	touch "$stamp"
fi
"$dir/node_modules/.bin/redocly" lint --format=stylish "$spec"
NODE_PATH="$dir/node_modules" node -e '
require("@apidevtools/swagger-parser").validate(process.argv[1])
  .then(() => console.log("swagger-parser: " + process.argv[1] + " is valid"))
  .catch((e) => { console.error("swagger-parser: " + e.message); process.exit(1); });
' "$spec"
