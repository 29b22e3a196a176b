"""Benchmark: datagen against what users would pick instead, on the same seeds, model, prompts and checks.

Engines, each run in its own child process one after the other (one engine in memory at a time):

1. ``datagen``: ``pipeline.generate`` with its defaults (vllm engine, joint mode, shards of 64 seeds,
   prefix caching, structured outputs), writing real shards and a manifest;
2. ``hf``: a plain transformers ``generate`` loop, batch 16, chat template, left padding, once per dtype
   (``--hf-dtypes``: bf16, which uses AMX on this CPU, and fp32), the model
   loaded from the bf16 folder datagen prepared;
3. ``llamacpp``: the llama.cpp server (``python -m llama_cpp.server``, ``--n_threads 2 --n_ctx 2048``)
   on the embedded GGUF, driven by the ``openai`` client with 16 concurrent chat requests.

Every engine gets the chat messages datagen renders from its own templates, the same ``max_tokens``,
temperature and top_p, and every completion goes through datagen's own parse + validate
(``validate_seed``), so rows/s counts the same accepted rows everywhere. Engine start-up (model load,
server start) is excluded from every side and reported apart; each side first completes a few warm-up
seeds that are not measured.

    .venv/bin/python bench/vs_peers.py [--limit 96] [--task sts] [--engines datagen,hf,llamacpp]

Prints rows/s, output tok/s and datagen's ratio over each peer (target >= 3.5x in rows/s).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tapped_engine import TappedEngine  # bench/ is on sys.path when a benchmark runs as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"
WARMUP_SEEDS = 4
HF_BATCH = 16
CONCURRENCY = 16


# ---------------------------------------------------------------- shared set-up


def load_job(task: str, limit: int, seeds_path: Path):
    """Config, templates, measured seeds and warm-up seeds, exactly as datagen would use them."""
    from datagen.config import load_config
    from datagen.generation.prompts import load_templates
    from datagen.dataset.seeds import read_seeds

    config = load_config(REPO / "pipelines" / f"{task}.yaml", {"limit": limit})
    templates = load_templates(task, config.mode)
    seeds = [s for s in read_seeds(seeds_path, limit=limit + WARMUP_SEEDS) if not s.problem]
    return config, templates, seeds[:limit], seeds[limit:]


def requests_for(config, templates, seeds):
    from datagen.generation.prompts import render_requests

    return render_requests(templates, config.task, config.mode, [(str(s.index), s.text) for s in seeds])


def validate(config, templates, seeds, completions) -> dict:
    """datagen's own parse + validate over any engine's completions: accepted rows and reject reasons."""
    from datagen.dataset.manifest import count_reasons
    from datagen.generation.rows import RunContext, ShardResult, validate_seed

    ctx = RunContext(config.task, config.mode, "bench", "bench")
    by_id = {}
    for completion in completions:
        by_id.setdefault(completion.request_id, []).append(completion)
    result, seen = ShardResult(), set()
    for seed in seeds:
        validate_seed(seed, {name: by_id[f"{seed.index}/{name}"] for name in templates}, config, ctx, seen, result)
    return {"rows": len(result.rows), "rejects": len(result.rejects), "reasons": count_reasons(result.rejects)}


def summarise(name, seconds, completions, verdict, startup_s, extra=None) -> dict:
    tokens = sum(c.completion_tokens for c in completions)
    prompt = sum(c.prompt_tokens for c in completions)
    return {
        "engine": name, "seconds": seconds, "startup_s": startup_s, "requests": len(completions),
        "output_tokens": tokens, "prompt_tokens": prompt, "tok_s": tokens / seconds,
        "rows_s": verdict["rows"] / seconds, **verdict, **(extra or {}),
    }


# ---------------------------------------------------------------- (1) datagen


def run_datagen(task: str, limit: int, seeds_path: Path) -> dict:
    from datagen.engines import build_engine, resolve_engine_model
    from datagen.generation.run import generate

    config, templates, seeds, warmup = load_job(task, limit, seeds_path)
    started = time.perf_counter()
    engine = build_engine(config, resolve_engine_model(config))
    startup = time.perf_counter() - started
    engine.generate(requests_for(config, templates, warmup))
    counting = TappedEngine(engine)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = generate(config, seeds_path, Path(out), engine_factory=lambda c, m: counting)
        seconds = time.perf_counter() - started
    verdict = {"rows": summary.rows, "rejects": summary.rejects, "reasons": summary.reject_reasons}
    return summarise("datagen (vllm)", seconds, counting.completions, verdict, startup,
                     {"config": f"mode={config.mode} shard_rows={config.shard_rows} prefix_caching="
                                f"{config.vllm.enable_prefix_caching} structured_outputs={config.mode == 'joint'}"})


# ---------------------------------------------------------------- (2) plain transformers loop


def run_hf(task: str, limit: int, seeds_path: Path, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datagen.engines.base import Completion
    from datagen.models import resolve_model

    config, templates, seeds, warmup = load_job(task, limit, seeds_path)
    path = str(resolve_model(config.model).path)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    startup = time.perf_counter() - started
    sampling = config.sampling

    def complete(requests):
        out = []
        for i in range(0, len(requests), HF_BATCH):
            batch = requests[i : i + HF_BATCH]
            texts = [tokenizer.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True)
                     for r in batch]
            inputs = tokenizer(texts, return_tensors="pt", padding=True)
            with torch.inference_mode():
                generated = model.generate(**inputs, max_new_tokens=sampling.max_tokens, do_sample=True,
                                           temperature=sampling.temperature, top_p=sampling.top_p,
                                           pad_token_id=tokenizer.pad_token_id)
            prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
            for request, row, prompt_len in zip(batch, generated[:, inputs["input_ids"].shape[1]:], prompt_lengths):
                ids = row.tolist()
                stop = next((k for k, t in enumerate(ids) if t in (tokenizer.eos_token_id, tokenizer.pad_token_id)), None)
                kept = ids if stop is None else ids[:stop]
                finish = "length" if stop is None else "stop"
                out.append(Completion(request.request_id, tokenizer.decode(kept, skip_special_tokens=True), finish,
                                      prompt_len, len(kept) + (0 if stop is None else 1)))
        return out

    torch.manual_seed(0)
    complete(requests_for(config, templates, warmup))
    started = time.perf_counter()
    completions = complete(requests_for(config, templates, seeds))
    verdict = validate(config, templates, seeds, completions)
    seconds = time.perf_counter() - started
    return summarise(f"transformers generate (batch {HF_BATCH}, {dtype})", seconds, completions, verdict, startup,
                     {"torch_threads": torch.get_num_threads()})


# ---------------------------------------------------------------- (3) llama.cpp server


def gguf_path(model: str) -> Path:
    """The embedded GGUF, assembled (and sha256-checked) once into datagen's cache."""
    from datagen.models import assemble_gguf, data_home, get_spec, locate_parts

    spec = get_spec(model)
    dest = data_home() / "gguf" / f"{spec.name}.gguf"
    if not (dest.is_file() and dest.stat().st_size == spec.size):
        dest.parent.mkdir(parents=True, exist_ok=True)
        assemble_gguf(spec, locate_parts(spec), dest)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"server at {url} not ready after {timeout}s")


