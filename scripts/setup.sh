#!/usr/bin/env bash
# Installs what tuneloop needs from Debian 12's apt, skipping what is already installed.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang libclang-rt-14-dev
  libfmt-dev nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev libutf8proc-dev
  libsqlite3-dev libcpp-httplib-dev libtree-sitter-dev libpq-dev postgresql libssl-dev libgit2-dev
  libopenblas-openmp-dev libopenblas0-pthread
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch python3-numpy python3-jinja2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# tree-sitter grammar sources for `tuneloop harvest` come from npm (pinned ABI-14 versions, not vendored).
# A fresh Debian 12 has no npm: take Debian's (machines with another Node.js keep theirs).
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing npm (for the tree-sitter grammar sources)"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends npm
fi
"$(dirname "${BASH_SOURCE[0]}")/fetch_grammars.sh"
