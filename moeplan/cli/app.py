"""The moeplan command line: a thin typer layer over library functions.

Each command is a function of its name in a module under moeplan.cli (COMMANDS); ``main`` imports and
registers only the command being run (all of them for the top-level help and shell completion). Errors of
the project's own types become one line on stderr and their exit code (see moeplan.errors), never a traceback.
"""

import errno
import functools
import importlib
import os
import sys
import traceback
import warnings

import typer
from pydantic import ValidationError
from typer.core import TyperCommand, TyperGroup

import moeplan
from moeplan.report.console import LazyConsole
from moeplan.errors import EXIT_CODES, MoeplanError, describe_validation


class _PlainHelp:
    """Help as written, prepared only when help is printed: help strings are plain text (rich markup would eat
    `[plot]` or `[default: …]`), the deployment flags' help is read, and switches show no value type."""

    def format_help(self, ctx, formatter):
        from moeplan.cli.options import deployment_help

        commands = [self.get_command(ctx, name) for name in self.list_commands(ctx)] if isinstance(self, TyperGroup) else []
        for item in (self, *commands):
            for attribute in ("help", "short_help", "epilog"):
                _plain_text(item, attribute)
        for param in self.get_params(ctx):
            if param.help is None:
                param.help = deployment_help(param.name)
            _plain_text(param, "help")
            if (getattr(param, "is_flag", False) or getattr(getattr(param, "type", None), "name", "") == "boolean") and param.metavar is None:
                param.metavar = ""
        return super().format_help(ctx, formatter)


def _plain_text(item, attribute: str) -> None:
    """Escape a help text's rich markup, once."""
    text = getattr(item, attribute, None)
    if text and not getattr(item, f"_{attribute}_escaped", False):
        setattr(item, attribute, escape(text))
        setattr(item, f"_{attribute}_escaped", True)


def escape(text: str) -> str:
    """rich.markup.escape, imported only when something is printed (rich's markup and console cost start-up)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class _OneLineUsage:
    """A usage error found while parsing a command's own options (`moeplan --bogus`, `--brief=3`) is one line."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.exceptions.TyperException as error:
            _usage(error, ctx)


class _Group(_OneLineUsage, _PlainHelp, TyperGroup):
    """Turns the project's errors into one line on stderr and their exit code."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.exceptions.TyperException as error:  # a command's usage error: one line, as every bad input
            _usage(error, ctx)
        except MoeplanError as error:
            _fail(str(error), error.exit_code)
        except ValidationError as error:
            _fail(f"invalid spec: {describe_validation(error)}", 2)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except OSError as error:
            _os_error(error)
        except Exception as error:  # the boundary: anything else is a bug of moeplan, never exit 1
            _internal(error)
        except BaseException as error:  # a panic of a native extension (pyo3's PanicException) is a bug as well
            if isinstance(error, SystemExit | GeneratorExit):
                raise
            _internal(error)


def _usage(error: Exception, ctx: typer.Context) -> None:
    """A usage error of click or typer as one line naming the help to read (of the command it names, else of
    ``ctx``'s); help itself (no arguments given) is shown."""
    if type(error).__name__ == "NoArgsIsHelpError" or not hasattr(error, "format_message"):
        raise error
    message = " ".join(error.format_message().split())
    _fail(f"{message} (see `{(getattr(error, 'ctx', None) or ctx).command_path} -h`)", getattr(error, "exit_code", 2))


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


DEBUG = "--debug"
"""Anywhere on the command line: an internal error prints its traceback."""

_PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ELOOP,
                errno.EEXIST, errno.EROFS, errno.ENXIO}
"""OSErrors that mean a path the user gave is wrong (exit 2); other OSErrors are the environment's (exit 3)."""


def _os_error(error: OSError) -> None:
    """An OSError that reached the boundary: a broken pipe ends quietly, a bad path is bad input, the rest environment."""
    if isinstance(error, BrokenPipeError):
        _quiet_stdout()
        raise typer.Exit(0)
    name = str(error.filename or "")
    name = name if len(name) <= 120 else f"{name[:100]}…{name[-10:]}"
    where = f"{name}: " if name else "cannot write the output: " if error.errno == errno.ENOSPC else ""
    _fail(f"{where}{error.strerror or error}", 2 if error.errno in _PATH_ERRNOS else 3)


