"""The vLLM engine's own warnings (logger ``datagen``): what changes a run's speed or results, said once."""

from __future__ import annotations

import logging


def test_the_vllm_engine_warns_once_about_what_changes_its_results(caplog):
    from datagen.engines.vllm_engine import VLLMEngine

    engine = object.__new__(VLLMEngine)  # no vLLM: only the checks that run after each batch is queued
    engine._warned, engine._kv_cache_tokens = set(), 1000
    with caplog.at_level(logging.WARNING, logger="datagen"):
        engine._check_kv_room(requests=8, kv_tokens=900)
        engine._check_kv_room(requests=16, kv_tokens=1800)
        engine._check_kv_room(requests=16, kv_tokens=1800)
    assert [r.getMessage() for r in caplog.records] == [
        "a shard's 16 requests need up to 1,800 KV-cache tokens and the cache holds 1,000: vLLM runs them in turns, "
        "so shards take longer; raise vllm.kv_cache_gib (CPU) or vllm.gpu_memory_utilization (GPU), or lower shard_rows"]
