#!/usr/bin/env bash
# Lint and format check (what .ci/run calls after the tests): ruff as configured in pyproject.toml. Fix with
# `ruff check --fix .` and `ruff format .`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
