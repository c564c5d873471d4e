#!/usr/bin/env bash
# Runs every check augen has: formatting, vet, the race-enabled short suite,
# the full suite (64 MiB build checked by an independent checker, every byte
# change of the generator's payloads), and each fuzz target briefly.
#
# Needs Go, and for the cross-checks: protoc + protoc-gen-go, Debian's
# bsdiff/bspatch, python3 and openssl (scripts/install-deps.sh installs them).
# A test whose tool is missing fails (scripts/install-deps.sh installs them
# all); AUGEN_SKIP_MISSING_TOOLS=1 makes it skip instead, for a quick run on
# a machine without them. FUZZTIME (default 10s) bounds each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
if [ "${AUGEN_SKIP_MISSING_TOOLS:-}" = 1 ]; then
  unset AUGEN_REQUIRE_TOOLS
else
  export AUGEN_REQUIRE_TOOLS=1
fi

# Each step says how long the one before it took, and the end the total:
# the numbers the README's "about N minutes" comes from.
start=$SECONDS last=$SECONDS
step() {
  if [ -n "${cur:-}" ]; then printf '(%s: %ds)\n' "$cur" $((SECONDS - last)); fi
  cur=$*; last=$SECONDS
  printf '\n== %s\n' "$*"
}

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then
  echo "gofmt would change:"; echo "$bad"; exit 1
fi

