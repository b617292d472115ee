# keyward — see README.md.
GO        ?= go
BIN       := bin/keyward
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0

.PHONY: all build test unit tidy fuzz lint bench demo deps clean

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/keyward

# CI runs exactly this: go.mod tidy, every test with the race detector,
# then every fuzz target for FUZZTIME each (FUZZTIME=0 skips them).
FUZZTIME ?= 20s

test: deps tidy unit
	@if [ "$(FUZZTIME)" != 0 ]; then scripts/fuzz.sh $(FUZZTIME); else echo "fuzz targets skipped: FUZZTIME=0"; fi

unit: deps
	$(GO) test -race -count=1 ./...

# go.mod and go.sum say exactly what the code imports.
tidy:
	@$(GO) mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy"; exit 1; }

# Each fuzz target for FUZZTIME (default 20s); a failing input is kept in
# the package's testdata/fuzz for go test to replay.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

lint: tidy
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(GOVULNCHECK) ./...

# Benchmarks pair keyward's API with the bare PKCS#11 loop ("raw", or for
# tokens the bare device HMAC, "device"); scripts/benchratio.awk prints
# keyward's share of that rate.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1s -count 3 -cpu 1,2 ./hsm | tee bench.out
	@awk -f scripts/benchratio.awk bench.out
	$(GO) test -run '^$$' -bench 'StorePut|StoreGet' -benchtime 3000x ./keystore | tee -a bench.out
	$(GO) test -run '^$$' -bench Rewrap -benchtime 1x ./keystore | tee -a bench.out
	@# Six rounds, each running keyward and the device side by side: the
	@# machine's speed drifts by more than the gap being measured.
	for i in 1 2 3 4 5 6; do $(GO) test -run '^$$' -bench . -benchtime 1s -cpu 1,2 ./tokens; done | tee bench-tokens.out
	@awk -f scripts/benchratio.awk bench-tokens.out; cat bench-tokens.out >> bench.out; rm -f bench-tokens.out
	@# keyward serve against the in-process operation and a bare handler.
	$(GO) test -run '^$$' -bench Server -benchtime 10000x -count 3 ./server | tee bench-server.out
	@awk -f scripts/benchserver.awk bench-server.out; cat bench-server.out >> bench.out; rm -f bench-server.out

demo: deps build
	@scripts/demo.sh

clean:
	rm -rf bin .demo bench.out
