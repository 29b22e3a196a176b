"""RFD on the paper's 13 logged settings and on hand-made logs."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from datagen.errors import InputError
from datagen.evaluate.rfd import compute_rfd, find_run_dirs, format_rfd_table, rfd_table, top_k_mean

from tests.conftest import NGCSE_LOGS

SETTINGS = [f"{domain}/{name}" for domain in ("wiki", "nli")
            for name in ("dropout", "token_shuffle", "token_cutoff", "nli", "sts", "sts_ht")] + ["nli/sup"]
# Values this implementation gives on the paper's logs (RFD_a, RFD_u, top-5 STS-B dev x100), pinned against drift.
EXPECTED = {
    "wiki/dropout": (-0.1488, -0.2651, 81.10), "wiki/token_shuffle": (-0.1508, -0.2359, 79.68),
    "wiki/token_cutoff": (-0.1304, -0.2522, 81.16), "wiki/nli": (0.0346, -0.4404, 81.51),
    "wiki/sts": (-0.0461, -0.4730, 81.36), "wiki/sts_ht": (0.0266, -0.3899, 83.34),
    "nli/dropout": (-0.2269, -0.0668, 78.12), "nli/token_shuffle": (-0.2346, 0.1358, 79.98),
    "nli/token_cutoff": (-0.1972, 0.0078, 79.60), "nli/nli": (0.1156, -0.0806, 82.97),
    "nli/sts": (0.0036, -0.0170, 84.10), "nli/sts_ht": (0.0790, 0.0389, 84.60), "nli/sup": (0.0745, 0.2094, 85.50),
}


def _by_definition(run_dir):
    """method.md §4 written out independently: rows paired by step, step 0 excluded, plain means."""
    def rows(name):
        with open(run_dir / name, newline="") as handle:
            return {int(r["step"]): r for r in csv.DictReader(handle)}

    train, evaluation = rows("train_alignment_and_uniformity"), rows("eval_alignment_and_uniformity")
    assert train.keys() == evaluation.keys()
    steps = [s for s in train if s != 0]
    diff = lambda key: sum(float(train[s][key]) - float(evaluation[s][key]) for s in steps) / len(steps)  # noqa: E731
    stsb = sorted((float(r["stsb"]) for r in rows("metrics").values()), reverse=True)
    return diff("alignment"), diff("uniformity"), 100 * sum(stsb[:5]) / 5


@pytest.mark.parametrize("setting", SETTINGS)
def test_rfd_on_the_paper_logs_follows_the_definition(setting):
    result = compute_rfd(NGCSE_LOGS / setting)
    rfd_a, rfd_u, top5 = _by_definition(NGCSE_LOGS / setting)
    assert result.RFD_a == pytest.approx(rfd_a, abs=1e-12)
    assert result.RFD_u == pytest.approx(rfd_u, abs=1e-12)
    assert result.stsb_top5 == pytest.approx(top5, abs=1e-9)
    assert (round(result.RFD_a, 4), round(result.RFD_u, 4), round(result.stsb_top5, 2)) == EXPECTED[setting]
    assert result.checkpoints == (28 if setting.startswith("wiki") else 23)


def test_table_over_the_log_root_finds_all_13_settings():
    results = rfd_table([NGCSE_LOGS])
    assert sorted(r.run for r in results) == sorted(SETTINGS)
    table = format_rfd_table(results)
    assert len(table.splitlines()) == 14 and "wiki/sts_ht" in table


def _write(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")


def test_step_zero_is_excluded_and_csv_suffix_accepted(tmp_path):
    _write(tmp_path / "train_alignment_and_uniformity.csv", ["step", "alignment", "uniformity"],
           [(0, 9.0, 9.0), (125, 0.5, -2.0), (250, 0.3, -2.5)])
    _write(tmp_path / "eval_alignment_and_uniformity.csv", ["step", "alignment", "uniformity"],
           [(0, 0.0, 0.0), (125, 0.4, -1.0), (250, 0.4, -2.0)])
    _write(tmp_path / "metrics.csv", ["step", "loss", "stsb", "sickr", "avg"],
           [(125, 1, 0.70, 0, 0), (250, 1, 0.80, 0, 0)])
    result = compute_rfd(tmp_path)
    assert result.RFD_a == pytest.approx(((0.5 - 0.4) + (0.3 - 0.4)) / 2)
    assert result.RFD_u == pytest.approx(((-2.0 + 1.0) + (-2.5 + 2.0)) / 2)
    assert result.stsb_top5 == pytest.approx(75.0)  # fewer than 5 checkpoints: mean of all


def test_top_k_mean_takes_the_largest_values():
    assert top_k_mean([0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2]) == pytest.approx((0.9 + 0.8 + 0.7 + 0.5 + 0.3) / 5)


def test_missing_logs_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="ngcse-logs"):
        compute_rfd(tmp_path)
    with pytest.raises(InputError, match="run dir"):
        find_run_dirs([tmp_path])


def test_logs_without_a_shared_checkpoint_raise(tmp_path):
    _write(tmp_path / "train_alignment_and_uniformity", ["step", "alignment", "uniformity"], [(0, 1, 1)])
    _write(tmp_path / "eval_alignment_and_uniformity", ["step", "alignment", "uniformity"], [(0, 1, 1)])
    with pytest.raises(InputError, match="after step 0"):
        compute_rfd(tmp_path)


def test_cli_rfd_json_for_one_dir_and_table_for_many():
    from datagen.cli import app

    runner = CliRunner()
    single = runner.invoke(app, ["rfd", str(NGCSE_LOGS / "wiki" / "sts_ht"), "--json"])
    assert single.exit_code == 0, single.output
    payload = json.loads(single.stdout)
    assert set(payload) == {"RFD_a", "RFD_u", "stsb_top5"}
    assert round(payload["RFD_a"], 4) == EXPECTED["wiki/sts_ht"][0]
    many = runner.invoke(app, ["rfd", str(NGCSE_LOGS / "nli")])
    assert many.exit_code == 0 and len(many.stdout.strip().splitlines()) == 8
    missing = runner.invoke(app, ["rfd", "/nonexistent/run"])
    assert missing.exit_code == 2
