#!/usr/bin/env bash
# The README's sample, on a fresh clone: build a signed release bundle from
# the small Flatcar-shaped production image in testdata/image with TEST-ONLY
# keys (payload key A, bundle key B), write a trust policy, and verify the
# bundle as anyone would before a push: signatures, hashes, and a simulated
# apply of every payload, plus proof it was built from that very CI image.
# Writes into ${OUT:-/tmp/augen-sample}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/augen-sample}
rm -rf "$out"; mkdir -p "$out"
v=testdata/vectors
img=testdata/image/flatcar_test_image.bin.bz2
# Key files must be private to their owner; git does not keep file modes.
install -m 600 "$v/TEST-ONLY-key-a.pem" "$out/payload-key.pem"
install -m 600 "$v/TEST-ONLY-key-b.pem" "$out/bundle-key.pem"
go build -o "$out/augen" ./cmd/augen
augen="$out/augen"
export SOURCE_DATE_EPOCH=1258628400
# The test image's USR-A is 6 MiB: its USR image is the first 4 MiB (1 GiB in production).
"$augen" release "$img" --usr-size 4MiB --version 4459.2.1 \
    --signature "$img.sig" --signing-key testdata/image/TEST-ONLY-buildbot.asc \
    --key "file:$out/payload-key.pem" --bundle-key "file:$out/bundle-key.pem" -o "$out/release.tar"
"$augen" policy init --bundle-key "$v/TEST-ONLY-key-b.pub.pem" --payload-key "$v/TEST-ONLY-key-a.pub.pem" -o "$out/policy.json"
"$augen" verify --policy "$out/policy.json" "$out/release.tar" --channel dev-channel --image "$img" --usr-size 4MiB
