#!/usr/bin/env bash
# bench-verify.sh: augen payload verify against the real client doing the
# same checks, in the same run.
#
#   scripts/bench-verify.sh CORPUS_DIR UPDATE_ENGINE_BIN_DIR [RUNS]
#
# CORPUS_DIR has usr-old.img and usr-new.img (scripts/make-corpus.sh). A
# full payload of usr-new.img with the test vectors' new kernel is built
# once (untimed, signed with the TEST-ONLY key a); then RUNS times (default
# 3), alternating:
#   augen    `augen payload verify FULL --pubkey a.pub --image usr-new.img
#            --kernel vmlinuz-new` (signature, every rule, simulated apply,
#            compare)
#   client   delta_generator -public_key (the client's signature check),
#            then delta_generator-apply onto a copy of usr-old.img and the old
#            kernel (a full update starts from the running system), then
#            cmp of both results with the new image and kernel
# and prints each wall time, augen's peak RSS (GNU time), the medians and
# augen's time as a part of the client's.
set -euo pipefail
corpus=${1:?usage: bench-verify.sh CORPUS_DIR UPDATE_ENGINE_BIN_DIR [RUNS]}
bin=$(cd "${2:?usage: bench-verify.sh CORPUS_DIR UPDATE_ENGINE_BIN_DIR [RUNS]}" && pwd)
runs=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
vec=$root/testdata/vectors
tmp=$(mktemp -d "${TMPDIR:-/tmp}/augen-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM HUP
(cd "$root" && go build -o "$tmp/augen" ./cmd/augen)
install -m 600 "$vec/TEST-ONLY-key-a.pem" "$tmp/key-a.pem"
"$tmp/augen" payload build --image "$corpus/usr-new.img" --kernel "$vec/vmlinuz-new" --key "file:$tmp/key-a.pem" -o "$tmp/full.gz" >/dev/null
echo "payload: $(stat -c %s "$tmp/full.gz") bytes for a $(stat -c %s "$corpus/usr-new.img")-byte image"
now() { date +%s.%N; }
a=() c=() r=()
for i in $(seq "$runs"); do
  t0=$(now)
  /usr/bin/time -f %M -o "$tmp/rss" "$tmp/augen" payload verify "$tmp/full.gz" --pubkey "$vec/TEST-ONLY-key-a.pub.pem" --image "$corpus/usr-new.img" --kernel "$vec/vmlinuz-new" >/dev/null
  t1=$(now)
  r+=("$(cat "$tmp/rss")")
  cp "$corpus/usr-old.img" "$tmp/tgt.bin"; cp "$vec/vmlinuz-old" "$tmp/tgt-k"; rm -rf "$tmp/prefs"; mkdir "$tmp/prefs"
  t2=$(now)
  PATH=$bin:$PATH "$bin/delta_generator" -public_key "$vec/TEST-ONLY-key-a.pub.pem" -in_file "$tmp/full.gz" 2>/dev/null
  PATH=$bin:$PATH "$bin/delta_generator-apply" -in_file "$tmp/full.gz" -old_image "$tmp/tgt.bin" -old_kernel "$tmp/tgt-k" -prefs_dir "$tmp/prefs" 2>/dev/null
  cmp "$tmp/tgt.bin" "$corpus/usr-new.img" && cmp "$tmp/tgt-k" "$vec/vmlinuz-new"
  t3=$(now)
  a+=("$(echo "$t1 - $t0" | bc)") c+=("$(echo "$t3 - $t2" | bc)")
  printf 'run %d: augen %.2f s (peak RSS %d MiB), client %.2f s\n' "$i" "${a[-1]}" "$(( ${r[-1]} / 1024 ))" "${c[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${a[@]}") mc=$(median "${c[@]}")
printf 'augen peak RSS: median %d MiB, max %d MiB\n' "$(( $(median "${r[@]}") / 1024 ))" "$(( $(printf '%s\n' "${r[@]}" | sort -g | tail -1) / 1024 ))"
printf 'median: augen %.2f s, client %.2f s: augen takes %.2fx the client'"'"'s time\n' "$ma" "$mc" "$(echo "$ma / $mc" | bc -l)"
