"""moeplan's own spec file: a ModelSpec as YAML or JSON, marked by a top-level ``moeplan_spec: 1``.

``moeplan spec NAME`` writes one; ``moeplan spec --schema`` prints its JSON Schema (generated from the
pydantic model, so it cannot drift).
"""

import json
from pathlib import Path

from pydantic import ValidationError

from moeplan import inputs
from moeplan.errors import SpecError, describe_validation
from moeplan.spec.model import ModelSpec

SPEC_FORMAT_KEY = "moeplan_spec"
SPEC_FORMAT_VERSION = 1


def is_spec_document(data: object) -> bool:
    """Whether a loaded document is a moeplan spec (rather than a Hugging Face config)."""
    return isinstance(data, dict) and SPEC_FORMAT_KEY in data


def spec_from_document(data: dict, source: str) -> ModelSpec:
    """Validate a moeplan spec document."""
    version = data.get(SPEC_FORMAT_KEY)
    if version != SPEC_FORMAT_VERSION:
        raise SpecError(f"{source}: {SPEC_FORMAT_KEY} must be {SPEC_FORMAT_VERSION}, not {version!r}")
    fields = {key: value for key, value in data.items() if key != SPEC_FORMAT_KEY}
    fields.setdefault("source", source)
    try:
        return ModelSpec.model_validate(fields)
    except ValidationError as error:
        raise SpecError(f"{source}: {describe_validation(error)}") from None


def load_document(path: Path) -> object:
    """Parse a YAML or JSON file (JSON is YAML, but JSON errors are reported as JSON errors); see moeplan.inputs."""
    return inputs.load_document(path)


def spec_to_document(spec: ModelSpec) -> dict:
    """A spec as a document that spec_from_document reads back unchanged (defaults left out)."""
    return {SPEC_FORMAT_KEY: SPEC_FORMAT_VERSION, **spec.model_dump(mode="json", exclude_defaults=True, exclude={"quantization"}),
            **({"quantization": spec.quantization} if spec.quantization else {})}


def dump_spec(spec: ModelSpec, fmt: str = "yaml") -> str:
    """A spec as YAML or JSON text. Its source is left out (the file it is saved to becomes the source of what
    is read back); YAML names it in a leading comment."""
    document = spec_to_document(spec)
    origin = document.pop("source", None)
    if fmt == "json":
        return json.dumps(document, indent=2)
    import yaml  # only when a spec is written as YAML
    return (f"# written by `moeplan spec` from {origin}\n" if origin else "") + yaml.safe_dump(document, sort_keys=False, width=100)


def spec_json_schema() -> dict:
    """JSON Schema of the spec file."""
    schema = ModelSpec.model_json_schema()
    schema["properties"] = {SPEC_FORMAT_KEY: {"const": SPEC_FORMAT_VERSION, "description": "Marks a moeplan spec file."}, **schema["properties"]}
    schema["required"] = [SPEC_FORMAT_KEY, *schema.get("required", [])]
    schema["title"] = "moeplan model spec"
    return schema
