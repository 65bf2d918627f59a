#!/usr/bin/env bash
# The GPU check, for a session lent a CUDA machine: one unattended command, about 6-8 minutes on one H200.
#   bash scripts/gpu_check.sh            (needs .venv from `make setup`; CI never runs it)
# Prints one table: the dreamdiffusion ci run on CUDA (metrics beside the CPU reference and its CI, wall
# time beside a CPU run of the same command on this host), the paper-size MAE step (samples/s, MFU) and
# the SD v1.5-shaped generative step at 512 px (s/step, peak memory). Put the table in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export EEGBENCH_CACHE=${EEGBENCH_CACHE:-$PWD/.cache} HF_HUB_OFFLINE=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() {  # device, timeout (s): wall seconds of the dreamdiffusion ci run, or "over budget"
  local start=$SECONDS
  if timeout "$2" "$PY" -m eegbench run --suite dreamdiffusion --scale ci --device "$1" --out "$out/$1" \
      --no-wandb >"$out/$1.log" 2>&1; then echo $((SECONDS - start)); else echo "over budget ($2 s)"; fi
}
# the foundation models are built (on the CPU) by the first run; a warm-up run keeps that out of the timings
timeout 400 "$PY" -m eegbench run --suite dreamdiffusion --scale ci --device cuda --out "$out/warm" --no-wandb \
  --set stages.msm.epochs=1 --set stages.generate.epochs=1 >/dev/null 2>&1 || true
gpu_s=$(run cuda 300)
cpu_s=$(run cpu 240)

"$PY" - "$out" "$gpu_s" "$cpu_s" <<'PY'
import json, sys
from pathlib import Path
out, gpu_s, cpu_s = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ref = json.loads(Path("leaderboards/dreamdiffusion.ci.reference.json").read_text())["metrics"]
print(f"dreamdiffusion ci on CUDA: {gpu_s} s; on this host's CPU: {cpu_s} s")
print(f"{'metric':<28} {'cuda':>7} {'cpu reference [95% CI]':>26} inside")
for path in sorted(out.glob("cuda/dreamdiffusion/default/*/metrics.json")):
    for m in json.loads(path.read_text())["metrics"]:
        r = ref.get(m["metric"])
        if r:
            inside = r["ci"][0] <= m["value"] <= r["ci"][1]
            print(f"{m['metric']:<28} {m['value']:>7.3f} {r['value']:>8.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] "
                  f"{'yes' if inside else 'NO'}")
PY
"$PY" scripts/gpu_steps.py mae sd
