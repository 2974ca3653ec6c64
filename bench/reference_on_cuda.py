#!/usr/bin/env python3
"""Run the PyTorch reference benchmark on a CUDA GPU, its code unchanged.

    python3 reference_on_cuda.py PATH/TO/pytorch_fomaml_bench.py [its flags...]

The reference script (../shared/bench/pytorch_fomaml_bench.py) is written for the CPU. Here the
model and every tensor it creates go to the GPU (torch's default device), each forward moves its
inputs there, and the script's clock waits for the GPU's queued work before every reading, so a
step is timed to its end rather than to its last kernel launch. Prints the script's JSON line,
with the GPU's peak allocated memory added as `cuda_peak_allocated_mib`.
"""
import contextlib
import io
import json
import runpy
import sys
import time

import torch
from transformers import BertForSequenceClassification

script = sys.argv[1]
sys.argv = [script] + sys.argv[2:]
torch.set_default_device("cuda")

forward = BertForSequenceClassification.forward


def forward_on_gpu(self, *args, **kwargs):
    return forward(self, *args, **{k: v.cuda() if torch.is_tensor(v) else v for k, v in kwargs.items()})


BertForSequenceClassification.forward = forward_on_gpu
clock = time.perf_counter


def synchronised_clock():
    torch.cuda.synchronize()
    return clock()


time.perf_counter = synchronised_clock

stdout = io.StringIO()
with contextlib.redirect_stdout(stdout):
    runpy.run_path(script, run_name="__main__")
result = json.loads(stdout.getvalue().strip().splitlines()[-1])
result["device"] = torch.cuda.get_device_name()
result["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
print(json.dumps(result))