def run_llamacpp(task: str, limit: int, seeds_path: Path, schema: bool) -> dict:
    from openai import OpenAI

    from datagen.engines.base import Completion

    config, templates, seeds, warmup = load_job(task, limit, seeds_path)
    gguf = gguf_path(config.model)
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--n_threads", "2", "--n_ctx", "2048"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", proc)
        startup = time.perf_counter() - started
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=600, max_retries=0)
        sampling = config.sampling

        def one(request):
            extra = {}
            if schema and request.json_schema:
                extra["response_format"] = {"type": "json_object", "schema": request.json_schema}
            reply = client.chat.completions.create(
                model="x", messages=list(request.messages), max_tokens=sampling.max_tokens,
                temperature=sampling.temperature, top_p=sampling.top_p, **extra)
            choice = reply.choices[0]
            return Completion(request.request_id, choice.message.content or "", choice.finish_reason,
                              reply.usage.prompt_tokens, reply.usage.completion_tokens)

        def complete(requests):
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                return list(pool.map(one, requests))

        complete(requests_for(config, templates, warmup))
        started = time.perf_counter()
        completions = complete(requests_for(config, templates, seeds))
        verdict = validate(config, templates, seeds, completions)
        seconds = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return summarise(f"llama.cpp server ({CONCURRENCY} concurrent{', json schema' if schema else ''})", seconds,
                     completions, verdict, startup)


