#!/usr/bin/env bash
# The GPU check, for a session lent a CUDA machine: one unattended command, about 5-8 minutes on one H200.
#   bash scripts/gpu_check.sh            (needs .venv from `make setup`; CI never runs it)
# Prints one table: the dreamdiffusion ci run on CUDA (metrics beside the CPU reference and the check's
# tolerance, wall time beside a CPU run of the same command on this host), the paper-size MAE step
# (samples/s, MFU) and the SD v1.5-shaped generative step at 512 px (s/step, peak memory). Put the
# table in the README.
# Settings: PY (the interpreter), WARMUP=0 when EEGBENCH_CACHE already holds the ci world's models (the
# warm-up run builds them on the CPU, which would otherwise land in the CUDA timing), LOGS=DIR to keep
# every run's log there. A part that fails prints the end of its log; the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export EEGBENCH_CACHE=${EEGBENCH_CACHE:-$PWD/.cache} HF_HUB_OFFLINE=1
out=$(mktemp -d)
trap '[ -n "${LOGS:-}" ] && mkdir -p "$LOGS" && cp "$out"/*.log "$LOGS"/ 2>/dev/null; rm -rf "$out"' EXIT

run() {  # device, timeout (s): wall seconds of the dreamdiffusion ci run, or why there are none
  local start=$SECONDS rc=0
  timeout "$2" "$PY" -m eegbench run --suite dreamdiffusion --scale ci --device "$1" --out "$out/$1" \
    --no-wandb >"$out/$1.log" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then echo $((SECONDS - start))
  elif [ "$rc" = 124 ]; then echo "over budget ($2 s)"
  else echo "failed (exit $rc)"; tail -n 15 "$out/$1.log" >&2; fi
}
if [ "${WARMUP:-1}" != 0 ]; then  # the first run builds the world's models on the CPU: keep that out of the timings
  timeout 400 "$PY" -m eegbench run --suite dreamdiffusion --scale ci --device cuda --out "$out/warm" --no-wandb \
    --set stages.msm.epochs=1 --set stages.generate.epochs=1 >"$out/warm.log" 2>&1 || true
fi
gpu_s=$(run cuda 200)
cpu_s=$(run cpu 180)

"$PY" - "$out" "$gpu_s" "$cpu_s" <<'PY'
import json, sys
from pathlib import Path
from eegbench.track import check
out, gpu_s, cpu_s = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ref = check.load_reference(Path("leaderboards"), "dreamdiffusion", "ci")
print(f"dreamdiffusion ci on CUDA: {gpu_s} s; on this host's CPU: {cpu_s} s")
print(f"{'metric':<28} {'cuda':>7} {'cpu':>7} {'cpu reference':>13} {'tolerance':>9} cuda passes the check")
runs = {device: next(iter(sorted(out.glob(f"{device}/dreamdiffusion/default/*/metrics.json"))), None)
        for device in ("cuda", "cpu")}
summaries = {device: json.loads(path.read_text()) if path else None for device, path in runs.items()}
cpu = {m["metric"]: m["value"] for m in (summaries["cpu"] or {"metrics": []})["metrics"] if m["split"] == "test"}
if summaries["cuda"]:
    rows = check.judge(check.comparisons(ref, check.reference([summaries["cuda"]])))
    for r in (r for r in rows if r["kind"] == "metric"):
        new, c = ("-" if v is None else f"{v:.3f}" for v in (r["new"], cpu.get(r["what"])))
        print(f"{r['what']:<28} {new:>7} {c:>7} {r['ref']:>13.3f} {r['tolerance']:>9.3f} "
              f"{'yes' if r['status'] == 'ok' else 'NO'}")
PY
timeout 150 "$PY" scripts/gpu_steps.py mae sd 2>&1 | tee "$out/steps.log" | grep -v "^\s*$" | tail -n 20
