"""Files the user names: inputs read safely, output paths checked before any work.

An input is a regular file or a pipe (``<(cat config.json)``, ``/dev/stdin``), never a device or a FIFO
nobody writes to; it is read up to MAX_INPUT_BYTES. YAML is parsed by libyaml's C loader where installed,
refusing duplicate keys and alias bombs; YAML and JSON nested deeper than Python can follow are one-line errors.
"""

import json
import os
import select
import stat
from functools import cache
from pathlib import Path

from moeplan.errors import SpecError

MAX_INPUT_BYTES = 4 * 2**20
"""Largest plan, config, spec or calibration file read (4 MiB; a config.json is a few KB)."""
PIPE_WAIT_S = 10
"""How long a pipe may stay silent before it is given up."""


@cache
def _loader():
    """The safe YAML loader (C where available) that refuses a key given twice in one mapping; yaml is imported
    only when a YAML file is read (it costs `moeplan estimate` ~20 ms of start-up otherwise)."""
    import yaml

    class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *defaults' may be overridden key by key
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first given on line {seen[key]})", key_node.start_mark)
                    seen[key] = key_node.start_mark.line + 1
                except TypeError:  # an unhashable key: the constructor's own error follows
                    break
            return super().construct_mapping(node, deep=deep)

    return _Loader


def read_input(path: Path, what: str = "file") -> str:
    """The text of a file the user named: a regular file or a pipe, at most MAX_INPUT_BYTES, UTF-8."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise SpecError(f"{_short(path)}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise SpecError(f"{_short(path)}: is a directory, not a {what}")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise SpecError(f"{_short(path)}: not a regular file (a device or socket cannot be a {what})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO nobody writes to must not block the open
        try:
            data = _read_bounded(fd, path)
        finally:
            os.close(fd)
    except OSError as error:
        raise SpecError(f"{_short(path)}: cannot read ({error.strerror})") from None
    if stat.S_ISFIFO(mode) and not data:
        raise SpecError(f"{_short(path)}: a pipe with nothing to read (no program writes to it)")
    if len(data) > MAX_INPUT_BYTES:
        raise SpecError(f"{_short(path)}: larger than {MAX_INPUT_BYTES // 2**20} MiB, the most moeplan reads as a {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError(f"{_short(path)}: not UTF-8 text (byte {error.start})") from None


def _read_bounded(fd: int, path: Path) -> bytes:
    """Up to MAX_INPUT_BYTES + 1 bytes; a pipe whose writer stays silent for PIPE_WAIT_S is given up."""
    chunks, size = [], 0
    while size <= MAX_INPUT_BYTES:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:  # a pipe with a writer that has not written yet
            if not select.select([fd], [], [], PIPE_WAIT_S)[0]:
                raise SpecError(f"{path}: nothing written to this pipe for {PIPE_WAIT_S} s") from None
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_document(text: str, path: Path, fmt: str | None = None) -> object:
    """YAML or JSON text as data (fmt 'json' or 'yaml'; default: JSON for a .json name, else YAML); errors name
    the file and line."""
    try:
        if (fmt or ("json" if path.suffix.lower() == ".json" else "yaml")) == "json":
            return _bounded(json.loads(text), path)
    except json.JSONDecodeError as error:
        raise SpecError(f"{path}, line {error.lineno}: malformed JSON at column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to read") from None
    import yaml

    try:
        return _bounded(yaml.load(text, Loader=_loader()), path)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{path}" + (f", line {mark.line + 1}" if mark else "") + f": malformed YAML: {problem}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to read") from None


MAX_EXPANDED_VALUES = 10**6
"""Most values a document may hold once YAML aliases are expanded (a 'billion laughs' file holds 10^9)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings in a document (configs nest 3 or 4 deep)."""


def _bounded(data: object, path: Path) -> object:
    """The document itself, unless it nests deeper than MAX_DEPTH or expands beyond MAX_EXPANDED_VALUES."""
    size, depth = _measure(data, {})
    if depth > MAX_DEPTH:
        raise SpecError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if size > MAX_EXPANDED_VALUES:
        raise SpecError(f"{path}: its anchors and aliases expand to more than {MAX_EXPANDED_VALUES:,} values")
    return data


def _measure(value: object, seen: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(values with every alias expanded, nesting depth), each distinct object measured once (linear time)."""
    if not isinstance(value, dict | list):
        return 1, 0
    if id(value) not in seen:
        seen[id(value)] = (1, MAX_DEPTH + 1)  # a cycle (an alias inside its own anchor) is too deep
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        parts = [_measure(item, seen) for item in items]
        seen[id(value)] = (min(1 + sum(size for size, _ in parts), MAX_EXPANDED_VALUES + 1),
                           1 + max((depth for _, depth in parts), default=0))
    return seen[id(value)]


def load_document(path: Path, what: str = "file", fmt: str | None = None) -> object:
    """A YAML or JSON file the user named, with read_input's checks (see parse_document for fmt)."""
    return parse_document(read_input(path, what), Path(path), fmt)


def check_output(path: Path, flag: str, inputs: list[Path] = ()) -> None:
    """Before any work: the folder of an output file exists and is writable, the path is not a folder, and it is
    not one of the command's inputs (nothing the user wrote is overwritten)."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{flag} {path}: is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise SpecError(f"{flag} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SpecError(f"{flag} {path}: not writable")
    for source in inputs:
        if source is not None and path.exists() and Path(source).exists() and path.samefile(source):
            raise SpecError(f"{flag} {path}: is one of the inputs; moeplan does not overwrite what you wrote")


def _short(path: Path) -> str:
    """A path for a message: as given, or its start and end when it is very long."""
    text = str(path)
    return text if len(text) <= 120 else text[:100] + "…" + text[-10:]
