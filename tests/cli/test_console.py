"""``user_errors``: a user error is one red line and its exit code; a bug keeps its traceback."""

import pytest
import typer
from typer.testing import CliRunner

from datagen.cli.console import user_errors
from datagen.errors import ConfigError, DatagenError, EngineError


def app_raising(error: Exception) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    @user_errors
    def command(name: str = typer.Option("x", help="Read by Typer through the decorator.")) -> None:
        raise error

    return app


@pytest.mark.parametrize("error, code", [(ConfigError("bad flag; fix it"), 2), (EngineError("down; retry"), 1),
                                         (DatagenError("plain; do this"), 1)])
def test_user_error_is_one_line_and_its_exit_code(error, code):
    result = CliRunner().invoke(app_raising(error), ["--name", "y"])
    assert result.exit_code == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {error}"]


def test_other_exceptions_are_not_swallowed():
    result = CliRunner().invoke(app_raising(ZeroDivisionError("a bug")), [])
    assert isinstance(result.exception, ZeroDivisionError)


def test_decorated_command_keeps_its_flags():
    result = CliRunner().invoke(app_raising(ConfigError("x")), ["--help"])
    assert result.exit_code == 0 and "--name" in result.output and "Read by Typer" in result.output
