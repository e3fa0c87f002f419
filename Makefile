# mod_client_certs: build, install, test and demo.
#
#   make                  build build/mod_client_certs/ (Lua module + native library)
#   make install          copy it into $(MODULES_DIR)
#   make test             every test: cargo, busted, end-to-end against Prosody
#   make demo             upload a certificate and log in with it on a throwaway Prosody

MODULES_DIR ?= /usr/local/lib/prosody/modules
CARGO ?= cargo
PYTHON ?= /usr/bin/python3
LUA ?= lua5.4
BUSTED ?= busted
# Cargo feature naming the Lua the library is built for: lua51, lua52,
# lua53, lua54 or luajit.
LUA_FEATURE ?= lua54

# Prosody 13 from bookworm-backports, unpacked beside the system's 0.12.
PROSODY13_DIR ?= .cache/prosody13

OUT := build/mod_client_certs
LIB := target/release/libclient_certs.so

.PHONY: bench lint deps all build install test test-rust test-lua test-lua-versions test-e2e test-e2e-0.12 test-e2e-13 demo clean

all: build

LUA_SOURCES := $(wildcard lua/*.lua)

build: $(patsubst lua/%,$(OUT)/%,$(LUA_SOURCES)) $(OUT)/client_certs.so

# Always ask cargo, which rebuilds only what changed, so that a different
# LUA_FEATURE also produces a new library.
$(LIB): FORCE
	$(CARGO) build --release --no-default-features --features $(LUA_FEATURE)

FORCE:

$(OUT)/client_certs.so: $(LIB)
	mkdir -p $(OUT)
	cp $(LIB) $@

$(OUT)/%.lua: lua/%.lua
	mkdir -p $(OUT)
	cp $< $@

install: build
	mkdir -p $(MODULES_DIR)/mod_client_certs
	cp $(OUT)/*.lua $(OUT)/client_certs.so $(MODULES_DIR)/mod_client_certs/

# Installs the Debian packages the tests need, unless they are all present.
deps:
	@if ! bash scripts/install-deps.sh --check; then \
		echo "Installing test dependencies (needs root)"; \
		bash scripts/install-deps.sh; \
	fi

test: deps
	$(MAKE) lint test-rust test-lua test-lua-versions test-e2e

# Static checks: clippy (unwrap, expect and panic are denied outside tests)
# and luacheck.
lint:
	$(CARGO) clippy --all-targets -- -D warnings
	luacheck lua spec

test-rust:
	$(CARGO) test

test-lua: build
	$(LUA) /usr/bin/busted --lua=$(LUA) spec

# Builds the native library for every other Lua the crate supports and runs
# the native API spec on each (feature:interpreter pairs).
LUA_VARIANTS := lua51:lua5.1 lua52:lua5.2 lua53:lua5.3 luajit:luajit

test-lua-versions:
	@for variant in $(LUA_VARIANTS); do \
		feature=$${variant%%:*}; interpreter=$${variant#*:}; \
		echo "== native API spec on $$interpreter (cargo feature $$feature)"; \
		$(CARGO) build --quiet --release --no-default-features --features $$feature \
			--target-dir target/variants || exit 1; \
		mkdir -p build/$$feature; \
		cp target/variants/release/libclient_certs.so build/$$feature/client_certs.so; \
		CLIENT_CERTS_LIB_DIR=build/$$feature $$interpreter /usr/bin/busted --lua=$$interpreter \
			spec/native_spec.lua || exit 1; \
	done

test-e2e: test-e2e-0.12 test-e2e-13

test-e2e-0.12: build
	PROSODY_BIN=/usr/bin/prosody PROSODYCTL_BIN=/usr/bin/prosodyctl EXPECT_PROSODY_VERSION=0.12 \
		$(PYTHON) -m pytest -q tests/e2e

test-e2e-13: build $(PROSODY13_DIR)/bin/prosody
	PROSODY_BIN=$(abspath $(PROSODY13_DIR))/bin/prosody \
		PROSODYCTL_BIN=$(abspath $(PROSODY13_DIR))/bin/prosodyctl EXPECT_PROSODY_VERSION=13. \
		$(PYTHON) -m pytest -q tests/e2e

$(PROSODY13_DIR)/bin/prosody:
	bash tests/e2e/prosody13.sh $(PROSODY13_DIR)

# Prints timings of the native operations and of an index rebuild through
# Prosody; see BENCHMARKS.md.
bench: deps build
	$(CARGO) bench --bench native

demo: deps build
	$(PYTHON) tests/e2e/demo.py

clean:
	rm -rf build target
