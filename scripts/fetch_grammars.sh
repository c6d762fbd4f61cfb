#!/usr/bin/env bash
# Fetches the tree-sitter grammar C sources that `tuneloop harvest` compiles in, from the npm registry,
# into third_party/npm/ (ignored by git: nothing is vendored). Versions are pinned to grammars generated
# for tree-sitter ABI 14, the newest that Debian 12's libtree-sitter 0.20.7 loads; cmake/grammars.cmake
# re-checks `#define LANGUAGE_VERSION` and fails the build if a source tree is missing or too new.
# Idempotent: a grammar whose folder already holds src/parser.c is skipped. Uses `npm pack` only (no
# install scripts, no node-gyp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/third_party/npm"

# package@version — keep in step with cmake/grammars.cmake and docs/harvest.md.
GRAMMARS=(
  tree-sitter-python@0.23.6
  tree-sitter-c@0.23.6
  tree-sitter-javascript@0.23.1
  tree-sitter-go@0.23.4
  tree-sitter-rust@0.23.3
  tree-sitter-java@0.23.5
  tree-sitter-cpp@0.23.4
  tree-sitter-bash@0.23.3
  tree-sitter-typescript@0.23.2
)

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_grammars: npm not found; install nodejs + npm (apt-get install npm)" >&2
  exit 1
fi

mkdir -p "${DEST}"
for spec in "${GRAMMARS[@]}"; do
  name="${spec%@*}"
  version="${spec#*@}"
  dir="${DEST}/${name}"
  # typescript ships two grammars (typescript/, tsx/) under one package.
  probe="${dir}/src/parser.c"
  [ "${name}" = "tree-sitter-typescript" ] && probe="${dir}/typescript/src/parser.c"
  if [ -f "${probe}" ] && [ -f "${dir}/.tuneloop-version" ] && [ "$(cat "${dir}/.tuneloop-version")" = "${version}" ]; then
    continue
  fi
  echo "fetch_grammars: ${spec}"
  tmp="$(mktemp -d)"
  (cd "${tmp}" && npm pack --silent "${spec}" >/dev/null)
  rm -rf "${dir}"
  mkdir -p "${dir}"
  tar xzf "${tmp}"/*.tgz -C "${dir}" --strip-components=1
  rm -rf "${tmp}"
  echo "${version}" > "${dir}/.tuneloop-version"
done
echo "fetch_grammars: ${#GRAMMARS[@]} grammars present in ${DEST}"
