"""The plan file of `moeplan check`: deployments and the assertions each must meet (YAML or TOML).

Errors name the file, the line and the key. Every deployment accepts the fields of
moeplan.spec.deployment.Deployment (the same settings as `moeplan estimate` flags), plus its name,
model, overrides and assertions.
"""

import math
import tomllib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError
from moeplan.inputs import parse_document, read_input
from moeplan.spec.deployment import MAX_TOKENS, Deployment
from moeplan.units import parse_bytes, parse_token_count

MAX_DEPLOYMENTS = 1000
"""Most deployments one plan file may list."""


class Assertions(BaseModel):
    """What must hold for a deployment. Every key is optional."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings, strict=True, allow_inf_nan=False)

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
        if value is None:
            return None
        tokens = _user_error(parse_token_count, value)
        if tokens > MAX_TOKENS:
            raise ValueError(f"must be at most {MAX_TOKENS:,} tokens, not {tokens:,}")
        return tokens

    @field_validator("max_all_to_all_bytes_per_layer", mode="before")
    @classmethod
    def _bytes(cls, value):
        return _user_error(parse_bytes, value) if value is not None else None

    @field_validator("min_headroom", mode="before")
    @classmethod
    def _headroom(cls, value):
        """A byte size ≥ 0, or a percentage in [0, 100): kept as written, for the report."""
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                percent = float(value.strip().removesuffix("%"))
            except ValueError:
                percent = math.nan
            if not 0 <= percent < 100:
                raise ValueError(f"must be a percentage from 0% to below 100%, such as 10%, not {value!r}")
            return value.strip()
        if value is None:
            return None
        _user_error(parse_bytes, value)
        return value.strip() if isinstance(value, str) else str(value)

    def any_set(self) -> bool:
        return any(getattr(self, name) is not None for name in type(self).model_fields)


def _user_error(parse, value):
    """A units parser's SpecError as a validation error of the key it was given for."""
    try:
        return parse(value, "it")
    except SpecError as error:
        raise ValueError(str(error).removeprefix("it ")) from None


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

    _where: str = PrivateAttr("")

    @property
    def where(self) -> str:
        """'plan.yaml, line 12, deployment NAME' for a deployment of a plan file ('' for the quick form)."""
        return self._where


class PlanFile(BaseModel):
    """A plan file: defaults shared by all deployments, and the deployments."""

    model_config = ConfigDict(extra="forbid", strict=True)

    defaults: dict[str, object] = Field(default_factory=dict)
    """Deployment fields applied to every deployment unless it sets them itself."""
    deployments: list[dict[str, object]] = Field(min_length=1, max_length=MAX_DEPLOYMENTS)


def _yaml_line(text: str, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at a key path, from the composed node tree."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
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
    """Line of a key path in a TOML file: the last key's first assignment after the line of the key above it."""
    keys = [str(part) for part in loc if isinstance(part, str)]
    if not keys:
        return None
    lines = text.splitlines()
    start = 0
    if loc[:1] == ("deployments",) and len(loc) > 1 and isinstance(loc[1], int):
        tables = [n for n, line in enumerate(lines) if line.strip().startswith("[[deployments]]")]
        start = tables[loc[1]] if loc[1] < len(tables) else 0
    for number in range(start, len(lines)):
        stripped = lines[number].strip()
        if stripped.startswith((f"{keys[-1]} ", f"{keys[-1]}=", f'"{keys[-1]}"')):
            return number + 1
    return None


def _is_toml(path: Path) -> bool:
    return path.suffix.lower() == ".toml"


def _where(path: Path, text: str, loc: tuple, name: str | None = None) -> str:
    """'FILE, line N, deployment NAME, key KEY': where a plan-file value is, by the keys the user wrote."""
    line = (_toml_line if _is_toml(path) else _yaml_line)(text, loc)
    in_deployment = loc[:1] == ("deployments",) and len(loc) > 1 and isinstance(loc[1], int)
    key = ".".join(str(p) for p in (loc[2:] if in_deployment else loc))
    return (f"{path}" + (f", line {line}" if line else "") + (f", deployment {name!r}" if name else "")
            + (f", key {key}" if key else ""))


def _message(item: dict) -> str:
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] in ("int_type", "bool_type", "float_type", "finite_number", "string_type", "greater_than",
                        "greater_than_equal", "less_than_equal", "literal_error") and len(repr(item.get("input"))) < 60:
        message += f", not {item['input']!r}"
    return message


def load_plan(path: Path) -> list[PlannedDeployment]:
    """Read and validate a plan file; every error names the file, the line, the deployment and the key as written."""
    text = read_input(path, "plan file")
    if _is_toml(path):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise SpecError(f"{path}: malformed TOML: {error}") from None
        except RecursionError:
            raise SpecError(f"{path}: nested too deeply to read") from None
    else:
        data = parse_document(text, path, "yaml")
    try:
        plan = PlanFile.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise SpecError(f"{_where(path, text, tuple(first['loc']))}: {_message(first)}") from None
    deployments, names = [], {}
    for index, entry in enumerate(plan.deployments):
        name = entry.get("name") if isinstance(entry.get("name"), str) else None
        try:
            deployment = PlannedDeployment.model_validate({**plan.defaults, **entry})
        except ValidationError as error:
            first = error.errors()[0]
            loc = tuple(first["loc"])
            from_defaults = loc and loc[0] in plan.defaults and loc[0] not in entry
            where = ("defaults", *loc) if from_defaults else ("deployments", index, *loc)
            raise SpecError(f"{_where(path, text, where, name)}: {_message(first)}") from None
        here = _where(path, text, ("deployments", index), name)
        if name in names:
            raise SpecError(f"{here}: a second deployment named {name!r} (the first is on line "
                            f"{(_toml_line if _is_toml(path) else _yaml_line)(text, ('deployments', names[name]))})")
        names[name] = index
        if not deployment.assertions.any_set():
            raise SpecError(f"{here}: no assertions; add an assert block (fits, min_headroom, ...), else the check always passes")
        deployment._where = here
        deployments.append(deployment)
    return deployments
