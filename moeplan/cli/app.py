"""The moeplan command line: a thin typer layer over library functions.

Each command module registers itself on ``app``; errors of the project's own types become one line on
stderr and their exit code (see moeplan.errors), never a traceback.
"""

import warnings

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

import moeplan
from moeplan.errors import MoeplanError, describe_validation


class _Group(TyperGroup):
    """Turns the project's errors into one line on stderr and their exit code."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except MoeplanError as error:
            _fail(str(error), error.exit_code)
        except ValidationError as error:
            _fail(f"invalid spec: {describe_validation(error)}", 2)


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


app = typer.Typer(
    cls=_Group,
    name="moeplan",
    help="Memory and throughput planner for Mixture-of-Experts language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"moeplan {moeplan.__version__}")
        raise typer.Exit()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (e.g. an unknown model_type read by its keys) as one 'warning:' line on stderr."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Memory and throughput planner for Mixture-of-Experts language models."""
    warnings.showwarning = _show_warning


def _register() -> None:
    # Command modules import only the light core; torch stays inside the profile package.
    from moeplan.cli import estimate, presets, schema  # noqa: F401
    from moeplan.cli import check, gpus  # noqa: F401
    from moeplan.cli import plan  # noqa: F401
    from moeplan.cli import profile  # noqa: F401


def main() -> None:
    """Console entry point."""
    _register()
    app()
