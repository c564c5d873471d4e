#!/usr/bin/env bash
# bench.sh: every stage of augen against its peer, in one run, one table.
#
#   scripts/bench.sh CORPUS_DIR [UPDATE_ENGINE_BIN_DIR]
#
# CORPUS_DIR is scripts/make-corpus.sh's output (an ext4, ext2 or btrfs
# pair: usr-old.img, usr-new.img); the kernels are the test vectors'. For each stage the
# two commands run in turn, A B A B … (RUNS, default 3), and the table shows
# the medians of wall and CPU (user+sys) seconds, A's and B's peak RSS, the
# bytes each wrote, and A/B:
#
#   full      augen payload build (USR + kernel)   vs delta_generator (needs the client tools)
#   full-2g   the same with the USR image grown to 2 GiB (zeros), the
#             partition size of installs since 2025-09
#   delta     augen payload build --old            vs augen's own full build of the new image
#   random    a delta whose one 64 MiB file was replaced by other random bytes
#             vs augen's full build of the same new image
#   verify    augen payload verify --image --kernel vs the client's chain: signature
#             check, debug-apply onto a copy of the old image and kernel, cmp
#   unpack-real  augen unpack (default: up to USR-A) vs lbzip2 -dc -n2, on a
#             production image made from the corpus's usr-new.img (its verity
#             tree, a kernel carrying its root hash, lbzip2 -9 as CI does)
#   unpack-real-full  augen unpack --full-check    vs lbzip2 -dc -n2
#   unpack-zeros, unpack-zeros-full: the same on a zero-heavy image (a 1 GiB
#             USR-A holding a 64 MiB /usr, the rest zeros)
#   sign      augen sign (a digest, key file)        vs openssl pkeyutl
#
# STAGES=verify,unpack-real (a comma-separated list) times only those
# stages; the others run augen's side once, untimed, for what later
# stages read. Stages whose peer is missing (no UPDATE_ENGINE_BIN_DIR)
# are skipped and say so. Needs GNU time, lbzip2, openssl, mke2fs,
# sgdisk. Nothing is left behind (a private temp dir, removed on exit).
set -euo pipefail
corpus=${1:?usage: scripts/bench.sh CORPUS_DIR [UPDATE_ENGINE_BIN_DIR]}
ue=${2:-}
runs=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$(cd "$corpus" && pwd)
[ -z "$ue" ] || ue=$(cd "$ue" && pwd)
for tool in /usr/bin/time lbzip2 openssl mke2fs dumpe2fs veritysetup sgdisk mkfs.vfat mcopy go; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found" >&2; exit 1; }
done
for f in usr-old.img usr-new.img; do
  [ -f "$corpus/$f" ] || { echo "bench.sh: $corpus/$f is missing (scripts/make-corpus.sh)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root" && go build -o "$work/augen" ./cmd/augen)
augen=$work/augen
vec=$root/testdata/vectors
install -m 600 "$vec/TEST-ONLY-key-a.pem" "$work/key.pem"
oldk=$vec/vmlinuz-old newk=$vec/vmlinuz-new