def _internal(error: BaseException) -> None:
    """One line for a bug (exit 4); with --debug the traceback as well."""
    if DEBUG in sys.argv:
        traceback.print_exception(error)
    text = " ".join(f"{type(error).__name__}: {error}".split())
    _fail(f"internal error: {text[:200]} - please report (run with {DEBUG} for the traceback)", 4)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush into a closed pipe or full disk is silent."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _tolerant_streams() -> None:
    """Text the terminal's encoding cannot show (PYTHONIOENCODING=ascii) is escaped, never an error."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _flush_stdout(code: int | str | None) -> int | str | None:
    """Flush stdout before exit: a closed pipe exits 0 silently, a full disk is one line (exit 3)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except OSError as error:
        _quiet_stdout()
        err_console.print(f"[bold red]error:[/] cannot write the output: {escape(error.strerror or str(error))}",
                          highlight=False, soft_wrap=True)
        return 3
    return code


class _Command(_OneLineUsage, _PlainHelp, TyperCommand):
    """A flag left unset (None, no callback, not required) is None without typer's coercion: typer builds a
    pydantic TypeAdapter per parameter to coerce a value, ~60 of them for `moeplan estimate` on every start."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            param.process_value = functools.partial(_unset_fast, param, param.process_value)


def _unset_fast(param, process_value, ctx, value):
    if value is None and not param.required and param.callback is None:
        return None
    return process_value(ctx, value)


EXAMPLES = """Memory and throughput planner for Mixture-of-Experts language models.

Examples:

\b
    moeplan estimate mixtral-8x7b --gpu h100 --num-gpus 2    # fits? how fast?
    moeplan estimate deepseek-v3 --gpu h200 --brief          # only the verdict
    moeplan plan deepseek-v3 --gpu h100-sxm                  # the layouts that fit
    moeplan check examples/plan.yaml                         # CI checks: exit 1 on failure
    moeplan presets; moeplan gpus                            # built-in models and GPUs
"""

COMMANDS = {"estimate": "estimate", "plan": "plan", "check": "check", "profile": "profile", "presets": "presets",
            "spec": "presets", "gpus": "gpus", "schema": "schema"}
"""Command → the module under moeplan.cli holding the function of that name (an optional EPILOG beside it)."""

app = typer.Typer(
    cls=_Group,
    name="moeplan",
    help=EXAMPLES,
    epilog=EXIT_CODES,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err_console = LazyConsole(stderr=True)


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
    debug: bool = typer.Option(False, DEBUG, help="On an internal error (exit 4), print the traceback; allowed after any command."),
) -> None:
    """Memory and throughput planner for Mixture-of-Experts language models."""
    warnings.showwarning = _show_warning


def _register(names=tuple(COMMANDS)) -> None:
    """Import and register these commands (each once); torch stays inside the profile package."""
    registered = {info.name for info in app.registered_commands}
    for name in names:
        if name not in registered:
            module = importlib.import_module(f"moeplan.cli.{COMMANDS[name]}")
            app.command(name, cls=_Command, epilog=getattr(module, "EPILOG", None))(getattr(module, name))


def _command_in(argv: list[str]) -> str | None:
    """The command a command line runs: its first word that is not an option (no root option takes a value)."""
    word = next((w for w in argv if not w.startswith("-")), None)
    return word if word in COMMANDS else None


def main() -> None:
    """Console entry point: registers only the command run (none for --version; every command for help, typos
    and completion)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # no entry-point scan (~20 ms) for plugins the CLI never uses
    name = None if os.environ.get("_MOEPLAN_COMPLETE") else _command_in(sys.argv[1:])
    if name != "profile":  # plan's array code is elementwise: numpy's BLAS thread pool only slows its import
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _tolerant_streams()
    try:
        _register((name,) if name else () if "--version" in sys.argv[1:] else tuple(COMMANDS))
        app(args=[a for a in sys.argv[1:] if a != DEBUG], prog_name="moeplan")  # --debug is read from sys.argv, after any command
    except SystemExit as done:
        sys.exit(_flush_stdout(done.code))
    except Exception as error:  # an import or registration failure
        try:
            _internal(error)
        except typer.Exit as done:
            sys.exit(_flush_stdout(done.exit_code))
    sys.exit(_flush_stdout(0))
