#!/usr/bin/env bash
# The README's sample, on a fresh clone: build a signed release bundle from
# the small Flatcar-shaped production image in testdata/image with TEST-ONLY
# keys (payload key A, bundle key B), write a trust policy, and verify the
# bundle as anyone would before a push: signatures, hashes, and a simulated
# apply of every payload, plus proof it was built from that very CI image.
# Everything goes into ${OUT:-/tmp/augen-sample}, under the names the
# README's commands use, so that after this script they can be pasted as
# written in that folder (cd /tmp/augen-sample).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/augen-sample}
rm -rf "$out"; mkdir -p "$out"
v=testdata/vectors
i=testdata/image
say() { printf 'sample: %s\n' "$*" >&2; }
say "copying the test image, its signature and the TEST-ONLY keys into $out"
cp "$i/flatcar_test_image.bin.bz2" "$i/flatcar_test_image.bin.bz2.sig" "$i/TEST-ONLY-buildbot.asc" "$out/"
# Key files must be private to their owner; git does not keep file modes.
install -m 600 "$v/TEST-ONLY-key-a.pem" "$out/payload-key.pem"
install -m 600 "$v/TEST-ONLY-key-b.pem" "$out/bundle-key.pem"
cp "$v/TEST-ONLY-key-a.pub.pem" "$out/payload-key.pub.pem"
cp "$v/TEST-ONLY-key-b.pub.pem" "$out/bundle-key.pub.pem"
if [ ! -x "$out/augen" ]; then
  say "building augen into $out/augen (a first build downloads the Go modules and compiles everything: a few minutes)"
fi
go build -o "$out/augen" ./cmd/augen
cd "$out"
export SOURCE_DATE_EPOCH=1258628400
say "augen release: the signed bundle release.tar"
# The test image's USR-A is 6 MiB: its USR image is the first 4 MiB (1 GiB in production).
./augen release flatcar_test_image.bin.bz2 --usr-size 4MiB --version 4459.2.1 \
    --signature flatcar_test_image.bin.bz2.sig --signing-key TEST-ONLY-buildbot.asc \
    --key file:payload-key.pem --bundle-key file:bundle-key.pem -o release.tar
say "augen policy init: policy.json"
./augen policy init --bundle-key bundle-key.pub.pem --payload-key payload-key.pub.pem -o policy.json
say "augen verify"
./augen verify --policy policy.json release.tar --channel dev-channel --image flatcar_test_image.bin.bz2 --usr-size 4MiB
say "done: the README's commands run as written in $out (cd $out; PATH=\$PWD:\$PATH)"
