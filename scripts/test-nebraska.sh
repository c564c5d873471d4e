#!/usr/bin/env bash
# Tests push against a real Nebraska: the binary given (a build of
# flatcar/nebraska; ../shared/tools/nebraska/nebraska in CI), each test
# with its own PostgreSQL 15 cluster and server on free loopback ports
# (internal/testutil.StartNebraska), stopped by PID when it ends. Covers
# floors, the update-path probe, --requires-version, same-version
# conflicts, an interrupted push, push status (floors, --verify) and the
# early usage errors, all through the CLI.
# PostgreSQL comes from scripts/install-deps.sh (Debian's postgresql-15).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${AUGEN_NEBRASKA:?usage: scripts/test-nebraska.sh NEBRASKA_BINARY (or AUGEN_NEBRASKA=BINARY; scripts/build-client-tools.sh builds it from source)}}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[ -x "$bin" ] || { echo "test-nebraska: $bin is not an executable"; exit 1; }
echo "nebraska: $bin (sha256 $(sha256sum "$bin" | cut -c1-16))"
export AUGEN_NEBRASKA=$bin
go test -count=1 -v -run '^TestRealNebraska' ./cmd/augen 2>&1 | grep -v '^=== RUN'

# scripts/local-nebraska.sh, as a user runs it: the stop command it prints
# works as printed (it names the DIR it needs).
dir=$(mktemp -d -u /tmp/augen-local-nebraska.XXXXXX)
out=$(DIR=$dir bash scripts/local-nebraska.sh "$bin")
stop=$(printf '%s\n' "$out" | sed -n 's/^  stop: *//p')
case $stop in "DIR=$dir "*) ;; *) echo "local-nebraska.sh printed no working stop command: $stop"; exit 1 ;; esac
eval "$stop"
[ ! -e "$dir" ] || { echo "local-nebraska.sh: $stop left $dir"; exit 1; }
echo "local-nebraska.sh: started, and stopped by the command it printed"
