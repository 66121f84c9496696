# cachegate — the commands the README promises.
GO      ?= go
BIN     ?= bin/cachegate
CONFIG  ?= cachegate.example.yaml
PKGS    := ./...

FUZZTIME ?= 1m

.PHONY: run build test check fmt vet bench fuzz clean

## run: start the gateway on the embedded SQLite default with the sample config and the demo upstream
run: build
	./$(BIN) -config $(CONFIG) -demo

## build: build the cachegate binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/server

## test: every check and every test, as CI runs them; the gateway's rules
## run once more on the in-memory and the MongoDB (in-process FerretDB) backend
test: check
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	CACHEGATE_TEST_BACKEND=memory $(GO) test -count=1 ./gateway/
	CACHEGATE_TEST_BACKEND=mongo $(GO) test -count=1 ./gateway/

## check: formatting and vet
check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## bench: cache-hit throughput against the upstream, nginx and Varnish (see bench/README.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./gateway/ ./web/fastlane/ ./cache/ ./backends/memory/ ./backends/sqlite/
	$(GO) run ./bench/cmd/benchrun

## fuzz: every fuzz target for FUZZTIME each (go test -fuzz takes one target per
## run); make test runs their seed corpora already
fuzz:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$dir $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$dir/; \
		done; \
	done

clean:
	rm -rf bin
