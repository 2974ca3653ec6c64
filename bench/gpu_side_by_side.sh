#!/usr/bin/env bash
# meta-bert beside the PyTorch reference on one NVIDIA GPU, in one go (issue 19's device check):
# bert-base config (random weights) at the reference's sizes, 2 tasks x 80 support + 20 query,
# inner batch 16, one inner epoch, 256 tokens.
#
#   bench/gpu_side_by_side.sh BIN BIN_WGSL REFERENCE_SCRIPT DATA BERT_BASE_DIR OUT_DIR
#
# BIN: meta-bert built with `--features vulkan` (SPIR-V on a Vulkan adapter that allows it);
# BIN_WGSL: meta-bert built with its default features (WGSL only; with the vulkan feature every
# such Vulkan adapter gets SPIR-V, so WGSL needs its own build);
# REFERENCE_SCRIPT: ../shared/bench/pytorch_fomaml_bench.py; BERT_BASE_DIR: config.json and
# tokenizer, no weights. (`--backend tch` runs LibTorch on the CPU, so it has no row here.)
#
# Runs, in this order (equal work: --padding max --compute-padding, every row padded to 256 as
# the reference pads; default: each command's own defaults, on a GPU backend sequence-length
# buckets with padding computed):
#   reference f32, reference under torch.autocast(fp16);
#   ours WGSL f32 (equal work, default), SPIR-V f32 (equal work, default),
#   SPIR-V f16 (equal work, default), then SPIR-V f16 default again with the autotune and kernel
#   caches the earlier runs left (the warm first step).
# Each run appends one JSON line to OUT_DIR/results.jsonl, named by "run", with the GPU's peak
# used memory (nvidia-smi, every 100 ms) as "gpu_peak_used_mib"; stderr goes to OUT_DIR/log.txt.
# meta-bert's line carries "warmup_seconds" (the first step: autotuning, kernel compilation)
# apart from the timed steps. The runs work in OUT_DIR/work, outside any Cargo workspace, with
# XDG_CACHE_HOME=OUT_DIR/cache, so cubecl's autotune results and SPIR-V kernels land in
# OUT_DIR/cache/cubecl and come back with OUT_DIR; a CACHE_IN directory of an earlier run is
# copied there first (a warm start).
#
# Budget: issue 19 gives this script 8 minutes of device time. A run that outlasts RUN_LIMIT_S
# seconds (default 100) is stopped and recorded as an error, and once TOTAL_LIMIT_S (default
# 450) have passed the remaining runs are recorded as skipped.
#
# DRY_RUN=1 proves the script without a GPU: the reference on the CPU, ours on whatever wgpu
# adapter there is (Mesa's lavapipe), the model DRY_MODEL (config and tokenizer: random weights
# on both sides) and tiny tasks. lavapipe crashes compiling cubecl's SPIR-V, so a dry run gives
# the WGSL binary as BIN too and runs the "spirv" rows with --backend wgpu: they then prove the
# f16 path and the warm cache on WGSL.
set -uo pipefail
bin=$(realpath "$1") bin_wgsl=$(realpath "$2") reference=$(realpath "$3") data=$(realpath "$4")
bert_base=$(realpath "$5") out=$(mkdir -p "$6" && realpath "$6")
here=$(cd "$(dirname "$0")" && pwd)
limit=${RUN_LIMIT_S:-100}
total_limit=${TOTAL_LIMIT_S:-450}
started=$SECONDS

sizes=(--data "$data" --tasks 2 --num-support 80 --num-query 20 --inner-batch-size 16
  --inner-update-step 1 --max-seq-len 256 --steps 3)
reference_device=cuda
spirv_backend=vulkan
if [ "${DRY_RUN:-0}" = 1 ]; then
  bert_base=$(realpath "${DRY_MODEL:?DRY_RUN needs DRY_MODEL, a small model directory}")
  sizes=(--data "$data" --tasks 1 --num-support 4 --num-query 2 --inner-batch-size 4
    --inner-update-step 1 --max-seq-len 32 --steps 1)
  reference_device=cpu
  spirv_backend=wgpu
fi

mkdir -p "$out/work" "$out/cache"
if [ -n "${CACHE_IN:-}" ] && [ -d "$CACHE_IN" ]; then
  cp -r "$CACHE_IN"/. "$out/cache/"
fi
export XDG_CACHE_HOME=$out/cache
cd "$out/work" || exit 1
: >"$out/results.jsonl"
command -v nvidia-smi >/dev/null && nvidia-smi >"$out/nvidia-smi.txt" 2>&1

record() { # NAME RC PEAK LINE (the JSON line, else what went wrong)
  python3 - "$@" >>"$out/results.jsonl" <<'PY'
import json, sys
name, rc, peak, line = sys.argv[1:5]
try:
    result = json.loads(line)
except ValueError:
    result = {"error": f"exit {rc}: {line}" if line else f"exit {rc} (see log.txt)"}
result.update(run=name, gpu_peak_used_mib=int(peak) if peak.strip().isdigit() else None)
print(json.dumps(result))
PY
  tail -n 1 "$out/results.jsonl"
}

run() { # NAME COMMAND...
  local name=$1 line rc peak="" sampler=""
  shift
  if ((SECONDS - started > total_limit)); then
    record "$name" 0 "" "skipped: the script's ${total_limit} s were spent"
    return
  fi
  echo "== $name: $*" >>"$out/log.txt"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$out/$name.mem" &
    sampler=$!
  fi
  line=$(timeout "$limit" "$@" 2>"$out/$name.err" | tail -n 1)
  rc=$?
  cat "$out/$name.err" >>"$out/log.txt"
  if [ "$rc" -ne 0 ]; then
    line=$(tail -n 1 "$out/$name.err")
  fi
  rm -f "$out/$name.err"
  if [ -n "$sampler" ]; then
    kill "$sampler"
    wait "$sampler" 2>/dev/null
    peak=$(sort -n "$out/$name.mem" | tail -n 1)
    rm -f "$out/$name.mem"
  fi
  record "$name" "$rc" "$peak" "$line"
}

reference_run=(python3 "$here/reference_on_cuda.py" --device "$reference_device")
equal_work=(--padding max --compute-padding)

run reference-f32 "${reference_run[@]}" "$reference" --bert-model "$bert_base" "${sizes[@]}" --padding max
run reference-autocast-fp16 "${reference_run[@]}" --autocast fp16 "$reference" --bert-model "$bert_base" "${sizes[@]}" --padding max
for variant in "wgsl f32 $bin_wgsl wgpu" "spirv f32 $bin $spirv_backend" "spirv f16 $bin $spirv_backend"; do
  read -r compiler precision binary backend <<<"$variant"
  ours=("$binary" bench --backend "$backend" --precision "$precision" --bert-model "$bert_base" "${sizes[@]}")
  run "ours-$compiler-$precision-equal-work" "${ours[@]}" "${equal_work[@]}"
  run "ours-$compiler-$precision-default" "${ours[@]}"
done
run ours-spirv-f16-default-warm-cache "$bin" bench --backend "$spirv_backend" --precision f16 --bert-model "$bert_base" "${sizes[@]}"
echo "done in $((SECONDS - started)) s; caches in $out/cache" | tee -a "$out/log.txt"
