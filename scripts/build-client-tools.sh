#!/usr/bin/env bash
# Builds the judges augen is tested against, from source: the programs
# scripts/test-reference.sh and scripts/test-nebraska.sh run, exactly as
# ../shared/tools holds them (each README there records its commit):
#
#   OUT/update-engine/bin/delta_generator        flatcar/update_engine 7382641, unmodified
#   OUT/update-engine/bin/delta_generator-apply  the same with client-tools/0001-debug-apply-old-kernel-hash.patch
#   OUT/update-engine/bin/bspatch                AOSP platform/external/bsdiff b7e3b8e0, target bspatch
#   OUT/nebraska/nebraska                        flatcar/nebraska 30a488d, the backend, static
#
# SRC holds one checkout of each, at those commits (the script refuses any
# other): SRC/update_engine (github.com/flatcar/update_engine), SRC/bsdiff
# (android.googlesource.com/platform/external/bsdiff, or a mirror),
# SRC/nebraska (github.com/flatcar/nebraska) and SRC/seismograph
# (github.com/flatcar/seismograph at 7ac56da: update_engine links its
# librootdev; it has no part in payloads). With FETCH=1 the script clones
# them itself (network). As root it installs the Debian 12 build
# dependencies with apt-get. It takes about 3 minutes on 2 cores (with the
# Go modules downloaded), and checks each program before it reports
# success: delta_generator rebuilds the test vectors' full payload byte for
# byte and checks its signature, delta_generator-apply applies the vectors'
# delta onto the old image and kernel and gives the new ones, bspatch
# applies a patch to extents, nebraska prints its version.
#
# Then: scripts/test-reference.sh OUT/update-engine/bin
#       scripts/test-nebraska.sh OUT/nebraska/nebraska
# (or AUGEN_CLIENT_TOOLS=OUT/update-engine/bin, AUGEN_NEBRASKA=OUT/nebraska/nebraska).
# Usage: scripts/build-client-tools.sh SRC OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:?usage: scripts/build-client-tools.sh SRC OUT}
out=${2:?usage: scripts/build-client-tools.sh SRC OUT}
mkdir -p "$src" "$out"
src=$(cd "$src" && pwd) out=$(cd "$out" && pwd)
vectors=${AUGEN_VECTORS:-$here/../testdata/vectors}
pins=(
  "update_engine https://github.com/flatcar/update_engine 73826410218996e32ffbb7d092ef47be3afaa078"
  "bsdiff https://android.googlesource.com/platform/external/bsdiff b7e3b8e0ccc4099f7cad6229a3f81eb694383a40"
  "nebraska https://github.com/flatcar/nebraska 30a488d8d3008b2f01d299e31431080791001a33"
  "seismograph https://github.com/flatcar/seismograph 7ac56da1b03dcd6ff0c50bfef83f1f7353f04f46"
)
step() { echo "build-client-tools: $*"; }
# Sources, at their pinned commits.
for p in "${pins[@]}"; do
  read -r name url commit <<<"$p"
  if [ ! -d "$src/$name/.git" ] && [ -n "${FETCH:-}" ]; then
    step "cloning $url"
    git clone -q "$url" "$src/$name"
  fi
  [ -d "$src/$name/.git" ] || { echo "build-client-tools: no checkout of $url in $src/$name (clone it, or FETCH=1)" >&2; exit 1; }
  full=$(git -C "$src/$name" rev-parse "${commit}^{commit}" 2>/dev/null) || { echo "build-client-tools: $src/$name lacks commit $commit" >&2; exit 1; }
  git -C "$src/$name" checkout -q --detach "$full"
  git -C "$src/$name" clean -qfdx
  git -C "$src/$name" reset -q --hard
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  step "installing the build dependencies (Debian 12)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential autoconf automake libtool pkg-config \
    libglib2.0-dev libdbus-glib-1-dev libdbus-1-dev libgflags-dev libgoogle-glog-dev libprotobuf-dev protobuf-compiler \
    libsodium-dev libext2fs-dev libbz2-dev libcurl4-openssl-dev libxml2-dev libssl-dev libblkid-dev uuid-dev libmount-dev \
    bzip2 >/dev/null
