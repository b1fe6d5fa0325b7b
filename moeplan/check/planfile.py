"""The plan file of `moeplan check`: deployments and the assertions each must meet (YAML or TOML).

Errors name the file, the line and the key. Every deployment accepts the fields of
moeplan.spec.deployment.Deployment (the same settings as `moeplan estimate` flags), plus its name,
model, overrides and assertions.
"""

import tomllib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError
from moeplan.spec.deployment import Deployment
from moeplan.units import GB, GiB, parse_token_count


def parse_bytes(value: object) -> int:
    """'8 GiB', '100MB', '1.5 TB' or a plain number of bytes → bytes (GB = 1e9, GiB = 2^30)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip().replace(" ", "")
    units = {"TiB": 2**40, "GiB": GiB, "MiB": 2**20, "KiB": 2**10, "TB": 10**12, "GB": GB, "MB": 10**6, "KB": 10**3, "B": 1}
    for suffix, scale in units.items():
        if text.endswith(suffix):
            try:
                return int(float(text.removesuffix(suffix)) * scale)
            except ValueError:
                break
    raise ValueError(f"{value!r} is not a byte size such as 8GiB or 100MB")


class Assertions(BaseModel):
    """What must hold for a deployment. Every key is optional."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    fits: bool | None = None
    """The most-loaded GPU fits in usable memory."""
    min_headroom: str | None = None
    """Free memory left on the most-loaded GPU: bytes ('8 GiB') or a percentage of usable memory ('10%')."""
    min_decode_tokens_per_s: float | None = Field(None, gt=0)
    """Decode throughput of the whole deployment, tokens/s."""
    max_time_per_output_token_ms: float | None = Field(None, gt=0)
    """Time per output token (decode step), milliseconds."""
    min_max_context: int | None = None
    """The largest context that fits at the given batch, tokens (accepts 128k)."""
    max_all_to_all_bytes_per_layer: int | None = None
    """Bytes one rank sends per MoE layer (dispatch + combine), accepts '100MB'."""

    @field_validator("min_max_context", mode="before")
    @classmethod
    def _tokens(cls, value):
        return parse_token_count(value, "min_max_context") if value is not None else None

    @field_validator("max_all_to_all_bytes_per_layer", mode="before")
    @classmethod
    def _bytes(cls, value):
        return parse_bytes(value) if value is not None else None

    @field_validator("min_headroom")
    @classmethod
    def _headroom(cls, value):
        if value is not None and not str(value).strip().endswith("%"):
            parse_bytes(value)
        return value


class PlannedDeployment(Deployment):
    """One deployment of a plan file."""

    name: str
    """A label for the report and the JUnit test case."""
    model: str
    """A preset name, or a config/spec path relative to the plan file."""
    set: dict[str, object] = Field(default_factory=dict)
    """Spec overrides, as with --set."""
    assertions: Assertions = Field(default_factory=Assertions, alias="assert")
    """The assertions to check."""

    model_config = ConfigDict(populate_by_name=True)


class PlanFile(BaseModel):
    """A plan file: defaults shared by all deployments, and the deployments."""

    model_config = ConfigDict(extra="forbid")

    defaults: dict[str, object] = Field(default_factory=dict)
    """Deployment fields applied to every deployment unless it sets them itself."""
    deployments: list[dict[str, object]] = Field(min_length=1)


def _yaml_line(text: str, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at a key path, from the composed node tree."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _toml_line(text: str, loc: tuple) -> int | None:
    """Line of the last key of a path in a TOML file (first line that assigns it)."""
    keys = [part for part in loc if isinstance(part, str)]
    if not keys:
        return None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(f"{keys[-1]} ") or stripped.startswith(f"{keys[-1]}="):
            return number
    return None


def _where(path: Path, text: str, loc: tuple) -> str:
    line = (_toml_line if path.suffix == ".toml" else _yaml_line)(text, loc)
    key = ".".join(str(p) for p in loc)
    return f"{path}" + (f", line {line}" if line else "") + (f", key {key}" if key else "")


def load_plan(path: Path) -> list[PlannedDeployment]:
    """Read and validate a plan file; every error names the file, line and key."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read ({error})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: malformed TOML: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SpecError(f"{path}" + (f", line {mark.line + 1}" if mark else "") + f": malformed YAML: {getattr(error, 'problem', error)}") from None
    try:
        plan = PlanFile.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise SpecError(f"{_where(path, text, first['loc'])}: {first['msg']}") from None
    deployments = []
    for index, entry in enumerate(plan.deployments):
        try:
            deployments.append(PlannedDeployment.model_validate({**plan.defaults, **entry}))
        except ValidationError as error:
            first = error.errors()[0]
            loc = ("deployments", index, *first["loc"])
            raise SpecError(f"{_where(path, text, loc)}: {first['msg'].removeprefix('Value error, ')}") from None
    return deployments
