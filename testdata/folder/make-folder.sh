#!/usr/bin/env bash
# Makes a release folder as Flatcar's data/download_payloads leaves it for
# the signing laptop, from Debian tools only, with TEST-ONLY keys made on
# the spot:
#
#   OUT/ARCH-usr/VERSION/flatcar_production_update.bin.bz2   the /usr image
#   OUT/ARCH-usr/VERSION/flatcar_production_image.vmlinuz     the kernel
#   OUT/ARCH-usr/VERSION/flatcar-docker.raw, oem-azure.raw    sysext DDIs
#   and a detached OpenPGP .sig of each, by a buildbot key's signing subkey.
#
# The /usr is an ext4 filesystem (os-release, the board, this build's
# sysext certificate in lib/verity.d) followed by its dm-verity tree, as
# disk_util lays out USR-A; the kernel is a PE image laid out as Flatcar's
# (the /usr root hash as 64 hex characters at byte 64 on amd64, 512 on
# arm64, before the PE header), signed for Secure Boot with sbsign. Each
# sysext is what systemd-repart --make-ddi=sysext writes: a GPT with
# root-ARCH (EROFS, usr/ at its top, the extension-release file named after
# the image), root-ARCH-verity (veritysetup's superblock and tree) and
# root-ARCH-verity-sig (JSON: rootHash, certificateFingerprint and a
# detached PKCS#7 signature of the root hash in hex, no attributes, by
# this build's key).
#
# Usage: make-folder.sh OUT [VERSION] [ARCH]     (defaults 4799.0.0 amd64)
# Keys (OUT/keys/, made once and reused by later calls with the same OUT):
#   buildbot.asc            the buildbot public key; its subkeys: "current"
#                           (valid) and "expired" (expired in 2025)
#   sb.crt/sb.key           Secure Boot signer; sb-other.* another one
#   sysext.crt/.key         this build's sysext key; sysext-other.* another
#                           build's
# Variants, by environment (each makes the one failure the tests need):
#   SIGN_SUBKEY=expired     sign with the expired subkey
#   KERNEL_SIGNER=none|other  leave the kernel unsigned / sign it with sb-other
#   SYSEXT_KEY=other        sign flatcar-docker with another build's key
#   SYSEXT_VERSION=V        flatcar-docker's extension-release says V
#   BAD_SIG=FILE            FILE's .sig is of other bytes; NO_SIG=FILE: none
#   VARIANT=NAME            write the folder under OUT/NAME/ (the keys stay in OUT/keys)
# Sizes (for benchmarks): USR_MIB (the /usr image, default 4), USR_DATA_MIB
# (random data in it, default 0.2), SYSEXT_DATA_MIB (random data in each
# sysext, default 0.1); PRODUCTION_IMAGE=1 also writes
# OUT/flatcar_production_image.bin.bz2, a disk image holding the same /usr
# (USR-A) and kernel (EFI-SYSTEM), for the production-image path.
set -euo pipefail
export LC_ALL=C TZ=UTC
out=$(mkdir -p "$1" && cd "$1" && pwd)
version=${2:-4799.0.0}
arch=${3:-amd64}
keys=$out/keys
dir=$out/${VARIANT:+$VARIANT/}$arch-usr/$version
work=$(mktemp -d)
trap 'gpgconf --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$keys" "$dir"
export GNUPGHOME=$keys/gnupg

# --- TEST-ONLY keys, made once per OUT.
if [ ! -f "$keys/buildbot.asc" ]; then
  mkdir -m 700 -p "$GNUPGHOME"
  faketime -f "2024-01-01 00:00:00" gpg -q --batch --passphrase "" --quick-gen-key "TEST-ONLY Buildbot (Official Builds) <buildbot@example.invalid>" rsa2048 cert never
  fpr=$(gpg --list-keys --with-colons | awk -F: '/^fpr/ {print $10; exit}')
  # A subkey made in 2024 that expired in 2025, then the current one.
  faketime -f '2024-03-07 00:00:00' gpg -q --batch --passphrase '' --quick-add-key "$fpr" rsa2048 sign 1y
  gpg -q --batch --passphrase '' --quick-add-key "$fpr" rsa2048 sign 2y
  gpg --list-keys --with-colons | awk -F: '/^sub/ {print $5}' > "$keys/subkeys"
  gpg -q --armor --export "$fpr" > "$keys/buildbot.asc"
  for k in sb sb-other sysext sysext-other; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$keys/$k.key" -out "$keys/$k.crt" \
      -subj "/CN=TEST-ONLY $k" -days 3650 2>/dev/null
  done
fi
expired=$(sed -n 1p "$keys/subkeys") current=$(sed -n 2p "$keys/subkeys")
subkey=$current sign=()
# An old build: signed in 2024, while the subkey was valid.
[ "${SIGN_SUBKEY:-}" = expired ] && subkey=$expired sign=(faketime -f '2024-06-01 00:00:00')
prand() { (openssl enc -aes-128-ctr -nosalt -K "$(printf "%032x" "$1")" -iv 0 -in /dev/zero 2>/dev/null || true) | head -c "$2"; }
case $arch in
amd64) board=amd64-usr sysarch=x86-64 rh_off=64
       gtype=4f68bce3-e8cd-4db1-96e7-fbcaf984b709 vtype=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5 stype=41092b05-9fc8-4523-994f-2def0408b176 ;;
