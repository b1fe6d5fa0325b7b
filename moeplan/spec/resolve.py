"""Turn what the user typed (a preset name, a config or spec file, a model directory, a Hugging Face id or
cache folder, flags) into a spec."""

import warnings
from pathlib import Path

from pydantic import BaseModel

from moeplan.accounting.weights import WeightMemory
from moeplan.errors import SpecError
from moeplan.spec.checkpoint import CheckpointSummary, summarize_checkpoint
from moeplan.spec.count_check import index_parameters
from moeplan.spec.gguf import StoredTensor, model_from_header, read_gguf
from moeplan.spec.hf import read_hf_config, spec_from_hf_config
from moeplan.spec.hub import (
    HubConfig,
    NoConfig,
    cache_folder_repo,
    cached_gguf,
    cached_snapshot,
    fetch_from_hub,
    fetch_gguf_from_hub,
    is_offline,
    not_cached_error,
    not_cached_gguf_error,
    parse_repo_id,
    read_cached,
    read_json_object,
)
from moeplan.spec.model import ModelSpec
from moeplan.spec.overrides import apply_overrides, spec_from_flags
from moeplan.spec.presets import load_preset, preset_for_repo, preset_names
from moeplan.spec.specfile import is_spec_document, load_document, spec_from_document


class ResolvedSpec(BaseModel):
    """A spec and what came with it."""

    spec: ModelSpec
    checkpoint: CheckpointSummary | None = None
    """Stored tensors, when the source was a model directory holding safetensors files."""
    warnings: list[str] = []
    """Warnings raised while reading the model (an unknown model_type read as Llama): part of every result."""
    notes: list[str] = []
    """What the source says about itself (a preset used for a Hugging Face id, shards not cached)."""
    index_parameters: int | None = None
    """Parameters the safetensors index's total size implies, for a model directory without its shards."""
    weights: WeightMemory | None = None
    """Weight memory the source itself fixes (a GGUF file: every tensor's stored bytes); used unless dtype flags are given."""
    tensors: list[StoredTensor] | None = None
    """The stored tensors by name (GGUF), for llama.cpp's tensor overrides."""

_FILE_SUFFIXES = (".json", ".yaml", ".yml", ".gguf")


def _with_modelopt_config(config: dict, directory: Path) -> dict:
    """A ModelOpt export keeps its quantization in hf_quant_config.json when config.json has none."""
    extra = directory / "hf_quant_config.json"
    if "quantization_config" in config or not extra.is_file():
        return config
    return {**config, "quantization_config": {"quant_method": "modelopt", **read_json_object(extra)}}


def _from_gguf(path: Path, name: str | None = None) -> ResolvedSpec:
    model = read_gguf(path)
    spec = model.spec if name is None else model.spec.model_copy(update={"name": name, "source": f"{model.spec.source} ({name})"})
    return ResolvedSpec(spec=spec, weights=model.weights, tensors=model.tensors)


def _from_path(path: Path) -> ResolvedSpec:
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _from_gguf(path)
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
        if directory is not None and isinstance(document, dict):
            document = _with_modelopt_config(document, directory)
    if is_spec_document(document):
        spec = spec_from_document(document, source=str(config))
    else:
        spec = spec_from_hf_config(document, name=name, source=str(config))
    checkpoint = summarize_checkpoint(directory, spec.num_layers) if directory is not None else None
    indexed = index_parameters(directory, document) if directory is not None and not is_spec_document(document) else None
    return ResolvedSpec(spec=spec, checkpoint=checkpoint, index_parameters=indexed)


def _from_hub(repo_id: str, hub: HubConfig) -> ResolvedSpec:
    """A spec titled by the repository id, with its stored tensors where they can be counted."""
    config = _with_modelopt_config(hub.config, hub.snapshot) if hub.snapshot is not None else hub.config
    spec = spec_from_hf_config(config, name=repo_id, source=hub.source)
    checkpoint, notes = hub.checkpoint(spec.num_layers)
    return ResolvedSpec(spec=spec, checkpoint=checkpoint, notes=notes)


def _from_cache_folder(path: Path, repo_id: str, cache_dir: Path, commit: str | None) -> ResolvedSpec:
    """A repository's cache folder (its main snapshot) or one snapshot folder of it."""
    snapshot = path if commit is not None else cached_snapshot(repo_id, None, cache_dir)
    if snapshot is None or not (snapshot / "config.json").is_file():
        raise SpecError(f"{path}: no cached snapshot with config.json for {repo_id}; run `hf download {repo_id} config.json`")
    return _from_hub(repo_id, read_cached(repo_id, snapshot))


def _from_repo_id(repo_id: str, revision: str | None, quant: str | None = None) -> ResolvedSpec:
    """The cache first (config.json; a GGUF file for org/name:QUANT or a repository of GGUF files only); then a
    preset built from that repository; then (unless offline) the Hub's metadata."""
    if quant is not None:
        gguf = cached_gguf(repo_id, revision, quant)
        if gguf is not None:
            return _from_gguf(gguf, name=f"{repo_id}:{quant}")
        if is_offline():
            raise not_cached_gguf_error(repo_id, quant)
        return _from_hub_gguf(repo_id, revision, quant)
    snapshot = cached_snapshot(repo_id, revision)
    if snapshot is not None:
        return _from_hub(repo_id, read_cached(repo_id, snapshot))
    gguf = cached_gguf(repo_id, revision, None)
    if gguf is not None:
        return _from_gguf(gguf, name=repo_id)
    preset = preset_for_repo(repo_id) if revision is None else None
    if preset is not None:
        return ResolvedSpec(spec=load_preset(preset), notes=[
            f"{repo_id} is not in the Hugging Face cache; using preset {preset}, built from that repository's config.json"])
    if is_offline():
        raise not_cached_error(repo_id, revision)
    try:
        return _from_hub(repo_id, fetch_from_hub(repo_id, revision))
    except NoConfig:  # a repository of GGUF files: its one GGUF header
        return _from_hub_gguf(repo_id, revision, None)


def _from_hub_gguf(repo_id: str, revision: str | None, quant: str | None) -> ResolvedSpec:
    """A repository's GGUF file read from the Hub by byte ranges of its header."""
    header, path, source = fetch_gguf_from_hub(repo_id, revision, quant)
    model = model_from_header(header, path.rsplit("/", 1)[-1], source)
    name = f"{repo_id}:{quant}" if quant else repo_id
    spec = model.spec.model_copy(update={"name": name})
    return ResolvedSpec(spec=spec, weights=model.weights, tensors=model.tensors)


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
    if model.lower() in preset_names() and not path.exists():
        resolved = ResolvedSpec(spec=load_preset(model.lower()))  # preset names are case-insensitive, as GPU names
    elif path.exists():
        folder = cache_folder_repo(path) if path.is_dir() else None
        resolved = _from_cache_folder(path, *folder) if folder else _from_path(path)
    elif path.suffix.lower() not in _FILE_SUFFIXES and (repo := parse_repo_id(model)):
        resolved = _from_repo_id(*repo)
    elif "/" in model or path.suffix.lower() in _FILE_SUFFIXES:
        raise SpecError(f"no such file or directory: {model}")
    else:
        resolved = ResolvedSpec(spec=load_preset(model))  # raises with the nearest preset names
    changed = apply_overrides(resolved.spec, overrides)
    if resolved.weights is not None and changed != resolved.spec:
        resolved.weights, resolved.tensors = None, None
        resolved.notes.append("spec overrides given: weights are computed from the changed spec, not the file's tensors")
    resolved.spec = changed
    return resolved
