#!/usr/bin/env python3
"""Run the PyTorch reference benchmark on a CUDA GPU, its code unchanged.

    python3 reference_on_cuda.py [--autocast fp16|bf16] [--device cuda|cpu] \
        PATH/TO/pytorch_fomaml_bench.py [its flags...]

The reference script (../shared/bench/pytorch_fomaml_bench.py) is written for the CPU. Here the
model and every tensor it creates go to the GPU (torch's default device), each forward moves its
inputs there, and the script's clock waits for the GPU's queued work before every reading, so a
step is timed to its end rather than to its last kernel launch. Prints the script's JSON line,
with the GPU's peak allocated memory added as `cuda_peak_allocated_mib`.

--autocast runs every forward (loss included) under `torch.autocast(device, dtype)`: matrix
products in half precision, the rest as autocast decides. The reference calls `backward()` itself,
so no GradScaler scales its loss: that saves it a multiply, an unscale and an overflow check per
step, which favours the reference in a speed comparison. --device cpu is for a dry run of the
device script on a machine without a GPU.
"""
import argparse
import contextlib
import io
import json
import runpy
import sys
import time

import torch
from transformers import BertForSequenceClassification

ours = argparse.ArgumentParser(add_help=False)
ours.add_argument("--autocast", choices=["fp16", "bf16"])
ours.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
options, rest = ours.parse_known_args()
script = rest[0]
sys.argv = [script] + rest[1:]
device = options.device
torch.set_default_device(device)
autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(options.autocast)

forward = BertForSequenceClassification.forward


def forward_on_device(self, *args, **kwargs):
    kwargs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kwargs.items()}
    if autocast_dtype is None:
        return forward(self, *args, **kwargs)
    with torch.autocast(device, dtype=autocast_dtype):
        return forward(self, *args, **kwargs)


BertForSequenceClassification.forward = forward_on_device
clock = time.perf_counter


def synchronised_clock():
    if device == "cuda":
        torch.cuda.synchronize()
    return clock()


time.perf_counter = synchronised_clock

stdout = io.StringIO()
with contextlib.redirect_stdout(stdout):
    runpy.run_path(script, run_name="__main__")
result = json.loads(stdout.getvalue().strip().splitlines()[-1])
result["autocast"] = options.autocast
if device == "cuda":
    result["device"] = torch.cuda.get_device_name()
    result["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
else:
    result["device"] = "cpu"
print(json.dumps(result))
