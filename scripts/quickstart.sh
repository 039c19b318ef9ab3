#!/bin/sh
# quickstart.sh: set up, build, and run tailsse on 127.0.0.1:8080 with
# etc/demo.conf and a demo log that gets a line every second.  Ctrl-C stops.
# Runs as root: it creates the system user tailsse (group adm, to read
# /var/log) and the daemon drops to it after binding (demo.conf: user =).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "quickstart: run as root (it creates the user tailsse and runs the demo as it)" >&2
	exit 1
fi
sh scripts/setup.sh
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure --disable-tests >/dev/null; } && make -s -j2)

if ! id tailsse >/dev/null 2>&1; then
	echo "quickstart: creating the system user tailsse (group adm)"
	useradd --system --no-create-home --shell /usr/sbin/nologin --groups adm tailsse
fi

# The writer appends as root: the directory must be root's own (anyone may
# create one in /var/tmp first, or a symlink), and the log readable by
# tailsse whatever root's umask.
demo=/var/tmp/tailsse-demo
mkdir -p "$demo"
if [ -L "$demo" ] || [ "$(stat -c %u "$demo")" != 0 ]; then
	echo "quickstart: $demo is not a directory owned by root: remove it" >&2
	exit 1
fi
chmod 755 "$demo"
: >>"$demo/demo.log"
chmod 644 "$demo/demo.log"

# After the drop the viewer is read as tailsse too, and a checkout under
# /root is out of its reach: then serve a copy.
www=www
if ! runuser -u tailsse -- test -r "$PWD/www/index.html"; then
	rm -rf "$demo/www"
	cp -R www "$demo/www"
	chmod -R a+rX "$demo/www"
	www="$demo/www"
fi

sh scripts/demo-writer.sh "$demo/demo.log" &
writer=$!
trap 'kill $writer 2>/dev/null' EXIT INT TERM
echo "tailsse: open http://127.0.0.1:8080/ in a browser"
build/src/tailsse -c etc/demo.conf -w "$www"
