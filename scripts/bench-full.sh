#!/usr/bin/env bash
# bench-full.sh: the full-payload build against libbzip2 on the same chunks.
#
#   scripts/bench-full.sh IMAGE [RUNS]
#
# IMAGE is a USR partition image (e.g. usr-new.img from scripts/make-corpus.sh).
# The script splits it into the 1 MiB chunks delta_generator compresses
# (untimed), then RUNS times (default 3), alternating:
#   augen    `augen payload build --image IMAGE` (unsigned, all cores)
#   bz2-P2   `bzip2 -9` on every chunk, two at a time (what the reference
#            generator does: libbzip2 level 9, 2 threads)
#   bz2-P1   the same, one at a time
# and prints each wall time, the medians, augen's speed-up over both, the
# payload's data size against the sum of min(bzip2 size, 1 MiB) over the
# chunks (equal when the bytes are libbzip2's), and augen's peak RSS.
#
# Needs: go (builds augen), bzip2, GNU time (/usr/bin/time), split, xargs.
# Nothing is left behind (a private temp dir, removed on exit).
set -euo pipefail

img=${1:?usage: bench-full.sh IMAGE [RUNS]}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in bzip2 /usr/bin/time split xargs go; do
  command -v "$tool" >/dev/null || { echo "bench-full.sh: $tool not found" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/augen-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM HUP

(cd "$root" && go build -o "$tmp/augen" ./cmd/augen)
mkdir "$tmp/chunks"
split -b 1M -d -a 5 "$img" "$tmp/chunks/c"
nchunks=$(ls "$tmp/chunks" | wc -l)
echo "image $img: $(stat -c %s "$img") bytes, $nchunks chunks of 1 MiB; $(nproc) cores; $runs runs"

# seconds CMD...: wall seconds of CMD (stdout discarded).
seconds() {
  /usr/bin/time -f %e -o "$tmp/t" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  cat "$tmp/t"
}
# bz N: wall seconds of the bzip2 baseline, N chunks at a time.
bz() {
  seconds sh -c 'ls "$0"/chunks/c* | xargs -P "$1" -n 1 sh -c "bzip2 -9 -c \"\$0\" >/dev/null"' "$tmp" "$1"
}

a=() p2=() p1=() rss=0
for r in $(seq "$runs"); do
  /usr/bin/time -f "%e %M" -o "$tmp/t" "$tmp/augen" payload build --image "$img" -o "$tmp/full.bin" >/dev/null 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
  read -r secs kb <"$tmp/t"
  a+=("$secs")
  rss=$(( kb > rss ? kb : rss ))
  p2+=("$(bz 2)")
  p1+=("$(bz 1)")
  echo "run $r: augen ${a[-1]} s, bz2-P2 ${p2[-1]} s, bz2-P1 ${p1[-1]} s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${a[@]}") mp2=$(median "${p2[@]}") mp1=$(median "${p1[@]}")

# Sizes: the payload's data against min(bzip2, raw) per chunk.
ref=0
for c in "$tmp"/chunks/c*; do
  z=$(bzip2 -9 -c "$c" | wc -c) raw=$(stat -c %s "$c")
  ref=$(( ref + (z < raw ? z : raw) ))
done
data=$("$tmp/augen" payload inspect --json "$tmp/full.bin" | sed -n 's/^  "data_size": *\([0-9]*\).*/\1/p')

echo
echo "median: augen $ma s, bz2-P2 $mp2 s, bz2-P1 $mp1 s"
awk -v a="$ma" -v p2="$mp2" -v p1="$mp1" 'BEGIN { printf "augen is %.2fx the speed of bz2-P2, %.2fx of bz2-P1\n", p2/a, p1/a }'
echo "payload data ${data:-?} bytes; libbzip2 chunks (min with raw) $ref bytes"
echo "augen peak RSS $((rss / 1024)) MiB"
