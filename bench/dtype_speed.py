"""Benchmark: bfloat16 against float32 on this CPU, side by side, and what ``vllm.dtype: auto`` picks.

    .venv/bin/python bench/dtype_speed.py [--size 2048] [--model qwen2.5-0.5b] [--prompts 8] [--vllm-timeout 240]

1. One square matmul per dtype with torch (the kernels vLLM's CPU backend leans on).
2. The same small vLLM job (``--prompts`` chat prompts, 32 new tokens each, greedy) once per dtype, each in its own
   process, stopped after ``--vllm-timeout`` seconds: emulated bf16 can take minutes where float32 takes seconds.
It prints the CPU's bf16 flags, the dtype ``auto`` resolves to, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def matmul_seconds(dtype_name: str, size: int) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    a @ a  # first call allocates and picks kernels
    started = time.perf_counter()
    a @ a
    return time.perf_counter() - started


def vllm_job(model: str, dtype: str, prompts: int) -> None:
    """Child process: start the engine, time one generate, print JSON."""
    from datagen.config import SamplingConfig, VLLMConfig
    from datagen.engines import GenerationRequest
    from datagen.engines.vllm_engine import VLLMEngine
    from datagen.models import resolve_model

    started = time.perf_counter()
    engine = VLLMEngine(resolve_model(model), sampling=SamplingConfig(temperature=0.0, max_tokens=32),
                        settings=VLLMConfig(dtype=dtype))
    ready = time.perf_counter() - started
    requests = [GenerationRequest(f"r{i}", ({"role": "user", "content": f"Rewrite in other words, sentence {i}: "
                                             "The old mill by the river was turned into a museum in 1998."},))
                for i in range(prompts)]
    started = time.perf_counter()
    engine.generate(requests)
    print(json.dumps({"ready_s": round(ready, 1), "generate_s": round(time.perf_counter() - started, 1)}), flush=True)
    engine.close()


def timed_child(model: str, dtype: str, prompts: int, timeout: float) -> dict:
    command = [sys.executable, __file__, "--child", dtype, "--model", model, "--prompts", str(prompts)]
    # Its own process group: on a timeout the engine core and worker it started are stopped with it.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return {"timed_out_after_s": timeout}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"failed": stderr.strip().splitlines()[-1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--vllm-timeout", type=float, default=240.0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        vllm_job(args.model, args.child, args.prompts)
        return

    from datagen.engines.precision import NATIVE_BF16_FLAGS, cpu_flags, resolve_dtype

    print(f"native bf16 flags here: {sorted(NATIVE_BF16_FLAGS & cpu_flags()) or 'none'}; "
          f"vllm.dtype auto -> {resolve_dtype('auto', on_cpu=True)}")
    fp32, bf16 = matmul_seconds("float32", args.size), matmul_seconds("bfloat16", args.size)
    print(f"torch {args.size}x{args.size} matmul: float32 {fp32:.3f} s, bfloat16 {bf16:.3f} s, bf16/fp32 = {bf16 / fp32:.1f}x")
    for dtype in ("float32", "bfloat16"):
        print(f"vLLM {args.model}, {args.prompts} prompts x 32 tokens, dtype {dtype}: "
              f"{timed_child(args.model, dtype, args.prompts, args.vllm_timeout)}", flush=True)


if __name__ == "__main__":
    main()
