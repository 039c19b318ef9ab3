#!/bin/sh
# quickstart.sh: set up, build, and run tailsse on 127.0.0.1:8080 with
# etc/demo.conf and a demo log that gets a line every second.  Ctrl-C stops.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure --disable-tests >/dev/null; } && make -s -j2)

mkdir -p /var/tmp/tailsse-demo
: >>/var/tmp/tailsse-demo/demo.log
sh scripts/demo-writer.sh /var/tmp/tailsse-demo/demo.log &
writer=$!
trap 'kill $writer 2>/dev/null' EXIT INT TERM
echo "tailsse: open http://127.0.0.1:8080/ in a browser"
build/src/tailsse -c etc/demo.conf
