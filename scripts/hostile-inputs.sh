#!/usr/bin/env bash
# Times augen on every crafted hostile input the tests build, each run on
# its own under /usr/bin/time -v: wall time and peak RSS, which must stay
# under 2 s and 256 MiB (the 768 MiB rebuild of big-bsdiffs takes longer:
# it is there for its memory). The tests write their inputs here (through
# testutil.SaveCrafted) when AUGEN_CRAFTED_DIR is set; building them is not
# timed. Inputs only a library reads (a filesystem image inside a /usr, a
# FAT table, URLs, tar headers) are timed as their test run.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export AUGEN_CRAFTED_DIR="$tmp/crafted"
mkdir -p "$AUGEN_CRAFTED_DIR"
echo "building the crafted inputs (not timed)..." >&2
go build -o "$tmp/augen" ./cmd/augen
go test -count=1 -run '^(TestCraftedPayloadRefusedBeforeApply|TestBundleSignChecksWhatItSigns)$' ./cmd/augen >/dev/null
go test -count=1 -run '^(TestDecompressionBoundedByDestination|TestPartitionSizeCapped|TestIdleTriplesThroughApply|TestBigOperationsInBoundedMemory|TestManifestMemoryBoundedBeforeParsing)$' ./payload/apply >/dev/null
go test -count=1 -run '^TestHostileImages$' ./unpack >/dev/null
chmod 600 "$AUGEN_CRAFTED_DIR/TEST-ONLY-key-b.pem"
c=$AUGEN_CRAFTED_DIR
pub=testdata/vectors/TEST-ONLY-key-a.pub.pem

row() { # label want-exit command...
  local label=$1 want=$2; shift 2
  local code=0
  /usr/bin/time -v -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err" || code=$?
  if [ "$code" != "$want" ]; then
    echo "$label: exit $code, want $want"; cat "$tmp/out" "$tmp/err" "$tmp/time"; exit 1
  fi
  printf '%-64s exit %s %8s s %8s KiB\n' "$label" "$code" \
    "$(grep 'Elapsed (wall' "$tmp/time" | awk '{print $NF}')" "$(grep 'Maximum resident' "$tmp/time" | awk '{print $NF}')"
  # Why it was refused: augen's first error line.
  grep -m1 -E '^augen: (error|failed)' "$tmp/err" | cut -c1-150 | sed 's/^/    /' || true
}
test_row() { # label package test-regexp
  local bin="$tmp/$(echo "$2" | tr / _).test"
  [ -x "$bin" ] || go test -c -o "$bin" "./$2"
  (cd "$2" && row "$1" 0 "$bin" -test.run "^($3)\$" -test.count=1)
}

printf '%-64s %6s %10s %12s\n' "crafted input" "" "wall" "peak RSS"
truncate -s 8KiB "$tmp/zeros-8k" # 3-idle-triples is a delta of two zero blocks
for p in 1-huge-extent 3-bomb 3-16tib 3-idle-triples; do
  old=(); [ "$p" = 3-idle-triples ] && old=(--old "$tmp/zeros-8k")
  row "$p: payload verify --pubkey (refused: unsigned)" 3 "$tmp/augen" payload verify "$c/$p.payload" --pubkey "$pub"
  row "$p: payload verify --unsafe-allow-unsigned (applier bounds)" 3 "$tmp/augen" payload verify "$c/$p.payload" --unsafe-allow-unsigned "${old[@]}"
done
truncate -s 768MiB "$tmp/zeros-768m"
row "big-bsdiffs: three 256 MiB BSDIFFs in 1.2 KB (payload verify --old)" 0 "$tmp/augen" payload verify "$c/big-bsdiffs.payload" --unsafe-allow-unsigned --old "$tmp/zeros-768m"
row "700k-moves: a 15 MB manifest of 700,000 MOVEs" 3 "$tmp/augen" payload verify "$c/700k-moves.payload" --unsafe-allow-unsigned
row "2: verify, payload swapped into a signed bundle" 3 "$tmp/augen" verify --policy "$c/policy.json" "$c/2-swapped-member.tar"
row "2: bundle sign, the same bundle" 3 "$tmp/augen" bundle sign "$c/2-swapped-member.tar" --key "file:$c/TEST-ONLY-key-b.pem" -o "$tmp/signed.tar"
row "7: bundle sign, foreign DSSE payload type" 3 "$tmp/augen" bundle sign "$c/7-foreign-type.tar" --key "file:$c/TEST-ONLY-key-b.pem" -o "$tmp/signed.tar"
row "6: unpack, ESP of 2 GiB" 3 "$tmp/augen" unpack "$c/6-esp-2gib.bin.bz2" --usr-size 4MiB -o "$tmp/u1"
row "6: unpack, damaged GPT, protective MBR of 1 MiB" 3 "$tmp/augen" unpack "$c/6-damaged-gpt-small-mbr.bin.bz2" --usr-size 4MiB -o "$tmp/u2"
test_row "4: ext4 extent tree fanning out to one node (test)" internal/ext4 TestExtentFanOutStopsAtBudget
test_row "4: btrfs chunk tree fanning out to one node (test)" internal/btrfs TestChunkTreeFanOutStopsAtBudget
test_row "5: FAT12, 681 clusters, root at cluster 682 (test)" internal/fat TestFAT12TableRoundedUp
test_row "8: credentials in --server; token across a redirect (test)" nebraska 'TestServerURLWithCredentials|TestTokenNotSentAcrossRedirect'
test_row "9: PAX member; case-variant and duplicate keys (test)" bundle 'TestPAXMemberRefused|TestStrictJSONKeys'
