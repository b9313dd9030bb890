#!/usr/bin/env bash
# The GPU check of issue 17, in one call: the GPU-marked tests, the projection and
# double-DIP speed tables, and one 3D reconstruction per method (hio, raar, er, dip)
# of a simulated crystal scored against its ground truth. Writes one results file,
# OUT_DIR/gpu_suite.md (and the same figures as OUT_DIR/gpu_suite.json); docs/speed.md
# ("GPU check") explains it.
set -u

usage() {
    cat <<'EOF'
Usage: bash benchmarks/gpu_suite.sh [--device cuda|cpu] [--smoke] [--out DIR] [--threads N] [--keep-work]

The GPU check of issue 17 in one call, each step bounded by `timeout`:
  1. the GPU-marked tests (pytest -m gpu tests/)
  2. the projection speed table (benchmarks/speed_projections.py)
  3. the double-DIP speed table (benchmarks/speed_dip.py)
  4. one 3D reconstruction per method (hio, raar, er, dip) of a simulated
     crystal (128^3, seed 0), timed and scored against the ground truth
A failed step is recorded and the suite goes on; the exit code is 1 if any
step failed, 2 for a bad option, 130 when interrupted.

Options:
  --device cuda|cpu  device of every step (default: cuda)
  --smoke            the same steps on tiny sizes (2D 64, 3D 16, a 24^3
                     crystal, few iterations): shows the suite works without
                     a GPU; its figures are not GPU figures
  --out DIR          results folder (default: $OUT/gpu_suite when $OUT is set,
                     else benchmarks/out/gpu_suite)
  --threads N        CPU threads of every step (default: 1 on --device cpu,
                     torch's default on cuda)
  --keep-work        keep the scratch folder (simulated scan, reconstructions)
  -h, --help         this text

Results: DIR/gpu_suite.md (date, GPU, torch, each step's figures and
failures), DIR/gpu_suite.json, and each step's output in DIR/gpu_suite_logs/.
The full run (cuda) is sized to finish in under 8 minutes on one H200: the
step timeouts sum to 430 s and no step starts past 450 s.
EOF
}

DEVICE=cuda
SMOKE=0
OUT_DIR=""
THREADS=""
KEEP_WORK=0
ARGS="$*"
while (($#)); do
    case "$1" in
        --device) [[ $# -ge 2 ]] || { echo "gpu_suite: --device needs a value" >&2; exit 2; }; DEVICE=$2; shift 2 ;;
        --device=*) DEVICE=${1#--device=}; shift ;;
        --smoke) SMOKE=1; shift ;;
        --out) [[ $# -ge 2 ]] || { echo "gpu_suite: --out needs a folder" >&2; exit 2; }; OUT_DIR=$2; shift 2 ;;
        --out=*) OUT_DIR=${1#--out=}; shift ;;
        --threads) [[ $# -ge 2 ]] || { echo "gpu_suite: --threads needs a number" >&2; exit 2; }; THREADS=$2; shift 2 ;;
        --threads=*) THREADS=${1#--threads=}; shift ;;
        --keep-work) KEEP_WORK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_suite: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in
    cuda|cuda:[0-9]*|cpu) ;;
    *) echo "gpu_suite: --device must be cuda, cuda:N or cpu, not '$DEVICE'" >&2; exit 2 ;;
esac
if [[ -n "$THREADS" && ! "$THREADS" =~ ^[1-9][0-9]*$ ]]; then
    echo "gpu_suite: --threads must be a positive integer, not '$THREADS'" >&2; exit 2
fi
if [[ -z "$THREADS" && "$DEVICE" == cpu ]]; then
    THREADS=1  # a shared 2-core machine: two threads per process thrash as soon as anyone else runs
fi
for tool in timeout awk date; do
    command -v "$tool" >/dev/null 2>&1 || { echo "gpu_suite: needs '$tool' on PATH" >&2; exit 2; }
done
if command -v python3 >/dev/null 2>&1; then PY=python3
elif command -v python >/dev/null 2>&1; then PY=python
else echo "gpu_suite: needs python3 or python on PATH" >&2; exit 2
fi

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "$OUT_DIR" ]]; then
    if [[ -n "${OUT:-}" ]]; then OUT_DIR="$OUT/gpu_suite"; else OUT_DIR="$REPO_ROOT/benchmarks/out/gpu_suite"; fi