arm64) board=arm64-usr sysarch=arm64 rh_off=512
       gtype=b921b045-1df0-41c3-af44-4c6f280d3fae vtype=df3300ce-d69f-4c92-978c-9bfb0f38d820 stype=6db69de6-29f4-4758-a7a5-962190f00ce3 ;;
*) echo "unknown arch $arch" >&2; exit 2 ;;
esac
cd "$work"

# --- /usr: ext4 with its dm-verity tree right after the filesystem.
MiB=$((1024*1024)) usr_mib=${USR_MIB:-4}
fs_size=$(( usr_mib * MiB * 7 / 8 / 4096 * 4096 ))
kib() { awk -v m="$1" 'BEGIN { printf "%d", m * 1024 }'; }
mkdir -p usr/lib/verity.d usr/share/flatcar usr/bin
printf 'NAME="Flatcar Container Linux by Kinvolk"\nID=flatcar\nID_LIKE=coreos\nVERSION=%s\nVERSION_ID=%s\nBUILD_ID=test-folder\n' "$version" "$version" > usr/lib/os-release
printf 'FLATCAR_RELEASE_VERSION=%s\nFLATCAR_RELEASE_BOARD=%s\n' "$version" "$board" > usr/share/flatcar/release
cp "$keys/sysext.crt" usr/lib/verity.d/sysexts.crt
prand 3 $(( $(kib "${USR_DATA_MIB:-0.1953125}") * 1024 )) > usr/bin/program
truncate -s $fs_size usr.img
mke2fs -q -F -t ext4 -b 4096 -O ^has_journal -d usr usr.img $((fs_size/4096))
truncate -s $((usr_mib*MiB)) usr.img
root=$(veritysetup format --data-blocks $((fs_size/4096)) --hash-offset $fs_size usr.img usr.img | awk '/Root hash:/ {print $3}')
bzip2 -c usr.img > "$dir/flatcar_production_update.bin.bz2"

# --- The kernel: a PE image laid out as Flatcar's, the root hash at
# rh_off, then signed (or not) with sbsign.
python3 - "$arch" "$root" "$rh_off" vmlinuz <<'EOF'
import struct, sys
arch, root, rh_off, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
size = 0x1000 + 0xa000
k = bytearray(size)
k[0:2] = b"MZ"
pe = 0x80 if arch == "amd64" else 0x40
struct.pack_into("<I", k, 0x3c, pe)
if arch == "arm64":
    k[56:60] = b"ARM\x64"
k[pe:pe+4] = b"PE\0\0"
machine = 0x8664 if arch == "amd64" else 0xaa64
struct.pack_into("<HHIIIHH", k, pe+4, machine, 2, 0, 0, 0, 240, 0x206)
opt = pe + 24
struct.pack_into("<H", k, opt, 0x20b)                 # PE32+
struct.pack_into("<I", k, opt+16, 0x1000)            # entry point
struct.pack_into("<Q", k, opt+24, 0)                 # image base
struct.pack_into("<II", k, opt+32, 0x1000, 0x200)    # section / file alignment
struct.pack_into("<I", k, opt+56, 0x10000)           # SizeOfImage
struct.pack_into("<I", k, opt+60, 0x1000)            # SizeOfHeaders
struct.pack_into("<H", k, opt+68, 10)                # EFI application
struct.pack_into("<I", k, opt+108, 16)               # data directories
sec = opt + 240
for i, (name, off, n) in enumerate([(b".text", 0x1000, 0x6000), (b".data", 0x7000, 0x4000)]):
    s = sec + 40*i
    k[s:s+8] = name.ljust(8, b"\0")
    struct.pack_into("<IIII", k, s+8, n, off, n, off)
    struct.pack_into("<I", k, s+36, 0x60000020 if i == 0 else 0xc0000040)
if arch == "amd64":
    k[0x202:0x206] = b"HdrS"   # the bzImage setup header magic
k[rh_off:rh_off+64] = root.encode()
for off in range(0x1000, size, 16):
    k[off:off+16] = struct.pack("<QQ", off, off * 2654435761 % (1 << 64))
open(out, "wb").write(k)
EOF
case ${KERNEL_SIGNER:-sb} in
none) cp vmlinuz "$dir/flatcar_production_image.vmlinuz" ;;
other) sbsign --key "$keys/sb-other.key" --cert "$keys/sb-other.crt" --output "$dir/flatcar_production_image.vmlinuz" vmlinuz 2>/dev/null ;;
*) sbsign --key "$keys/sb.key" --cert "$keys/sb.crt" --output "$dir/flatcar_production_image.vmlinuz" vmlinuz 2>/dev/null ;;
esac

