"""launch_vllm_server failure paths, with a stand-in process (the real server is tested in test_engine_openai)."""

from __future__ import annotations

import sys
import time

import pytest

from datagen.engines import vllm_server as server
from datagen.errors import EngineError


def use_command(monkeypatch, code: str) -> None:
    """Make the launcher start ``python -c code`` instead of vLLM."""
    monkeypatch.setattr(server, "build_server_command", lambda *args, **kwargs: [sys.executable, "-c", code])


def test_command_binds_localhost_and_names_model():
    command = server.build_server_command("/m/qwen", port=1234, served_model_name="qwen", max_model_len=1024)
    joined = " ".join(command)
    assert "-m vllm.entrypoints.openai.api_server" in joined
    assert "--host 127.0.0.1 --port 1234" in joined
    assert "--served-model-name qwen" in joined and "--max-model-len 1024" in joined


def test_served_name_defaults_to_folder_name(tmp_path):
    folder = tmp_path / "qwen2.5-0.5b"
    folder.mkdir()
    assert server.default_served_name(str(folder)) == "qwen2.5-0.5b"
    assert server.default_served_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_server_that_dies_reports_log_tail(monkeypatch, tmp_path):
    use_command(monkeypatch, "import sys; print('Available memory on node 0 is too low'); sys.exit(3)")
    with pytest.raises(EngineError, match="exited with code 3.*lower kv_cache_gib(.|\n)*memory on node 0"):
        with server.launch_vllm_server("unused", log_path=tmp_path / "log.txt"):
            pass


def test_server_never_ready_times_out_and_is_stopped(monkeypatch, tmp_path):
    use_command(monkeypatch, "import time; print('loading', flush=True); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(EngineError, match="not ready after 2s(.|\n)*loading"):
        with server.launch_vllm_server("unused", startup_timeout_s=2, log_path=tmp_path / "log.txt"):
            pass
    assert time.monotonic() - started < 15  # SIGTERM ended the sleeper; no 60 s wait
