"""Read a Hugging Face ``config.json`` into a ModelSpec.

One reader per architecture family, keyed by ``model_type``; each maps that family's key names onto
the spec. A config of an unknown model_type is read as a dense Llama-style decoder, with a warning, only
when moeplan understands every key that can change a count; otherwise it is refused (readers/unknown.py).
"""

import json
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from moeplan.errors import SpecError, describe_validation
from moeplan.inputs import load_document
from moeplan.spec.model import MAX_LAYERS, ModelSpec
from moeplan.spec.readers.unknown import check_dense, check_unknown

Config = dict


_COUNT_KEY = re.compile(r"^(num|n)_\w+$|_(size|dim|heads|experts|rank|tok)$")
"""Config keys that hold a count or a width by transformers' naming (num_hidden_layers, n_group, hidden_size,
head_dim, kv_lora_rank, num_experts_per_tok): a whole number wherever they are read."""
_NOT_COUNTS = {"mamba_dt_rank"}
"""Count-like names that hold something else ('auto'); a name ending in _per_layer holds a list."""


class _Keys:
    """Reads keys from a config dict, remembering which were used and failing clearly when one is missing."""

    def __init__(self, config: Config, where: str):
        self.config = config
        self.where = where
        self.used: list[str] = []
        self.flags: set[str] = set()
        """Keys read as true/false."""

    def __call__(self, *names: str, default=..., minimum: int | None = None):
        """The first of ``names`` the config sets. Strict: a number is finite; where the default is a bool, an int
        or a list, the value is one too (no "false" for false, no true for 1); ``minimum`` bounds a number below."""
        for name in names:
            if name in self.config and self.config[name] is not None:
                self.used.append(name)
                if isinstance(default, bool):
                    self.flags.add(name)
                return self._checked(name, self.config[name], default, minimum)
        if default is ...:
            raise SpecError(f"{self.where}: required key {' or '.join(repr(n) for n in names)} is missing")
        return default

    def _checked(self, name: str, value, default, minimum: int | None):
        wrong = None
        if isinstance(value, float) and not math.isfinite(value):
            wrong = "a finite number"
        elif _COUNT_KEY.search(name) and not name.endswith("_per_layer") and name not in _NOT_COUNTS and type(value) is not int:
            wrong = "a whole number"
        elif (name.endswith(("_types", "_per_layer")) or isinstance(default, list)) and not isinstance(value, list):
            wrong = "a list"
        elif isinstance(default, bool) and not isinstance(value, bool):
            wrong = "true or false"
        elif isinstance(default, int) and not isinstance(default, bool) and (type(value) is not int):
            wrong = "a whole number"
        elif minimum is not None and (type(value) is not int or value < minimum):
            wrong = f"a whole number of at least {minimum}"
        if wrong:
            raise SpecError(f"{self.where}: {name} must be {wrong}, not {json.dumps(value)[:60]}")
        return value

    def as_written(self, message: str, fields: dict, prefix: str = "") -> str:
        """A message about spec fields (moe.first_dense_layers) with each field the reader filled from one config key
        named by that key instead (first_k_dense_replace)."""
        for name, value in fields.items():
            path = f"{prefix}{name}"
            if isinstance(value, dict):
                message = self.as_written(message, value, f"{path}.")
            elif (key := self.key_for(value)) is not None and key != name:
                for written in (path, name):
                    message = re.sub(rf"(?<![\w.]){re.escape(written)}(?!\w)", key, message)
        return message

    def key_for(self, value) -> str | None:
        """The key the user wrote whose value is ``value`` (for error messages), when exactly one key read has it."""
        matches = [n for n in dict.fromkeys(self.used) if n not in self.flags
                   and type(self.config.get(n)) is type(value) and self.config.get(n) == value]
        return matches[0] if len(matches) == 1 else None

    def has(self, name: str) -> bool:
        return self.config.get(name) is not None


def _gqa_attention(k: _Keys, **extra) -> dict:
    attention = {
        "kind": "gqa",
        "num_heads": k("num_attention_heads"),
        "num_kv_heads": k("num_key_value_heads", default=None),
        "head_dim": k("head_dim", default=None),
        "qkv_bias": bool(k("attention_bias", default=False)),
        "o_bias": bool(k("attention_bias", default=False)),
    }
    attention.update(extra)
    return attention


def _base(k: _Keys, **extra) -> dict:
    spec = {
        "num_layers": k("num_hidden_layers"),
        "hidden_size": k("hidden_size"),
        "vocab_size": k("vocab_size"),
        "tie_word_embeddings": bool(k("tie_word_embeddings", default=False)),
        "intermediate_size": k("intermediate_size", default=None),
        "max_position_embeddings": k("max_position_embeddings", default=None),
    }
    spec.update(extra)
    return spec


