# Everything a fresh machine needs: `make run` and `make test` install and build first.
# Install and build output goes to stderr so that `make -s run` keeps stdout for the protocol.
SHELL := /bin/bash
NODE  ?= node
SOURCES := $(shell find src test bench -name '*.ts' 2>/dev/null) scripts/build-policy-validator.cjs scripts/build-tool-validators.cjs tsconfig.json package.json
BIN := dist/mcp-secure-local.mjs
# One ESM entry file: loading one module instead of hundreds is most of a cold start. What a
# start does not need (the YAML parser, Ajv, fetch/exec, the CLI's human commands) is reached by
# dynamic import and split into chunks, loaded on first use. The native SQLite addon stays
# outside; CommonJS dependencies get a `require` of their own.
ESBUILD := npx esbuild --bundle --splitting --platform=node --format=esm --target=node20 --external:better-sqlite3 --log-level=warning \
  --chunk-names=chunks/[name]-[hash] --out-extension:.js=.mjs \
  --banner:js="import { createRequire as __mslCreateRequire } from 'node:module'; const require = __mslCreateRequire(import.meta.url);"

.PHONY: install build run test unit e2e lint bench clean

install: node_modules/.install-stamp

node_modules/.install-stamp: package.json $(wildcard package-lock.json)
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund 1>&2; else npm install --no-audit --no-fund 1>&2; fi
	@touch $@

build: dist/.build-stamp

dist/.build-stamp: node_modules/.install-stamp $(SOURCES)
	@npx tsc -p tsconfig.json 1>&2
	@$(NODE) scripts/build-policy-validator.cjs
	@$(NODE) scripts/build-tool-validators.cjs
	@rm -rf dist/chunks dist/bench/servers/chunks
	@$(ESBUILD) dist/src/main.js --outdir=dist --entry-names=mcp-secure-local 1>&2
	@$(ESBUILD) dist/bench/servers/ours.js --outdir=dist/bench/servers --entry-names=ours.bundle 1>&2
	@chmod +x $(BIN)
	@touch $@

run: build
	@exec $(NODE) $(BIN) $(ARGS)

lint: install
	@npx eslint --max-warnings 0 src test bench

# Unit and end-to-end tests with line coverage of src/security (gate: 95%).
test: build lint
	@rm -rf coverage
	@npx c8 --reporter=text-summary --reporter=text --include 'dist/src/security/**' \
	  --check-coverage --lines 95 \
	  $(NODE) --test --test-reporter=spec --test-concurrency=2 $$(find dist/test -name '*.test.js' | sort)

unit: build
	@$(NODE) --test $$(find dist/test/unit -name '*.test.js' | sort)

e2e: build
	@$(NODE) --test $$(find dist/test/e2e -name '*.test.js' | sort)

bench: build
	@$(NODE) dist/bench/run.js $(ARGS)

clean:
	rm -rf dist coverage
