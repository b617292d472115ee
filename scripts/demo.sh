#!/usr/bin/env bash
# The quick start: a throwaway SoftHSM2 token in .demo/, keys generated in
# it, their KCVs. Nothing here touches your real devices.
set -euo pipefail
cd "$(dirname "$0")/.."
kw=bin/keyward
demo=$PWD/.demo
rm -rf "$demo"
mkdir -p "$demo"
export KEYWARD_HOME=$demo
unset KEYWARD_PIN KEYWARD_SO_PIN KEYWARD_PIN_SOURCE KEYWARD_TOKEN KEYWARD_PKCS11_MODULE

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

step keyward softhsm init --label demo --dir "$demo/softhsm"
$kw softhsm init --label demo --dir "$demo/softhsm" < /dev/null | tee "$demo/env"
. "$demo/env"

step keyward key generate --role master
$kw key generate --role master
step keyward key generate --role join
$kw key generate --role join
step keyward key kcv --role master
$kw key kcv --role master

step 'echo "postgres://app:s3cret@db/app" | keyward store put db/url --from -'
echo "postgres://app:s3cret@db/app" | $kw store put db/url --from -
step keyward store get db/url
$kw store get db/url
step keyward key rotate --role master
$kw key rotate --role master
step keyward store rewrap
$kw store rewrap
step keyward store list
$kw store list
step keyward key retire --role master --version 1
$kw key retire --role master --version 1
step keyward key list
$kw key list
# Tokens are secrets: they go to 0600 files, and keyward reads them from
# files or standard input, never from arguments.
umask 077
step 'keyward token create --subject ci --scope "read write" --refreshable > grant.json'
$kw token create --subject ci --scope "read write" --refreshable > "$demo/grant.json"
sed -E 's/("(access|refresh)_token": "[^"]{12})[^"]*/\1…(secret, in grant.json)/' "$demo/grant.json"
field() { sed -nE "s/.*\"$1\": \"([^\"]+)\".*/\1/p" "$2"; }
field access_token "$demo/grant.json" > "$demo/access.jwt"
field refresh_token "$demo/grant.json" > "$demo/refresh.txt"
step keyward token verify --token-file access.jwt
$kw token verify --token-file "$demo/access.jwt"
step 'keyward token refresh --refresh-token-file refresh.txt > grant2.json'
$kw token refresh --refresh-token-file "$demo/refresh.txt" > "$demo/grant2.json"
echo "a new access token and refresh token are in $demo/grant2.json"
step 'keyward token verify --token-file access.jwt   # the old access token died with the refresh'
if $kw token verify --token-file "$demo/access.jwt"; then echo "demo: the old access token still verifies" >&2; exit 1; else echo "(exit $?)"; fi
step 'keyward token revoke --id <the new token id>'
$kw token revoke --id "$(field token_id "$demo/grant2.json")"
step keyward token list --all
$kw token list --all

# The same node as an HTTP service: keyward serve on a free loopback port,
# with a device key pair for ES256 tokens that its JWKS publishes.
step keyward key generate --role signing --type ec-p256
$kw key generate --role signing --type ec-p256
step 'keyward serve --listen 127.0.0.1:0 &'
$kw serve --listen 127.0.0.1:0 --quiet 2> "$demo/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q 'serving on' "$demo/serve.log" && break; sleep 0.1; done
cat "$demo/serve.log"
url=$(sed -n 's/^keyward: serving on //p' "$demo/serve.log")
[ -n "$url" ] || { echo "demo: keyward serve did not start" >&2; exit 1; }
$kw token create --subject demo-admin --scope admin > "$demo/admin.json"
field access_token "$demo/admin.json" > "$demo/admin.jwt"
auth="Authorization: Bearer $(cat "$demo/admin.jwt")"
step 'curl -X POST $url/access/api/v1/tokens -H "Authorization: Bearer $ADMIN" -d {"subject":"svc","scope":"read","refreshable":true}'
curl -sS --fail-with-body -H "$auth" -H 'Content-Type: application/json' \
	-d '{"subject":"svc","scope":"read","refreshable":true}' "$url/access/api/v1/tokens" > "$demo/api-grant.json"
sed -E 's/("(access|refresh)_token":"[^"]{12})[^"]*/\1…/g' "$demo/api-grant.json"
apitoken=$(sed -nE 's/.*"access_token":"([^"]+)".*/\1/p' "$demo/api-grant.json")
apirefresh=$(sed -nE 's/.*"refresh_token":"([^"]+)".*/\1/p' "$demo/api-grant.json")
step 'curl -X POST $url/oauth2/introspect -d token=…'
curl -sS --fail-with-body -H "$auth" --data-urlencode "token=$apitoken" "$url/oauth2/introspect"
step 'curl -X POST $url/access/api/v1/tokens -d grant_type=refresh_token -d refresh_token=…'
curl -sS --fail-with-body --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$apirefresh" \
	"$url/access/api/v1/tokens" > "$demo/api-grant2.json"
sed -E 's/("(access|refresh)_token":"[^"]{12})[^"]*/\1…/g' "$demo/api-grant2.json"
step 'curl -X POST $url/oauth2/introspect -d token=<the old access token>   # it died with the refresh'
curl -sS --fail-with-body -H "$auth" --data-urlencode "token=$apitoken" "$url/oauth2/introspect"
newid=$(sed -nE 's/.*"token_id":"([^"]+)".*/\1/p' "$demo/api-grant2.json")
step "curl -X DELETE \$url/access/api/v1/tokens/$newid"
curl -sS --fail-with-body -H "$auth" -X DELETE "$url/access/api/v1/tokens/$newid"
step 'curl $url/.well-known/jwks.json'
curl -sS --fail-with-body "$url/.well-known/jwks.json"
step 'echo "hunter2" | curl -X PUT $url/api/v1/store/app/password --data-binary @-'
echo "hunter2" | curl -sS --fail-with-body -H "$auth" -X PUT --data-binary @- "$url/api/v1/store/app/password"
step 'curl $url/api/v1/store/app/password'
curl -sS --fail-with-body -H "$auth" "$url/api/v1/store/app/password"
step 'kill -TERM <keyward serve>   # finishes what is in flight, commits, exits 0'
kill -TERM $server
wait $server
trap - EXIT
echo "keyward serve stopped (exit 0)"

step keyward doctor
$kw doctor

printf '\nThe keys live in the SoftHSM2 token under %s and cannot be read out;\n' "$demo/softhsm"
printf 'the database %s holds only ciphertext.\n' "$demo/keyward.db"
printf 'Use it from your shell with: . %s\n' "$demo/env"