fi
mkdir -p -- "$OUT_DIR" || { echo "gpu_suite: cannot create '$OUT_DIR'" >&2; exit 2; }
OUT_DIR="$(cd -- "$OUT_DIR" && pwd)"
cd -- "$REPO_ROOT" || exit 2

# Sizes. Full run: the figures docs/speed.md asks a GPU for, sized to fit the budget.
if ((SMOKE)); then
    MODE="smoke run on $DEVICE (tiny sizes: not GPU figures)"
    PROJ_SIZES=64; PROJ_SIZES3D=16; PROJ_REPEATS=1
    DIP_SIZES=64; DIP_SIZES3D=16; DIP_STEPS=2; DIP_REPEATS=1
    RECON_N=24; PROJ_ITERATIONS=40; DIP_ITERATIONS=10
    # step timeouts (s); no step starts after DEADLINE (s from the start)
    T_ENV=30; T_TESTS=75; T_PROJ=45; T_DIPSPEED=60; T_SIM=20; T_PROJREC=45; T_DIPREC=150; T_COMPARE=35
    DEADLINE=570
else
    MODE="full run on $DEVICE"
    PROJ_SIZES=256,1024; PROJ_SIZES3D=64,128,256; PROJ_REPEATS=2
    DIP_SIZES=256,512; DIP_SIZES3D=64,128; DIP_STEPS=5; DIP_REPEATS=2
    RECON_N=128; PROJ_ITERATIONS=""; DIP_ITERATIONS=300
    T_ENV=20; T_TESTS=35; T_PROJ=55; T_DIPSPEED=40; T_SIM=20; T_PROJREC=45; T_DIPREC=85; T_COMPARE=40
    DEADLINE=450
fi
KILL_AFTER=5
METHODS=(hio raar er dip)
# Compares run on the CPU (NumPy): beside the next reconstruction on a GPU, one after another on a CPU.
if [[ "$DEVICE" == cpu ]]; then PARALLEL_COMPARE=0; else PARALLEL_COMPARE=1; fi

# Environment: the package from this checkout, and nothing written outside OUT_DIR.
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
if [[ -n "$THREADS" ]]; then
    export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
