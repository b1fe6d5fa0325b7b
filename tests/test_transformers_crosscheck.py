"""moeplan's parameter counts against what Hugging Face transformers instantiates on the meta device.

For every shipped preset config and every synthetic config in tests/data/hf-configs (written by transformers'
own config classes, see make_configs.py there), the transformers model is built on ``torch.device("meta")``
(no memory, no weights) and its parameters are summed; ``count_params(spec_from_hf_config(config))`` must give
exactly that total, and the same split by component (parameter names mapped to moeplan's components), so a
mismatch names the component it comes from.

The full-size configs are built as they are: with transformers 5's fused expert tensors, DeepSeek-V3 and
Kimi-K2 take well under a second each on meta, so no layer count is reduced.
"""

import copy
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from huggingface_hub.errors import StrictDataclassError  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from moeplan.accounting.params import COMPONENTS, count_params  # noqa: E402
from moeplan.errors import SpecError  # noqa: E402
from moeplan.spec.hf import spec_from_hf_config  # noqa: E402

PRESET_CONFIGS = sorted((Path(__file__).parents[1] / "moeplan" / "data" / "configs").glob("*.json"))
SYNTHETIC_CONFIGS = sorted((Path(__file__).parent / "data" / "hf-configs").glob("*.json"))

COMPONENT_PATTERNS = [
    ("embedding", r"(embed_tokens|wte|model\.embeddings)\.weight$"),
    ("lm_head", r"^lm_head\."),
    ("linear_attention", r"\.linear_attn\."),
    ("short_conv", r"\.conv\.(conv|in_proj|out_proj)\."),
    ("attention", r"\.(self_attn|attn|self_attention)\.|\.mixer\.[qkvo]_proj\."),
    ("mamba", r"\.mamba\.|\.mixer\.(in_proj\.|out_proj\.|conv1d\.|norm\.|dt_bias$|A_log$|D$)"),
    ("shared_experts", r"\.(shared_experts?|shared_expert_gate|shared_mlp|fc[12]_latent_proj)\."),
    ("routed_experts", r"\.experts\.|\.(block_sparse_moe|mlp)\.(input|output)_linear\."),
    ("router", r"\.(gate|router)\.(weight|bias|layer\.weight|e_score_correction_bias|wg\.weight|moe_statics\.e_score_correction_bias)$|\.mlp\.(expert_)?bias$|\.router\.(scale|per_expert_scale|proj\.weight)$"),
    ("dense_mlp", r"\.(mlp|feed_forward|mixer)\.(gate_proj|up_proj|down_proj|w1|w2|w3)\.(weight|bias)$"),
    ("norms", r"(norm|norm_\d|norm_f|layernorm)\.(weight|bias)$"),
]
"""transformers parameter names -> moeplan component; the first pattern that matches wins. Nemotron-H names every
block 'mixer' (attention, Mamba-2, MLP or MoE), told apart by the parameter names."""


def _component(name: str, layer_types: list[str] | None = None) -> str:
    """The component of a parameter; ``layer_types`` (the config's) tells MiniMax's and Kimi Linear's linear
    attention, which transformers names self_attn like their softmax attention, by its layer."""
    layer = re.search(r"\.layers\.(\d+)\.self_attn\.", name)
    if layer and layer_types and layer_types[int(layer.group(1))] == "linear_attention":
        return "linear_attention"
    for component, pattern in COMPONENT_PATTERNS:
        if re.search(pattern, name):
            return component
    raise AssertionError(f"no moeplan component for transformers parameter {name!r}")


def _transformers_config(config: dict):
    """The transformers config object for a config.json dict, adjusted only where transformers needs it."""
    config = copy.deepcopy(config)
    config.pop("quantization_config", None)  # gpt-oss ships MXFP4; instantiating it would need a quantizer
    if isinstance(config.get("text_config"), dict):  # Llama-4: the text model (Llama4ForCausalLM)
        config = config["text_config"]
    model_type = config.pop("model_type")
    if model_type == "kimi_k2":  # Kimi-K2 runs on DeepSeek-V3's architecture
        model_type = "deepseek_v3"
    if model_type == "dbrx":  # the Hub file writes 1 where transformers 5's strict config wants a float
        ffn = config.setdefault("ffn_config", {})
        ffn["moe_normalize_expert_weights"] = float(ffn.get("moe_normalize_expert_weights", 1.0))
    return AutoConfig.for_model(model_type, **config)