def _sliding(k: _Keys) -> dict:
    """Sliding-window attention on every layer, where the config enables it (Mistral/Mixtral style)."""
    window = k("sliding_window", default=None)
    if window and k("use_sliding_window", default=True):
        return {"sliding_window": window, "layer_pattern": ["sliding"]}
    return {}


def _llama(k: _Keys) -> dict:
    """Dense Llama, Mistral, Qwen2 and Qwen3."""
    model_type = k.config.get("model_type")
    extra = _sliding(k) if model_type in ("mistral", "qwen2", "qwen3") else {}
    if model_type == "qwen2":
        extra |= {"qkv_bias": True, "o_bias": False}
    if model_type == "qwen3":
        extra["qk_norm"] = "per_head"
    return _base(k, attention=_gqa_attention(k, **extra), mlp_bias=bool(k("mlp_bias", default=False)))


def _mixtral(k: _Keys) -> dict:
    return _base(
        k,
        attention=_gqa_attention(k, **_sliding(k)),
        moe={
            "num_experts": k("num_local_experts", "num_experts"),
            "top_k": k("num_experts_per_tok"),
            "expert_intermediate_size": k("intermediate_size"),
        },
        intermediate_size=None,
    )


def _shared_expert(k: _Keys, key: str = "shared_expert_intermediate_size", **extra) -> dict:
    """MoE fields of one shared expert as wide as ``key`` says, with ``extra``; none when it is 0 or absent."""
    width = k(key, default=0)
    return {"num_shared_experts": 1, "shared_intermediate_size": width, **extra} if width else {}


def _grouped_moe(k: _Keys, experts: tuple[str, ...] = ("n_routed_experts",),
                 shared: tuple[str, ...] | None = ("n_shared_experts",), **extra) -> dict:
    """DeepSeek-V3-style MoE fields: routed experts (under the first of ``experts`` set) of moe_intermediate_size,
    group-limited routing (n_group, topk_group) with a correction bias, shared experts under ``shared`` (None: the
    family has none), then ``extra``."""
    moe = {
        "num_experts": k(*experts),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "router_correction_bias": True,
        "num_expert_groups": k("n_group", default=1),
        "topk_groups": k("topk_group", default=1),
    }
    if shared:
        moe["num_shared_experts"] = k(*shared, default=0)
    return moe | extra


