"""Report PNGs from the paper's logs and from a run dir with STS results."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from datagen.errors import InputError
from datagen.evaluate.report import make_report

from tests.conftest import NGCSE_LOGS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 5_000 and path.read_bytes()[:8] == PNG_MAGIC


def test_report_on_the_paper_logs_writes_scatter_and_trajectories(tmp_path):
    written = make_report([NGCSE_LOGS / "wiki"], tmp_path / "report")
    assert [p.name for p in written] == ["rfd_scatter.png", "alignment_uniformity.png"]
    assert all(_is_png(p) for p in written)


def test_report_includes_the_sts_table_when_results_exist(tmp_path):
    run = tmp_path / "runs" / "sts_ht"
    shutil.copytree(NGCSE_LOGS / "nli" / "sts_ht", run)
    (run / "sts_results.json").write_text(json.dumps({"STS12": 70.1, "STS-B": 80.25, "Avg": 75.18}))
    written = make_report([run, NGCSE_LOGS / "nli" / "sup"], tmp_path / "out")
    assert [p.name for p in written] == ["rfd_scatter.png", "alignment_uniformity.png", "sts_results.png"]
    assert all(_is_png(p) for p in written)


def test_report_without_runs_raises(tmp_path):
    with pytest.raises(InputError):
        make_report([tmp_path], tmp_path / "out")


def test_cli_report_prints_the_written_paths(tmp_path):
    from datagen.cli import app

    result = CliRunner().invoke(app, ["report", str(NGCSE_LOGS / "nli" / "sts"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {line.rsplit("/", 1)[-1] for line in result.stdout.split()} == {"rfd_scatter.png", "alignment_uniformity.png"}