def _instantiate(config: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(_transformers_config(config))


def _components(model: torch.nn.Module) -> dict[str, int]:
    """Parameters by moeplan component; named_parameters lists a tied weight once, under its first name."""
    counts = dict.fromkeys(COMPONENTS, 0)
    layer_types = getattr(model.config, "layer_types", None)
    for name, parameter in model.named_parameters():
        counts[_component(name, layer_types)] += parameter.numel()
    return counts


PRESET_CASES = [pytest.param(path, id=f"preset/{path.stem}") for path in PRESET_CONFIGS]
SYNTHETIC_CASES = [pytest.param(path, id=f"synthetic/{path.stem}") for path in SYNTHETIC_CONFIGS]
CASES = PRESET_CASES + SYNTHETIC_CASES


def test_every_architecture_is_covered():
    """Each supported model_type has at least one config here."""
    from moeplan.spec.hf import READERS

    covered = set()
    for path in PRESET_CONFIGS + SYNTHETIC_CONFIGS:
        config = json.loads(path.read_text())
        covered.add(config.get("model_type"))
        if isinstance(config.get("text_config"), dict):
            covered.add(config["text_config"].get("model_type"))
    from test_crosscheck_moe_decoders import TEXT_DECODERS  # text decoders of multimodal models, checked in their container

    covered |= TEXT_DECODERS.keys()
    assert set(READERS) <= covered, f"no cross-check config for {sorted(set(READERS) - covered)}"


@pytest.mark.parametrize("path", CASES)
def test_counts_equal_transformers(path: Path):
    config = json.loads(path.read_text())
    model = _instantiate(config)
    hf_total = sum(p.numel() for p in model.parameters())
    hf_components = _components(model)
    assert sum(hf_components.values()) == hf_total

    counts = count_params(spec_from_hf_config(config, name=path.stem, source=str(path)))
    assert counts.by_component == hf_components
    assert counts.total == hf_total


@pytest.mark.parametrize("path", CASES)
def test_active_equals_transformers_routed_share(path: Path):
    """Active = transformers' total with each MoE layer's routed experts scaled to top_k of E (and JetMoE's
    attention experts to the ones a token uses)."""
    config = json.loads(path.read_text())
    model = _instantiate(config)
    hf_components = _components(model)
    spec = spec_from_hf_config(config)
    routed = hf_components["routed_experts"]
    assert routed * spec.top_k % spec.num_experts == 0
    expected = sum(hf_components.values()) - routed + routed * spec.top_k // spec.num_experts
    if spec.attention.num_experts:  # JetMoE's attention experts: num_heads / num_kv_heads of E per token
        experts = sum(p.numel() for n, p in model.named_parameters() if re.search(r"\.experts\.(input|output)_linear", n)
                      and ".self_attention." in n)
        expected -= experts - experts * (spec.attention.num_heads // spec.attention.kv_heads) // spec.attention.num_experts
    assert count_params(spec).active == expected


def _class_defaults(config: dict) -> dict:
    """The config class's defaults, as its to_dict() writes them."""
    return type(_transformers_config(config))().to_dict()


def _aliased(config: dict) -> dict:
    """The config with each key renamed to its alias in the config class's attribute_map (e.g. Qwen3-MoE's
    num_experts for num_local_experts): the names found in files written for other transformers versions."""
    aliases = {canonical: alias for alias, canonical in type(_transformers_config(config)).attribute_map.items()}
    return {aliases.get(key, key): value for key, value in config.items()}


DBRX_ALIAS_BUG = pytest.mark.xfail(
    strict=True,
    reason="transformers 5.23 DbrxConfig copies d_model into ffn_config.hidden_size before it resolves the alias "
    "hidden_size, so DbrxConfig(hidden_size=84) builds 2048-wide experts (a model that cannot run)",
)


@pytest.mark.parametrize(
    "path", [pytest.param(*case.values, id=case.id, marks=DBRX_ALIAS_BUG if case.id == "synthetic/dbrx" else ()) for case in SYNTHETIC_CASES]
)
def test_aliased_key_names(path: Path):
    """Aliased key names build the same model in transformers and read to the same counts in moeplan."""
    config = _aliased(json.loads(path.read_text()))
    hf_total = sum(p.numel() for p in _instantiate(config).parameters())
    assert count_params(spec_from_hf_config(config)).total == hf_total


@pytest.mark.parametrize("path", SYNTHETIC_CASES)
def test_each_key_left_out(path: Path):
    """Leave out one key at a time: transformers then takes its config class's default, and moeplan must read
    the counts of the model transformers builds, or refuse the config with its own error (a required key, an
    inconsistent result); never a silently different count from a reader default that is not transformers'."""
    config = json.loads(path.read_text())
    defaults = _class_defaults(config)
    total = count_params(spec_from_hf_config(config)).total
    wrong = {}
    for key in sorted(config.keys() - {"model_type"}):
        reduced = {name: value for name, value in config.items() if name != key}
        try:
            counted = count_params(spec_from_hf_config(reduced)).total
        except SpecError:
            continue
        if defaults.get(key, object()) == config[key]:
            expected = total  # the default is the value left out: transformers builds the same model
        else:
            try:
                expected = sum(p.numel() for p in _instantiate(reduced).parameters())
            except (StrictDataclassError, ValueError, TypeError, AttributeError):
                continue  # transformers itself rejects the config without this key
        if counted != expected:
            wrong[key] = counted - expected
    assert not wrong, f"moeplan minus transformers, per key left out: {wrong}"
