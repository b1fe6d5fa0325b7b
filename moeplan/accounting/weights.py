"""Weight memory by format: bytes per component, per layer and in all, scales and zero-points included.

The policy: ``dtype`` sets the linear layers (attention, experts, dense MLPs, Mamba projections). A plain
float dtype (bf16, fp16, fp32) applies to everything; a quantized one leaves the embedding, lm_head,
router and the non-matrix parameters (norms, biases, sinks) in bf16, as real checkpoints keep them.
Per-component dtypes override either. Without ``dtype`` the config's own quantization_config decides
(DeepSeek-V3: fp8 with 128×128 block scales on every linear layer; gpt-oss: MXFP4 routed experts only;
ModelOpt and compressed-tensors NVFP4 checkpoints: nvfp4 on the linear layers they do not ignore), and a
config without one is bf16. See docs/formulas.md §Weight formats.
"""

import json
import re
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, PositiveInt

from moeplan.accounting.formats import WeightFormat, fp8_block_format, get_format, int4_group_format, int_pack_format, matrix_bytes
from moeplan.accounting.matrices import (
    MTP_PROJECTION,
    Matrix,
    expert_matrices,
    expert_other_params,
    head_matrices,
    head_other_params,
    layer_matrices,
    layer_other_params,
    mtp_matrices,
    mtp_other_params,
)
from moeplan.accounting.params import COMPONENTS, count_params
from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError
from moeplan.spec.model import ModelSpec

LINEAR_COMPONENTS = ("attention", "routed_experts", "shared_experts", "dense_mlp", "mamba", "linear_attention", "short_conv")
"""Components whose matrices ``dtype`` sets."""

DEFAULT = "bf16"
"""Format of everything no dtype, quantization_config or override sets (embedding, lm_head, router, MTP eh_proj, norms)."""


class WeightPolicy(BaseModel):
    """Which format each component's weights are stored in. Unset fields follow the rules in the module docstring."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    dtype: str | None = None
    """Format of the linear layers; None: the config's quantization_config, else bf16."""
    expert_dtype: str | None = None
    """Routed experts, and shared experts unless shared_expert_dtype is set."""
    shared_expert_dtype: str | None = None
    """Shared experts."""
    attention_dtype: str | None = None
    """Attention projections."""
    dense_mlp_dtype: str | None = None
    """Dense MLPs of non-MoE layers."""
    mamba_dtype: str | None = None
    """Mamba projections."""
    embedding_dtype: str | None = None
    """Embedding table, and lm_head unless lm_head_dtype is set."""
    lm_head_dtype: str | None = None
    """Output head."""
    router_dtype: str | None = None
    """Router."""
    vector_dtype: str | None = None
    """Norms, biases, sinks and other non-matrix parameters (a plain float type)."""
    group_size: PositiveInt = 128
    """Group size of int4 GPTQ/AWQ named by a dtype flag (a config's own quantization_config sets its own)."""


class WeightMemory(BaseModel):
    """Weight bytes of a model (GB = 1e9 B; GiB = 2^30 B), by component and layer, in the formats listed."""

    total_bytes: int
    """All weights of the model as transformers instantiates it (MTP modules excluded), metadata included."""
    by_component_bytes: dict[str, int]
    """total_bytes by component (params.COMPONENTS), each with its non-matrix parameters."""
    active_bytes: int
    """Bytes one token reads: everything but the routed experts, plus top-k experts per MoE layer."""
    per_expert_bytes: int
    """One routed expert of one layer, biases included (0 for a dense model)."""
    layer_bytes: list[int]
    """Bytes of each decoder layer; total_bytes minus their sum is the embedding, lm_head and final norm."""
    layer_component_bytes: list[dict[str, int]]
    """Bytes of each decoder layer by component (what llama.cpp's -ngl and --n-cpu-moe move layer by layer)."""
    scale_bytes: int
    """The part of total_bytes that is scales, zero-points and indices."""
    mtp_bytes: int
    """Multi-token-prediction modules as the checkpoint stores them (not in total_bytes; loaded only for MTP speculation)."""
    formats: dict[str, str]
    """Matrix format per component that has matrices (MTP's eh_proj under 'mtp_projection'); norms use vector_format."""
    vector_format: str
    """Format of the non-matrix parameters."""
    origin: str
    """What chose the formats: the dtype flags, the config's quantization_config, or the bf16 default."""
    bits_per_param: float
    """8 · total_bytes / total parameters."""
    notes: list[str]
    """GGUF fallbacks, unmodelled config entries and other caveats."""


