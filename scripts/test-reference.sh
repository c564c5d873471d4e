#!/usr/bin/env bash
# Checks augen against the real client's code: builds of update_engine's
# delta_generator (debug-apply runs the client's DeltaPerformer) and the
# ChromiumOS bspatch it runs, in DIR (../shared/tools/update-engine/bin in
# CI). Runs, with AUGEN_UE_TOOLS=DIR:
#   - the crafted corpus (payload/apply, payload/internal/crafted): every case
#     through the client and augen, verdicts and bytes compared, and
#     checked against payload/apply/testdata/reference.json;
#   - the mutating differential run: REF_FUZZ_N mutants (default 1500)
#     from seed REF_FUZZ_SEED (default: a new one each run, printed);
#   - augen's own full and delta payloads (test vectors, ext2/ext4/btrfs
#     pairs) applied by the client byte for byte, deltas also on partitions
#     twice the image, and at Flatcar's sizes: a 1 GiB image in 1 GiB and
#     2 GiB partitions, each delta applied on its own and refused on the
#     other.
# AUGEN_UPDATE_REFERENCE=1 rewrites reference.json from the client.
# The client's runtime libraries come from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${AUGEN_CLIENT_TOOLS:?usage: scripts/test-reference.sh UPDATE_ENGINE_BIN_DIR (or AUGEN_CLIENT_TOOLS=DIR; scripts/build-client-tools.sh builds it from source)}}
dir=$(cd "$dir" && pwd)
for b in delta_generator-apply bspatch; do
  [ -x "$dir/$b" ] || { echo "test-reference: $dir/$b is missing"; exit 1; }
done
if ldd "$dir/delta_generator-apply" | grep -q 'not found'; then
  echo "test-reference: the client's libraries are missing (scripts/install-deps.sh installs them):"
  ldd "$dir/delta_generator-apply" | grep 'not found'
  exit 1
fi
seed=${REF_FUZZ_SEED:-$(( $(date +%s) % 100000 + 1 ))}
echo "reference: $dir; mutation seed $seed (REF_FUZZ_SEED=$seed reproduces it)"
export AUGEN_UE_TOOLS=$dir AUGEN_REF_FUZZ_SEED=$seed AUGEN_REF_FUZZ_N=${REF_FUZZ_N:-1500}
go test -count=1 -v -run '^(TestReferenceCorpus|TestReferenceFuzz)$' ./payload/apply 2>&1 | grep -v '^=== RUN\|client .*augen' 
go test -count=1 -run '^(TestOwnPayloadsInClient|TestFlatcarPartitionSizesInClient)$' -v ./payload/generate 2>&1 | grep -v '^=== RUN'
