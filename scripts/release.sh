#!/usr/bin/env bash
# Builds augen's own release, reproducibly, into dist/ (or $OUT):
#   augen-linux-amd64   cgo on (the PKCS#11 backend), -trimpath, no build ID
#   augen-linux-arm64   cgo off when no aarch64 cross compiler is installed:
#                       no PKCS#11 backend (TPM keys and key files work)
#   SHA256SUMS          of the binaries
#   sbom.spdx.json      SPDX 2.3: every module built in, with its go.sum hash
#   provenance.intoto.json  in-toto SLSA provenance of all of the above, in a
#                       DSSE envelope signed with $KEY (any key URI augen
#                       opens; several separated by spaces)
# The same commit, toolchain and key give the same bytes (with an RSA or
# Ed25519 key): SOURCE_DATE_EPOCH is the commit's time unless set.
# Check a release with: augen dist verify dist/provenance.intoto.json --policy P
# Usage: KEY=pkcs11:… scripts/release.sh VERSION
set -euo pipefail
version=${1:?usage: KEY=URI scripts/release.sh VERSION}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "release.sh: version $version is not MAJOR.MINOR.PATCH" >&2; exit 2; }
: "${KEY:?set KEY to the key URI that signs the provenance (file:, pkcs11:, tpm:)}"
cd "$(dirname "$0")/.."
out=${OUT:-dist}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export GOFLAGS=-trimpath GOTOOLCHAIN=local
ldflags="-s -w -buildid= -X main.version=$version"
mkdir -p "$out"
tmp=$(mktemp -d "$out/.release-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
build() { # GOARCH CGO
  GOOS=linux GOARCH=$1 CGO_ENABLED=$2 go build -buildvcs=true -ldflags "$ldflags" -o "$tmp/augen-linux-$1" ./cmd/augen
}
build amd64 1
cross=0
if command -v aarch64-linux-gnu-gcc >/dev/null; then cross=1; fi
if [ "$cross" = 1 ]; then
  CC=aarch64-linux-gnu-gcc build arm64 1
else
  echo "release.sh: no aarch64-linux-gnu-gcc: augen-linux-arm64 is built without cgo (no PKCS#11 backend)" >&2
  build arm64 0
fi
(cd "$tmp" && sha256sum augen-linux-amd64 augen-linux-arm64 > SHA256SUMS)
# The host binary describes and signs the release (a copy: the amd64 one
# may not run here).
go build -o "$tmp/.augen-host" ./cmd/augen
"$tmp/.augen-host" dist sbom --version "$version" "$tmp/augen-linux-amd64" "$tmp/augen-linux-arm64" -o "$tmp/sbom.spdx.json"
keys=()
for k in $KEY; do keys+=(--key "$k"); done
"$tmp/.augen-host" dist provenance --version "$version" --revision "$revision" \
  --binary "$tmp/augen-linux-amd64" --binary "$tmp/augen-linux-arm64" "${keys[@]}" \
  "$tmp/augen-linux-amd64" "$tmp/augen-linux-arm64" "$tmp/SHA256SUMS" "$tmp/sbom.spdx.json" \
  -o "$tmp/provenance.intoto.json"
rm -f "$tmp/.augen-host"
for f in augen-linux-amd64 augen-linux-arm64 SHA256SUMS sbom.spdx.json provenance.intoto.json; do
  mv "$tmp/$f" "$out/$f"
done
echo "release.sh: augen $version ($revision) in $out:"
(cd "$out" && ls -l augen-linux-amd64 augen-linux-arm64 SHA256SUMS sbom.spdx.json provenance.intoto.json)
