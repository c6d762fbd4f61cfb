#!/usr/bin/env bash
# Fetches the official `openai` Node SDK from npm into third_party/npm/openai-sdk/ (ignored by git) for
# the control plane's end-to-end test (tests/jobs/e2e_openai_sdk_test.cpp). Idempotent: an install of
# the pinned version is left alone. No install scripts run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/third_party/npm/openai-sdk"
VERSION="4.95.0"   # keep in step with docs/control_plane.md
if [ -f "${DEST}/node_modules/openai/package.json" ] && \
   [ "$(node -p "require('${DEST}/node_modules/openai/package.json').version" 2>/dev/null)" = "${VERSION}" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_openai_sdk: npm not found (apt-get install npm)" >&2
  exit 1
fi
mkdir -p "${DEST}"
echo "fetch_openai_sdk: openai@${VERSION}"
(cd "${DEST}" && npm install --silent --no-audit --no-fund --ignore-scripts --prefix "${DEST}" "openai@${VERSION}" >/dev/null)
node -p "require('${DEST}/node_modules/openai/package.json').version" >/dev/null
