#!/bin/sh
# Install Prosody 13 from bookworm-backports into DEST, next to the system
# Prosody 0.12, so that the end-to-end tests can run against both versions.
#
# Usage: tests/e2e/prosody13.sh DEST      (for example .cache/prosody13)
#
# The script
#   - installs the Debian packages that the Prosody 13 package depends on and
#     that are still missing (only the Depends field, never Recommends), with
#     service starts blocked through /usr/sbin/policy-rc.d;
#   - fetches the prosody 13.x .deb with `apt-get download` and unpacks it with
#     `dpkg-deb -x` into DEST/root, so dpkg does not register it and the
#     installed 0.12 package (/usr/bin/prosody, /usr/lib/prosody) stays as it is;
#   - rewrites the CFG_* lines of the unpacked launchers to point inside DEST
#     and links them as DEST/bin/prosody and DEST/bin/prosodyctl.
# When DEST already contains a working install, it prints so and changes
# nothing.
#
# Layout of DEST:
#   root/   the unpacked .deb (root/usr/lib/prosody is the Prosody 13 source)
#   bin/    prosody, prosodyctl, prosody-migrator (symbolic links into root/)
#   etc/    CFG_CONFIGDIR. It stays empty, so prosody run without --config
#           exits with "Prosody was unable to find the configuration file"
#           (util/startup.lua in 13.0.1) instead of loading a default config.
#   data/   CFG_DATADIR, used when a config sets no data_path. Prosody 13 also
#           looks for plugins in data/custom_plugins.
#   .prosody13-deb-version   the Debian version of the unpacked package
#
# Environment:
#   PROSODY13_SUITE   apt suite to take the package from (bookworm-backports)
#   PROSODY13_SERIES  version prefix to accept (13.)
#
# Needs root only when a dependency has to be installed.

set -eu

suite=${PROSODY13_SUITE:-bookworm-backports}
series=${PROSODY13_SERIES:-13.}

log() {
	printf 'prosody13: %s\n' "$*"
}

die() {
	printf 'prosody13: error: %s\n' "$*" >&2
	exit 1
}

if [ $# -ne 1 ] || [ -z "$1" ]; then
	die "usage: $0 DEST (the directory to install Prosody 13 into, for example .cache/prosody13)"
fi

# The launchers store DEST as an absolute path inside Lua string literals, and
# sed rewrites them, so reject characters that would need escaping there.
case $1 in
	*"'"* | *\\* | *"|"* | *"&"* | *"
"*)
		die "invalid DEST '$1': it must not contain ', \\, |, & or a newline"
		;;
esac

mkdir -p "$1"
dest=$(cd "$1" && pwd -P)
if [ "$dest" = / ]; then
	die "invalid DEST '$1': it resolves to /"
fi

source_dir=$dest/root/usr/lib/prosody
plugin_dir=$source_dir/modules/
config_dir=$dest/etc
data_dir=$dest/data
stamp=$dest/.prosody13-deb-version

# Check that the Lua libraries and the C modules of the unpacked Prosody load
# with the system lua5.4. Prints each failure to stderr and returns nonzero.
check_lua_modules() {
	PROSODY13_SOURCEDIR=$source_dir lua5.4 - <<'EOF'
local source_dir = os.getenv("PROSODY13_SOURCEDIR")
package.path = source_dir .. "/?.lua;" .. package.path
package.cpath = source_dir .. "/?.so;" .. package.cpath
require "loader"

-- The hard requirements that prosody.util.dependencies also treats as fatal,
-- plus LuaSec and the C modules that c2s with TLS needs.
local modules = {
	"lxp", "socket", "lfs", "ssl",
	"prosody.util.encodings", "prosody.util.hashes", "prosody.util.crypto",
	"prosody.util.pposix", "prosody.util.poll", "prosody.util.bitcompat",
}
local failed = false
for _, name in ipairs(modules) do
	local ok, err = pcall(require, name)
	if not ok then
		io.stderr:write("prosody13: failed to load Lua module ", name, ": ", tostring(err), "\n")
		failed = true
	end
end
os.exit(failed and 1 or 0)
EOF
}

# Return success when DEST contains a finished install whose launchers point at DEST
# and whose modules load. Quiet unless a module fails to load.
install_is_working() {
	[ -f "$stamp" ] || return 1
	[ -f "$source_dir/prosody.version" ] || return 1
	for launcher in prosody prosodyctl; do
		[ -x "$dest/bin/$launcher" ] || return 1
		grep -qxF "CFG_SOURCEDIR='$source_dir';" "$dest/bin/$launcher" || return 1
	done
	command -v lua5.4 >/dev/null 2>&1 || return 1
	check_lua_modules
}

if install_is_working; then
	log "$dest already contains Prosody $(cat "$source_dir/prosody.version") (Debian package $(cat "$stamp")); nothing to do"
	exit 0
fi

# Pick the highest prosody version of the wanted series in the wanted suite.
version=
madison_versions=$(apt-cache madison prosody |
	awk -F'|' -v suite=" $suite/" 'index($3, suite) { gsub(/ /, "", $2); print $2 }')
for candidate in $madison_versions; do
	case $candidate in
		"$series"*) ;;
		*) continue ;;
	esac
	if [ -z "$version" ] || dpkg --compare-versions "$candidate" gt "$version"; then
		version=$candidate
	fi
