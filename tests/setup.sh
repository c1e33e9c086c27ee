#!/usr/bin/env bash
# setup.sh — make this machine able to build and test herald, then build it.
#
# Idempotent and safe to run from any directory:
#   1. installs, with apt, only the Debian packages that are missing
#      (no apt at all when everything is there);
#   2. runs `autoreconf -fi` when configure is missing or older than
#      configure.ac / Makefile.am;
#   3. runs ./configure when there is no Makefile, configure is newer than
#      config.status, or the arguments changed (HERALD_CONFIGURE_ARGS,
#      default "--enable-werror");
#   4. runs `make -j2`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
	build-essential autoconf automake pkg-config
	libmicrohttpd-dev libgnutls28-dev libjson-c-dev libpq-dev
	postgresql postgresql-contrib
	python3 curl ca-certificates openssl
	prometheus
)

say() { printf 'setup: %s\n' "$*"; }

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

install_missing() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return
	fi
	say "installing ${missing[*]}"
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { say "need root (or sudo) to install ${missing[*]}"; exit 1; }
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

regenerate() {
	if [ ! -x configure ] || [ configure -ot configure.ac ] || [ configure -ot Makefile.am ]; then
		say "autoreconf -fi"
		autoreconf -fi
	fi
}

# The arguments the tree was configured with, one per line
# (config.status --config prints them shell-quoted).
configured_args() {
	local line
	line=$(./config.status --config) || return 1
	eval "set -- $line"
	[ "$#" -eq 0 ] || printf '%s\n' "$@"
}

configure_tree() {
	local args=()
	read -r -a args <<<"${HERALD_CONFIGURE_ARGS---enable-werror}"
	local wanted=""
	[ "${#args[@]}" -eq 0 ] || wanted=$(printf '%s\n' "${args[@]}")
	if [ -f Makefile ] && [ -x config.status ] && [ ! config.status -ot configure ] &&
		[ "$(configured_args)" = "$wanted" ]; then
		return
	fi
	say "./configure ${args[*]}"
	./configure "${args[@]}"
}

install_missing
regenerate
configure_tree
say "make -j2"
make -j2
