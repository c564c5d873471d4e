#!/usr/bin/env bash
# Installs what the test suite cross-checks against, on Debian: protoc and
# protoc-gen-go (the generated code is fresh), Debian's bsdiff/bspatch (the
# BSDIFF applier agrees with them), python3 and openssl (the independent
# payload checker), bzip2 (the sample and the benchmark baseline), SoftHSM2
# and opensc's pkcs11-tool (PKCS#11 keys), swtpm (TPM keys) and libssl-dev
# (the in-process TPM simulator the signer tests link), and the tools that
# build the test disk image (gdisk, dosfstools, mtools, cryptsetup-bin,
# e2fsprogs, faketime), btrfs-progs (the btrfs reader's test images), and the stores push uploads to in its tests: nginx
# (WebDAV PUT over TLS) and versitygw (an S3 gateway, built with go install),
# and staticcheck (the linter scripts/test.sh runs); GNU time for
# scripts/bench-full.sh; the runtime libraries of the real client's builds
# that scripts/test-reference.sh runs (../shared/tools/update-engine);
# PostgreSQL 15, the database of the real Nebraska that
# scripts/test-nebraska.sh pushes to (../shared/tools/nebraska); the tools
# testdata/folder/make-folder.sh makes Flatcar release folders with
# (erofs-utils for the sysexts' EROFS, sbsigntool to sign the kernel for
# Secure Boot, gnupg for the buildbot's .sig files) and systemd-container's
# systemd-dissect, which reads the sysext images as the machine will; and
# a kernel Debian signed for Secure Boot (linux-image-*-amd64).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bsdiff protobuf-compiler python3 openssl bzip2 ca-certificates git \
    softhsm2 opensc swtpm libssl-dev gcc libc6-dev \
    gdisk dosfstools mtools cryptsetup-bin e2fsprogs faketime btrfs-progs nginx-light time \
    erofs-utils sbsigntool systemd-container gnupg \
    libgflags2.2 libglib2.0-0 libgoogle-glog0v6 libprotobuf32 libsodium23 libssl3 libunwind8 libext2fs2 libbz2-1.0 \
    postgresql-15 >/dev/null
cd "$(dirname "$0")/.."
ver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
go install "google.golang.org/protobuf/cmd/protoc-gen-go@${ver}"
# The S3 gateway the push tests upload to (POSIX backend, on 127.0.0.1).
go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
# The linter scripts/test.sh runs.
go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The import-grouping check scripts/test.sh runs.
go install golang.org/x/tools/cmd/goimports@v0.52.0
# A kernel Debian signed for Secure Boot: the Authenticode tests read its
# signature and name its signer (testutil.DebianKernel).
if [ ! -s /usr/local/share/augen-test/debian-vmlinuz ]; then
  kdir=$(mktemp -d)
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  (cd "$kdir" && chmod 777 . && apt-get download -qq "$kpkg" && dpkg-deb --fsys-tarfile ./*.deb | tar -x --wildcards './boot/vmlinuz-*')
  mkdir -p /usr/local/share/augen-test
  cp "$kdir"/boot/vmlinuz-* /usr/local/share/augen-test/debian-vmlinuz
  rm -rf "$kdir"
fi