# --- Sysexts: systemd-repart --make-ddi=sysext's layout.
sysext() { # NAME COMPRESSION KEY EXT_VERSION
  local name=$1 comp=$2 key=$3 ext_version=$4 t=$work/$1
  mkdir -p "$t/usr/lib/extension-release.d" "$t/usr/bin"
  printf "ID='flatcar'\nVERSION_ID='%s'\nARCHITECTURE='%s'\nEXTENSION_RELOAD_MANAGER=1\nSYSEXT_ID='%s'\n" \
    "$ext_version" "$sysarch" "$name" > "$t/usr/lib/extension-release.d/extension-release.$name"
  prand 5 $(( $(kib "${SYSEXT_DATA_MIB:-0.09765625}") * 1024 )) > "$t/usr/bin/$name-random"
  head -c 200000 /usr/share/common-licenses/GPL-3 > "$t/usr/bin/$name-text"
  mkfs.erofs --quiet -T0 --all-root ${comp:+-z$comp} "$work/$name.data" "$t"
  local rh fp
  rh=$(veritysetup format "$work/$name.data" "$work/$name.hash" | awk '/Root hash:/ {print $3}')
  printf %s "$rh" > "$work/$name.rh"
  openssl smime -sign -in "$work/$name.rh" -signer "$keys/$key.crt" -inkey "$keys/$key.key" \
    -outform DER -binary -noattr -out "$work/$name.p7s"
  fp=$(openssl x509 -in "$keys/$key.crt" -outform DER | sha256sum | cut -d' ' -f1)
  printf '{"rootHash":"%s","certificateFingerprint":"%s","signature":"%s"}' "$rh" "$fp" "$(base64 -w0 "$work/$name.p7s")" > "$work/$name.json"
  local sec4k=8 d h s
  d=$(( ($(stat -c %s "$work/$name.data") + 4095) / 4096 * sec4k ))
  h=$(( ($(stat -c %s "$work/$name.hash") + 4095) / 4096 * sec4k ))
  s=$(( ($(stat -c %s "$work/$name.json") + 4095) / 4096 * sec4k ))
  local d0=2048 h0 s0 end img=$dir/$name.raw
  h0=$((d0+d)) s0=$((d0+d+h)) end=$((d0+d+h+s))
  rm -f "$img"; truncate -s $(( (end + 34) * 512 )) "$img"
  sgdisk -a 8 -n 1:$d0:$((h0-1)) -t 1:$gtype -c 1:root-$sysarch \
    -n 2:$h0:$((s0-1)) -t 2:$vtype -c 2:root-$sysarch-verity \
    -n 3:$s0:$((end-1)) -t 3:$stype -c 3:root-$sysarch-verity-sig "$img" >/dev/null
  dd if="$work/$name.data" of="$img" bs=512 seek=$d0 conv=notrunc status=none
  dd if="$work/$name.hash" of="$img" bs=512 seek=$h0 conv=notrunc status=none
  dd if="$work/$name.json" of="$img" bs=512 seek=$s0 conv=notrunc status=none
}
dockerkey=sysext
[ "${SYSEXT_KEY:-}" = other ] && dockerkey=sysext-other
sysext flatcar-docker lz4 "$dockerkey" "${SYSEXT_VERSION:-$version}"
sysext oem-azure "" sysext "$version"

# --- The same /usr and kernel as a production disk image.
if [ -n "${PRODUCTION_IMAGE:-}" ]; then
  truncate -s $((32*MiB)) esp.img
  mkfs.vfat -F 16 -s 1 -n EFI-SYSTEM esp.img >/dev/null
  MTOOLS_SKIP_CHECK=1 mmd -i esp.img ::/flatcar
  MTOOLS_SKIP_CHECK=1 mcopy -i esp.img "$dir/flatcar_production_image.vmlinuz" ::/flatcar/vmlinuz-a
  esp_s=$((32*MiB/512)) usr_s=$((usr_mib*MiB/512))
  truncate -s $(( (2048 + esp_s + usr_s + 2048) * 512 )) disk.bin
  sgdisk -n 1:2048:+$esp_s -t 1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B -c 1:EFI-SYSTEM \
    -n 3:$((2048+esp_s)):+$usr_s -t 3:5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6 -c 3:USR-A disk.bin >/dev/null
  dd if=esp.img of=disk.bin bs=512 seek=2048 conv=notrunc status=none
  dd if=usr.img of=disk.bin bs=512 seek=$((2048+esp_s)) conv=notrunc status=none
  bzip2 -c disk.bin > "$out/flatcar_production_image.bin.bz2"
fi

# --- The buildbot's detached signatures.
for f in "$dir"/*; do
  case $f in *.sig) continue ;; esac
  base=$(basename "$f")
  [ "${NO_SIG:-}" = "$base" ] && continue
  if [ "${BAD_SIG:-}" = "$base" ]; then
    printf 'other bytes' | "${sign[@]}" gpg -q --batch -u "$subkey!" --detach-sign -o "$f.sig"
  else
    "${sign[@]}" gpg -q --batch --yes -u "$subkey!" --detach-sign -o "$f.sig" "$f"
  fi
done
echo "$dir"
