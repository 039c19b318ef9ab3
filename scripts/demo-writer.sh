#!/bin/sh
# demo-writer.sh FILE: append a made-up access-log line to FILE every second.
set -eu
f=${1:?usage: demo-writer.sh FILE}
n=0
while :; do
	n=$((n + 1))
	case $((n % 6)) in
	0) req="GET / HTTP/1.1" code=200 ;;
	1) req="GET /api/orders HTTP/1.1" code=200 ;;
	2) req="POST /login HTTP/1.1" code=302 ;;
	3) req="GET /static/app.js HTTP/1.1" code=304 ;;
	4) req="GET /missing HTTP/1.1" code=404 ;;
	*) req="GET /api/users/42 HTTP/1.1" code=500 ;;
	esac
	printf '%s 127.0.0.1 "%s" %s %d demo line %d\n' \
		"$(date '+%Y-%m-%dT%H:%M:%S%z')" "$req" "$code" $((n * 37 % 5000)) "$n" >>"$f"
	sleep 1
done
