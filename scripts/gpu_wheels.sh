#!/usr/bin/env bash
# Fetches, into .whl/, the wheels of cvrl's packages that the GPU machine's
# image lacks (its Python is 3.12; it cannot reach a package index), at the
# versions of requirements-lock.txt. benchmarks/gpu.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
pin() { grep -i -E "^${1//[-_]/[-_]}==" requirements-lock.txt | head -1 || true; }
packages=(grain ml_collections soundfile librosa soxr audioread pooch mir_eval
          libfmp tensorboardX pretty_midi mido decorator synctoolbox music21
          chardet jsonpickle more-itertools webcolors standard-aifc
          standard-sunau dm-tree array-record)
specs=()
for p in "${packages[@]}"; do
  spec="$(pin "$p")"; [ -n "$spec" ] && specs+=("$spec")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --platform any -d .whl "${specs[@]}"
du -sh .whl
