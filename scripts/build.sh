#!/usr/bin/env bash
# Configures and builds tuneloop. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# Release by default, ccache when present; BUILD_DIR defaults to ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
gen=()
if command -v ninja >/dev/null; then gen=(-G Ninja); fi
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ $# -gt 0 ]; then
  cmake "$dir" "$@"
fi
cmake --build "$dir" --parallel "$(nproc)"
