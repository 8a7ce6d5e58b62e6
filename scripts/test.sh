#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run runs):
#   scripts/test.sh [pytest args...]
# Sets up .venv, builds the CUDA kernels with CMake/nvcc when nvcc is present, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh .venv
.venv/bin/python -m pip install -q -c requirements/constraints.txt -r requirements/test-extra.txt
if [ -f CMakeLists.txt ] && command -v nvcc >/dev/null 2>&1 && command -v cmake >/dev/null 2>&1; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j 2
elif [ "${CI:-}" = "true" ] && [ -f CMakeLists.txt ]; then
    echo "CI: nvcc/cmake not found, CUDA kernels not compiled" >&2
    exit 1
fi
exec .venv/bin/python -m pytest "$@"
