#!/usr/bin/env bash
# Times augen release on a release folder (the /usr image, the signed
# kernel, two sysexts) against the production-image path on the same /usr
# and kernel, and the sysext (DDI) checks alone (BenchmarkCheck).
# Usage: bench-folder.sh [AUGEN_BINARY]   (sizes: USR_MIB=256
# USR_DATA_MIB=96 SYSEXT_DATA_MIB=32 by default; RUNS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
augen=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$augen" ]; then
  go build -o "$work/augen" ./cmd/augen
  augen=$work/augen
fi
export USR_MIB=${USR_MIB:-256} USR_DATA_MIB=${USR_DATA_MIB:-96} SYSEXT_DATA_MIB=${SYSEXT_DATA_MIB:-32} PRODUCTION_IMAGE=1
bash testdata/folder/make-folder.sh "$work/f" >/dev/null 2>&1
folder=$work/f/amd64-usr/4799.0.0 keys=$work/f/keys
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2>/dev/null
chmod 600 "$work/key.pem"
run() { # NAME CMD...
  local name=$1; shift
  for i in $(seq "${RUNS:-3}"); do
    /usr/bin/time -f "$name %e s wall %U+%S s cpu %M KiB" "$@" >/dev/null 2>>"$work/times" || { cat "$work/times"; exit 1; }
  done
}
run folder "$augen" release "$folder" --signing-key "$keys/buildbot.asc" --secure-boot-cert "$keys/sb.crt" --key "file:$work/key.pem" -o "$work/f.tar"
run image "$augen" release "$work/f/flatcar_production_image.bin.bz2" --usr-size "${USR_MIB}MiB" --version 4799.0.0 --key "file:$work/key.pem" -o "$work/i.tar"
grep -E '^(folder|image) ' "$work/times"
AUGEN_BENCH_FOLDER=$folder go test -run '^$' -bench BenchmarkCheck -benchtime 3x ./internal/sysext | grep Benchmark
