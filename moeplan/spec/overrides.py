"""'What if' overrides on any spec: ``--set moe.num_experts=16`` (dotted spec paths, with short aliases)."""

from pydantic import ValidationError

from moeplan.errors import SpecError, describe_validation
from moeplan.spec.model import ModelSpec

ALIASES = {
    "layers": "num_layers",
    "hidden": "hidden_size",
    "vocab": "vocab_size",
    "heads": "attention.num_heads",
    "kv_heads": "attention.num_kv_heads",
    "head_dim": "attention.head_dim",
    "sliding_window": "attention.sliding_window",
    "num_experts": "moe.num_experts",
    "experts": "moe.num_experts",
    "top_k": "moe.top_k",
    "expert_intermediate_size": "moe.expert_intermediate_size",
    "moe_intermediate_size": "moe.expert_intermediate_size",
    "shared_experts": "moe.num_shared_experts",
    "num_shared_experts": "moe.num_shared_experts",
    "first_dense_layers": "moe.first_dense_layers",
}
"""Short names accepted by --set, mapped to their dotted path in the spec."""


def parse_assignment(text: str) -> tuple[str, object]:
    """'key=value' → (dotted path, value parsed as YAML: 16 → int, true → bool, [1, 2] → list)."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise SpecError(f"--set expects key=value, not {text!r}")
    try:
        import yaml  # only when --set is given

        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return ALIASES.get(key, key), value


def apply_overrides(spec: ModelSpec, assignments: dict[str, object]) -> ModelSpec:
    """A new spec with each dotted path set to its value, validated as a whole."""
    if not assignments:
        return spec
    data = spec.model_dump()
    for path, value in assignments.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                if part == "moe" and node.get(part) is None:
                    raise SpecError(f"cannot set {path}: this is a dense model; set moe.num_experts, moe.top_k and moe.expert_intermediate_size together")
                raise SpecError(f"cannot set {path}: {part!r} is not a section of the spec")
            node = node[part]
        if leaf not in node:
            raise SpecError(f"cannot set {path}: unknown spec field {leaf!r}" + _field_hint(node))
        node[leaf] = value
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"after overrides: {describe_validation(error)}") from None


def _field_hint(node: dict) -> str:
    return f" (fields here: {', '.join(sorted(node))})"


def spec_from_flags(fields: dict[str, object]) -> ModelSpec:
    """A spec from flags alone (an architecture that exists only on paper); fields are dotted paths."""
    data: dict = {"name": "custom", "source": "flags", "attention": {}}
    for path, value in fields.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    required = {"num_layers": "--layers", "hidden_size": "--hidden", "vocab_size": "--vocab", "attention.num_heads": "--heads"}
    missing = [flag for path, flag in required.items() if path not in fields]
    if missing:
        raise SpecError(f"no model given: name a preset, a config or spec file, or give at least {', '.join(missing)}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"spec from flags: {describe_validation(error)}") from None
