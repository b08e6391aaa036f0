#!/bin/sh
# The README's first command: start smcached on its built-in defaults (the
# file backend on conf/example-secrets.json), fetch secrets with the CLI,
# stop the agent. Uses a private socket so it never disturbs a real agent.
set -eu
build=${1:-build}
dir=$(mktemp -d "${TMPDIR:-/tmp}/smcache-demo.XXXXXX")
SMCACHE_SOCKET=$dir/smcached.sock
export SMCACHE_SOCKET
"$build/smcached" 2>"$dir/smcached.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
until "$build/smcache" ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
		echo "smcached did not start:" >&2
		cat "$dir/smcached.log" >&2
		exit 1
	fi
	sleep 0.05
done
echo "smcached is running on $SMCACHE_SOCKET (file backend, conf/example-secrets.json)"
echo
echo "\$ smcache get demo/db-password"
"$build/smcache" get demo/db-password
echo
echo
echo "\$ smcache get demo/db-password --version-stage AWSPREVIOUS"
"$build/smcache" get demo/db-password --version-stage AWSPREVIOUS
echo
echo
echo "\$ smcache get demo/api-key --json"
"$build/smcache" get demo/api-key --json
echo
echo "\$ smcache stats | head -5"
"$build/smcache" stats | head -5
