"""The project's error types. Each carries the exit code the CLI returns for it.

Exit codes (EXIT_CODES): 0 ok, 1 a capacity check failed, 2 bad input (usage, spec, file), 3 missing
environment, 4 internal error (a bug: one line, ``--debug`` for the traceback).
"""

EXIT_CODES = ("Exit codes: 0 ok; 1 a capacity check failed; 2 bad input (one line naming the file, line and key); "
              "3 missing environment (the line says how to fix it); 4 internal error (please report; --debug shows the traceback).")
"""The exit codes as one sentence, for --help and the README."""


class MoeplanError(Exception):
    """Base class: a message meant for the user, and the exit code that goes with it."""

    exit_code = 2


class SpecError(MoeplanError):
    """A model spec, config file, option or name is invalid (exit code 2)."""

    exit_code = 2


class EnvError(MoeplanError):
    """The environment lacks something (CUDA, NCCL, an optional extra); the message says how to fix it (exit code 3)."""

    exit_code = 3


class CheckFailed(MoeplanError):
    """A capacity check ran and at least one assertion failed (exit code 1)."""

    exit_code = 1


def describe_validation(error, names: dict[tuple, str] | None = None) -> str:
    """A pydantic ValidationError as one line: 'field.path: message; ...'.

    ``names`` maps a location to the name the user wrote (a config key, a plan-file key) where that differs.
    """
    parts = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = (names or {}).get(loc) or ".".join(str(p) for p in loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in _SHOW_INPUT and _short(item.get("input")):
            message += f", not {_short(item['input'])}"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


_SHOW_INPUT = {"int_type", "bool_type", "float_type", "finite_number", "string_type", "list_type", "dict_type",
               "less_than_equal", "greater_than", "greater_than_equal", "less_than", "literal_error", "model_type"}
"""Error kinds whose message does not already quote the value given."""


def _short(value: object) -> str:
    """The offending value, quoted as the user would recognise it (JSON-ish), or '' when it is a large structure."""
    text = {True: "true", False: "false", None: "null"}.get(value, None) if isinstance(value, bool | None) else repr(value)
    return "" if len(text) > 60 else text
