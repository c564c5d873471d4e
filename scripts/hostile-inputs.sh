#!/usr/bin/env bash
# Runs each crafted hostile input of the test suite on its own under
# /usr/bin/time -v and prints its wall time and peak RSS (the bound each
# must stay under: 2 s, 256 MiB). Every input is built by its test, so this
# measures exactly what the tests assert.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # package test-regexp label
  local bin="$tmp/$(echo "$1" | tr / _).test"
  [ -x "$bin" ] || go test -c -o "$bin" "./$1"
  (cd "$1" && /usr/bin/time -v "$bin" -test.run "^($2)\$" -test.count=1 >"$tmp/out" 2>"$tmp/time") || { cat "$tmp/out" "$tmp/time"; exit 1; }
  printf '%-58s %8s s %8s KiB\n' "$3" "$(grep 'Elapsed (wall' "$tmp/time" | awk '{print $NF}')" "$(grep 'Maximum resident' "$tmp/time" | awk '{print $NF}')"
}
printf '%-58s %10s %12s\n' "crafted input" "wall" "peak RSS"
run payload/apply TestHugeExtentDoesNotPanic "1. REPLACE_BZ extent of 2^52-1 blocks (apply)"
run cmd/augen TestCraftedPayloadRefusedBeforeApply "1. the same, via payload verify (file and stdin)"
run cmd/augen TestBundleSignChecksWhatItSigns "2/7. payload swapped into a signed bundle; foreign type"
run payload/apply TestDecompressionBoundedByDestination "3. 64 MiB bzip2 bomb for a 1-block destination"
run payload/apply TestPartitionSizeCapped "3. 16 TiB partition"
run internal/bsdiff TestIdleTriplesBounded "3. BSDIFF control stream of a million idle triples"
run internal/ext4 TestExtentFanOutStopsAtBudget "4. ext4 extent tree of depth 5 fanning out to one node"
run internal/fat TestFAT12TableRoundedUp "5. FAT12 with 681 clusters, root at cluster 682"
run unpack TestHostileImages "6. ESP of 2 GiB; damaged GPT, spool bounded by the MBR"
run internal/nebraska 'TestServerURLWithCredentials|TestTokenNotSentAcrossRedirect' "8. credentials in --server; token across a redirect"
run bundle 'TestPAXMemberRefused|TestStrictJSONKeys' "9. PAX member; case-variant and duplicate keys"
run cmd/augen TestOutputChecks "10. -o input, -o dir, -o /dev/null"
