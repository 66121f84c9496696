# cachegate — the commands the README promises.
GO      ?= go
BIN     ?= bin/cachegate
CONFIG  ?= cachegate.example.yaml
PKGS    := ./...

FUZZTIME ?= 1m
# The fuzzers that check an answer's bytes against what net/http writes.
DIFF_FUZZ := FuzzSameAsNetHTTP FuzzAnswerHeadAsNetHTTP FuzzPlainTargetAsParseRequestURI
DIFF_FUZZTIME ?= 2m

.PHONY: run build test check fmt vet templ templ-check bench fuzz clean

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
	$(GO) -C bench test -race -count=1 ./...
	CACHEGATE_TEST_BACKEND=memory $(GO) test -count=1 ./gateway/
	CACHEGATE_TEST_BACKEND=mongo $(GO) test -count=1 ./gateway/

## check: formatting, vet, and the generated templ code in step with views/*.templ
check: fmt vet templ-check

## templ: regenerate views/*_templ.go from views/*.templ (run from the
## repository root: the generated code names its source by that path)
templ:
	@$(GO) tool templ generate -log-level warn

## templ-check: fail when views/*_templ.go differ from what templ generates
## from views/*.templ (they are regenerated; commit the result)
templ-check:
	@tmp=$$(mktemp -d); cp views/*_templ.go "$$tmp"/ 2>/dev/null; \
	$(GO) tool templ generate -log-level warn || { rm -rf "$$tmp"; exit 1; }; \
	stale=; for f in views/*_templ.go; do cmp -s "$$f" "$$tmp/$${f##*/}" || stale="$$stale $$f"; done; \
	rm -rf "$$tmp"; \
	if [ -n "$$stale" ]; then echo "out of date with their .templ files (now regenerated, commit them):$$stale"; exit 1; fi

## vet: the product module and the benchmark harness's own module (bench/go.mod)
vet:
	$(GO) vet $(PKGS)
	$(GO) -C bench vet ./...

## bench: cache-hit throughput against the upstream, nginx and Varnish (see bench/README.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./gateway/ ./web/fastlane/ ./cache/ ./backends/memory/ ./backends/sqlite/
	$(GO) -C bench run ./cmd/benchrun

## fuzz: every fuzz target (go test -fuzz takes one target per run): the
## differential fuzzers of the lane and the gateway against net/http for
## DIFF_FUZZTIME each, the others for FUZZTIME; make test runs their seed
## corpora already
fuzz:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			case " $(DIFF_FUZZ) " in *" $$target "*) t=$(DIFF_FUZZTIME);; *) t=$(FUZZTIME);; esac; \
			echo "== $$dir $$target ($$t)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $$t $$dir/; \
		done; \
	done

clean:
	rm -rf bin
