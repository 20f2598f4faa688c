#!/usr/bin/env bash
# Re-resolves every Python dependency within setup.cfg's ranges in a fresh
# virtual environment, runs the whole test suite against that set, and only
# then rewrites requirements-lock.txt (a failing set leaves the lock as it was).
#   scripts/refresh_lock.sh            newest releases setup.cfg admits
#   scripts/refresh_lock.sh 'numba==0.68.1'   ... with extra requirements
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e '.[test]' "$@"
new="$(mktemp)"
{
  echo "# The tested set of every Python package cvrl installs (pip constraints)."
  echo "# scripts/setup.sh and CI install from it; scripts/refresh_lock.sh rewrites it."
  echo "# Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m) Linux."
  "$venv/bin/pip" freeze --exclude-editable | grep -v '^-e '
} > "$new"
echo "testing the new set in $venv"
"$venv/bin/python" -m pytest
mv "$new" requirements-lock.txt
echo "requirements-lock.txt updated; run scripts/setup.sh to install it in .venv"
