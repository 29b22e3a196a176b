"""``overrides``: flags become plain config data; unset flags stay None for the loaders to skip."""

from pathlib import Path

from datagen.cli.flags import overrides
from datagen.config import load_config


def test_paths_become_strings_and_repeated_flags_tuples():
    flags = {"templates_dir": Path("t"), "data": [Path("a"), Path("b")], "sampling.seed": 3, "limit": None}
    assert overrides(flags) == {"templates_dir": "t", "data": ("a", "b"), "sampling.seed": 3, "limit": None}


def test_unset_flags_keep_the_yaml_value(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("generate:\n  task: sts\n  shard_rows: 7\n  sampling:\n    temperature: 0.3\n")
    cfg = load_config(yaml_file, overrides({"shard_rows": None, "sampling.temperature": None, "sampling.n": 2}))
    assert cfg.shard_rows == 7 and cfg.sampling.temperature == 0.3 and cfg.sampling.n == 2
