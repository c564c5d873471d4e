#!/usr/bin/env bash
# Builds testdata/image/flatcar_test_image.bin.bz2: a small disk image laid
# out like Flatcar's production image (same partition labels and type GUIDs,
# a FAT EFI-SYSTEM holding flatcar/vmlinuz-a, a USR-A holding an ext4 /usr
# followed by a real dm-verity hash tree, whose root hash the kernel carries
# at byte 64 like an amd64 bzImage), deterministically, from Debian tools:
# sgdisk (gdisk), mkfs.vfat/mmd/mcopy (dosfstools, mtools), mkfs.ext4
# (e2fsprogs), veritysetup (cryptsetup-bin), bzip2, openssl, faketime.
#
# Also writes usr.bin.sha256 and vmlinuz.sha256 (what unpacking with
# --usr-size 4194304 must give), and the DIGESTS file CI would publish.
# Usage: make-image.sh [OUTDIR]   (default: this directory)
# VERSION=4459.1.0 make-image.sh writes flatcar_test_image-4459.1.0.bin.bz2
# instead: the release before it (other program bytes, that version in its
# os-release), the old side of the tests' deltas; no side files.
set -euo pipefail
export LC_ALL=C TZ=UTC
# A frozen clock (faketime): mkfs, mtools and the copies into the
# filesystems stamp times that would otherwise differ from run to run.
if [ -z "${AUGEN_FROZEN_CLOCK:-}" ]; then
  exec env AUGEN_FROZEN_CLOCK=1 faketime -f "2009-11-19 11:00:00" bash "$0" "$@"
fi
out=$(cd "${1:-$(dirname "$0")}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
EPOCH=1258628400
version=${VERSION:-4459.2.1}
name=flatcar_test_image.bin.bz2 seed=1
if [ "$version" != 4459.2.1 ]; then
  name=flatcar_test_image-$version.bin.bz2 seed=11
fi
prand() { (openssl enc -aes-128-ctr -nosalt -K "$(printf "%032x" "$1")" -iv 0 -in /dev/zero 2>/dev/null || true) | head -c "$2"; }

MiB=$((1024*1024))
usr_part=$((6*MiB)); usr_size=$((4*MiB)); fs_size=$((3*MiB))

# /usr: an ext4 filesystem of 3 MiB with some content.
mkdir -p tree/bin tree/share/flatcar tree/lib
i=0; for f in /usr/share/common-licenses/{Apache-2.0,GPL-2,GPL-3,LGPL-2.1,MPL-2.0}; do i=$((i+1)); cp "$f" "tree/share/license$i"; done
prand $seed 300000 > tree/bin/program
# The release version, where Flatcar's /usr declares it (verify checks it
# against the release statement).
printf 'NAME="Flatcar Container Linux by Kinvolk"\nID=flatcar\nID_LIKE=coreos\nVERSION=%s\nVERSION_ID=%s\nBUILD_ID=test-image\n' "$version" "$version" > tree/lib/os-release
printf 'FLATCAR_RELEASE_VERSION=%s\nFLATCAR_RELEASE_BOARD=amd64-usr\n' "$version" > tree/share/flatcar/release
find tree -exec touch -h -d @$EPOCH {} +
E2FSPROGS_FAKE_TIME=$EPOCH mke2fs -q -t ext4 -b 4096 -O ^has_journal -U 5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6 \
  -E hash_seed=5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6,root_owner=0:0 -d tree usr.img $((fs_size/4096))
# mke2fs -d copies each file's ctime, which the kernel sets: pin them.
find tree | while read -r p; do echo "sif /${p#tree} ctime @$EPOCH"; done | sed 's|//|/|' > ctimes
debugfs -w -f ctimes usr.img >/dev/null 2>&1
truncate -s $usr_part usr.img
# The verity tree right after the filesystem, as Flatcar's disk_util does.
root=$(veritysetup format --hash=sha256 --data-block-size 4096 --hash-block-size 4096 --data-blocks $((fs_size/4096)) \
  --hash-offset $fs_size --salt 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
  --uuid 00000000-0000-0000-0000-000000000002 usr.img usr.img | awk '/Root hash:/ {print $3}')
[ ${#root} = 64 ] || { echo "no root hash from veritysetup" >&2; exit 1; }

# A stand-in kernel: the bzImage header magic at 0x202 and the root hash
# as 64 hex characters at byte 64.
prand 2 200000 > vmlinuz
printf 'HdrS' | dd of=vmlinuz bs=1 seek=$((0x202)) conv=notrunc status=none
printf '%s' "$root" | dd of=vmlinuz bs=1 seek=64 conv=notrunc status=none
touch -d @$EPOCH vmlinuz

# EFI-SYSTEM: FAT16 holding flatcar/vmlinuz-a.
truncate -s $((8*MiB)) esp.img
mkfs.vfat -F 16 -s 1 -n EFI-SYSTEM -i 12345678 --invariant esp.img >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i esp.img ::/flatcar
mcopy -m -i esp.img vmlinuz ::/flatcar/vmlinuz-a

# The disk: Flatcar's labels and types, fixed GUIDs.
disk=$(( (2048 + (8+1+6+6+2+2)*2048 + 2048) * 512 ))
truncate -s $disk disk.bin
sgdisk -o -U 00000000-0000-0000-0000-000000000001 \
  -n 1:2048:+8M   -t 1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B -c 1:EFI-SYSTEM -u 1:11111111-0000-0000-0000-000000000001 \
  -n 2:0:+1M      -t 2:21686148-6449-6E6F-744E-656564454649 -c 2:BIOS-BOOT  -u 2:11111111-0000-0000-0000-000000000002 \
  -n 3:0:+6M      -t 3:5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6 -c 3:USR-A      -u 3:7130C94A-213A-4E5A-8E26-6CCE9662F132 \
  -n 4:0:+6M      -t 4:5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6 -c 4:USR-B      -u 4:E03DD35C-7C2D-4A47-B3FE-27F15780A57C \
  -n 6:0:+2M      -t 6:0FC63DAF-8483-4772-8E79-3D69D8477DE4 -c 6:OEM        -u 6:11111111-0000-0000-0000-000000000006 \
  -n 9:0:+2M      -t 9:3884DD41-8582-4404-B9A8-E9B84F2DF50E -c 9:ROOT       -u 9:11111111-0000-0000-0000-000000000009 \
  disk.bin >/dev/null
start() { sgdisk -i "$1" disk.bin | awk '/First sector:/ {print $3}'; }
dd if=esp.img of=disk.bin bs=512 seek="$(start 1)" conv=notrunc status=none
dd if=usr.img of=disk.bin bs=512 seek="$(start 3)" conv=notrunc status=none

bzip2 -9 -c disk.bin > "$out/$name"
if [ "$name" != flatcar_test_image.bin.bz2 ]; then
  ls -l "$out/$name"
  exit 0
fi
head -c $usr_size usr.img | sha256sum | awk '{print $1 "  usr.bin"}' > "$out/usr.bin.sha256"
sha256sum vmlinuz | awk '{print $1 "  vmlinuz"}' > "$out/vmlinuz.sha256"
echo "$root" > "$out/verity-root-hash"
( cd "$out"; f=flatcar_test_image.bin.bz2
  printf '# MD5 HASH\n%s  %s\n# SHA1 HASH\n%s  %s\n# SHA512 HASH\n%s  %s\n' \
    "$(md5sum <$f | cut -d' ' -f1)" $f "$(sha1sum <$f | cut -d' ' -f1)" $f "$(sha512sum <$f | cut -d' ' -f1)" $f > $f.DIGESTS )
ls -l "$out"
