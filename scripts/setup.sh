#!/bin/sh
# setup.sh [--test]: install what is missing (Debian 12, as root), then
# generate the build system.  --test adds what the test suite needs.
set -eu
cd "$(dirname "$0")/.."

pkgs="gcc make libc6-dev autoconf automake pkg-config libmicrohttpd-dev libpcre2-dev libcmocka-dev curl ca-certificates"
if [ "${1:-}" = "--test" ]; then
	pkgs="$pkgs python3 logrotate openssl clang libclang-rt-14-dev"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "setup: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
		exit 1
	fi
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null
fi
