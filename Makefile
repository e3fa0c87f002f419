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

.PHONY: all build install test test-rust test-lua test-e2e test-e2e-0.12 test-e2e-13 demo clean

all: build

build: $(OUT)/mod_client_certs.lua $(OUT)/client_certs.so

$(LIB): Cargo.toml $(wildcard src/*.rs)
	$(CARGO) build --release --no-default-features --features $(LUA_FEATURE)

$(OUT)/client_certs.so: $(LIB)
	mkdir -p $(OUT)
	cp $(LIB) $@

$(OUT)/mod_client_certs.lua: lua/mod_client_certs.lua
	mkdir -p $(OUT)
	cp $< $@

install: build
	mkdir -p $(MODULES_DIR)/mod_client_certs
	cp $(OUT)/mod_client_certs.lua $(OUT)/client_certs.so $(MODULES_DIR)/mod_client_certs/

test: test-rust test-lua test-e2e

test-rust:
	$(CARGO) test

test-lua: build
	$(LUA) /usr/bin/busted --lua=$(LUA) spec

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

demo: build
	$(PYTHON) tests/e2e/demo.py

clean:
	rm -rf build target
