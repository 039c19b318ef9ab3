#!/bin/sh
# setup.sh [--test | --deb | --bench]: install what is missing (Debian 12,
# as root), then generate the build system.  --test adds what the test
# suite needs; --deb what building the Debian package needs; --bench what
# bench/run.sh's anchor and analysis need (nginx with the nchan module,
# whose service is not started: run.sh runs its own nginx; perf).
set -eu
cd "$(dirname "$0")/.."

# libgnutls28-dev: libmicrohttpd-dev brings it; named since the daemon uses
# its headers (a TLS certificate renewed on reload)
pkgs="gcc make libc6-dev autoconf automake pkg-config libmicrohttpd-dev libpcre2-dev libgnutls28-dev libcmocka-dev curl ca-certificates"
if [ "${1:-}" = "--test" ]; then
	# the browser tests: Debian's Chromium, fonts for its screenshots, and
	# node + npm (Debian's, unless a node is there already)
	pkgs="$pkgs python3 logrotate openssl clang libclang-rt-14-dev"
	pkgs="$pkgs chromium fonts-dejavu-core"
	command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
	command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
	# make lint (cppcheck, clang-tidy), make format-check (clang-format),
	# scan-build (clang-tools)
	pkgs="$pkgs cppcheck clang-tidy clang-format clang-tools"
	# test_nginx.py: a real nginx (Debian's package; the tests start their
	# own, never the system service) and curl for HTTP/2; test_service.py:
	# systemd-analyze (in package systemd on Debian 12)
	pkgs="$pkgs nginx"
	command -v systemd-analyze >/dev/null 2>&1 || pkgs="$pkgs systemd"
	# make check-valgrind (memcheck); make soak and make hostile use
	# logrotate, python3 and the bench tools, all above
	pkgs="$pkgs valgrind"
elif [ "${1:-}" = "--deb" ]; then
	# --deb: what dpkg-buildpackage -us -uc -b needs (debian/control's
	# Build-Depends beyond the above, debhelper bringing dh-autoreconf;
	# build-essential) and lintian to check the package
	pkgs="$pkgs build-essential dpkg-dev debhelper lintian"
elif [ "${1:-}" = "--bench" ]; then
	# bench/run.sh --repeat N: the nchan anchor (nginx + libnginx-mod-nchan,
	# tail from coreutils), TLS scenarios (openssl, GnuTLS for ts-load),
	# and perf for looking at where the time goes
	pkgs="$pkgs nginx libnginx-mod-nchan coreutils procps openssl libgnutls28-dev linux-perf"
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

# playwright-core for the browser tests, at the version package-lock.json
# pins (no browser download: the tests use Debian's chromium)
if [ "${1:-}" = "--test" ]; then
	want=$(sed -n 's/^ *"playwright-core": "\(.*\)"$/\1/p' tests/browser/package.json)
	have=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' \
		tests/browser/node_modules/playwright-core/package.json 2>/dev/null | head -n 1)
	if [ "$want" != "$have" ]; then
		echo "setup: npm ci in tests/browser (playwright-core $want)"
		(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null
fi