_OVERRIDES = {
    "routed_experts": ("expert_dtype",),
    "shared_experts": ("shared_expert_dtype", "expert_dtype"),
    "attention": ("attention_dtype",),
    "dense_mlp": ("dense_mlp_dtype",),
    "mamba": ("mamba_dtype",),
    "embedding": ("embedding_dtype",),
    "lm_head": ("lm_head_dtype", "embedding_dtype"),
    "router": ("router_dtype",),
}
"""Component → policy fields that set it, first match wins."""

_MODULE_COMPONENTS = {
    "self_attn": "attention",
    "attn": "attention",
    "router": "router",
    "mlp.gate": "router",
    "embed_tokens": "embedding",
    "lm_head": "lm_head",
    "shared_expert": "shared_experts",
    "shared_experts": "shared_experts",
    "experts": "routed_experts",
    "mlp.gate_proj": "dense_mlp",
    "mlp.up_proj": "dense_mlp",
    "mlp.gate_up_proj": "dense_mlp",
    "mlp.down_proj": "dense_mlp",
}
"""Module names (whole dotted parts) in a quantization_config's modules_to_not_convert → component."""


_UNQUANTIZED_PARTS = ("shared_expert_gate", "norm", "input_layernorm", "post_attention_layernorm", "mtp", "vision_tower",
                      "mm_projector")
"""Module names an ignore list may name that moeplan keeps in bf16 anyway (or does not count, as a multimodal
model's vision tower): no note."""


def _module_variants(entry: str) -> list[list[str]]:
    """The dotted parts of a module name, glob ('model.layers.0.self_attn*') or 're:' regex ('re:.*mlp.gate$'),
    one list per alternative of a regex group ('re:.*mlp\\.(gate|up)_proj.*': mlp.gate_proj and mlp.up_proj)."""
    text = entry.removeprefix("re:").replace("\\.", ".")
    for wildcard in (".*", ".+", "*", "$", "^"):
        text = text.replace(wildcard, ".")
    group = re.search(r"\(([^()]*)\)", text)
    if group and text.count("(") <= 4:
        return [v for choice in group[1].split("|") for v in _module_variants(text[: group.start()] + choice + text[group.end():])]
    return [[part for part in text.split(".") if part]]


def _module_parts(entry: str) -> list[str]:
    """The dotted parts of a module name (the first alternative of a regex group)."""
    return _module_variants(entry)[0]


def _names(parts: list[str], fragment: str) -> bool:
    """Whether ``parts`` contain ``fragment``'s dotted parts as whole consecutive parts."""
    wanted = fragment.split(".")
    return any(parts[i : i + len(wanted)] == wanted for i in range(len(parts)))


def _layer_of(parts: list[str]) -> int | None:
    """The decoder layer an entry names ('model.layers.12.self_attn' → 12), None for all layers."""
    return next((int(b) for a, b in zip(parts, parts[1:]) if a == "layers" and b.isdigit()), None)


def _unconverted(modules: list[str], num_layers: int | None = None) -> tuple[set[str], list[str]]:
    """Components an ignore list (modules_to_not_convert, exclude_modules, ignore) keeps unquantized, and notes.

    An entry naming one layer ('model.layers.0.self_attn*') counts when such entries cover every layer; a
    component excluded in some layers only is counted as quantized everywhere, and a note says so."""
    found, notes, per_layer = set(), [], {}
    for module in modules:
        variants = _module_variants(str(module))
        parts = variants[0]
        hits = {c for v in variants for fragment, c in _MODULE_COMPONENTS.items() if _names(v, fragment)}
        if not hits:
            if not any(p in _UNQUANTIZED_PARTS for p in parts):
                notes.append(f"quantization_config ignore entry {module!r} matches no component; ignored")
            continue
        layer = _layer_of(parts)
        if layer is None:
            found |= hits
        for component in hits if layer is not None else ():
            per_layer.setdefault(component, set()).add(layer)
    for component, layers in sorted(per_layer.items()):
        if num_layers is not None and set(range(num_layers)) <= layers:
            found.add(component)
        elif component not in found:
            notes.append(f"quantization_config keeps {component} unquantized in {len(layers)} layers only; "
                         "counted as quantized in every layer")
    return found, notes


