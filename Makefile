# Everything a fresh machine needs: `make run` and `make test` install and build first.
# Install and build output goes to stderr so that `make -s run` keeps stdout for the protocol.
SHELL := /bin/bash
NODE  ?= node
SOURCES := $(shell find src test bench -name '*.ts' -o -name '*.cts' -o -name '*.mts' 2>/dev/null) \
  scripts/build-policy-validator.cjs scripts/build-tool-validators.cjs scripts/build-code-cache.cjs tsconfig.json package.json policy.yaml
BIN := dist/mcp-secure-local.cjs
# The CLI ships as one CommonJS bundle run by a small launcher (src/launcher.cts) with a V8
# code cache made at build time: a start deserialises compiled code instead of parsing and
# compiling the bundle. What a start never needs stays outside the bundle and is required on
# first use: Ajv, ajv-formats and the generated tool validators (copied beside the bundle),
# and the native SQLite addon. `import.meta.url` becomes the bundle's own file URL.
ESBUILD := npx esbuild --bundle --platform=node --format=cjs --target=node20 --minify-whitespace --log-level=warning \
  --external:better-sqlite3 --external:ajv/dist/2020.js --external:ajv/dist/compile/* --external:ajv-formats \
  --external:./tool-validators.generated.cjs \
  --define:import.meta.url=__mslModuleUrl \
  --banner:js="var __mslModuleUrl = require('node:url').pathToFileURL(__filename).href;"
# A launcher is the compiled src/launcher.cts without its source-map comment.
LAUNCHER = sed '/^\/\/\# sourceMappingURL=/d' dist/src/launcher.cjs >

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
	@rm -rf dist/chunks dist/bench/servers/chunks dist/*.bundle.* dist/bench/servers/*.bundle.*
	@$(ESBUILD) dist/src/main.js --outfile=dist/mcp-secure-local.bundle.cjs 1>&2
	@$(ESBUILD) dist/bench/servers/ours.js --outfile=dist/bench/servers/ours.bundle.cjs 1>&2
	@$(LAUNCHER) dist/mcp-secure-local.cjs
	@$(LAUNCHER) dist/bench/servers/ours.cjs
	@sed '/^\/\/\# sourceMappingURL=/d' dist/src/launcher-shim.mjs > dist/mcp-secure-local.mjs
	@cp dist/src/security/tool-validators.generated.cjs dist/
	@cp dist/src/security/tool-validators.generated.cjs dist/bench/servers/
	@chmod +x dist/mcp-secure-local.cjs dist/mcp-secure-local.mjs
	@$(NODE) scripts/build-code-cache.cjs dist/mcp-secure-local.cjs
	@$(NODE) scripts/build-code-cache.cjs dist/bench/servers/ours.cjs
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
