#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (fast and slow tiers) with ctest.
#   scripts/test.sh               the full suite (Release build in ./build)
#   scripts/test.sh --fast        only the fast tier
#   scripts/test.sh --sanitize    the suite under ASan+UBSan (separate build in ./build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
# The tokenizer and chat-template tests compare against the reference data beside the checkout; without
# it they can only fail, so say so before installing and building for ten minutes.
if [ ! -d ../shared/testdata ]; then
  echo "error: $(cd .. && pwd)/shared/testdata not found: the tokenizer and chat-template tests compare" \
       "against that reference data; check tuneloop out next to the project's shared/ directory" >&2
  exit 2
fi
bash scripts/setup.sh

dir=build
cmake_args=()
ctest_args=(--output-on-failure)
for a in "$@"; do
  case "$a" in
    --fast) ctest_args+=(-L fast) ;;
    --sanitize) dir=build-asan; cmake_args+=(-DTUNELOOP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    *) echo "error: unknown option $a (expected --fast or --sanitize)" >&2; exit 2 ;;
  esac
done

bash scripts/build.sh "$dir" "${cmake_args[@]}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
cd "$dir"
ctest "${ctest_args[@]}" -j "$(nproc)"
