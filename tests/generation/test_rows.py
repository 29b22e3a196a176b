"""SeenOutputs: the run-wide duplicate index validate_seed checks against (digests, not strings)."""

from datagen.generation.rows import SeenOutputs


def test_seen_outputs_finds_what_was_added_before_and_after_a_merge(monkeypatch):
    monkeypatch.setattr(SeenOutputs, "_FLUSH", 4)  # force merges into the sorted array
    seen = SeenOutputs(["a dog runs"])
    assert "a dog runs" in seen and "a cat runs" not in seen
    seen.update(f"sentence {i}" for i in range(10))
    assert all(f"sentence {i}" in seen for i in range(10))
    assert "sentence 10" not in seen and "" not in seen and None not in seen
    assert len(seen) == 11
