#!/usr/bin/env bash
# bench-delta.sh: a delta payload against the full payload of the same image.
#
#   scripts/bench-delta.sh CORPUS_DIR [RUNS] [OLD_KERNEL NEW_KERNEL]
#
# CORPUS_DIR holds usr-old.img and usr-new.img (scripts/make-corpus.sh; FS_TYPE
# picks ext4, ext2 or btrfs). RUNS times (default 3), alternating, it builds
#   full   `augen payload build --image usr-new.img [--kernel NEW_KERNEL]`
#   delta  `augen payload build --old usr-old.img --image usr-new.img
#           [--old-kernel OLD_KERNEL --kernel NEW_KERNEL]`
# (unsigned, all cores), and prints each wall time and peak RSS, the medians,
# the delta's time against the full build's, both payload sizes and the delta
# as a percentage of the full payload. The kernel pair defaults to the test
# vectors' (testdata/vectors), so every corpus is measured with the same one.
# It then checks the delta with `augen payload inspect --image` (what happens
# to each file) and applies it with `augen payload verify`'s simulator.
#
# Needs: go (builds augen), GNU time (/usr/bin/time), openssl.
# Nothing is left behind (a private temp dir, removed on exit).
set -euo pipefail

dir=${1:?usage: bench-delta.sh CORPUS_DIR [RUNS] [OLD_KERNEL NEW_KERNEL]}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
oldk=${3:-$root/testdata/vectors/vmlinuz-old}
newk=${4:-$root/testdata/vectors/vmlinuz-new}
for tool in /usr/bin/time go openssl; do
  command -v "$tool" >/dev/null || { echo "bench-delta.sh: $tool not found" >&2; exit 1; }
done
for f in "$dir/usr-old.img" "$dir/usr-new.img" "$oldk" "$newk"; do
  [ -f "$f" ] || { echo "bench-delta.sh: $f not found" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/augen-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM HUP
(cd "$root" && go build -o "$tmp/augen" ./cmd/augen)
echo "corpus $dir: $(stat -c %s "$dir/usr-new.img") bytes per image; $(nproc) cores; $runs runs"

# run NAME CMD...: appends "secs rss_kib" of CMD to $tmp/NAME.
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$tmp/t" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  cat "$tmp/t" >>"$tmp/$name"
  printf '  %-6s %6s s  %8s KiB peak RSS\n' "$name" $(cat "$tmp/t")
}
for i in $(seq "$runs"); do
  echo "run $i"
  run full "$tmp/augen" payload build --progress=never --image "$dir/usr-new.img" --kernel "$newk" -o "$tmp/full.gz"
  run delta "$tmp/augen" payload build --progress=never --old "$dir/usr-old.img" --image "$dir/usr-new.img" \
    --old-kernel "$oldk" --kernel "$newk" -o "$tmp/delta.gz"
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
full=$(cut -d' ' -f1 "$tmp/full" | median)
delta=$(cut -d' ' -f1 "$tmp/delta" | median)
rss=$(cut -d' ' -f2 "$tmp/delta" | sort -n | tail -1)
fsize=$(stat -c %s "$tmp/full.gz")
dsize=$(stat -c %s "$tmp/delta.gz")
echo "median: full $full s, delta $delta s (delta/full time $(awk -v a="$delta" -v b="$full" 'BEGIN {printf "%.2f", a/b}')); delta peak RSS $((rss / 1024)) MiB"
echo "sizes:  full $fsize bytes, delta $dsize bytes = $(awk -v a="$dsize" -v b="$fsize" 'BEGIN {printf "%.2f", 100*a/b}')% of the full payload"
"$tmp/augen" payload inspect "$tmp/delta.gz" --image "$dir/usr-new.img" | sed -n '/^  [A-Z_]* *[0-9]* ops/p;/files (/,/other/p'
openssl genrsa -out "$tmp/k.pem" 2048 2>/dev/null
openssl rsa -in "$tmp/k.pem" -pubout -out "$tmp/k.pub" 2>/dev/null
"$tmp/augen" payload build --progress=never --old "$dir/usr-old.img" --image "$dir/usr-new.img" \
  --old-kernel "$oldk" --kernel "$newk" --key "file:$tmp/k.pem" -o "$tmp/signed.gz" >/dev/null
"$tmp/augen" payload verify "$tmp/signed.gz" --pubkey "$tmp/k.pub" --old "$dir/usr-old.img" --image "$dir/usr-new.img" \
  --old-kernel "$oldk" --kernel "$newk" | head -1
