"""The project's error types. Each carries the exit code the CLI returns for it.

Exit codes: 0 ok, 1 a capacity check failed, 2 bad input (usage, spec, file), 3 missing environment.
"""


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


def describe_validation(error) -> str:
    """A pydantic ValidationError as one line: 'field.path: message; ...'."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
