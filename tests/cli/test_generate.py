"""The generation commands come from the task registry: one per task, no CLI code per task."""

from types import SimpleNamespace

import typer
import yaml
from typer.testing import CliRunner

from datagen.cli import app, generate as generate_cli
from datagen.tasks import TaskSpec, all_tasks, get_task


def test_every_registered_task_has_a_command_with_its_description():
    for spec in all_tasks():
        result = CliRunner().invoke(app, [spec.name, "--help"])
        assert result.exit_code == 0, result.output
        assert " ".join(spec.description.split()) in " ".join(result.output.replace("│", " ").split())


def test_a_new_task_gets_its_command_without_a_cli_edit(monkeypatch):
    new = TaskSpec(name="quads", description="Generate quads for the registry test.",
                   record=get_task("pairs").record, positive="positive")
    monkeypatch.setattr(generate_cli, "all_tasks", lambda: (*all_tasks(), new))
    fresh = typer.Typer()
    generate_cli.register(fresh)
    result = CliRunner().invoke(fresh, ["quads", "--help"])
    assert result.exit_code == 0 and "Generate quads for the registry test." in result.output


def test_flags_reach_the_config_and_the_default_yaml_is_the_tasks(monkeypatch, tmp_path):
    seen = {}

    def fake_generate(config, seeds, out, *, overwrite, engine_factory, on_status):
        seen.update(config=config, seeds=seeds, out=out, overwrite=overwrite, engine_factory=engine_factory,
                    on_status=on_status)
        return SimpleNamespace(already_complete=True, out=out, rows=0, rejects=0, resume_note="")

    monkeypatch.setattr("datagen.generation.run.generate", fake_generate)
    result = CliRunner().invoke(app, [
        "sts", "--seeds", str(tmp_path / "s.txt"), "--out", str(tmp_path / "o"), "--temperature", "0.3",
        "--n", "2", "--templates", str(tmp_path / "t"), "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1",
        "--overwrite",
    ])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.task == "sts" and config.engine == "openai" and config.openai.base_url == "http://127.0.0.1:9/v1"
    assert config.sampling.temperature == 0.3 and config.sampling.n == 2
    assert config.templates_dir == str(tmp_path / "t") and seen["overwrite"] is True
    defaults = yaml.safe_load(get_task("sts").default_config().read_text())["generate"]
    assert config.sampling.max_tokens == defaults["sampling"]["max_tokens"]  # the sts task's default YAML was read
    assert "already complete" in result.stderr
    assert callable(seen["engine_factory"]) and callable(seen["on_status"])  # the session's loading line, the display
    assert seen["engine_factory"].__qualname__.startswith("ModelSession.engine_factory")
    assert seen["on_status"].__qualname__ == "GenerationView.update"


def test_datagen_runs_generation_stage_runs_in_a_session_like_datagen_task(monkeypatch, tmp_path):
    import signal

    from datagen.cli.downstream import _generate_stage
    from datagen.cli.interrupts import StopSignals

    seen = {}

    def fake_generate(config, seeds, out, *, overwrite, engine_factory, on_status):
        seen.update(handler=signal.getsignal(signal.SIGINT), on_status=on_status, out=out)
        return "summary"

    monkeypatch.setattr("datagen.generation.run.generate", fake_generate)
    step = SimpleNamespace(config=None, seeds=str(tmp_path / "s.txt"), out=str(tmp_path / "o"), overwrite=False)
    assert _generate_stage(step) == "summary"
    assert isinstance(seen["handler"].__self__, StopSignals)  # a Ctrl-C stops it cleanly, as in `datagen nli`
    assert seen["on_status"].__qualname__ == "GenerationView.update" and seen["out"] == tmp_path / "o"
