#!/usr/bin/env bash
# The README's sample: build a signed full payload from the small USR image
# and kernel in testdata/vectors with a TEST-ONLY key, then verify it the way
# a release engineer would before a push. Writes into ${OUT:-/tmp/augen-sample}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/augen-sample}
mkdir -p "$out"
v=testdata/vectors
bzip2 -dc "$v/usr-new.bin.bz2" > "$out/usr.bin"
# Key files must be private to their owner; git does not keep file modes.
install -m 600 "$v/TEST-ONLY-key-a.pem" "$out/TEST-ONLY-key-a.pem"
go build -o "$out/augen" ./cmd/augen
"$out/augen" payload build --image "$out/usr.bin" --kernel "$v/vmlinuz-new" \
    --key "file:$out/TEST-ONLY-key-a.pem" -o "$out/flatcar_production_update.gz"
"$out/augen" payload verify "$out/flatcar_production_update.gz" \
    --pubkey "$v/TEST-ONLY-key-a.pub.pem" --image "$out/usr.bin" --kernel "$v/vmlinuz-new"