_COMPRESSED_TENSORS_STRATEGY = {"channel": "fp8-channel", "tensor": "fp8-tensor"}


def _compressed_tensors_format(weights: dict) -> WeightFormat:
    """The format of one compressed-tensors config group's ``weights`` quantization arguments."""
    kind, bits, group = weights.get("type", "int"), weights.get("num_bits"), weights.get("group_size")
    strategy = str(weights.get("strategy", ""))
    if kind == "float" and bits == 4 and group == 16:
        return get_format("nvfp4")
    if kind == "float" and bits == 4 and group == 32:
        return get_format("mxfp4")
    if kind == "float" and bits == 8 and group == 32:
        return get_format("mxfp8")
    if kind == "float" and bits == 8 and strategy == "block":
        block = weights.get("block_structure") or [128, 128]
        return fp8_block_format(*block)
    if kind == "float" and bits == 8 and strategy in _COMPRESSED_TENSORS_STRATEGY:
        return get_format(_COMPRESSED_TENSORS_STRATEGY[strategy])
    if kind == "int" and bits in (4, 8) and strategy in ("group", "channel"):
        return int_pack_format(bits, group if strategy == "group" else None, bool(weights.get("symmetric", True)))
    raise SpecError(f"quantization_config: compressed-tensors weights {kind} {bits}-bit ({strategy or 'no strategy'}, "
                    f"group {group}) is not modelled; pass --dtype to choose a format")


def _targets(targets: list[str]) -> tuple[str, ...]:
    """Components a compressed-tensors group targets: 'Linear' is every linear layer, else by module name."""
    if any(str(t) == "Linear" for t in targets):
        return LINEAR_COMPONENTS
    named = {c for t in targets for fragment, c in _MODULE_COMPONENTS.items() if _names(_module_parts(str(t)), fragment)}
    return tuple(sorted(named))


_MODELOPT_ALGOS = {"NVFP4": "nvfp4", "W4A16_NVFP4": "nvfp4", "MXFP8": "mxfp8", "FP8": "fp8-tensor",
                   "FP8_PER_CHANNEL_PER_TOKEN": "fp8-channel", "FP8_PB_WO": "fp8"}
"""ModelOpt quant_algo → format (vLLM's modelopt.md lists these; FP8_PB_WO is 128x128 block-scaled)."""


def _quantized_components(config: dict, num_layers: int | None) -> tuple[dict[str, WeightFormat], str, list[str], list[str]]:
    """(component → format, origin, ignore list, notes) of a quantization_config, before exclusions."""
    method = str(config.get("quant_method", "")).lower()
    if method == "fp8":
        block = config.get("weight_block_size")
        if block is not None and not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
            raise SpecError(f"quantization_config.weight_block_size must be two positive integers, not {block!r}")
        fmt = fp8_block_format(*block) if block else get_format("fp8-tensor")
        origin = f"quantization_config: fp8 {config.get('fmt', 'e4m3')}, " + (f"{block[0]}x{block[1]} block scales" if block else "per-tensor scale")
        return dict.fromkeys(LINEAR_COMPONENTS, fmt), origin, config.get("modules_to_not_convert") or [], []
    if method == "mxfp4":
        return {"routed_experts": get_format("mxfp4")}, "quantization_config: mxfp4 routed experts", config.get("modules_to_not_convert") or [], []
    if method in ("gptq", "awq"):
        bits = config.get("bits", config.get("w_bit"))
        if bits != 4:
            raise SpecError(f"quantization_config: {method} with {bits} bits is not modelled; pass --dtype to choose a format")
        group = config.get("group_size", config.get("q_group_size", 128))
        if type(group) is not int or not (group > 0 or group == -1):
            raise SpecError(f"quantization_config.group_size must be a positive whole number or -1 (per channel), not {group!r}")
        fmt = int4_group_format(method, None if group == -1 else group)
        return dict.fromkeys(LINEAR_COMPONENTS, fmt), f"quantization_config: {fmt.name}", config.get("modules_to_not_convert") or [], []
    if method.startswith("modelopt"):
        body = config.get("quantization", config)  # hf_quant_config.json nests it under "quantization"
        algo = str(body.get("quant_algo", "")).upper()
        if algo not in _MODELOPT_ALGOS:
            raise SpecError(f"quantization_config: ModelOpt quant_algo {algo or None!r} is not modelled "
                            f"(known: {', '.join(_MODELOPT_ALGOS)}); pass --dtype to choose a format")
        fmt = get_format(_MODELOPT_ALGOS[algo])
        ignore = body.get("exclude_modules") or body.get("ignore") or []
        return dict.fromkeys(LINEAR_COMPONENTS, fmt), f"quantization_config: ModelOpt {algo} ({fmt.name})", ignore, []
    if method == "compressed-tensors":
        formats: dict[str, WeightFormat] = {}
        groups = config.get("config_groups") or {}
        for group in groups.values():
            if isinstance(group, dict) and isinstance(group.get("weights"), dict):
                fmt = _compressed_tensors_format(group["weights"])
                formats.update(dict.fromkeys(_targets(group.get("targets") or []), fmt))
        if not formats:
            raise SpecError("quantization_config: compressed-tensors without config_groups weights is not modelled; "
                            "pass --dtype to choose a format")
        names = ", ".join(sorted({f.name for f in formats.values()}))
        origin = f"quantization_config: compressed-tensors {config.get('format', '')} ({names})".replace("  ", " ")
        return formats, origin, config.get("ignore") or [], []
    raise SpecError(f"quantization_config quant_method {method or None!r} is not modelled; pass --dtype to choose a weight format")


