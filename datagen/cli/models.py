"""The embedded-model registry: ``datagen models list`` and ``datagen models prepare``."""

from __future__ import annotations

import json

import typer

from datagen.cli.console import user_errors

models_app = typer.Typer(help="Embedded models shipped as PyPI wheels.", no_args_is_help=True)


@models_app.command("list")
@user_errors
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List embedded models, whether their wheels are installed and whether they are prepared."""
    from datagen.models import list_models

    infos = [vars(info) for info in list_models()]
    if as_json:
        typer.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        state = "prepared" if info["prepared"] else ("installed" if info["installed"] else "not installed")
        typer.echo(f"{info['name']:<16} {state:<14} {info['description']}")


@models_app.command("prepare")
@user_errors
def models_prepare(name: str = typer.Argument(..., help="Registry name, e.g. qwen2.5-0.5b."),
                   force: bool = typer.Option(False, help="Rebuild even if prepared.")) -> None:
    """Assemble, verify (sha256) and convert an embedded model to a folder vLLM loads."""
    from datagen.models import prepare_model

    typer.echo(str(prepare_model(name, force=force)))


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to the main app."""
    app.add_typer(models_app, name="models")