fi
RESULTS="$OUT_DIR/gpu_suite.md"
RESULTS_JSON="$OUT_DIR/gpu_suite.json"
LOGS="$OUT_DIR/gpu_suite_logs"
mkdir -p -- "$LOGS" || exit 2
rm -f -- "$LOGS"/*.out "$LOGS"/*.err "$LOGS"/*.json
WORK="$(mktemp -d "$OUT_DIR/work.XXXXXX")" || { echo "gpu_suite: cannot create a scratch folder in '$OUT_DIR'" >&2; exit 2; }
mkdir -p -- "$WORK/md" "$WORK/cache" "$WORK/tmp"
export XDG_CACHE_HOME="$WORK/cache" MPLCONFIGDIR="$WORK/cache/matplotlib" TMPDIR="$WORK/tmp" \
    HYPOTHESIS_STORAGE_DIRECTORY="$WORK/cache/hypothesis"

now() { if [[ -n "${EPOCHREALTIME:-}" ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[gpu_suite %s +%ds] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*" >&2; }
SUITE_START="$(now)"
DATE_UTC="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# --- records ---------------------------------------------------------------
STEP_KEYS=(); declare -A STEP_TITLE=() STEP_STATUS=() STEP_SECONDS=() STEP_LIMIT=() STEP_OK=()
declare -A R_PROC=() R_WALL=() R_SPI=() R_ITER=() R_RUNS=() R_ERR=() R_TWIN=() R_RESULT=() COMPARE_PID=()
FAILED=0
FINAL=""

record() {  # KEY TITLE OK(1/0) STATUS SECONDS LIMIT
    local key=$1
    [[ -n "${STEP_TITLE[$key]:-}" ]] || STEP_KEYS+=("$key")
    STEP_TITLE[$key]=$2; STEP_OK[$key]=$3; STEP_STATUS[$key]=$4; STEP_SECONDS[$key]=$5; STEP_LIMIT[$key]=$6
    if [[ "$3" != 1 ]]; then FAILED=$((FAILED + 1)); log "$2: FAILED: $4"; else log "$2: ok ($5 s)"; fi
}

rc_status() {  # RC LIMIT -> text
    case "$1" in
        0) echo ok ;;
        124|137) echo "timed out after $2 s" ;;
        125) echo "skipped: the suite's time budget was spent" ;;
        *) echo "failed (exit $1)" ;;
    esac
}

limit_for() {  # wanted timeout -> timeout within the suite's deadline (0: no time left)
    local left=$((DEADLINE - SECONDS - KILL_AFTER))
    if ((left < 5)); then echo 0; elif (($1 > left)); then echo "$left"; else echo "$1"; fi
}

STEP_RC=0; STEP_TIME=0; STEP_USED_LIMIT=0
run_timed() {  # LIMIT STDOUT STDERR CMD... (sets STEP_RC, STEP_TIME, STEP_USED_LIMIT)
    local limit; limit="$(limit_for "$1")"; local out=$2 err=$3; shift 3
    STEP_USED_LIMIT=$limit
    if ((limit == 0)); then STEP_RC=125; STEP_TIME=0; : >"$out"; : >"$err"; return; fi
    local t0; t0="$(now)"
    timeout --kill-after="$KILL_AFTER" "$limit" "$@" >"$out" 2>"$err"
    STEP_RC=$?
    STEP_TIME="$(since "$t0")"
}

tail_block() {  # FILE: its last lines as a code block
    if [[ -s "$1" ]]; then
        printf '\nLast lines of `%s`:\n\n```\n' "${1#"$OUT_DIR"/}"
        tail -n 15 -- "$1" | cut -c1-300
        printf '```\n'
    fi
}

json_fields() {  # FILE KEY... -> values, one per line ("" where missing); nonzero if FILE is not JSON
    "$PY" -c '
import json, sys
with open(sys.argv[1]) as handle:
    data = json.load(handle)
for key in sys.argv[2:]:
    value = data.get(key) if isinstance(data, dict) else None
    print("" if value is None else value)
' "$@" 2>/dev/null
}

assemble() {  # rewrite the results file from what is known so far
    local tmp="$RESULTS.tmp" key method total
    total="$(since "$SUITE_START")"
    {
        echo "# cdi-dip GPU check (benchmarks/gpu_suite.sh)"
        echo
        if ((SMOKE)); then
            if [[ "$DEVICE" == cpu ]]; then
                echo "**SMOKE RUN ON THE CPU: tiny sizes and few iterations. These are not GPU figures;"
            else
                echo "**SMOKE RUN on $DEVICE: tiny sizes and few iterations, not the GPU check's figures;"
            fi
            echo "the run only shows that every step of the suite works.**"
            echo
        fi
        echo "- date: $DATE_UTC"
        echo "- mode: $MODE"
        echo "- command: \`bash benchmarks/gpu_suite.sh $ARGS\`"
        echo "- checkout: $REPO_ROOT (commit $GIT_COMMIT)"
        cat -- "$WORK/md/env.md" 2>/dev/null
        if [[ -n "$FINAL" ]]; then
            echo "- result: $FINAL, total wall time $total s"
        else
            echo "- result: still running ($total s so far)"
        fi
        echo
        echo "## Steps"
        echo
        echo "| step | status | wall time (s) | timeout (s) |"
        echo "|---|---|---|---|"
        for key in "${STEP_KEYS[@]}"; do
            echo "| ${STEP_TITLE[$key]} | ${STEP_STATUS[$key]} | ${STEP_SECONDS[$key]} | ${STEP_LIMIT[$key]} |"
        done
        echo
        for section in tests proj dipspeed; do
            cat -- "$WORK/md/$section.md" 2>/dev/null
        done
        echo "## 4. 3D reconstructions of a simulated crystal (${RECON_N}^3, seed 0)"
        echo
        echo "\`python -m cdi_dip.cli simulate crystal.cxi --shape $RECON_N,$RECON_N,$RECON_N --seed 0\`, then per method"
        echo "\`python -m cdi_dip.cli reconstruct crystal.cxi --method M --device $DEVICE --json --out DIR --seed 0\`"
        if [[ -n "$PROJ_ITERATIONS" ]]; then
            echo "with \`--iterations $PROJ_ITERATIONS\` for hio/raar/er and \`--iterations $DIP_ITERATIONS\` for dip"
        else
            echo "with the default 880 iterations for hio/raar/er and \`--iterations $DIP_ITERATIONS\` for dip"
        fi
        echo "(the default runs: 4 for hio/raar/er, their best half averaged; 1 for dip), then"
        echo "\`python -m cdi_dip.cli compare RESULT.cxi crystal_truth.npy --json\`."
        echo "Process: the whole command (start-up, reading, preparation, solver, combining the runs, writing);"
        echo "solver: \`wall_s\` of the result (runs and their combination); s/iteration: solver time over all"
        echo "runs' iterations (for dip it includes the HIO warm start and the pre-fit, so it is no per-step time);"
        echo "error: the symmetry-adjusted error against the ground truth (0 is perfect)."
        echo
        echo "| method | process (s) | solver wall_s (s) | s / iteration | iterations (best run) | runs | error vs truth | twin |"
        echo "|---|---|---|---|---|---|---|---|"
        for method in "${METHODS[@]}"; do
            echo "| $method | ${R_PROC[$method]:-n/a} | ${R_WALL[$method]:-n/a} | ${R_SPI[$method]:-n/a} | ${R_ITER[$method]:-n/a} | ${R_RUNS[$method]:-n/a} | ${R_ERR[$method]:-n/a} | ${R_TWIN[$method]:-n/a} |"
        done
        echo
        cat -- "$WORK/md/recon.md" 2>/dev/null
        echo
        echo "Each step's full output: \`gpu_suite_logs/\` beside this file."
    } >"$tmp" && mv -f -- "$tmp" "$RESULTS"
}

write_json() {
    local tsv="$WORK/steps.tsv" rtsv="$WORK/recon.tsv" key method
    : >"$tsv"; : >"$rtsv"
    for key in "${STEP_KEYS[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "${STEP_TITLE[$key]}" "${STEP_OK[$key]}" "${STEP_STATUS[$key]}" \
            "${STEP_SECONDS[$key]}" "${STEP_LIMIT[$key]}" >>"$tsv"
    done
    for method in "${METHODS[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$method" "${R_PROC[$method]:-}" "${R_WALL[$method]:-}" \
            "${R_SPI[$method]:-}" "${R_ITER[$method]:-}" "${R_RUNS[$method]:-}" "${R_ERR[$method]:-}" \
            "${R_TWIN[$method]:-}" >>"$rtsv"
    done
    timeout 30 "$PY" -c '
import json, sys
steps_tsv, recon_tsv, env_json, proj_json, out, *meta = sys.argv[1:]
def number(text):
    try:
        return float(text)
    except ValueError:
        return text or None
steps = []
for line in open(steps_tsv):
    key, title, ok, status, seconds, limit = line.rstrip("\n").split("\t")
    steps.append({"key": key, "title": title, "ok": ok == "1", "status": status,
                  "seconds": number(seconds), "timeout_s": number(limit)})
recon = []
for line in open(recon_tsv):
    method, proc, wall, spi, iters, runs, error, twin = line.rstrip("\n").split("\t")
    recon.append({"method": method, "process_s": number(proc), "wall_s": number(wall),
                  "seconds_per_iteration": number(spi), "iterations": number(iters), "runs": number(runs),
                  "error": number(error), "twin": twin or None})
def load(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
date, mode, device, smoke, args, final, commit = meta
with open(out, "w") as handle:
    json.dump({"date": date, "mode": mode, "device": device, "smoke": smoke == "1", "command": args,
               "commit": commit, "result": final, "environment": load(env_json), "steps": steps,
               "reconstructions": recon, "speed_projections": load(proj_json)}, handle, indent=1)
' "$tsv" "$rtsv" "$LOGS/env.json" "$LOGS/speed_projections.json" "$RESULTS_JSON" \
        "$DATE_UTC" "$MODE" "$DEVICE" "$SMOKE" "$ARGS" "$FINAL" "$GIT_COMMIT" \
        || log "could not write $RESULTS_JSON (the markdown file has everything)"
}

cleanup() {
    local method
    for method in "${!COMPARE_PID[@]}"; do
        kill "${COMPARE_PID[$method]}" 2>/dev/null
    done
    if ((KEEP_WORK)); then
        log "scratch kept: $WORK"
    else
        rm -rf -- "$WORK"
    fi
}
interrupted() {
    trap - INT TERM
    FINAL="interrupted"
    log "interrupted"
    assemble
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

GIT_COMMIT="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ "$GIT_COMMIT" != unknown ]] && ! git -C "$REPO_ROOT" diff-index --quiet HEAD -- 2>/dev/null; then
    GIT_COMMIT="$GIT_COMMIT + uncommitted changes"
fi
log "results: $RESULTS ($MODE)"

# --- 0. environment ----------------------------------------------------------
{
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "- nvidia-smi: $(timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
    else
        echo "- nvidia-smi: not found"
    fi
    cpu_model="$(awk -F: '/^model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null)"
    echo "- CPU: ${cpu_model:-unknown}, $(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo '?') cores; threads per step: ${THREADS:-torch default}"
} >"$WORK/md/env.md"
run_timed "$T_ENV" "$LOGS/env.json" "$LOGS/env.err" "$PY" -c '
import json, sys
import torch
import cdi_dip
device = sys.argv[1]
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "cdi_dip": getattr(cdi_dip, "__version__", "?"),
        "cdi_dip_path": cdi_dip.__file__, "threads": torch.get_num_threads()}
if torch.cuda.is_available():
    info["device_name"] = torch.cuda.get_device_name(0)
    info["cudnn"] = torch.backends.cudnn.version()
try:  # the CPU kernels compile at first use: here, into the fresh cache, rather than inside a timing
    from cdi_dip.solvers import fused
    info["fused_c_kernels"] = fused._load_c_library() is not None
except Exception as exc:
    info["fused_c_kernels"] = "unknown: " + str(exc)
print(json.dumps(info))
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("--device " + device + " but torch sees no CUDA device")
' "$DEVICE"
ENV_STATUS="$(rc_status "$STEP_RC" "$STEP_USED_LIMIT")"
if [[ -s "$LOGS/env.json" ]]; then
    "$PY" -c '
import json, sys
info = json.load(open(sys.argv[1]))
print("- torch {torch} (CUDA {cuda}, cuDNN {cudnn}), Python {python}, cdi_dip {cdi_dip} from {cdi_dip_path}; "
      "fused C kernels (CPU): {kernels}".format(cudnn=info.get("cudnn"), kernels=info.get("fused_c_kernels"),
                                               **{k: v for k, v in info.items() if k != "cudnn"}))
print("- torch.cuda.get_device_name: " + info.get("device_name", "no CUDA device"))
' "$LOGS/env.json" >>"$WORK/md/env.md" 2>/dev/null
fi
if [[ "$STEP_RC" != 0 ]]; then
    {
        echo "- environment check: $ENV_STATUS"
        tail -n 3 -- "$LOGS/env.err" | sed 's/^/  > /'
    } >>"$WORK/md/env.md"
fi
record env "0. environment (torch, CUDA)" "$([[ $STEP_RC == 0 ]] && echo 1 || echo 0)" "$ENV_STATUS" "$STEP_TIME" "$STEP_USED_LIMIT"
assemble

# --- 1. GPU-marked tests -----------------------------------------------------
run_timed "$T_TESTS" "$LOGS/tests.out" "$LOGS/tests.err" \
    "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/
status="$(rc_status "$STEP_RC" "$STEP_USED_LIMIT")"
summary="$(grep -E '(passed|failed|skipped|deselected|error)' "$LOGS/tests.out" | tail -n 1)"
if [[ "$STEP_RC" == 0 && "$DEVICE" != cpu ]] && ! [[ "$summary" == *passed* && "$summary" != *skipped* ]]; then
    STEP_RC=1; status="failed (--device $DEVICE, but not every GPU-marked test ran and passed)"
fi
{
    echo "## 1. GPU-marked tests"
    echo
    echo "\`python -m pytest -q -p no:cacheprovider -m gpu tests/\` (tests/conftest.py skips them without CUDA):"
    echo "**$status**${summary:+: $summary}"
    [[ "$STEP_RC" == 0 ]] || { tail_block "$LOGS/tests.out"; tail_block "$LOGS/tests.err"; }
    echo
} >"$WORK/md/tests.md"
record tests "1. GPU-marked tests" "$([[ $STEP_RC == 0 ]] && echo 1 || echo 0)" "$status" "$STEP_TIME" "$STEP_USED_LIMIT"
assemble

# --- 2. projection speed table -----------------------------------------------
proj_args=(--device "$DEVICE" --sizes "$PROJ_SIZES" --sizes3d "$PROJ_SIZES3D" --repeats "$PROJ_REPEATS"
           --json "$LOGS/speed_projections.json")
[[ -n "$THREADS" ]] && proj_args+=(--threads "$THREADS")
run_timed "$T_PROJ" "$LOGS/speed_projections.out" "$LOGS/speed_projections.err" \
    "$PY" benchmarks/speed_projections.py "${proj_args[@]}"
status="$(rc_status "$STEP_RC" "$STEP_USED_LIMIT")"
{
    echo "## 2. Projection iterations against the FFT floor"
    echo
    echo "\`python benchmarks/speed_projections.py ${proj_args[*]}\`: **$status**." | sed "s|$LOGS/|gpu_suite_logs/|g"
    echo "Each cell: time per iteration through the real solver and, in brackets, its ratio to one"
    echo "forward plus one inverse complex64 FFT of the frame (target at most 1.2x); docs/speed.md explains."
    echo
    grep -E '^(machine:|\|)' "$LOGS/speed_projections.out"
    [[ "$STEP_RC" == 0 ]] || tail_block "$LOGS/speed_projections.err"
    echo
} >"$WORK/md/proj.md"
record proj "2. projection speed table" "$([[ $STEP_RC == 0 ]] && echo 1 || echo 0)" "$status" "$STEP_TIME" "$STEP_USED_LIMIT"
assemble

# --- 3. double-DIP speed table -----------------------------------------------
dip_args=(--device "$DEVICE" --sizes "$DIP_SIZES" --sizes3d "$DIP_SIZES3D" --steps "$DIP_STEPS" --repeats "$DIP_REPEATS")
[[ -n "$THREADS" ]] && dip_args+=(--threads "$THREADS")
run_timed "$T_DIPSPEED" "$LOGS/speed_dip.out" "$LOGS/speed_dip.err" \
    "$PY" benchmarks/speed_dip.py "${dip_args[@]}"
status="$(rc_status "$STEP_RC" "$STEP_USED_LIMIT")"
{
    echo "## 3. The double DIP's fit step"
    echo
    echo "\`python benchmarks/speed_dip.py ${dip_args[*]}\`: **$status**."
    echo "One Adam step of the data fit with the default networks against the frame's FFT pair."
    echo
    grep -E '^(machine:|\|)' "$LOGS/speed_dip.out"
    [[ "$STEP_RC" == 0 ]] || tail_block "$LOGS/speed_dip.err"
    echo
} >"$WORK/md/dipspeed.md"
record dipspeed "3. double-DIP speed table" "$([[ $STEP_RC == 0 ]] && echo 1 || echo 0)" "$status" "$STEP_TIME" "$STEP_USED_LIMIT"
assemble

# --- 4. 3D reconstructions ---------------------------------------------------
SCAN="$WORK/crystal.cxi"
TRUTH="$WORK/crystal_truth.npy"
: >"$WORK/md/recon.md"
run_timed "$T_SIM" "$LOGS/simulate.json" "$LOGS/simulate.err" \
    "$PY" -m cdi_dip.cli simulate "$SCAN" --shape "$RECON_N,$RECON_N,$RECON_N" --seed 0 --json
status="$(rc_status "$STEP_RC" "$STEP_USED_LIMIT")"
SIM_OK=0
if [[ "$STEP_RC" == 0 && -s "$SCAN" && -s "$TRUTH" ]]; then
    SIM_OK=1
elif [[ "$STEP_RC" == 0 ]]; then
    status="failed (no scan or ground truth written)"
fi
if ((!SIM_OK)); then
    { echo "Simulation: **$status**"; tail_block "$LOGS/simulate.err"; echo; } >>"$WORK/md/recon.md"
fi
record simulate "4. simulate a ${RECON_N}^3 crystal" "$SIM_OK" "$status" "$STEP_TIME" "$STEP_USED_LIMIT"
assemble

finish_compare() {  # METHOD: wait for its compare, record its figures
    local method=$1 pid=${COMPARE_PID[$1]:-} rc status error="" twin="" seconds limit
    [[ -n "$pid" ]] || return 0
    wait "$pid" 2>/dev/null
    unset "COMPARE_PID[$method]"
    rc="$(cat -- "$WORK/compare_$method.rc" 2>/dev/null || echo 1)"
    seconds="$(cat -- "$WORK/compare_$method.seconds" 2>/dev/null || echo n/a)"
    limit="$(cat -- "$WORK/compare_$method.limit" 2>/dev/null || echo n/a)"
    status="$(rc_status "$rc" "$limit")"
    local ok=0
    if [[ "$rc" == 0 ]]; then
        { read -r error; read -r twin; } < <(json_fields "$LOGS/compare_$method.json" error twin)
        if [[ -n "${error:-}" ]]; then
            ok=1
            R_ERR[$method]="$(awk -v e="$error" 'BEGIN { printf "%.4f", e }')"
            R_TWIN[$method]="$twin"
        else
            status="failed (no error in the output)"
        fi
    fi
    if ((!ok)); then
        R_ERR[$method]="compare $status"
        { echo "compare $method: **$status**"; tail_block "$LOGS/compare_$method.err"; echo; } >>"$WORK/md/recon.md"
    fi
    record "compare_$method" "4. compare $method with the truth$( ((PARALLEL_COMPARE)) && echo ' (beside the next step)')" \
        "$ok" "$status" "$seconds" "$limit"
}

start_compare() {  # METHOD RESULT
    local method=$1 result=$2 limit
    limit="$(limit_for "$T_COMPARE")"
    echo "$limit" >"$WORK/compare_$method.limit"
    log "compare $method: start (timeout $limit s)"
    (
        trap - INT TERM EXIT
        if ((limit == 0)); then
            echo 125 >"$WORK/compare_$method.rc"; echo 0 >"$WORK/compare_$method.seconds"; exit 0
        fi
        t0="$(now)"
        timeout --kill-after="$KILL_AFTER" "$limit" "$PY" -m cdi_dip.cli compare "$result" "$TRUTH" --json \
            >"$LOGS/compare_$method.json" 2>"$LOGS/compare_$method.err"
        echo $? >"$WORK/compare_$method.rc"
        since "$t0" >"$WORK/compare_$method.seconds"
    ) &
    COMPARE_PID[$method]=$!
    ((PARALLEL_COMPARE)) || finish_compare "$method"
}

previous=""
for method in "${METHODS[@]}"; do
    title="4. reconstruct $method"
    if [[ "$method" == dip ]]; then
        limit=$T_DIPREC; iteration_args=(--iterations "$DIP_ITERATIONS")
    else
        limit=$T_PROJREC; iteration_args=(${PROJ_ITERATIONS:+--iterations "$PROJ_ITERATIONS"})
    fi
    if ((!SIM_OK)); then
        R_PROC[$method]="not run"
        record "recon_$method" "$title" 0 "not run: no simulated crystal" 0 0
        assemble
        continue
    fi
    log "$title: start"
    run_timed "$limit" "$LOGS/reconstruct_$method.json" "$LOGS/reconstruct_$method.err" \
        "$PY" -m cdi_dip.cli reconstruct "$SCAN" --method "$method" --device "$DEVICE" --json \
        --out "$WORK/recon_$method" --seed 0 "${iteration_args[@]}"
    status="$(rc_status "$STEP_RC" "$STEP_USED_LIMIT")"
    R_PROC[$method]=$STEP_TIME
    ok=0
    result=""; rstatus=""; wall=""; spi=""; iters=""; runs=""
    if [[ "$STEP_RC" == 0 ]]; then
        { read -r result; read -r rstatus; read -r wall; read -r spi; read -r iters; read -r runs; } < <(
            json_fields "$LOGS/reconstruct_$method.json" output status wall_s seconds_per_iteration iterations runs)
        if [[ "${rstatus:-}" == ok && -s "${result:-}" ]]; then
            ok=1
            R_WALL[$method]="$(awk -v v="$wall" 'BEGIN { printf "%.1f", v }')"
            R_SPI[$method]="$(awk -v v="$spi" 'BEGIN { printf "%.3g", v }')"
            R_ITER[$method]=$iters; R_RUNS[$method]=$runs
        else
            status="failed (result status '${rstatus:-none}', output '${result:-none}')"
        fi
    fi
    if ((!ok)); then
        R_PROC[$method]="$status"
        { echo "reconstruct $method: **$status**"; tail_block "$LOGS/reconstruct_$method.err"; echo; } >>"$WORK/md/recon.md"
    fi
    record "recon_$method" "$title" "$ok" "$status" "$STEP_TIME" "$STEP_USED_LIMIT"
    # The previous compare ran beside this reconstruction; collect it before starting the next.
    [[ -n "$previous" ]] && finish_compare "$previous"
    previous=""
    if ((ok)); then
        start_compare "$method" "$result"
        ((PARALLEL_COMPARE)) && previous=$method
    else
        R_ERR[$method]="not compared"
    fi
    assemble
done
[[ -n "$previous" ]] && finish_compare "$previous"

# --- done -------------------------------------------------------------------
if ((FAILED)); then
    FINAL="$FAILED step(s) FAILED (exit 1)"; code=1
else
    FINAL="all ${#STEP_KEYS[@]} steps passed (exit 0)"; code=0
fi
assemble
write_json
log "done in $(since "$SUITE_START") s: $FINAL; results: $RESULTS"
exit "$code"
