"""Helpers shared by the reliability suites (tests/reliability/): run the real CLI, read an
output directory back, and compare it with an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from datagen.dataset.manifest import MANIFEST, read_manifest
from datagen.dataset.shards import LOCK, file_sha256

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "examples" / "seeds.txt"
RUNNER = REPO / "tests" / "support" / "crash_runner.py"
SERVED_NAME = "qwen2.5-0.5b"


def sts_args(out: Path, base_url: str, *, seeds: int, shard_rows: int, max_tokens: int, extra: tuple = ()) -> list[str]:
    """``datagen sts`` arguments for a small greedy run through the openai engine."""
    return [
        "sts", "--seeds", str(SEEDS), "--out", str(out), "--limit", str(seeds), "--shard-rows", str(shard_rows),
        "--mode", "separate", "--temperature", "0", "--max-tokens", str(max_tokens),
        "--engine", "openai", "--base-url", base_url, "--model", SERVED_NAME, *extra,
    ]  # fmt: skip


def cli_env() -> dict[str, str]:
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}


def start_runner(cli: list[str], *, kill_at: str | None = None, count_to: Path | None = None, log: Path | None = None):
    """Start tests/crash_runner.py (the real CLI, optionally armed to SIGKILL itself) as a subprocess."""
    argv = [sys.executable, str(RUNNER)]
    if kill_at:
        argv += ["--kill-at", kill_at]
    if count_to:
        argv += ["--count-to", str(count_to)]
    output = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([*argv, "--", *cli], cwd=REPO, env=cli_env(), stdout=output, stderr=subprocess.STDOUT)
    finally:
        if log:
            output.close()


def run_cli(cli: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m datagen.cli`` to the end; the caller checks the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "datagen.cli", *cli], cwd=REPO, env=cli_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def read_kind(out: Path, kind: str) -> list[dict]:
    """All rows of ``kind`` in the shards the manifest lists, in shard order."""
    manifest = json.loads((out / MANIFEST).read_text())
    rows: list[dict] = []
    for shard in manifest["shards"]:
        rows += pq.read_table(out / shard[kind]["path"]).to_pylist()
    return rows


def check_consistent(out: Path) -> dict | None:
    """What must hold in OUT at any instant, even right after SIGKILL: the manifest parses and every
    shard it or its journal lists exists with its recorded size and sha256. Returns the manifest with the
    journal applied (None if none yet)."""
    if not (out / MANIFEST).exists():
        return None
    json.loads((out / MANIFEST).read_text())  # os.replace: never half a JSON file
    merged = read_manifest(out)
    manifest = json.loads(merged.model_dump_json())
    for shard in manifest["shards"]:
        for kind in ("data", "rejects"):
            path = out / shard[kind]["path"]
            assert path.is_file(), f"manifest lists {path}, which is missing"
            assert path.stat().st_size == shard[kind]["bytes"] and file_sha256(path) == shard[kind]["sha256"]
    return manifest


def leftovers(out: Path) -> list[str]:
    """Files a finished run must not leave: tmp files, shards the manifest does not list, the lock."""
    manifest = json.loads((out / MANIFEST).read_text())
    listed = {shard[kind]["path"] for shard in manifest["shards"] for kind in ("data", "rejects")}
    found = [f"{p.parent.name}/{p.name}" for kind in ("data", "rejects") for p in (out / kind).glob("*")]
    extra = [name for name in found if name not in listed]
    extra += [p.name for p in out.glob("*.tmp")]
    extra += [p.name for p in out.glob("*.journal")]  # finalize compacts the journal into the manifest
    if (out / LOCK).exists():
        extra.append(LOCK)
    return extra


def compare_with_reference(out: Path, reference: Path) -> dict[str, int]:
    """Rows lost / duplicated / differing against an uninterrupted run, data and rejects together."""
    counts = {"lost": 0, "duplicated": 0, "differing": 0}
    for kind in ("data", "rejects"):
        got, want = read_kind(out, kind), read_kind(reference, kind)
        got_ids = [row["id"] for row in got]
        want_by_id = {row["id"]: row for row in want}
        counts["duplicated"] += len(got_ids) - len(set(got_ids))
        counts["lost"] += len(set(want_by_id) - set(got_ids))
        counts["differing"] += sum(1 for row in got if want_by_id.get(row["id"]) != row)
    return counts


class ManagedServer:
    """A real vLLM OpenAI server on a fixed 127.0.0.1 port that a test may SIGKILL and start again."""

    def __init__(self, model_path: str, log_path: Path, *, kv_cache_gib: int = 1) -> None:
        from datagen.engines.vllm_server import pick_free_port

        self.model_path, self.log_path, self.kv_cache_gib = model_path, log_path, kv_cache_gib
        self.port = pick_free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 400) -> float:
        """Start the server and wait until it answers; returns the seconds it took."""
        from datagen.engines.vllm_server import build_server_command, wait_until_ready

        command = build_server_command(self.model_path, port=self.port, served_model_name=SERVED_NAME,
                                       max_model_len=2048, batch_invariant=True)
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return wait_until_ready(self.proc, self.base_url, self.log_path, timeout_s=timeout_s)

    def kill(self) -> None:
        """SIGKILL the server and its engine processes (its own process group), like an OOM kill."""
        import signal

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        from datagen.engines.vllm_server import stop_process_group

        if self.proc is not None:
            stop_process_group(self.proc)


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of a real server that injects faults chosen per request.

    ``policy(key, attempt)`` returns ``None`` (forward), ``("status", code, retry_after)``,
    ``("slow", seconds)`` (wait, then forward) or ``("drop",)`` (close the connection unanswered);
    ``key`` identifies the prompt, ``attempt`` counts its tries (1 = first).
    """

    def __init__(self, upstream: str, policy=None) -> None:
        import threading
        from collections import Counter
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        self.upstream = upstream.rstrip("/")
        self.policy = policy or (lambda key, attempt: None)
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=600)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._reply(proxy._http.get(proxy._target(self.path)))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                action = proxy._decide(body)
                if action and action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action and action[0] == "status":
                    payload = json.dumps({"error": {"message": f"injected {action[1]}", "type": "server_error"}})
                    headers = {"Retry-After": str(action[2])} if action[2] is not None else {}
                    self._send(action[1], payload.encode(), "application/json", headers)
                    return
                if action and action[0] == "slow":
                    import time

                    time.sleep(action[1])
                upstream = proxy._http.post(proxy._target(self.path), content=body,
                                            headers={"Content-Type": "application/json"})
                with proxy._lock:
                    proxy.forwarded += 1
                self._reply(upstream)

            def _reply(self, response) -> None:
                self._send(response.status_code, response.content, response.headers.get("content-type", ""), {})

            def _send(self, status: int, data: bytes, content_type: str, headers: dict) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _target(self, path: str) -> str:
        return self.upstream + path.removeprefix("/v1")

    def _decide(self, body: bytes):
        import hashlib

        key = hashlib.sha256(json.dumps(json.loads(body)["messages"]).encode()).hexdigest()
        with self._lock:
            self.attempts[key] += 1
            attempt = self.attempts[key]
        action = self.policy(key, attempt)
        if action:
            with self._lock:
                self.injected[action[0] if action[0] != "status" else f"http_{action[1]}"] += 1
        return action

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()


def retry_config(path: Path, *, max_retries: int, timeout_s: float = 300) -> Path:
    """A --config YAML that changes only the openai engine's retry policy (not part of the fingerprint): the
    shipped ``pipelines/sts.yaml`` plus an ``openai:`` section, so a rerun without it resumes."""
    import yaml

    from datagen.config import packaged

    config = yaml.safe_load(packaged("pipelines", "sts.yaml").read_text(encoding="utf-8"))
    config["generate"]["openai"] = {"max_retries": max_retries, "timeout_s": timeout_s}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