fi
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
log=$build/log
fail() { echo "build-client-tools: $1 failed; the end of its log:" >&2; tail -30 "$log" >&2; exit 1; }
step "librootdev (seismograph)"
(cd "$src/seismograph" && autoreconf -fi && ./configure --prefix="$build/prefix" --disable-shared && make -j"$(nproc)" && make install) >"$log" 2>&1 || fail seismograph
step "delta_generator (update_engine)"
ue=$src/update_engine
(cd "$ue" && autoreconf -fi && CPPFLAGS="-I$build/prefix/include" LDFLAGS="-L$build/prefix/lib" ./configure) >"$log" 2>&1 || fail "update_engine configure"
generated=$(cd "$ue" && make -s -p -n 2>/dev/null | awk -F' = ' '/^BUILT_SOURCES = / && !done {print $2; done = 1}')
(cd "$ue" && make -j"$(nproc)" $generated && make -j"$(nproc)" delta_generator) >"$log" 2>&1 || fail delta_generator
mkdir -p "$out/update-engine/bin" "$out/nebraska"
cp "$ue/delta_generator" "$out/update-engine/bin/delta_generator"
step "delta_generator-apply (the same, with the debug-apply patch)"
(cd "$ue" && patch -s -p1 <"$here/client-tools/0001-debug-apply-old-kernel-hash.patch" && make -j"$(nproc)" delta_generator) >"$log" 2>&1 || fail "delta_generator-apply"
cp "$ue/delta_generator" "$out/update-engine/bin/delta_generator-apply"
git -C "$ue" checkout -q -- .
step "bspatch (AOSP bsdiff)"
(cd "$src/bsdiff" && make bspatch) >"$log" 2>&1 || fail bspatch
cp "$src/bsdiff/bspatch" "$out/update-engine/bin/bspatch"
step "nebraska (the backend)"
(cd "$src/nebraska/backend" && CGO_ENABLED=0 go build -tags netgo -trimpath \
  -ldflags "-X github.com/flatcar/nebraska/backend/pkg/version.Version=main-30a488d8d300" -o "$out/nebraska/nebraska" ./cmd/nebraska) >"$log" 2>&1 || fail nebraska

# Each program checked before success is reported.
bin=$out/update-engine/bin
export PATH=$bin:$PATH
check=$build/check
mkdir -p "$check"
bzip2 -dc "$vectors/usr-new.bin.bz2" >"$check/usr-new.bin"
bzip2 -dc "$vectors/usr-old.bin.bz2" >"$check/usr-old.bin"
install -m 600 "$vectors/TEST-ONLY-key-a.pem" "$check/key.pem"
"$bin/delta_generator" -new_image "$check/usr-new.bin" -new_kernel "$vectors/vmlinuz-new" -out_file "$check/full.bin" -private_key "$check/key.pem" >"$log" 2>&1 || fail "delta_generator (a full payload)"
cmp -s "$check/full.bin" "$vectors/full-signed.bin" || { echo "build-client-tools: delta_generator's full payload is not the test vector's bytes" >&2; exit 1; }
"$bin/delta_generator" -public_key "$vectors/TEST-ONLY-key-a.pub.pem" -in_file "$vectors/full-signed.bin" >"$log" 2>&1 || fail "delta_generator (a signature check)"
step "checked: delta_generator rebuilds full-signed.bin byte for byte and checks its signature"
cp "$check/usr-old.bin" "$check/tgt.bin"; cp "$vectors/vmlinuz-old" "$check/tgt-k"
"$bin/delta_generator-apply" -in_file "$vectors/delta-signed.bin" -old_image "$check/tgt.bin" -old_kernel "$check/tgt-k" -prefs_dir "$check/prefs" >"$log" 2>&1 || fail "delta_generator-apply (the vectors' delta)"
cmp -s "$check/tgt.bin" "$check/usr-new.bin" && cmp -s "$check/tgt-k" "$vectors/vmlinuz-new" || { echo "build-client-tools: delta_generator-apply did not rebuild the new image and kernel" >&2; exit 1; }
step "checked: delta_generator-apply applies delta-signed.bin (its BSDIFFs through bspatch) and rebuilds usr-new.bin and vmlinuz-new"
"$out/nebraska/nebraska" -h >"$log" 2>&1 || true
grep -q -- "-auth-mode" "$log" || fail "nebraska (its flags)"
step "checked: nebraska starts and lists its flags"
step "done: $bin (delta_generator, delta_generator-apply, bspatch) and $out/nebraska/nebraska"