# ---------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    parser.add_argument("--limit", type=int, default=96)
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    parser.add_argument("--engines", default="datagen,hf,llamacpp")
    parser.add_argument("--hf-dtypes", default="bfloat16,float32",
                        help="one transformers run per dtype (bf16 uses AMX here; fp32 is the classic CPU path)")
    parser.add_argument("--llamacpp-schema", action=argparse.BooleanOptionalAction, default=True,
                        help="send the joint JSON schema as response_format (llama.cpp grammar), like datagen does")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.seeds.is_file():
        sys.exit(f"seed file {args.seeds} not found; pass --seeds FILE")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if args.child:
        runners = {
            "datagen": lambda: run_datagen(args.task, args.limit, args.seeds),
            "hf": lambda: run_hf(args.task, args.limit, args.seeds, args.hf_dtypes),
            "llamacpp": lambda: run_llamacpp(args.task, args.limit, args.seeds, args.llamacpp_schema),
        }
        print("RESULT " + json.dumps(runners[args.child]()), flush=True)
        return
    results = []
    children = [(name, dtype) for name in args.engines.split(",")
                for dtype in (args.hf_dtypes.split(",") if name == "hf" else [""])]
    for name, dtype in children:
        cmd = [sys.executable, __file__, "--child", name, "--limit", str(args.limit), "--task", args.task,
               "--seeds", str(args.seeds), "--hf-dtypes", dtype,
               "--llamacpp-schema" if args.llamacpp_schema else "--no-llamacpp-schema"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1][len("RESULT "):]))
        print(f"done: {results[-1]['engine']} rows/s={results[-1]['rows_s']:.3f} ({time.strftime('%H:%M:%S')})",
              flush=True)
    print_table(args, results)


def print_table(args, results) -> None:
    print(f"\ntask={args.task} seeds={args.limit} (wiki1m head; +{WARMUP_SEEDS} warm-up seeds not measured); "
          "start-up excluded from every side")
    print(f"{'engine':<46} {'rows':>5} {'rejects':>7} {'sec':>7} {'rows/s':>7} {'out tok/s':>9} "
          f"{'prompt tok/row':>14} {'start s':>7} {'datagen x':>9}")
    ours = next((r for r in results if r["engine"].startswith("datagen")), None)
    for r in results:
        ratio = f"{ours['rows_s'] / r['rows_s']:.2f}x" if ours and r is not ours and r["rows_s"] else "-"
        per_row = r["prompt_tokens"] / max(r["rows"], 1)
        print(f"{r['engine']:<46} {r['rows']:>5} {r['rejects']:>7} {r['seconds']:>7.1f} {r['rows_s']:>7.3f} "
              f"{r['tok_s']:>9.1f} {per_row:>14.0f} {r['startup_s']:>7.1f} {ratio:>9}")
    for r in results:
        print(f"  {r['engine']}: reject reasons {r['reasons']}" + (f"; {r['config']}" if "config" in r else ""))
    if ours:
        for r in results:
            if r is not ours and r["tok_s"]:
                print(f"  datagen / {r['engine']}: rows/s {ours['rows_s'] / max(r['rows_s'], 1e-9):.2f}x, "
                      f"output tok/s {ours['tok_s'] / r['tok_s']:.2f}x (target >= 3.5x rows/s)")


if __name__ == "__main__":
    main()
