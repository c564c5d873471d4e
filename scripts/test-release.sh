#!/usr/bin/env bash
# Checks scripts/release.sh: two builds (the second with an empty build
# cache) give the same bytes; the provenance verifies with augen against a
# policy and fails after one byte of a binary changes; the SBOM names every
# module built into the binaries, each of them in go.sum.
# Usage: scripts/test-release.sh   (about two minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2>/dev/null
chmod 600 "$work/key.pem"
export KEY=file:$work/key.pem SOURCE_DATE_EPOCH=1258628400
OUT=$work/a bash scripts/release.sh 0.0.1-test >/dev/null 2>&1 || { OUT=$work/a bash scripts/release.sh 0.0.1-test; exit 1; }
GOCACHE=$work/cache OUT=$work/b bash scripts/release.sh 0.0.1-test >/dev/null 2>&1
for f in augen-linux-amd64 augen-linux-arm64 SHA256SUMS sbom.spdx.json provenance.intoto.json; do
  cmp "$work/a/$f" "$work/b/$f" || { echo "test-release: $f differs between two builds"; exit 1; }
done
echo "test-release: two builds (the second with an empty cache) are byte-identical"
go build -o "$work/augen" ./cmd/augen
"$work/augen" key pubkey "$KEY" -o "$work/pub.pem" >/dev/null
"$work/augen" policy init --bundle-key "$work/pub.pem" --payload-key "$work/pub.pem" -o "$work/policy.json" 2>/dev/null
"$work/augen" dist verify "$work/a/provenance.intoto.json" --policy "$work/policy.json"
cp -r "$work/a" "$work/c"
printf '\x01' | dd of="$work/c/augen-linux-arm64" bs=1 seek=1000 conv=notrunc status=none
set +e
"$work/augen" dist verify "$work/c/provenance.intoto.json" --policy "$work/policy.json" >"$work/out" 2>&1
rc=$?
set -e
[ "$rc" = 3 ] && grep -q "augen-linux-arm64 has SHA-256" "$work/out" || { echo "test-release: a changed binary was not refused (exit $rc)"; cat "$work/out"; exit 1; }
echo "test-release: one changed byte of a binary is refused"
missing=0
for bin in augen-linux-amd64 augen-linux-arm64; do
  while read -r path ver; do
    grep -q "\"pkg:golang/$path@$ver\"" "$work/a/sbom.spdx.json" || { echo "test-release: $path@$ver ($bin) is not in the SBOM"; missing=1; }
    grep -q "^$path $ver " go.sum || { echo "test-release: $path@$ver ($bin) is not in go.sum"; missing=1; }
  done < <(go version -m "$work/a/$bin" | awk '$1 == "dep" {print $2, $3}')
done
[ "$missing" = 0 ]
echo "test-release: the SBOM names every module built in ($(go version -m "$work/a/augen-linux-amd64" | grep -c '^[[:space:]]dep') in the amd64 binary), each in go.sum"
