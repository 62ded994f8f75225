#!/usr/bin/env bash
# The test command (README "Tests", and what .ci/run calls). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m pytest "$@"
