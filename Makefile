# keyward — see README.md.
GO        ?= go
BIN       := bin/keyward
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0

.PHONY: all build test test-nss unit tidy fuzz lint bench bench-nss bench-scale demo deps clean

# Recipes with pipes fail when any part fails.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/keyward

# go.mod tidy, every test with the race detector on SoftHSM2, then every
# fuzz target for FUZZTIME each (FUZZTIME=0 skips them). CI runs this and
# test-nss.
FUZZTIME ?= 20s

test: deps tidy unit
	@if [ "$(FUZZTIME)" != 0 ]; then scripts/fuzz.sh $(FUZZTIME); else echo "fuzz targets skipped: FUZZTIME=0"; fi

# scripts/testreport prints go test's usual lines plus every skipped test
# with its reason.
# with the race detector. On an external token (KEYWARD_TEST_PKCS11_*)
# packages run one at a time: they share that one token.
unit: deps
	$(GO) test -race -count=1 -timeout 30m $(if $(KEYWARD_TEST_PKCS11_MODULE),-p 1) -json ./... | $(GO) run ./scripts/testreport

# The whole suite again on a second PKCS#11 implementation: NSS softokn
# behind p11-kit-proxy (scripts/nss-token.sh; needs root for p11-kit's
# system config). Packages run one at a time (-p 1): they share the one
# NSS token, which each test empties of keys. CI runs make test test-nss.
test-nss: deps
	@scripts/deps.sh nss
	scripts/nss-run.sh $(MAKE) --no-print-directory unit

# The hsm pairs (keyward and the bare PKCS#11 loop) on NSS softokn, for
# docs/PERFORMANCE.md's second column.
bench-nss: deps
	@scripts/deps.sh nss
	for i in 1 2 3 4 5; do scripts/nss-run.sh $(GO) test -run '^$$' -bench . -benchtime 1s -count 1 -cpu 1,2 ./hsm; done | tee bench-nss.out
	@awk -f scripts/benchratio.awk bench-nss.out

# go.mod and go.sum say exactly what the code imports.
tidy:
	@$(GO) mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy"; exit 1; }

# Each fuzz target for FUZZTIME (default 20s); a failing input is kept in
# the package's testdata/fuzz for go test to replay.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# gofmt, go vet, staticcheck and go.mod tidiness; govulncheck too, or why
# it was skipped (its database may be out of reach). CI runs it.
lint: tidy
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	scripts/vulncheck.sh $(GOVULNCHECK)
	scripts/openapi-lint.sh docs/openapi.yaml

# Benchmarks pair keyward's API with the bare PKCS#11 loop ("raw", or for
# tokens the bare device HMAC, "device"); scripts/benchratio.awk prints
# keyward's share of that rate, median and range over rounds. Each round
# is one `-count 1` run, so its two sides run side by side: the machine's
# speed drifts by more than the gap being measured.
bench: deps
	for i in 1 2 3 4 5; do $(GO) test -run '^$$' -bench . -benchtime 1s -count 1 -cpu 1,2 ./hsm; done | tee bench.out
	@awk -f scripts/benchratio.awk bench.out
	$(GO) test -run '^$$' -bench 'StorePut|StoreGet' -benchtime 3000x ./keystore | tee -a bench.out
	@# Rewrap against the raw GCM pair on every core, alternated processes.
	for i in 1 2 3; do $(GO) test -run '^$$' -bench GCMPair1K -benchtime 2s -count 1 -cpu 2 ./hsm; \
		$(GO) test -run '^$$' -bench Rewrap -benchtime 1x ./keystore; done | tee bench-rewrap.out
	@awk -f scripts/benchrewrap.awk bench-rewrap.out; cat bench-rewrap.out >> bench.out; rm -f bench-rewrap.out
	for i in 1 2 3 4 5 6; do $(GO) test -run '^$$' -bench . -benchtime 1s -cpu 1,2 ./tokens; done | tee bench-tokens.out
	@awk -f scripts/benchratio.awk bench-tokens.out; cat bench-tokens.out >> bench.out; rm -f bench-tokens.out
	@# keyward serve against the in-process operation and a bare handler.
	$(GO) test -run '^$$' -bench Server -benchtime 10000x -count 3 ./server | tee bench-server.out
	@awk -f scripts/benchserver.awk bench-server.out; cat bench-server.out >> bench.out; rm -f bench-server.out
	$(MAKE) bench-nss

# Scale (issue 21): for each size in SIZES, a fresh SoftHSM2 token and
# SQLite database with that many token records (a tenth revoked, half of
# those expired), then keyward serve over HTTP: the first request,
# introspection first-time and cached, create (all sizes served at once,
# in rounds that take turns between them), idle RSS, peak RSS of a full
# listing, a page of 100. Prints a markdown
# table; bench-scale.out keeps the raw figures. A million records:
# make bench-scale SIZES="10000 100000 1000000".
SIZES ?= 10000 100000

bench-scale: deps build
	$(GO) run ./internal/benchscale -keyward $(BIN) -out bench-scale.out $(SIZES)

demo: deps build
	@scripts/demo.sh

clean:
	rm -rf bin .demo bench.out bench-nss.out bench-scale.out
