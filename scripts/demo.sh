#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: `tuneloop demo`, the whole loop as far as it
# exists, on a small model it makes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
./build/tuneloop demo "$@"