# one RUN_DIR NAME CMD...: runs CMD once under GNU time, appending
# "wall cpu rss_kib" to RUN_DIR/NAME. Untimed, first: $fresh, if set, is
# removed (a command that finds its output there from the run before
# replaces it, and freeing the old file is no part of the stage), and
# sync writes out what the run before left dirty (the client's chain
# writes 512 MiB), so that no run pays for another's writeback.
fresh=
one() {
  local dir=$1 name=$2; shift 2
  [ -z "$fresh" ] || rm -rf "$fresh"
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$dir/t" "$@" >/dev/null 2>"$dir/err" || { echo "bench.sh: $name failed: $*" >&2; cat "$dir/err" >&2; exit 1; }
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$dir/t" >>"$dir/$name"
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
col() { awk -v c="$2" '{print $c}' "$1" | median; }
rows=()
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {if (y > 0) printf "%.2f", x / y; else print "-"}'; }
# pair STAGE PEER OUT_A OUT_B -- CMD_A... -- CMD_B...: RUNS alternating
# runs of A and B (after one untimed run of each), one table row.
pair() {
  local stage=$1 peer=$2 outa=$3 outb=$4; shift 4
  [ "$1" = -- ] && shift
  local a=() b=()
  while [ "$1" != -- ]; do a+=("$1"); shift; done
  shift
  b=("$@")
  if [ -n "${STAGES:-}" ] && [[ ",$STAGES," != *",$stage,"* ]]; then
    "${a[@]}" >/dev/null 2>&1 || true # once, untimed: a later stage may read its output
    return
  fi
  local d=$work/$stage
  mkdir -p "$d"
  "${a[@]}" >/dev/null 2>&1 || true
  "${b[@]}" >/dev/null 2>&1 || true
  for _ in $(seq "$runs"); do
    one "$d" a "${a[@]}"
    one "$d" b "${b[@]}"
  done
  local wa wb ca cb ra rb ba bb
  wa=$(col "$d/a" 1) wb=$(col "$d/b" 1) ca=$(col "$d/a" 2) cb=$(col "$d/b" 2)
  ra=$(( $(col "$d/a" 3) / 1024 )) rb=$(( $(col "$d/b" 3) / 1024 ))
  ba=$( [ -e "$outa" ] && du -sb "$outa" | cut -f1 || echo -)
  bb=$( [ -e "$outb" ] && du -sb "$outb" | cut -f1 || echo -)
  rows+=("$(printf '%-18s %-30s %7s %7s %6s %7s %7s %6s %5s %5s %11s %11s' "$stage" "$peer" "$wa" "$wb" \
    "$(ratio "$wa" "$wb")" "$ca" "$cb" "$(ratio "$ca" "$cb")" "$ra" "$rb" "$ba" "$bb")")
  echo "bench.sh: $stage done" >&2
}
skip() { rows+=("$(printf '%-18s %-30s %s' "$1" "$2" "skipped: $3")"); }

# full: augen vs delta_generator, the same bytes.
if [ -n "$ue" ]; then
  pair full "delta_generator" "$work/full-a.gz" "$work/full-b.gz" -- \
    "$augen" payload build --image "$corpus/usr-new.img" --kernel "$newk" --key "file:$work/key.pem" -o "$work/full-a.gz" -- \
    "$ue/delta_generator" -new_image "$corpus/usr-new.img" -new_kernel "$newk" -private_key "$work/key.pem" -out_file "$work/full-b.gz"
  cmp -s "$work/full-a.gz" "$work/full-b.gz" || echo "bench.sh: warning: augen's full payload differs from delta_generator's" >&2
else
  skip full delta_generator "no UPDATE_ENGINE_BIN_DIR"
  "$augen" payload build --image "$corpus/usr-new.img" --kernel "$newk" --key "file:$work/key.pem" -o "$work/full-a.gz" 2>/dev/null
fi

# full-2g: the same /usr in a 2 GiB USR partition, the layout of installs
# since 2025-09 (the rest zeros, as the partition the client hashes).
if [ -n "$ue" ]; then
  cp --sparse=always "$corpus/usr-new.img" "$work/usr-2g.img" && truncate -s 2G "$work/usr-2g.img"
  pair full-2g "delta_generator" "$work/full2g-a.gz" "$work/full2g-b.gz" -- \
    "$augen" payload build --image "$work/usr-2g.img" --kernel "$newk" --key "file:$work/key.pem" -o "$work/full2g-a.gz" -- \
    "$ue/delta_generator" -new_image "$work/usr-2g.img" -new_kernel "$newk" -private_key "$work/key.pem" -out_file "$work/full2g-b.gz"
  cmp -s "$work/full2g-a.gz" "$work/full2g-b.gz" || echo "bench.sh: warning: augen's 2 GiB full payload differs from delta_generator's" >&2
  rm -f "$work/usr-2g.img" "$work/full2g-a.gz" "$work/full2g-b.gz"
else
  skip full-2g delta_generator "no UPDATE_ENGINE_BIN_DIR"
fi

# delta: augen's delta against augen's full build of the new image.
pair delta "augen full build" "$work/delta.gz" "$work/full-c.gz" -- \
  "$augen" payload build --old "$corpus/usr-old.img" --image "$corpus/usr-new.img" --old-kernel "$oldk" --kernel "$newk" --key "file:$work/key.pem" -o "$work/delta.gz" -- \
  "$augen" payload build --image "$corpus/usr-new.img" --kernel "$newk" --key "file:$work/key.pem" -o "$work/full-c.gz"

# random: one 64 MiB file replaced by other random bytes.
mkdir -p "$work/r/old/bin" "$work/r/new/bin" "$work/r/old/share" "$work/r/new/share"
openssl enc -aes-128-ctr -nosalt -K 01 -iv 0 -in /dev/zero 2>/dev/null | head -c $((64 << 20)) >"$work/r/old/bin/blob" || true
openssl enc -aes-128-ctr -nosalt -K 02 -iv 0 -in /dev/zero 2>/dev/null | head -c $((64 << 20)) >"$work/r/new/bin/blob" || true
cp /usr/share/common-licenses/* "$work/r/old/share/" && cp /usr/share/common-licenses/* "$work/r/new/share/"
for s in old new; do
  truncate -s 160M "$work/r/$s.img"
  mke2fs -q -F -t ext4 -b 4096 -O ^has_journal -U 2b5f0c1a-7e4d-4c3b-9f8e-1a2b3c4d5e6f -E hash_seed=2b5f0c1a-7e4d-4c3b-9f8e-1a2b3c4d5e6f -d "$work/r/$s" "$work/r/$s.img"
done
pair random "augen full build" "$work/rdelta.gz" "$work/rfull.gz" -- \
  "$augen" payload build --old "$work/r/old.img" --image "$work/r/new.img" --key "file:$work/key.pem" -o "$work/rdelta.gz" -- \
  "$augen" payload build --image "$work/r/new.img" --key "file:$work/key.pem" -o "$work/rfull.gz"

# verify: augen against the client's chain on the full payload.
openssl pkey -in "$work/key.pem" -pubout -out "$work/key.pub" 2>/dev/null
if [ -n "$ue" ]; then
  cat >"$work/client.sh" <<EOF
set -e
"$ue/delta_generator" -public_key "$work/key.pub" -in_file "$work/full-a.gz" >/dev/null 2>&1
cp "$corpus/usr-old.img" "$work/tgt.bin"; cp "$oldk" "$work/tgt-k"; rm -rf "$work/prefs"; mkdir "$work/prefs"
PATH="$ue:\$PATH" "$ue/delta_generator-apply" -in_file "$work/full-a.gz" -old_image "$work/tgt.bin" -old_kernel "$work/tgt-k" -prefs_dir "$work/prefs" >/dev/null 2>&1
cmp "$work/tgt.bin" "$corpus/usr-new.img" && cmp "$work/tgt-k" "$newk"
EOF
  pair verify "client: check, apply, cmp" "" "" -- \
    "$augen" payload verify "$work/full-a.gz" --pubkey "$work/key.pub" --image "$corpus/usr-new.img" --kernel "$newk" -- \
    bash "$work/client.sh"
else
  skip verify "client chain" "no UPDATE_ENGINE_BIN_DIR"
fi

# unpack: production images made from the corpus's /usr (real data) and
# from a 64 MiB /usr in a 1 GiB USR-A (zero-heavy), each with its verity
# tree and a kernel carrying its root hash, lbzip2-compressed as CI does.
# fsblocks IMG: the 4 KiB blocks of the ext2/4 or btrfs file system in IMG
# (the data blocks its verity tree covers).
fsblocks() {
  local b
  b=$(dumpe2fs -h "$1" 2>/dev/null | awk -F: '/^Block count/ {gsub(/ /, "", $2); print $2}')
  if [ -z "$b" ] && command -v btrfs >/dev/null; then
    b=$(btrfs inspect-internal dump-super "$1" 2>/dev/null | awk '/^total_bytes/ {print $2 / 4096}')
  fi
  [ -n "$b" ] || { echo "bench.sh: $1 holds no ext2/4 or btrfs file system" >&2; exit 1; }
  echo "$b"
}
# mkimage USR_IMG PARTITION_BYTES OUT.bin.bz2
mkimage() {
  local usr=$1 part=$2 out=$3 d=$work/img
  rm -rf "$d" && mkdir -p "$d"
  cp "$usr" "$d/usr.img" && truncate -s "$part" "$d/usr.img"
  local blocks
  blocks=$(fsblocks "$d/usr.img")
  local rh
  rh=$(veritysetup format --data-blocks "$blocks" --hash-offset $((blocks * 4096)) "$d/usr.img" "$d/usr.img" | awk '/Root hash:/ {print $3}')
  cp "$newk" "$d/vmlinuz"
  printf 'HdrS' | dd of="$d/vmlinuz" bs=1 seek=$((0x202)) conv=notrunc status=none
  printf '%s' "$rh" | dd of="$d/vmlinuz" bs=1 seek=64 conv=notrunc status=none
  truncate -s 64M "$d/esp.img" && mkfs.vfat -F 16 -n EFI-SYSTEM "$d/esp.img" >/dev/null
  MTOOLS_SKIP_CHECK=1 mmd -i "$d/esp.img" ::/flatcar && MTOOLS_SKIP_CHECK=1 mcopy -i "$d/esp.img" "$d/vmlinuz" ::/flatcar/vmlinuz-a
  local sectors=$((part / 512))
  truncate -s $(( (2048 + 131072 + sectors + 2048) * 512 )) "$d/disk.bin"
  sgdisk -n 1:2048:+64M -t 1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B -c 1:EFI-SYSTEM \
    -n 3:$((2048 + 131072)):+$sectors -t 3:5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6 -c 3:USR-A "$d/disk.bin" >/dev/null
  dd if="$d/esp.img" of="$d/disk.bin" bs=512 seek=2048 conv=notrunc status=none
  dd if="$d/usr.img" of="$d/disk.bin" bs=512 seek=$((2048 + 131072)) conv=notrunc status=none
  lbzip2 -9 -c "$d/disk.bin" >"$out"
  rm -rf "$d"
}
usrsize=$(stat -c %s "$corpus/usr-new.img")
if [ -f "$corpus/image-new.bin" ]; then
  # The corpus's own disk (USR-B, OEM and ROOT after USR-A, as Flatcar's),
  # its USR-A given a verity tree and its EFI-SYSTEM the kernel.
  d=$work/img && mkdir -p "$d"
  cp --sparse=always "$corpus/image-new.bin" "$d/disk.bin"
  first() { sgdisk -i "$1" "$d/disk.bin" | awk '/First sector:/ {print $3}'; }
  usr0=$(first 3) esp0=$(first 1)
  cp "$corpus/usr-new.img" "$d/usr.img"
  blocks=$(fsblocks "$d/usr.img")
  rh=$(veritysetup format --data-blocks "$blocks" --hash-offset $((blocks * 4096)) "$d/usr.img" "$d/usr.img" | awk '/Root hash:/ {print $3}')
  dd if="$d/usr.img" of="$d/disk.bin" bs=512 seek="$usr0" conv=notrunc status=none
  cp "$newk" "$d/vmlinuz"
  printf 'HdrS' | dd of="$d/vmlinuz" bs=1 seek=$((0x202)) conv=notrunc status=none
  printf '%s' "$rh" | dd of="$d/vmlinuz" bs=1 seek=64 conv=notrunc status=none
  MTOOLS_SKIP_CHECK=1 mcopy -o -i "$d/disk.bin@@$((esp0 * 512))" "$d/vmlinuz" ::/flatcar/vmlinuz-a
  lbzip2 -9 -c "$d/disk.bin" >"$work/real.bin.bz2"
  rm -rf "$d"
else
  mkimage "$corpus/usr-new.img" "$usrsize" "$work/real.bin.bz2"
fi
mkdir -p "$work/z/tree" && cp -r /usr/share/common-licenses "$work/z/tree/"
truncate -s 64M "$work/z/fs.img" && mke2fs -q -F -t ext4 -b 4096 -d "$work/z/tree" "$work/z/fs.img"
mkimage "$work/z/fs.img" $((1 << 30)) "$work/zeros.bin.bz2"
for img in real zeros; do
  size=$usrsize
  [ "$img" = zeros ] && size=1GiB
  fresh=$work/u-$img
  pair "unpack-$img" "lbzip2 -dc -n2" "" "" -- \
    "$augen" unpack "$work/$img.bin.bz2" --usr-size "$size" -o "$work/u-$img" -- \
    sh -c "lbzip2 -dc -n2 '$work/$img.bin.bz2' >/dev/null"
  pair "unpack-$img-full" "lbzip2 -dc -n2" "" "" -- \
    "$augen" unpack "$work/$img.bin.bz2" --usr-size "$size" --full-check -o "$work/u-$img" -- \
    sh -c "lbzip2 -dc -n2 '$work/$img.bin.bz2' >/dev/null"
  fresh=
done

# sign: one digest.
head -c 32 /dev/urandom >"$work/digest"
pair sign "openssl pkeyutl" "" "" -- \
  "$augen" sign --key "file:$work/key.pem" --digest "$work/digest" -o "$work/sig-a" -- \
  openssl pkeyutl -sign -inkey "$work/key.pem" -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pkcs1 -in "$work/digest" -out "$work/sig-b"

echo
echo "augen (A) against its peer (B): medians of $runs alternating runs on $(nproc) cores; seconds, MiB, bytes"
printf '%-18s %-30s %7s %7s %6s %7s %7s %6s %5s %5s %11s %11s\n' stage peer "wall A" "wall B" "A/B" "cpu A" "cpu B" "A/B" "RSS A" "RSS B" "bytes A" "bytes B"
printf '%s\n' "${rows[@]}"
