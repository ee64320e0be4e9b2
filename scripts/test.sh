#!/usr/bin/env bash
# Run the whole test suite: installs what is missing, starts PostgreSQL on loopback, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/pg.sh
export TUNEGATE_CHROMIUM=${TUNEGATE_CHROMIUM:-$(command -v chromium || true)}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# In CI every marked test must run: a missing PostgreSQL or browser is a failure, not a skip.
if [ "${CI:-}" = "true" ]; then export TUNEGATE_REQUIRE_ALL=1; fi
python3 -m pytest "$@"
