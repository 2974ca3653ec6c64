#!/usr/bin/env bash
# `meta-bert bench --backend wgpu` beside the PyTorch reference on CUDA (reference_on_cuda.py),
# on one GPU machine, in one go: bert-base-sized and MiniLM-sized models with random weights.
#   bench/gpu_side_by_side.sh BIN REFERENCE_SCRIPT DATA BERT_BASE_DIR MINILM_DIR OUT_DIR
# BIN: a meta-bert binary with wgpu; REFERENCE_SCRIPT: ../shared/bench/pytorch_fomaml_bench.py;
# the model directories hold config.json and tokenizer, no weights. Each run appends one JSON line
# to OUT_DIR/results.jsonl, named by "run", with the GPU's peak used memory (nvidia-smi, sampled
# every 100 ms) as "gpu_peak_used_mib"; every run's stderr goes to OUT_DIR/log.txt. A run that
# outlasts RUN_LIMIT_S seconds (default 150) is stopped and recorded as an error.
set -uo pipefail
bin=$1 reference=$2 data=$3 bert_base=$4 minilm=$5 out=$6
here=$(cd "$(dirname "$0")" && pwd)
limit=${RUN_LIMIT_S:-150}
reference_sizes=(--data "$data" --tasks 2 --num-support 80 --num-query 20 --inner-batch-size 16
  --inner-update-step 1 --max-seq-len 256 --steps 3)
issue_sizes=(--data "$data" --tasks 2 --num-support 16 --num-query 8 --inner-batch-size 16
  --inner-update-step 1 --max-seq-len 256 --steps 3)

run() { # NAME COMMAND...
  local name=$1 line rc peak sampler
  shift
  echo "== $name: $*" >>"$out/log.txt"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$out/$name.mem" &
  sampler=$!
  line=$(timeout "$limit" "$@" 2>>"$out/log.txt" | tail -n 1)
  rc=$?
  kill "$sampler"
  wait "$sampler" 2>/dev/null
  peak=$(sort -n "$out/$name.mem" | tail -n 1)
  rm -f "$out/$name.mem"
  python3 - "$name" "$rc" "$peak" "$line" >>"$out/results.jsonl" <<'PY'
import json, sys
name, rc, peak, line = sys.argv[1:5]
try:
    result = json.loads(line)
except ValueError:
    result = {"error": f"exit {rc} without a JSON line (see log.txt)"}
result.update(run=name, gpu_peak_used_mib=int(peak) if peak.strip().isdigit() else None)
print(json.dumps(result))
PY
  tail -n 1 "$out/results.jsonl"
}

reference=(python3 "$here/reference_on_cuda.py" "$reference")
ours=("$bin" bench --backend wgpu)

run reference-bert-base-max "${reference[@]}" --bert-model "$bert_base" "${reference_sizes[@]}" --padding max
run ours-bert-base-max-equal-work "${ours[@]}" --bert-model "$bert_base" "${reference_sizes[@]}" --padding max --compute-padding
run reference-bert-base-longest "${reference[@]}" --bert-model "$bert_base" "${reference_sizes[@]}" --padding longest
run ours-bert-base-default "${ours[@]}" --bert-model "$bert_base" "${reference_sizes[@]}"
run reference-minilm-max "${reference[@]}" --bert-model "$minilm" "${issue_sizes[@]}" --padding max
run ours-minilm-default "${ours[@]}" --bert-model "$minilm" "${issue_sizes[@]}"
run ours-minilm-max-equal-work "${ours[@]}" --bert-model "$minilm" "${issue_sizes[@]}" --padding max --compute-padding