def formats_from_quantization_config(config: dict, num_layers: int | None = None) -> tuple[dict[str, WeightFormat], str, list[str]]:
    """Formats a Hugging Face quantization_config gives the components it quantizes (others stay bf16).

    fp8: every linear layer, with block scales of weight_block_size (per-tensor scale without one).
    mxfp4: the routed experts (transformers' Mxfp4 quantizer replaces only the expert blocks).
    gptq / awq (4-bit): every linear layer, at the config's group size (-1: per channel).
    modelopt: quant_algo NVFP4, MXFP8, FP8... on every linear layer but its exclude_modules / ignore.
    compressed-tensors: each config group's weights arguments (float 4-bit group 16: nvfp4) on its targets
    ('Linear': every linear layer), but its ignore list. lm_head and the router stay bf16 unless targeted by name.
    """
    try:
        quantized, origin, ignore, notes = _quantized_components(config, num_layers)
    except (TypeError, ValueError, AttributeError, KeyError):  # a value of the wrong kind deep inside the config
        raise SpecError("quantization_config is malformed: a value has the wrong type or shape; compare it with the "
                        "checkpoint's published config, or pass --dtype to choose a weight format") from None
    if not isinstance(ignore, list) or not all(isinstance(module, str) for module in ignore):
        raise SpecError(f"quantization_config: the modules kept unquantized (modules_to_not_convert, ignore, "
                        f"exclude_modules) must be a list of module names, not {json.dumps(ignore)[:60]}")
    excluded, ignore_notes = _unconverted(ignore, num_layers)
    return {c: fmt for c, fmt in quantized.items() if c not in excluded}, origin, notes + ignore_notes


def resolve_formats(spec: ModelSpec, policy: WeightPolicy) -> tuple[dict[str, WeightFormat], WeightFormat, str, list[str]]:
    """Matrix format per component, the non-matrix format, what chose them, and notes."""
    group = policy.group_size
    matrix_components = (*COMPONENTS, MTP_PROJECTION)
    notes: list[str] = []
    if policy.dtype is not None:
        base = get_format(policy.dtype, group)
        everywhere = base if base.is_plain_float else get_format(DEFAULT)
        formats = {c: base if c in LINEAR_COMPONENTS else everywhere for c in matrix_components}
        vectors, origin = everywhere, f"dtype {base.name}"
    elif spec.quantization:
        quantized, origin, notes = formats_from_quantization_config(spec.quantization, spec.num_layers)
        formats = {c: quantized.get(c, get_format(DEFAULT)) for c in matrix_components}
        vectors = get_format(DEFAULT)
    else:
        formats = dict.fromkeys(matrix_components, get_format(DEFAULT))
        vectors, origin = get_format(DEFAULT), "default bf16 (no dtype, no quantization_config)"
    for component, fields in _OVERRIDES.items():
        chosen = next((getattr(policy, f) for f in fields if getattr(policy, f) is not None), None)
        if chosen is not None:
            formats[component] = get_format(chosen, group)
    if policy.vector_dtype is not None:
        vectors = get_format(policy.vector_dtype)
        if not vectors.is_plain_float:
            raise SpecError(f"vector_dtype must be bf16, fp16 or fp32 (norms and biases are not quantized), not {policy.vector_dtype!r}")
    if any(getattr(policy, f) is not None for fields in _OVERRIDES.values() for f in fields):
        origin += " with per-component overrides"
    return formats, vectors, origin, notes