done
if [ -z "$version" ]; then
	die "no prosody ${series}x package found in suite $suite. Check the apt source for $suite and run apt-get update"
fi
log "selected prosody $version from $suite"

# Install the missing dependencies. `apt-get satisfy` takes the Depends field
# as it is, so it resolves virtual packages (lua5.4-sec is provided by lua-sec)
# and version constraints such as "libicu72 (>= 72.1~rc-1~)".
depends=$(apt-cache show "prosody=$version" | sed -n 's/^Depends: //p' | head -n 1)
if [ -z "$depends" ]; then
	die "apt-cache show prosody=$version returned no Depends field"
fi
missing=$(apt-get satisfy -s --no-install-recommends "$depends" | sed -n 's/^Inst \([^ ]*\).*/\1/p')
if [ -z "$missing" ]; then
	log "all dependencies of prosody $version are already installed"
else
	log "installing missing dependencies:" $missing
	if [ "$(id -u)" -ne 0 ]; then
		die "installing packages needs root; run as root, or install these packages first:" $missing
	fi

	# invoke-rc.d skips every service start while policy-rc.d exits with 101.
	created_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
		log "created /usr/sbin/policy-rc.d to block service starts during the install"
	fi
	status=0
	DEBIAN_FRONTEND=noninteractive apt-get satisfy -y --no-install-recommends "$depends" || status=$?
	if [ -n "$created_policy" ]; then
		rm -f /usr/sbin/policy-rc.d
		log "removed the /usr/sbin/policy-rc.d this script created"
	fi
	if [ "$status" -ne 0 ]; then
		die "apt-get satisfy failed with exit code $status while installing:" $missing
	fi
fi

# Download and unpack into a staging directory, then move it into place, so an
# interrupted download or unpack does not touch DEST/root.
staging=$(mktemp -d "$dest/.staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
mkdir "$staging/download"
# apt-get download drops root privileges to the _apt user for the transfer, so
# that user needs to reach and write the target directory.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
	chmod 755 "$staging"
	chown _apt "$staging/download"
fi
(cd "$staging/download" && apt-get download -q "prosody=$version")
deb=$(find "$staging/download" -maxdepth 1 -name 'prosody_*.deb' | head -n 1)
if [ -z "$deb" ]; then
	die "apt-get download prosody=$version produced no prosody_*.deb file"
fi
deb_version=$(dpkg-deb -f "$deb" Version)
if [ "$deb_version" != "$version" ]; then
	die "downloaded $deb has version $deb_version, expected $version"
fi
log "downloaded $(basename "$deb")"

dpkg-deb -x "$deb" "$staging/root"

# Point the launchers at DEST. The .deb sets the CFG_* variables on lines of
# the form CFG_SOURCEDIR='/usr/lib/prosody'; at the top of each launcher.
# They are patched in place rather than copied because `prosodyctl start` runs
# CFG_SOURCEDIR/../../bin/prosody (util/prosodyctl.lua in 13.0.1).
patched=0
for launcher in prosody prosodyctl prosody-migrator; do
	file=$staging/root/usr/bin/$launcher
	if [ ! -f "$file" ]; then
		continue
	fi
	sed -i \
		-e "s|^CFG_SOURCEDIR=.*|CFG_SOURCEDIR='$source_dir';|" \
		-e "s|^CFG_CONFIGDIR=.*|CFG_CONFIGDIR='$config_dir';|" \
		-e "s|^CFG_PLUGINDIR=.*|CFG_PLUGINDIR='$plugin_dir';|" \
		-e "s|^CFG_DATADIR=.*|CFG_DATADIR='$data_dir';|" \
		"$file"
	for line in "CFG_SOURCEDIR='$source_dir';" "CFG_CONFIGDIR='$config_dir';" \
		"CFG_PLUGINDIR='$plugin_dir';" "CFG_DATADIR='$data_dir';"; do
		if ! grep -qxF "$line" "$file"; then
			die "failed to set $line in $launcher: the launcher in prosody $version has no CFG_* line to rewrite"
		fi
	done
	patched=$((patched + 1))
done
if [ ! -x "$staging/root/usr/bin/prosody" ] || [ ! -x "$staging/root/usr/bin/prosodyctl" ]; then
	die "prosody $version contains no usr/bin/prosody or usr/bin/prosodyctl"
fi
log "rewrote the CFG_* paths in $patched launchers"

# Replace an earlier, broken install. Only the parts this script creates are
# removed, and other files in DEST are left alone.
rm -rf "$dest/root" "$dest/bin" "$stamp"
mv "$staging/root" "$dest/root"
mkdir -p "$dest/bin" "$config_dir" "$data_dir"
for launcher in prosody prosodyctl prosody-migrator; do
	if [ -f "$dest/root/usr/bin/$launcher" ]; then
		ln -s "../root/usr/bin/$launcher" "$dest/bin/$launcher"
	fi
done

if ! check_lua_modules; then
	die "the unpacked Prosody $version failed to load its modules (see above). Install the missing Lua libraries and run again"
fi
printf '%s\n' "$version" >"$stamp"

log "installed Prosody $(cat "$source_dir/prosody.version") (Debian package $version) in $dest"
log "start it with: $dest/bin/prosody --config FILE"