step "import groups (goimports -local)"
# Standard library, then other modules, then this project's packages:
# goimports -local reports a project import in another group. Generated
# code (the protobuf bindings) is left as protoc-gen-go writes it.
goimports=$(command -v goimports || echo "$(go env GOPATH)/bin/goimports")
if [ -x "$goimports" ]; then
  bad=$("$goimports" -local github.com/augen-project/augen -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$' || true)
  if [ -n "$bad" ]; then
    echo "imports not grouped (goimports -local github.com/augen-project/augen -w FILE):"; echo "$bad"; exit 1
  fi
elif [ "${AUGEN_SKIP_MISSING_TOOLS:-}" = 1 ]; then
  echo "goimports not found: skipped (AUGEN_SKIP_MISSING_TOOLS=1)"
else
  echo "goimports not found: run scripts/install-deps.sh (or AUGEN_SKIP_MISSING_TOOLS=1)"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
staticcheck=$(command -v staticcheck || echo "$(go env GOPATH)/bin/staticcheck")
if [ -x "$staticcheck" ]; then
  "$staticcheck" ./...
elif [ "${AUGEN_SKIP_MISSING_TOOLS:-}" = 1 ]; then
  echo "staticcheck not found: skipped (AUGEN_SKIP_MISSING_TOOLS=1)"
else
  echo "staticcheck not found: run scripts/install-deps.sh (or AUGEN_SKIP_MISSING_TOOLS=1)"; exit 1
fi

step "go mod tidy"
if ! go mod tidy -diff; then
  echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1
fi

step "build without cgo (no PKCS#11 backend)"
CGO_ENABLED=0 go build -o /dev/null ./cmd/augen
CGO_ENABLED=0 go vet ./signer ./cmd/augen

# Every go test has an explicit timeout, sized for a 2-core machine with
# another job on both cores (Go's default of 10 minutes per package is not),
# and a timeout is reported as one.
gotest() {
  local out
  out=$(mktemp)
  if ! go test -timeout "${TEST_TIMEOUT:-30m}" "$@" 2>&1 | tee "$out"; then
    if grep -q 'panic: test timed out after' "$out"; then
      echo "TIMEOUT: go test $* ran out of its ${TEST_TIMEOUT:-30m} (TEST_TIMEOUT raises it); the stacks above show where"
    fi
    rm -f "$out"; return 1
  fi
  rm -f "$out"
}

# The race detector runs where there is concurrency to race: every package,
# and of the CLI's end-to-end tests (which the full suite below runs whole)
# those whose paths are concurrent: signals, progress, the uploads, the
# release pipeline and the parallel decoder.
race_cli='^(TestSignals|TestPushInterrupted|TestProgressModes|TestProgressStages|TestVerifyProgressOffTerminal|TestReleaseVerify|TestPushS3|TestPushNginx|TestBzip2ImageBomb)$'
step "go test -race -short"
gotest -race -short -count=1 $(go list ./... | grep -v '/cmd/augen$')
gotest -race -short -count=1 -run "$race_cli" ./cmd/augen

step "go test (full)"
gotest -count=1 ./...

step "fuzz (${fuzztime} each, two targets at a time)"
fuzzdir=$(mktemp -d)
trap 'rm -rf "$fuzzdir" "${tmp:-}" "${sample:-}"' EXIT
# fuzz PKG TARGET: fuzz one target on one core; its result is in
# $fuzzdir/TARGET.ok or its log in $fuzzdir/TARGET.log.
fuzz() {
  local log="$fuzzdir/$2.log"
  # Minimization is bounded by executions, not time: a long minimization
  # that straddles -fuzztime's deadline makes the Go fuzzer report a spurious
  # "fuzzing process hung or terminated unexpectedly while minimizing"
  # (golang/go#52569). A real failure still writes its input to testdata/fuzz.
  local corpus="$1/testdata/fuzz/$2" before after
  before=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
  if go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -parallel 1 -fuzzminimizetime 500x "./$1" >"$log" 2>&1; then
    echo "$1 $2: ok" >"$fuzzdir/$2.ok"; return
  fi
  after=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
  # Go 1.26's fuzz coordinator can report the end of -fuzztime itself as
  # a failure, "context deadline exceeded", with no input written
  # (golang/go#75804, fixed in Go 1.27). That alone is not a finding:
  # replay the target's corpus to be sure, and go on.
  if [ "$after" = "$before" ] && tail -n 5 "$log" | grep -qx '    context deadline exceeded' &&
      go test -count=1 -run "^$2\$" "./$1" >/dev/null 2>&1; then
    echo "$1 $2: ok (the fuzz coordinator's deadline race, golang/go#75804: no input written, corpus replayed)" >"$fuzzdir/$2.ok"
  fi
}
targets=("payload FuzzReader" "payload FuzzDecodeSignatures" "internal/pbzip2 FuzzDecodeOne" "internal/pbzip2 FuzzEncode" "internal/bsdiff FuzzPatch"
  "internal/bsdiff FuzzDiff" "internal/gpt FuzzParsePrimary" "internal/fat FuzzFAT" "internal/pbzip2 FuzzReader"
  "bundle FuzzReadTar" "bundle FuzzParseStatement" "verify FuzzBundle" "internal/omaha FuzzRead"
  "internal/ext4 FuzzReadFile" "internal/btrfs FuzzReadFile" "internal/btrfs FuzzWalk" "internal/fsmap FuzzRead" "payload/apply FuzzApply" "internal/strictjson FuzzDecode" "internal/pbzip2 FuzzBZRead"
  "internal/erofs FuzzReadFile" "internal/pkcs7 FuzzParse" "internal/authenticode FuzzVerify" "internal/sysext FuzzCheck")
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  # Two targets at once, one core each: the same fuzzing per target as one
  # at a time on two cores, in half the time.
  fuzz ${targets[i]} &
  if ((i + 1 < ${#targets[@]})); then fuzz ${targets[i + 1]} & fi
  wait
  for t in "${targets[i]}" "${targets[i + 1]:-}"; do
    [ -n "$t" ] || continue
    set -- $t
    if [ -f "$fuzzdir/$2.ok" ]; then cat "$fuzzdir/$2.ok"; continue; fi
    cat "$fuzzdir/$2.log"; ls -l "$1/testdata/fuzz/$2" 2>/dev/null || true
    exit 1
  done
done

step "the test disk image regenerates byte for byte"
tmp=$(mktemp -d)
bash testdata/image/make-image.sh "$tmp" >/dev/null
VERSION=4459.1.0 bash testdata/image/make-image.sh "$tmp" >/dev/null
for f in flatcar_test_image.bin.bz2 usr.bin.sha256 vmlinuz.sha256 verity-root-hash flatcar_test_image-4459.1.0.bin.bz2; do
  cmp "$tmp/$f" "testdata/image/$f"
done
rm -rf "$tmp"
echo "image: ok"

step "README sample"
sample=$(mktemp -d)
OUT=$sample/out bash scripts/sample.sh >/dev/null
# The README's block, as written, in the folder the script filled.
block=$(awk '/^It builds augen into/{f=1} f&&/^```sh$/{g=1;next} g&&/^```$/{exit} g' README.md)
[ -n "$block" ] || { echo "the README's sample block is missing"; exit 1; }
(cd "$sample/out" && eval "${block//\/tmp\/augen-sample/$sample/out}") >/dev/null
rm -rf "$sample"
echo "sample: ok (scripts/sample.sh, then the README's commands as written)"
step "done"
printf 'all checks passed in %dm%02ds\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