class _Cost(NamedTuple):
    by_component: dict[str, int]
    """Bytes per component."""
    scale_bytes: int
    """Of which scales, zero-points and indices."""
    fallbacks: set[tuple[str, str, str, int]]
    """GGUF fallbacks taken: (component, requested, used, row length)."""

    @property
    def total(self) -> int:
        return sum(self.by_component.values())


def _cost(matrices: list[Matrix], others: dict[str, int], formats: dict[str, WeightFormat], vectors: WeightFormat) -> _Cost:
    """Bytes of some matrices in their components' formats plus non-matrix parameters in the vector format."""
    by_component: dict[str, int] = {}
    scale_bytes, fallbacks = 0, set()
    for m in matrices:
        fmt = formats[m.component]
        cost = matrix_bytes(fmt, m.rows, m.cols)
        if cost.format != fmt.name:
            fallbacks.add((m.component, fmt.name, cost.format, m.cols))
        scale_bytes += cost.overhead * m.count
        by_component[m.component] = by_component.get(m.component, 0) + cost.total * m.count
    for component, params in others.items():
        by_component[component] = by_component.get(component, 0) + params * vectors.value_bits // 8
    return _Cost(by_component, scale_bytes, fallbacks)


def active_weight_bytes(spec: ModelSpec, total_bytes: int, routed_expert_bytes: int, per_expert_bytes: int) -> int:
    """Weight bytes one token reads: all but the routed experts, plus top_k experts in each MoE layer
    (``per_expert_bytes``: one expert of one layer). For spec-computed and for stored (GGUF) weights alike."""
    return total_bytes - routed_expert_bytes + spec.moe_layer_count * spec.top_k * per_expert_bytes


def weight_memory(spec: ModelSpec, policy: WeightPolicy | None = None) -> WeightMemory:
    """Weight bytes of ``spec`` under ``policy`` (default: the config's own formats, else bf16)."""
    formats, vectors, origin, notes = resolve_formats(spec, policy or WeightPolicy())
    layer_lists = [layer_matrices(spec, i) for i in range(spec.num_layers)]
    head, mtp_list = head_matrices(spec), mtp_matrices(spec)
    layers = [_cost(m, layer_other_params(spec, i), formats, vectors) for i, m in enumerate(layer_lists)]
    parts = [*layers, _cost(head, head_other_params(spec), formats, vectors)]
    mtp = _cost(mtp_list, {"norms": mtp_other_params(spec)}, formats, vectors)
    with_matrices = {m.component for matrices in (*layer_lists, head, mtp_list) for m in matrices}
    by_component = dict.fromkeys(COMPONENTS, 0)
    for part in parts:
        for component, value in part.by_component.items():
            by_component[component] += value
    per_expert = 0
    if spec.moe:
        expert = {"routed_experts": expert_other_params(spec.moe, spec.hidden_size)}
        per_expert = _cost(expert_matrices(spec.moe, spec.hidden_size), expert, formats, vectors).total
    total = sum(by_component.values())
    fallbacks = set().union(*(part.fallbacks for part in (*parts, mtp)))
    notes += [
        f"{component}: rows of {cols} values are not whole {name} blocks; llama.cpp stores such tensors as {used}"
        for component, name, used, cols in sorted(fallbacks)
    ]
    return WeightMemory(
        total_bytes=total,
        by_component_bytes=by_component,
        active_bytes=active_weight_bytes(spec, total, by_component["routed_experts"], per_expert),
        per_expert_bytes=per_expert,
        layer_bytes=[layer.total for layer in layers],
        layer_component_bytes=[{c: layer.by_component.get(c, 0) for c in COMPONENTS} for layer in layers],
        scale_bytes=sum(part.scale_bytes for part in parts),
        mtp_bytes=mtp.total,
        formats={c: f.name for c, f in formats.items() if c in with_matrices},
        vector_format=vectors.name,
        origin=origin,
        bits_per_param=8 * total / count_params(spec).total,
        notes=notes,
    )