def _qwen_moe(k: _Keys) -> dict:
    """Qwen2-MoE (Qwen1.5-MoE) and Qwen3-MoE."""
    qwen3 = k.config.get("model_type") == "qwen3_moe"
    attention = _gqa_attention(k, **_sliding(k))
    if qwen3:
        attention["qk_norm"] = "per_head"
    else:  # biases on q, k and v only, switched by qkv_bias (transformers' default: on)
        attention |= {"qkv_bias": bool(k("qkv_bias", default=True)), "o_bias": False}
    moe = {
        "num_experts": k("num_experts", "num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "layer_period": k("decoder_sparse_step", default=1),
        "layer_offset": k("decoder_sparse_step", default=1) - 1,
        "dense_layers": k("mlp_only_layers", default=[]),
        **_shared_expert(k, shared_expert_gate=True),
    }
    return _base(k, attention=attention, moe=moe)


def _mla_attention(k: _Keys, **extra) -> dict:
    """Multi-head latent attention under DeepSeek's key names (q_lora_rank null: a full query projection)."""
    return {
        "kind": "mla",
        "num_heads": k("num_attention_heads"),
        "q_lora_rank": k("q_lora_rank", default=None),
        "kv_lora_rank": k("kv_lora_rank"),
        "qk_nope_head_dim": k("qk_nope_head_dim"),
        "qk_rope_head_dim": k("qk_rope_head_dim"),
        "v_head_dim": k("v_head_dim"),
        "qkv_bias": bool(k("attention_bias", default=False)),
        "o_bias": bool(k("attention_bias", default=False)),
        **extra,
    }


def _deepseek(k: _Keys) -> dict:
    """DeepSeek-V2, V2-Lite, V3 and Kimi-K2 (multi-head latent attention, shared experts, first-k dense layers)."""
    v3 = k.config.get("model_type") in ("deepseek_v3", "kimi_k2") or k.config.get("topk_method") == "noaux_tc"
    attention = _mla_attention(k)
    moe = _grouped_moe(
        k,
        ("n_routed_experts", "num_experts", "num_local_experts"),
        router_correction_bias=v3,
        first_dense_layers=k("first_k_dense_replace", default=0),
        # DeepSeek's own modeling code honours moe_layer_freq; transformers' port ignores it (every released
        # checkpoint has 1), so a config with another value is read as DeepSeek wrote it.
        layer_period=k("moe_layer_freq", default=1),
    )
    return _base(k, attention=attention, moe=moe, mtp_layers=_mtp_layers(k))


_MLP_KINDS = ("dense", "sparse")


def _moe_layers(k: _Keys, first_dense: int = 0, default_kinds: list[str] | None = None) -> list[int]:
    """The MoE layers (indices) from mlp_layer_types, a per-layer list of 'dense' or 'sparse'; when the config has
    none, ``default_kinds``, else transformers' usual default: the first ``first_dense`` layers dense, the rest sparse.
    Another kind, or a list shorter than num_hidden_layers, is refused (it would count a layer wrong); entries past
    the last layer are unused, as in transformers."""
    layers = k("num_hidden_layers")
    kinds = k("mlp_layer_types", default=None)
    if kinds is None:
        kinds = default_kinds if default_kinds is not None else ["dense"] * first_dense + ["sparse"] * layers
    if not isinstance(kinds, list):
        raise SpecError(f"{k.where}: mlp_layer_types must be a list of 'dense' or 'sparse', not {json.dumps(kinds, default=str)[:60]}")
    for kind in kinds:
        if kind not in _MLP_KINDS:
            raise SpecError(f"{k.where}: mlp_layer_types has {json.dumps(kind, default=str)[:60]}, not 'dense' or 'sparse'")
    if len(kinds) < layers:
        raise SpecError(f"{k.where}: mlp_layer_types lists {len(kinds)} layers, not one per layer ({layers}, num_hidden_layers)")
    return [i for i, kind in enumerate(kinds[:layers]) if kind == "sparse"]


def _mtp_layers(k: _Keys) -> int:
    """Multi-token-prediction modules (transformers 5 also spells the key num_mtp_layers)."""
    return k("num_nextn_predict_layers", "num_mtp_layers", default=0)


def _glm4_moe(k: _Keys) -> dict:
    attention = _gqa_attention(k, o_bias=False)
    if k("use_qk_norm", default=False):
        attention["qk_norm"] = "per_head"
    moe = _grouped_moe(k, ("n_routed_experts", "num_local_experts"), first_dense_layers=k("first_k_dense_replace", default=0))
    return _base(k, attention=attention, moe=moe, mtp_layers=_mtp_layers(k))


def _olmoe(k: _Keys) -> dict:
    return _base(
        k,
        attention=_gqa_attention(k, qk_norm="full"),
        moe={"num_experts": k("num_experts", "num_local_experts"), "top_k": k("num_experts_per_tok"), "expert_intermediate_size": k("intermediate_size")},
        intermediate_size=None,
    )


def _dbrx(k: _Keys) -> dict:
    attn = _Keys(k("attn_config", default={}), f"{k.where}: attn_config")
    ffn = _Keys(k("ffn_config", default={}), f"{k.where}: ffn_config")
    spec = {
        "num_layers": k("n_layers", "num_hidden_layers"),
        "hidden_size": k("d_model", "hidden_size"),
        "vocab_size": k("vocab_size"),
        "tie_word_embeddings": bool(k("tie_word_embeddings", default=False)),
        "max_position_embeddings": k("max_seq_len", "max_position_embeddings", default=None),
        "norm": "layernorm_nobias",
        "attention": {"num_heads": k("n_heads", "num_attention_heads"), "num_kv_heads": attn("kv_n_heads", default=1)},
        "moe": {
            "num_experts": ffn("moe_num_experts"),
            "top_k": ffn("moe_top_k"),
            "expert_intermediate_size": ffn("ffn_hidden_size"),
        },
    }
    k.used += [f"attn_config.{n}" for n in attn.used] + [f"ffn_config.{n}" for n in ffn.used]
    return spec


def _gpt_oss(k: _Keys) -> dict:
    layer_types = k("layer_types", default=None) or ["sliding_attention", "full_attention"]
    pattern = ["sliding" if t == "sliding_attention" else "full" for t in layer_types]
    attention = _gqa_attention(k, sinks=True, sliding_window=k("sliding_window"), layer_pattern=_shortest_cycle(pattern))
    moe = {
        "num_experts": k("num_local_experts", "num_experts"),
        "top_k": k("num_experts_per_tok", "experts_per_token"),
        "expert_intermediate_size": k("intermediate_size"),
        "expert_bias": True,
        "router_bias": True,
    }
    return _base(k, attention=attention, moe=moe, intermediate_size=None)


def _llama4(k: _Keys) -> dict:
    layers = k("num_hidden_layers")
    step = k("interleave_moe_layer_step", default=1, minimum=1)
    moe_layers = k("moe_layers", default=None) or list(range(step - 1, layers, step))
    no_rope = k("no_rope_layers", default=None)
    if not no_rope:
        interval = k("no_rope_layer_interval", default=4, minimum=1)
        no_rope = [int((i + 1) % interval != 0) for i in range(layers)]
    chunk = k("attention_chunk_size", default=None)
    pattern = ["chunked" if (uses_rope and chunk) else "full" for uses_rope in no_rope]
    attention = _gqa_attention(
        k,
        qk_norm="parameter_free" if k("use_qk_norm", default=True) else "none",
        chunk_size=chunk,
        layer_pattern=_shortest_cycle(pattern),
    )
    moe = {
        "num_experts": k("num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("intermediate_size"),
        "num_shared_experts": 1,
        "moe_layers": moe_layers,
    }
    return _base(k, attention=attention, moe=moe, intermediate_size=k("intermediate_size_mlp", default=None))


def _phimoe(k: _Keys) -> dict:
    return _base(
        k,
        attention=_gqa_attention(k, **_sliding(k)),
        moe={
            "num_experts": k("num_local_experts"),
            "top_k": k("num_experts_per_tok"),
            "expert_intermediate_size": k("intermediate_size"),
        },
        intermediate_size=None,
        norm="layernorm",
        lm_head_bias=bool(k("lm_head_bias", default=False)),
    )


def _granitemoe(k: _Keys) -> dict:
    moe = {
        "num_experts": k("num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("intermediate_size"),
        **_shared_expert(k, "shared_intermediate_size"),
    }
    return _base(k, attention=_gqa_attention(k), moe=moe, intermediate_size=None)


def _jamba(k: _Keys) -> dict:
    hidden = k("hidden_size")
    dt_rank = k("mamba_dt_rank", default="auto")
    return _base(
        k,
        attention=_gqa_attention(k),
        moe={
            "num_experts": k("num_experts", "num_local_experts"),
            "top_k": k("num_experts_per_tok"),
            "expert_intermediate_size": k("intermediate_size"),
            "layer_period": k("expert_layer_period", default=2),
            "layer_offset": k("expert_layer_offset", default=1),
        },
        mamba={
            "d_state": k("mamba_d_state", default=16),
            "d_conv": k("mamba_d_conv", default=4),
            "expand": k("mamba_expand", default=2),
            "dt_rank": math.ceil(hidden / 16) if dt_rank == "auto" else dt_rank,
            "conv_bias": bool(k("mamba_conv_bias", default=True)),
            "proj_bias": bool(k("mamba_proj_bias", default=False)),
            "attention_period": k("attn_layer_period", default=8),
            "attention_offset": k("attn_layer_offset", default=4),
        },
    )


def _shortest_cycle(pattern: list[str]) -> list[str]:
    """The shortest prefix that, repeated, gives the whole per-layer list (so layer-count overrides keep the pattern)."""
    for size in range(1, len(pattern) + 1):
        if all(pattern[i] == pattern[i % size] for i in range(len(pattern))):
            return pattern[:size]
    return pattern


from moeplan.spec.readers import hybrid, sparse_attention  # noqa: E402  (they use the helpers above)
from moeplan.spec.readers import moe_decoders  # noqa: E402

READERS: dict[str, Callable[[_Keys], dict]] = {
    "llama": _llama,
    "mistral": _llama,
    "qwen2": _llama,
    "qwen3": _llama,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,
    "glm4_moe": _glm4_moe,
    "olmoe": _olmoe,
    "dbrx": _dbrx,
    "gpt_oss": _gpt_oss,
    "llama4": _llama4,
    "llama4_text": _llama4,
    "phimoe": _phimoe,
    "granitemoe": _granitemoe,
    "granitemoeshared": _granitemoe,
    "jamba": _jamba,
    **hybrid.READERS,
    **sparse_attention.READERS,
    **moe_decoders.READERS,
}
"""Supported Hugging Face model_type values."""

_LLAMA4_TEXT_DEFAULTS = {"num_key_value_heads": 8, "head_dim": 128, "attention_chunk_size": 8192, "intermediate_size_mlp": 16384}

TRANSFORMERS_DEFAULTS: dict[str, Config] = {
    "mistral": {"num_key_value_heads": 8, "sliding_window": 4096},
    "mixtral": {"num_key_value_heads": 8},
    "qwen2": {"num_key_value_heads": 32, "use_sliding_window": False},
    "qwen3": {"num_key_value_heads": 32, "head_dim": 128, "use_sliding_window": False},
    "qwen2_moe": {"num_key_value_heads": 16, "shared_expert_intermediate_size": 5632, "use_sliding_window": False},
    "qwen3_moe": {"num_key_value_heads": 4, "use_sliding_window": False},
    "deepseek_v2": {"q_lora_rank": 1536, "n_shared_experts": 2},
    "deepseek_v3": {"q_lora_rank": 1536, "n_shared_experts": 1, "n_group": 8, "topk_group": 4, "first_k_dense_replace": 3},
    "glm4_moe": {"num_key_value_heads": 8, "n_shared_experts": 1, "first_k_dense_replace": 1},
    "gpt_oss": {"num_key_value_heads": 8, "head_dim": 64, "attention_bias": True, "sliding_window": 128},
    "llama4": _LLAMA4_TEXT_DEFAULTS,
    "llama4_text": _LLAMA4_TEXT_DEFAULTS,
    "phimoe": {"num_key_value_heads": 8},
    "jamba": {"num_key_value_heads": 8},
    **hybrid.TRANSFORMERS_DEFAULTS,
    **sparse_attention.TRANSFORMERS_DEFAULTS,
    **moe_decoders.TRANSFORMERS_DEFAULTS,
}
"""transformers' config-class defaults (5.x) for keys a config.json may leave out, where they differ from the
readers' own defaults: a key left out reads as transformers reads it. Only keys absent from the file are filled
(an explicit null stays null, e.g. DeepSeek-V2-Lite's q_lora_rank). Kimi-K2 (remote code) gets none."""


def spec_from_hf_config(config: Config, name: str = "custom", source: str = "config") -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config dict (multimodal configs: their text part)."""
    if not isinstance(config, dict):
        raise SpecError(f"{source}: a config must be a JSON object, not {type(config).__name__}")
    if isinstance(config.get("text_config"), dict):  # the container's own tying and quantization apply to its text model
        outer = {key: config[key] for key in ("tie_word_embeddings", "quantization_config") if key in config}
        config = {**config["text_config"], **outer, "model_type": config["text_config"].get("model_type", config.get("model_type"))}
    model_type = config.get("model_type")
    if not isinstance(model_type, str | None):
        raise SpecError(f"{source}: model_type must be a string, not {model_type!r}")
    reader = READERS.get(model_type)
    if reader is None:  # refused unless every key that can change a count is understood (readers/unknown.py)
        warnings.warn(f"{source}: {check_unknown(config, model_type, source)}", stacklevel=2)
        reader = _llama
    elif reader is _llama:
        check_dense(config, model_type, source)
    for key in ("num_hidden_layers", "n_layers"):  # readers build per-layer lists: bound them before any runs
        if type(config.get(key)) is int and config[key] > MAX_LAYERS:
            raise SpecError(f"{source}: {key}: must be between 0 and {MAX_LAYERS}, not {config[key]:,}")
    config = TRANSFORMERS_DEFAULTS.get(model_type, {}) | config
    keys = _Keys(config, source)
    fields: dict = {}
    try:
        fields = reader(keys)
        quantization = config.get("quantization_config")
        return ModelSpec(
            name=name,
            source=source,
            architecture=str(model_type or reader.__name__.strip("_")),
            quantization=quantization if isinstance(quantization, dict) else None,
            **fields,
        )
    except ValidationError as error:  # named by the config's own keys where the value tells which one it was
        names = {tuple(e["loc"]): keys.key_for(e.get("input")) for e in error.errors() if "input" in e}
        raise SpecError(f"{source}: {keys.as_written(describe_validation(error, names), fields)}") from None
    except (TypeError, ValueError, AttributeError, ArithmeticError, IndexError, KeyError):  # a value of the wrong kind
        last = keys.used[-1] if keys.used else None
        value = f" ({last}: {json.dumps(config.get(last))[:60]})" if last else ""
        raise SpecError(f"{source}: malformed config: a key read has a value of the wrong type or size{value}") from None


def read_hf_config(path: Path) -> Config:
    """Load config.json from a file or a model directory."""
    if path.is_dir():
        path = path / "config.json"
    return load_document(path, "config", fmt="json")  # a regular file or a pipe such as <(cat config.json)
