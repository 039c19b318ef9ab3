#!/bin/sh
# Browser tests of the viewer (www/), for `make check`: real headless
# Chromium (Debian's /usr/bin/chromium) driven by playwright-core (pinned
# in package.json, installed by `sh scripts/setup.sh --test`), against
# real daemons on free loopback ports.  Ends with "N passed, N failed"
# (", N skipped" when some wait for an endpoint the daemon lacks).
#
# Without node, chromium or playwright-core it skips (exit 77), unless
# TAILSSE_BROWSER_TESTS=required (scripts/test.sh, so CI): then it fails.
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
missing=""
command -v node >/dev/null 2>&1 || missing="$missing node"
[ -x "$chromium" ] || missing="$missing $chromium"
[ -f "$here/node_modules/playwright-core/package.json" ] || missing="$missing playwright-core"
if [ -n "$missing" ]; then
	echo "browser tests: missing$missing (sh scripts/setup.sh --test installs them)"
	if [ "${TAILSSE_BROWSER_TESTS:-}" = required ]; then
		echo "0 passed, 1 failed"
		exit 1
	fi
	exit 77
fi
exec node "$here/run.js" "$@"
