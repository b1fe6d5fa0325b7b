"""The shared reader and writer of launch commands: each engine declares a table of its flags, one parser
reads any engine's argv with it (``--flag value`` and ``--flag=value``, as shlex splits them) and one printer
writes argv back as a shell line.

Errors name the flag as the user wrote it (``-tp: 'x' is not a whole number``) and exit with code 2.
"""

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from moeplan.errors import SpecError
from moeplan.units import parse_token_count

Convert = Callable[[str, str], object]
"""(text, flag as written) → value; raises SpecError naming the flag."""


@dataclass(frozen=True)
class Flag:
    """One engine flag: its spellings (the first is the one printed), the EngineCommand field it sets, and how
    its value is read (None: a switch that sets True; ``--no-<name>`` sets False). ``repeat``: every occurrence
    counts, joined with commas in order (llama.cpp's -ot), instead of the last winning."""

    names: tuple[str, ...]
    field: str
    convert: Convert | None = None
    repeat: bool = False


def _integer(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"{flag}: {text!r} is not a whole number") from None


def whole(text: str, flag: str) -> int:
    """A positive whole number."""
    if (value := _integer(text, flag)) <= 0:
        raise SpecError(f"{flag}: {text!r} must be positive")
    return value


def count(text: str, flag: str) -> int:
    """A non-negative whole number (llama.cpp's -ngl 0, --n-cpu-moe 0)."""
    if (value := _integer(text, flag)) < 0:
        raise SpecError(f"{flag}: {text!r} must not be negative")
    return value


def tokens(text: str, flag: str) -> int:
    """A token count: 32768, 32k or 32K (k = 1024, as vLLM's human-readable integers)."""
    return parse_token_count(text, flag)


def fraction(text: str, flag: str) -> float:
    """A fraction of memory in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{flag}: {text!r} is not a number") from None
    if not 0 < value <= 1:
        raise SpecError(f"{flag}: {text!r} must be a fraction in (0, 1]")
    return value


def choice(mapping: dict[str, str | None]) -> Convert:
    """One of the engine's spellings, mapped to moeplan's name (None: the model's own)."""

    def convert(text: str, flag: str) -> str | None:
        key = text.lower()
        if key not in mapping:
            raise SpecError(f"{flag}: {text!r} is not one of {', '.join(mapping)}")
        return mapping[key]

    return convert


def text(value: str, flag: str) -> str:
    """Any non-empty text."""
    if not value:
        raise SpecError(f"{flag}: needs a value")
    return value


def json_object(value: str, flag: str) -> dict:
    """A JSON object (vLLM's --speculative-config)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise SpecError(f"{flag}: not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(parsed, dict):
        raise SpecError(f"{flag}: must be a JSON object such as '{{\"method\": \"mtp\", \"num_speculative_tokens\": 1}}'")
    return parsed


@dataclass
class ParsedFlags:
    """What a flag table read: field values, positional arguments, and flags it does not model."""

    values: dict[str, object]
    positional: list[str]
    ignored: list[str]
    written: dict[str, str]
    """Field → the flag as the user wrote it (for messages)."""


def parse_flags(argv: Sequence[str], table: Sequence[Flag], ignored_switches: frozenset[str] = frozenset()) -> ParsedFlags:
    """Read ``argv`` (the tokens after the engine's entry point) with ``table``.

    An unknown flag is ignored together with its value (the next token, unless it starts with '-' or the flag is
    one of ``ignored_switches``); later occurrences of a flag win, as with argparse.
    """
    by_name = {name: flag for flag in table for name in flag.names}
    out = ParsedFlags(values={}, positional=[], ignored=[], written={})
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-") or token == "-":
            out.positional.append(token)
            continue
        name, has_value, value = token.partition("=")
        negated = name.startswith("--no-") and f"--{name[5:]}" in by_name and by_name[f"--{name[5:]}"].convert is None
        flag = by_name[f"--{name[5:]}"] if negated else by_name.get(name)
        if flag is None:
            if not has_value and name not in ignored_switches and i < len(argv) and not argv[i].startswith("-"):
                token = f"{token} {argv[i]}"
                i += 1
            out.ignored.append(token)
            continue
        if flag.convert is None:
            if has_value:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise SpecError(f"{name}: a switch takes no value (or true/false), not {value!r}")
                out.values[flag.field] = value.lower() in ("true", "1")
            else:
                out.values[flag.field] = not negated
        else:
            if not has_value:
                if i >= len(argv) or (argv[i].startswith("--") and argv[i] != "--"):
                    raise SpecError(f"{name}: needs a value")
                value = argv[i]
                i += 1
            value = flag.convert(value, name)
            earlier = out.values.get(flag.field) if flag.repeat else None
            out.values[flag.field] = f"{earlier},{value}" if earlier else value
        out.written[flag.field] = name
    return out


def command_line(argv: Sequence[str]) -> str:
    """argv as one shell line, each word quoted where the shell needs it."""
    return shlex.join(argv)


def split_command(line: str | Sequence[str]) -> list[str]:
    """A command as argv: a one-string command is split as a POSIX shell would (shlex)."""
    if isinstance(line, str):
        try:
            return shlex.split(line)
        except ValueError as error:
            raise SpecError(f"engine command: {error}") from None
    if line and " " in line[0].strip():  # the command quoted as one word, maybe followed by more words
        return [*split_command(line[0]), *line[1:]]
    return list(line)
