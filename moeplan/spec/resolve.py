"""Turn what the user typed (a preset name, a config or spec file, a model directory, flags) into a spec."""

import warnings
from pathlib import Path

from pydantic import BaseModel

from moeplan.errors import SpecError
from moeplan.spec.checkpoint import CheckpointSummary, summarize_checkpoint
from moeplan.spec.hf import read_hf_config, spec_from_hf_config
from moeplan.spec.model import ModelSpec
from moeplan.spec.overrides import apply_overrides, spec_from_flags
from moeplan.spec.presets import load_preset, preset_names
from moeplan.spec.specfile import is_spec_document, load_document, spec_from_document


class ResolvedSpec(BaseModel):
    """A spec and what came with it."""

    spec: ModelSpec
    checkpoint: CheckpointSummary | None = None
    """Stored tensors, when the source was a model directory holding safetensors files."""
    warnings: list[str] = []
    """Warnings raised while reading the model (an unknown model_type read as Llama): part of every result."""


def _from_path(path: Path) -> ResolvedSpec:
    directory = path if path.is_dir() else None
    if directory is not None:
        spec_files = [p for p in (directory / "moeplan.yaml", directory / "moeplan.json") if p.is_file()]
        config = spec_files[0] if spec_files else directory / "config.json"
        if not config.is_file():
            raise SpecError(f"{directory}: no config.json (or moeplan.yaml) in this directory")
    else:
        config = path
    name = (directory or path.parent if config.name == "config.json" else config.with_suffix("")).name
    if config.suffix.lower() in (".yaml", ".yml") or config.name == "moeplan.json":
        document = load_document(config)
    else:
        document = read_hf_config(config)
    if is_spec_document(document):
        spec = spec_from_document(document, source=str(config))
    else:
        spec = spec_from_hf_config(document, name=name, source=str(config))
    checkpoint = summarize_checkpoint(directory, spec.num_layers) if directory is not None else None
    return ResolvedSpec(spec=spec, checkpoint=checkpoint)


def resolve_spec(model: str | None, overrides: dict[str, object] | None = None) -> ResolvedSpec:
    """Resolve a model argument, then apply overrides; with no model, build the spec from the overrides alone.
    Warnings raised on the way are kept in the result (and still shown as warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = _resolve(model, overrides)
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    resolved.warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return resolved


def _resolve(model: str | None, overrides: dict[str, object] | None) -> ResolvedSpec:
    overrides = overrides or {}
    if model is None:
        return ResolvedSpec(spec=spec_from_flags(overrides))
    path = Path(model).expanduser()
    if model in preset_names() and not path.exists():
        resolved = ResolvedSpec(spec=load_preset(model))
    elif path.exists():
        resolved = _from_path(path)
    elif "/" in model or path.suffix.lower() in (".json", ".yaml", ".yml"):
        raise SpecError(f"no such file or directory: {model}")
    else:
        resolved = ResolvedSpec(spec=load_preset(model))  # raises with the nearest preset names
    resolved.spec = apply_overrides(resolved.spec, overrides)
    return resolved
