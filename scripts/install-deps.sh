#!/usr/bin/env bash
# Installs the Debian packages that building and testing mod_client_certs
# need, on Debian 12 (bookworm), as root.
#
# Prosody 13 comes from bookworm-backports, which this script adds for the
# same mirror the machine's Debian sources already use. Packages are
# installed without starting their services.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# With --check, only report (by exit status) whether everything is present.
if [ "${1:-}" = "--check" ]; then
	for tool in cargo make gcc openssl prosody prosodyctl lua5.4 lua5.1 lua5.2 lua5.3 luajit busted luacheck; do
		command -v "$tool" >/dev/null || exit 1
	done
	/usr/bin/python3 -c 'import slixmpp, cryptography, pytest' 2>/dev/null || exit 1
	dpkg -s lua-dbi-sqlite3 lua-unbound >/dev/null 2>&1 || exit 1
	case "$(apt-cache policy prosody 2>/dev/null)" in *bookworm-backports*) ;; *) exit 1 ;; esac
	exit 0
fi

# Find the Debian mirror of the existing sources, in deb822 or one-line form.
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	mirror=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
	mirror=$(awk '$1 == "deb" && $0 ~ /bookworm/ && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

cat > /etc/apt/sources.list.d/bookworm-backports.sources <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# Keep package scripts from starting Prosody with the system configuration.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	make gcc pkg-config ca-certificates openssl \
	prosody lua5.4 lua-dbi-sqlite3 lua-unbound \
	lua-busted lua5.1 lua5.2 lua5.3 luajit lua-check \
	python3 python3-slixmpp python3-cryptography python3-pytest \
	>/dev/null

command -v cargo >/dev/null || {
	echo "cargo not found: install a Rust toolchain (rustup or Debian's cargo) first" >&2
	exit 1
}
