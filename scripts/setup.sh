#!/usr/bin/env bash
# One-step set-up on a fresh machine: system packages, then a virtual
# environment in .venv with cvrl and its test dependencies at the tested
# versions (requirements-lock.txt; setup.cfg keeps the looser ranges for
# people who install cvrl into an environment of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_system_packages.sh
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c requirements-lock.txt -e '.[test]'
