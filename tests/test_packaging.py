"""The wheel is the product: it carries every template and default config, and an installed copy runs.

Builds the wheel from a snapshot of the checkout, installs it into a throwaway venv and runs ``datagen``
from there, with its working directory outside the repository, against a stub OpenAI-compatible server
on 127.0.0.1. Nothing reaches the network: pip runs with ``--no-index``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engines.test_openai import StubServer
from tests.support.fakes import good_reply

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# folder of datagen/ -> suffix its files ship with (dataset/: the dataset card's template; quality/: the view page)
PACKAGE_DATA = {"prompts": ".jinja", "pipelines": ".yaml", "dataset": ".jinja", "quality": ".jinja"}
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def source_data_files() -> set[str]:
    """Every template and default config of the checkout, as wheel paths (``datagen/prompts/sts/joint.jinja``)."""
    return {
        path.relative_to(REPO).as_posix()
        for folder, suffix in PACKAGE_DATA.items()
        for path in (REPO / "datagen" / folder).rglob(f"*{suffix}")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout (a build in place would leave build/ in the repo)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "datagen", source / "datagen", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)])
    [built] = dist.glob("datagen-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway venv holding only the wheel; its dependencies are seen from the test's environment."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)])
    python = root / "bin" / "python"
    run([*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    # Only after the install: the dependencies come from this test's environment. A plain path in a .pth
    # does not run that environment's own .pth files, so its editable datagen (the checkout) stays out.
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "datagen_test_deps.pth").write_text("".join(f"{path}\n" for path in sorted(deps)))
    return root


def clean_env() -> dict[str, str]:
    """This environment without anything that could put the checkout on the path or send 127.0.0.1 to a proxy."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
    return {**env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def test_wheel_holds_every_template_and_config_and_nothing_outside_datagen(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {name for name in names
               if any(name.startswith(f"datagen/{folder}/") and name.endswith(suffix)
                      for folder, suffix in PACKAGE_DATA.items())}
    assert shipped == source_data_files()
    assert {"datagen/prompts/sts/joint.jinja", "datagen/pipelines/sts.yaml", "datagen/dataset/card.md.jinja",
            "datagen/quality/view.html.jinja"} <= shipped
    metadata = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    assert {name.split("/")[0] for name in names} == {"datagen", metadata}
    with zipfile.ZipFile(wheel) as archive:
        for name in shipped:
            assert archive.read(name) == (REPO / name).read_bytes(), f"{name} differs from the checkout"


def test_installed_datagen_is_the_wheel_not_the_checkout(venv: Path, tmp_path: Path):
    probe = "import json, datagen, datagen.config as c; print(json.dumps([datagen.__file__, str(c.packaged('prompts'))]))"
    result = run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=clean_env())
    for path in json.loads(result.stdout):
        assert Path(path).resolve().is_relative_to(venv.resolve()), path
    help_text = run([str(venv / "bin" / "datagen"), "--help"], cwd=tmp_path, env=clean_env()).stdout
    assert all(command in help_text for command in ("nli", "sts", "inspect", "score", "train"))


def test_installed_datagen_sts_runs_against_a_stub_server(venv: Path, tmp_path: Path, seed_file: Path):
    package = Path(json.loads(run([str(venv / "bin" / "python"), "-c",
                                   "import datagen, json; print(json.dumps(datagen.__file__))"],
                                  cwd=tmp_path, env=clean_env()).stdout)).parent
    # Mark the installed copies, so the run shows which ones it read: a Jinja comment changes the
    # template's sha256 (not the prompt), and a smaller shard_rows in the default config changes the plan.
    template = package / "prompts" / "sts" / "joint.jinja"
    template.write_text(template.read_text(encoding="utf-8") + "{# installed copy #}\n", encoding="utf-8")
    defaults = package / "pipelines" / "sts.yaml"
    config = yaml.safe_load(defaults.read_text(encoding="utf-8"))
    config["generate"]["shard_rows"] = 5
    defaults.write_text(yaml.safe_dump(config), encoding="utf-8")

    stub = StubServer()
    stub.policy = lambda body, attempt: (200, chat_completion(body), {}, 0.0)
    out = tmp_path / "run"
    try:
        run([str(venv / "bin" / "datagen"), "sts", "--seeds", str(seed_file), "--out", str(out),
             "--engine", "openai", "--base-url", stub.base_url, "--model", "fake"], cwd=tmp_path, env=clean_env())
    finally:
        stub.close()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["rows"] == 10
    assert manifest["config"]["shard_rows"] == 5 and len(manifest["shards"]) == 2
    assert all((out / shard["data"]["path"]).is_file() for shard in manifest["shards"])
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    assert manifest["templates"]["joint"] == hashlib.sha256(template.read_bytes()).hexdigest()
    checkout_template = REPO / "datagen" / "prompts" / "sts" / "joint.jinja"
    assert manifest["templates"]["joint"] != hashlib.sha256(checkout_template.read_bytes()).hexdigest()
    assert len(stub.bodies) == 10 and all(body["model"] == "fake" for body in stub.bodies)


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion holding a valid joint STS answer for the seed in the request's last message."""
    content = good_reply("joint", body["messages"][-1]["content"], "sts")
    return {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 30, "total_tokens": 37},
    }
