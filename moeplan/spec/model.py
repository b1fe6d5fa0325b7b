"""The model spec: everything moeplan needs to know about an MoE (or dense) transformer.

A dense model is an MoE with one expert and top-1 in every layer; it needs no ``moe`` block.
Letters used in docstrings: L layers, H hidden size, V vocabulary, E routed experts, k top-k,
I expert intermediate size.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from moeplan.docstrings import add_field_docstrings

LayerAttention = Literal["full", "sliding", "chunked"]
Mixer = Literal["attention", "mamba", "mamba2", "linear_attention", "short_conv", "none"]
"""The sequence mixer of a layer: softmax attention (``attention``), Jamba's Mamba, Mamba-2, a linear attention
(``linear_attention``: gated DeltaNet, Kimi delta attention or lightning attention), LFM2's gated short
convolution, or none (a layer that is only an MLP or MoE block, as in Nemotron-H)."""


MAX_LAYERS = 512
"""Most decoder layers (and entries of a per-layer list) a spec may have: the deepest released models have ~130;
an estimate's fewest-GPU search grows with layers × pipeline sizes (512 layers: ~7 s on one core)."""
MAX_TOKENS = 2**27
"""Most positions, windows and chunks, in tokens (134M; the longest released context is Llama-4 Scout's 10M)."""
MAX_EXPERTS = 2**16
"""Most routed experts per layer (65,536; the most released is 512)."""
MAX_PARAMS = 10**15
"""Most parameters a spec may describe (the largest released models have about 2·10^12)."""
MAX_SIZE = 2**24
"""Most of any other count or width (hidden, vocabulary, experts, heads, ranks): 16.7M, far above any model."""
SIZE_LIMITS = {"num_layers": MAX_LAYERS, "layer_period": MAX_LAYERS, "first_dense_layers": MAX_LAYERS, "layer_offset": MAX_LAYERS,
               "mtp_layers": MAX_LAYERS, "attention_period": MAX_LAYERS, "attention_offset": MAX_LAYERS,
               "moe_layers": MAX_LAYERS - 1, "dense_layers": MAX_LAYERS - 1, "shared_layers": MAX_LAYERS - 1,
               "max_position_embeddings": MAX_TOKENS, "sliding_window": MAX_TOKENS, "chunk_size": MAX_TOKENS,
               "num_experts": MAX_EXPERTS}
"""Upper bounds by field name (every other integer field: MAX_SIZE). Bounds keep the per-layer loops and the
tool's time and memory small whatever a file says."""


class _Spec(BaseModel):
    """Strict: no true for 1, no "false" for false, no 4.0 for 4, no inf/NaN; every integer and list bounded."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings, validate_assignment=True,
                              strict=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded(cls, value, info):
        limit = SIZE_LIMITS.get(info.field_name, MAX_SIZE)
        if isinstance(value, list) and len(value) > MAX_LAYERS:
            raise ValueError(f"must have at most {MAX_LAYERS:,} entries, not {len(value):,}")
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, int) and not isinstance(item, bool) and not 0 <= item <= limit:
                raise ValueError(f"must be between 0 and {limit:,}, not {item:,}")
        return value


class IndexerSpec(_Spec):
    """DeepSeek-V3.2's lightning indexer: per query it scores every cached indexer key and keeps the top_k tokens
    the attention then reads. It caches one head_dim-wide key per token."""

    num_heads: PositiveInt
    """Indexer query heads (index_n_heads)."""
    head_dim: PositiveInt
    """Indexer head dimension, also the width of the key it caches per token (index_head_dim)."""
    top_k: PositiveInt
    """Tokens each query attends to (index_topk)."""
    shared_layers: list[int] = Field(default_factory=list)
    """Layers without an indexer of their own, reusing the previous layer's selection (GLM-5's 'shared' layers)."""


class AttentionSpec(_Spec):
    """Self-attention of one layer (the same in every attention layer)."""

    kind: Literal["gqa", "mla"] = "gqa"
    """gqa: multi-head / grouped-query attention (MHA when kv heads = heads); mla: DeepSeek multi-head latent attention."""
    num_heads: PositiveInt
    """Query heads."""
    num_kv_heads: PositiveInt | None = None
    """Key/value heads (gqa only); defaults to num_heads (MHA)."""
    head_dim: PositiveInt | None = None
    """Per-head dimension (gqa only); defaults to H / num_heads."""
    q_lora_rank: PositiveInt | None = None
    """MLA: rank of the query compression; None means a full query projection (DeepSeek-V2-Lite)."""
    kv_lora_rank: PositiveInt | None = None
    """MLA: rank of the compressed key/value latent that is cached."""
    qk_nope_head_dim: PositiveInt | None = None
    """MLA: per-head query/key dimension without rotary embedding."""
    qk_rope_head_dim: PositiveInt | None = None
    """MLA: per-head query/key dimension carrying rotary embedding (the key part is shared by all heads)."""
    v_head_dim: PositiveInt | None = None
    """MLA: per-head value dimension; gqa: the value head dimension where it differs from head_dim (MiMo-V2-Flash)."""
    qkv_bias: bool = False
    """Biases on the q, k and v projections."""
    o_bias: bool = False
    """Bias on the output projection."""
    qk_norm: Literal["none", "per_head", "full", "parameter_free"] = "none"
    """Norm on queries and keys: per_head (one head_dim-sized weight each, Qwen3), full (over all heads, OLMoE),
    parameter_free (L2 norm, Llama-4), none."""
    sinks: bool = False
    """Learned attention-sink logit per head (gpt-oss)."""
    sliding_window: PositiveInt | None = None
    """Window, in tokens, of layers marked 'sliding'."""
    chunk_size: PositiveInt | None = None
    """Chunk, in tokens, of layers marked 'chunked' (Llama-4's chunked local attention)."""
    layer_pattern: list[LayerAttention] = Field(default_factory=lambda: ["full"])
    """Attention type of consecutive attention layers, repeated cyclically (e.g. ['sliding', 'full'] for gpt-oss)."""
    output_gate: bool = False
    """gqa: a sigmoid gate on the attention output, projected with the queries (q_proj 2·heads·head_dim wide; Qwen3-Next)."""
    sliding_kv_heads: PositiveInt | None = None
    """gqa: KV heads of the 'sliding' layers where they differ from num_kv_heads (MiMo-V2-Flash: twice as many)."""
    sinks_sliding_only: bool = False
    """With sinks: only the 'sliding' layers have them (MiMo-V2-Flash)."""
    full_head_dim: PositiveInt | None = None
    """gqa: head dimension of the 'full' layers where it differs from head_dim (Gemma-4's global_head_dim)."""
    full_kv_heads: PositiveInt | None = None
    """gqa: KV heads of the 'full' layers where they differ from num_kv_heads (Gemma-4's num_global_key_value_heads)."""
    full_values_are_keys: bool = False
    """gqa: the 'full' layers have no value projection, their values are their keys (Gemma-4's attention_k_eq_v)."""
    num_experts: PositiveInt | None = None
    """gqa: mixture of attention (JetMoE): the query and output projections are num_experts experts, each
    num_kv_heads·head_dim wide, with a router (E·H) and an output bias (H); a token uses num_heads / num_kv_heads
    of them, which share one key/value projection."""
    output_gate_per_head: bool = False
    """With output_gate: one gate value per head (H → heads; Laguna) instead of one per channel (H → heads·head_dim)."""
    output_gate_bias: bool = False
    """With output_gate: a learned per-head bias on the gate (Beam)."""
    indexer: IndexerSpec | None = None
    """mla: a lightning indexer that picks the keys each query attends to (DeepSeek-V3.2's sparse attention)."""

    @model_validator(mode="after")
    def _check(self) -> "AttentionSpec":
        if self.num_experts is not None and self.kind != "gqa":
            raise ValueError("a mixture of attention (num_experts) needs gqa attention")
        if self.indexer is not None and not (self.kind == "mla" and self.q_lora_rank):
            raise ValueError("an indexer needs MLA attention with q_lora_rank (it projects the compressed query)")
        if self.kind == "mla":
            missing = [
                name
                for name in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"MLA attention needs {', '.join(missing)}")
        if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        if "sliding" in self.layer_pattern and self.sliding_window is None:
            raise ValueError("layer_pattern has 'sliding' layers but sliding_window is not set")
        if "chunked" in self.layer_pattern and self.chunk_size is None:
            raise ValueError("layer_pattern has 'chunked' layers but chunk_size is not set")
        if not self.layer_pattern:
            raise ValueError("layer_pattern must not be empty")
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    def layer_kv_heads(self, layer_type: str = "full") -> int:
        """KV heads of a layer of this type ('sliding' and 'full' layers may have their own counts)."""
        return {"sliding": self.sliding_kv_heads, "full": self.full_kv_heads}.get(layer_type) or self.kv_heads


class MoESpec(_Spec):
    """The mixture-of-experts block and which layers use it."""

    num_experts: PositiveInt
    """Routed experts per MoE layer (E)."""
    top_k: PositiveInt
    """Routed experts each token goes to (k)."""
    expert_intermediate_size: PositiveInt
    """Intermediate size of one routed expert (I)."""
    gated: bool = True
    """Gated expert MLP (SwiGLU: gate, up, down = 3·H·I) or plain (up, down = 2·H·I)."""
    expert_bias: bool = False
    """Biases on the expert projections (gpt-oss)."""
    num_shared_experts: int = Field(0, ge=0)
    """Always-active shared experts, fused into one MLP of num_shared_experts × shared_intermediate_size."""
    shared_intermediate_size: PositiveInt | None = None
    """Intermediate size of one shared expert; defaults to expert_intermediate_size."""
    shared_expert_bias: bool = False
    """Biases on the shared expert's projections although the routed experts have none (Ernie-4.5's use_bias)."""
    shared_expert_gate: bool = False
    """A learned sigmoid gate (H → 1) on the shared expert's output (Qwen-MoE)."""
    output_norm: bool = False
    """A norm on the MoE block's output, in MoE layers only (A.X-K1's post_mlp_layernorm); counted with the norms."""
    dense_mlp_too: bool = False
    """Each MoE layer also runs the dense MLP (intermediate_size) beside its experts (Gemma-4); counted as dense_mlp."""
    router_scales: bool = False
    """The router has a learned input scale (H) and a per-expert output scale (E) (Gemma-4)."""
    output_bias: bool = False
    """A bias (H) on the MoE block's output, always active (JetMoE); counted with the router."""
    router_bias: bool = False
    """A bias on the router projection (gpt-oss)."""
    router_correction_bias: bool = False
    """A per-expert score-correction term used only for selection (DeepSeek-V3's aux-loss-free balancing)."""
    router_correction_is_parameter: bool = False
    """Whether transformers registers that term as a parameter (Ernie-4.5-MoE) rather than a buffer (DeepSeek-V3,
    GLM-4 MoE); only a parameter counts."""
    num_expert_groups: PositiveInt = 1
    """Expert groups for node-limited routing (DeepSeek-V3: 8)."""
    topk_groups: PositiveInt = 1
    """Groups a token's experts may come from (DeepSeek-V3: 4)."""
    first_dense_layers: int = Field(0, ge=0)
    """The first layers use a dense MLP instead of MoE (DeepSeek's first_k_dense_replace)."""
    layer_period: PositiveInt = 1
    """MoE in every layer_period-th layer..."""
    layer_offset: int = Field(0, ge=0)
    """...namely layers i with i % layer_period == layer_offset (after the first dense layers)."""
    dense_layers: list[int] = Field(default_factory=list)
    """Layers that are dense although the rule above makes them MoE (Qwen-MoE's mlp_only_layers)."""
    moe_layers: list[int] | None = None
    """Explicit list of MoE layers; overrides the rule above when set."""
    latent_size: PositiveInt | None = None
    """Latent MoE (Nemotron-3-Super): the routed experts work in this width, between a down-projection H → latent
    and an up-projection latent → H that every token passes (counted with the shared experts)."""

    @model_validator(mode="after")
    def _check(self) -> "MoESpec":
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) is larger than num_experts ({self.num_experts})")
        if self.layer_offset >= self.layer_period:
            raise ValueError(f"layer_offset ({self.layer_offset}) must be below layer_period ({self.layer_period})")
        if self.num_experts % self.num_expert_groups:
            raise ValueError(f"num_experts ({self.num_experts}) must divide into num_expert_groups ({self.num_expert_groups})")
        if self.topk_groups > self.num_expert_groups:
            raise ValueError(f"topk_groups ({self.topk_groups}) is larger than num_expert_groups ({self.num_expert_groups})")
        return self

    @property
    def shared_size(self) -> int:
        """Intermediate size of the fused shared-expert MLP (0 when there is none)."""
        return self.num_shared_experts * (self.shared_intermediate_size or self.expert_intermediate_size)

    def is_moe_layer(self, layer: int) -> bool:
        if self.moe_layers is not None:
            return layer in self.moe_layers
        return (
            layer >= self.first_dense_layers
            and layer % self.layer_period == self.layer_offset
            and layer not in self.dense_layers
        )


class MambaSpec(_Spec):
    """Mamba (selective state-space) mixer layers of a hybrid model, as in Jamba."""

    d_state: PositiveInt = 16
    """SSM state size per channel."""
    d_conv: PositiveInt = 4
    """Causal convolution width."""
    expand: PositiveInt = 2
    """Mixer inner size = expand × H."""
    dt_rank: PositiveInt
    """Rank of the time-step projection (Jamba: ceil(H / 16))."""
    conv_bias: bool = True
    """Bias on the convolution."""
    proj_bias: bool = False
    """Biases on the in/out projections."""
    inner_norms: bool = True
    """RMSNorms on dt, B and C (Jamba)."""
    attention_period: PositiveInt
    """An attention layer every attention_period layers..."""
    attention_offset: int = Field(0, ge=0)
    """...namely layers i with i % attention_period == attention_offset; all others are Mamba layers."""


class Mamba2Spec(_Spec):
    """Mamba-2 (state-space duality) mixer layers (Nemotron-H, Granite-4.0-H). Inner size D = num_heads · head_dim."""

    num_heads: PositiveInt
    """SSM heads (one A, D and dt per head)."""
    head_dim: PositiveInt
    """Channels per head."""
    n_groups: PositiveInt = 1
    """Groups sharing B and C (like KV heads for attention)."""
    d_state: PositiveInt = 128
    """SSM state size N per head channel."""
    d_conv: PositiveInt = 4
    """Causal convolution width."""
    chunk_size: PositiveInt = 256
    """Chunk length of the chunked scan (prefill work, no parameters)."""
    conv_bias: bool = True
    """Bias on the convolution."""
    proj_bias: bool = False
    """Biases on in_proj and out_proj."""

    @property
    def inner(self) -> int:
        """D = num_heads · head_dim."""
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels through the convolution: x, B and C, D + 2 · n_groups · d_state."""
        return self.inner + 2 * self.n_groups * self.d_state


class LinearAttentionSpec(_Spec):
    """Linear-attention mixer layers with a fixed-size state per sequence.

    gated_deltanet (Qwen3-Next, Qwen3.5): fused q/k/v/z and b/a projections, a short convolution over q, k, v,
    per-value-head A_log and dt_bias, a gated norm. kda (Kimi Linear's Kimi delta attention): q, k, v projections
    with short convolutions, low-rank forget and output gates (rank head_dim). lightning (MiniMax-Text-01):
    fused qkv projection, an output gate and a norm over all heads, no convolution."""

    kind: Literal["gated_deltanet", "kda", "lightning"]
    num_heads: PositiveInt
    """Value heads (and key heads unless num_key_heads is set)."""
    num_key_heads: PositiveInt | None = None
    """gated_deltanet: key (and query) heads; defaults to num_heads."""
    head_dim: PositiveInt
    """Key (and query) head dimension."""
    value_head_dim: PositiveInt | None = None
    """Value head dimension; defaults to head_dim."""
    conv_kernel: PositiveInt = 4
    """Width of the short causal convolution (gated_deltanet, kda)."""
    full_rank_gates: bool = False
    """kda: forget and output gates projected at full rank (H → heads·d each; Ling-2.5) instead of through a
    rank-head_dim bottleneck (Kimi Linear)."""

    @property
    def key_heads(self) -> int:
        return self.num_key_heads or self.num_heads

    @property
    def value_dim(self) -> int:
        return self.value_head_dim or self.head_dim


class ShortConvSpec(_Spec):
    """LFM2's gated short-convolution mixer: in_proj H → 3H, a depthwise causal convolution, out_proj H → H."""

    kernel: PositiveInt = 3
    """Convolution width (conv_L_cache)."""
    bias: bool = False
    """Biases on the projections and the convolution."""


class ModelSpec(_Spec):
    """A decoder-only transformer language model, dense or mixture-of-experts."""

    name: str = "custom"
    """A label for reports."""
    source: str = "flags"
    """Where this spec came from (file, preset and its origin)."""
    architecture: str = "custom"
    """The architecture family (Hugging Face model_type where there is one)."""
    num_layers: PositiveInt
    """Decoder layers (L)."""
    hidden_size: PositiveInt
    """Model width (H)."""
    vocab_size: PositiveInt
    """Vocabulary (V)."""
    tie_word_embeddings: bool = False
    """lm_head shares the input embedding table."""
    lm_head_bias: bool = False
    """A bias on lm_head (Phi-MoE)."""
    attention: AttentionSpec
    """Self-attention."""
    intermediate_size: PositiveInt | None = None
    """Intermediate size of the dense MLP in layers that are not MoE."""
    dense_mlp_gated: bool = True
    """Dense MLP is gated (SwiGLU)."""
    moe: MoESpec | None = None
    """The MoE block; None for a dense model."""
    mamba: MambaSpec | None = None
    """Mamba mixer layers of a hybrid model; None when every layer has attention."""
    mixer_pattern: list[Mixer] | None = Field(None, min_length=1)
    """Sequence mixer of consecutive layers, repeated cyclically; None: attention in every layer (Jamba: mamba's
    attention_period rule)."""
    mamba2: Mamba2Spec | None = None
    """The Mamba-2 layers of mixer_pattern."""
    linear_attention: LinearAttentionSpec | None = None
    """The linear-attention layers of mixer_pattern."""
    short_conv: ShortConvSpec | None = None
    """The short-convolution layers of mixer_pattern."""
    layer_block: Literal["mixer_and_mlp", "mixer_or_mlp"] = "mixer_and_mlp"
    """mixer_and_mlp: each layer has a mixer and an MLP (or MoE), each behind its own norm; mixer_or_mlp: a layer is
    a mixer or (mixer 'none') an MLP/MoE, behind one norm (Nemotron-H)."""
    layer_norms: PositiveInt | None = None
    """Model-width norms in each decoder layer when not the layer block's usual count (one per mixer and one per MLP):
    1 for a parallel block, attention and MLP reading one norm (Cohere); 4 for norms before and after both (AFMoE)."""
    norm: Literal["rmsnorm", "layernorm", "layernorm_nobias"] = "rmsnorm"
    """Norm type: RMSNorm and bias-free LayerNorm have H weights, LayerNorm 2·H."""
    mlp_bias: bool = False
    """Biases on the dense MLP projections."""
    mtp_layers: int = Field(0, ge=0)
    """DeepSeek-style multi-token-prediction layers shipped in the checkpoint but not in transformers' model."""
    mtp_block: list[Mixer] | None = None
    """Mixers of the layers of one MTP module, each with this model's MoE (Nemotron-H: ['attention', 'none'], an
    attention block then an MoE block; Qwen3.5: ['attention']); None: one layer like the last decoder layer."""
    mtp_embeddings: bool = True
    """Each MTP module stores its own embedding table and output head (DeepSeek-V3); False: it shares the main
    model's (Nemotron-H, Qwen3.5)."""
    max_position_embeddings: PositiveInt | None = None
    """Longest context the model was trained for (informational)."""
    quantization: dict | None = None
    """The checkpoint's own quantization_config, kept as written."""

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.attention.kind == "gqa" and self.attention.head_dim is None and self.hidden_size % self.attention.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_heads ({self.attention.num_heads}); set head_dim"
            )
        needs_dense = any(self.has_mlp(i) and not self.is_moe_layer(i) for i in range(self.num_layers))
        needs_dense = needs_dense or bool(self.moe and self.moe.dense_mlp_too and self.moe_layer_count)
        if needs_dense and self.intermediate_size is None:
            raise ValueError("some layers are dense but intermediate_size (the dense MLP size) is not set")
        if self.mamba and self.mamba.attention_offset >= self.mamba.attention_period:
            raise ValueError("mamba.attention_offset must be below mamba.attention_period")
        if self.mixer_pattern is not None:
            if not self.mixer_pattern:
                raise ValueError("mixer_pattern must not be empty")
            for mixer in ("mamba", "mamba2", "linear_attention", "short_conv"):
                if mixer in self.mixer_pattern and getattr(self, mixer) is None:
                    raise ValueError(f"mixer_pattern has '{mixer}' layers but {mixer} is not set")
        if self.layer_block == "mixer_and_mlp" and "none" in (self.mixer_pattern or []):
            raise ValueError("mixer_pattern has 'none' layers, which only layer_block 'mixer_or_mlp' allows")
        return self

    @model_validator(mode="after")
    def _size_in_range(self) -> "ModelSpec":
        """At most MAX_PARAMS parameters (a rough upper count: every layer with attention, its MLP and all experts),
        so that every figure downstream stays far inside 64-bit integers."""
        h, a, moe = self.hidden_size, self.attention, self.moe
        attention = 4 * h * max(h, a.num_heads * (a.head_dim or a.v_head_dim or 1), a.kv_lora_rank or 0, a.q_lora_rank or 0)
        mlp = 3 * h * (self.intermediate_size or 0)
        experts = 3 * h * moe.expert_intermediate_size * (moe.num_experts + moe.num_shared_experts) if moe else 0
        rough = (self.num_layers + self.mtp_layers) * (attention + max(mlp, experts)) + 2 * self.vocab_size * h
        if rough > MAX_PARAMS:
            raise ValueError(f"a model of about {rough:.2g} parameters is beyond what moeplan computes (at most {MAX_PARAMS:.0e}, "
                             "500 times the largest released model)")
        return self

    @model_validator(mode="after")
    def _layers_in_range(self) -> "ModelSpec":
        """Layer numbers name existing layers, and an MoE block is used by some layer (else the model is silently dense)."""
        lists = {"moe.moe_layers": self.moe and self.moe.moe_layers, "moe.dense_layers": self.moe and self.moe.dense_layers,
                 "attention.indexer.shared_layers": self.attention.indexer and self.attention.indexer.shared_layers}
        for name, layers in lists.items():
            outside = [i for i in layers or () if i >= self.num_layers]
            if outside:
                raise ValueError(f"{name} names layer {outside[0]}, but layers are numbered 0 to {self.num_layers - 1}")
        if self.moe is not None:
            if self.moe.first_dense_layers > self.num_layers:
                raise ValueError(f"moe.first_dense_layers ({self.moe.first_dense_layers}) is more than num_layers ({self.num_layers})")
            if not self.moe_layer_count:
                raise ValueError("moe is set but no layer is an MoE layer (check first_dense_layers, layer_period, moe_layers)")
        return self

    @property
    def head_dim(self) -> int:
        return self.attention.head_dim or self.hidden_size // self.attention.num_heads

    def is_moe_layer(self, layer: int) -> bool:
        return self.moe is not None and self.has_mlp(layer) and self.moe.is_moe_layer(layer)

    def mixer(self, layer: int) -> Mixer:
        """The sequence mixer of one layer."""
        if self.mixer_pattern is not None:
            return self.mixer_pattern[layer % len(self.mixer_pattern)]
        if self.mamba is not None and layer % self.mamba.attention_period != self.mamba.attention_offset:
            return "mamba"
        return "attention"

    def has_mlp(self, layer: int) -> bool:
        """Whether the layer has an MLP or MoE block (mixer_or_mlp layers have one only without a mixer)."""
        return self.layer_block == "mixer_and_mlp" or self.mixer(layer) == "none"

    def is_attention_layer(self, layer: int) -> bool:
        return self.mixer(layer) == "attention"

    @property
    def moe_layer_count(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.num_layers))

    @property
    def attention_layer_count(self) -> int:
        return sum(self.is_attention_layer(i) for i in range(self.num_layers))

    def attention_layer_types(self) -> list[LayerAttention]:
        """Attention type of each attention layer, in order (the cyclic layer_pattern unrolled)."""
        pattern = self.attention.layer_pattern
        return [pattern[i % len(pattern)] for i in range(self.attention_layer_count)]

    def layer_head_dim(self, layer_type: str = "full") -> int:
        """Head dimension of attention layers of this type ('full' layers may have their own, full_head_dim)."""
        return (self.attention.full_head_dim if layer_type == "full" else None) or self.head_dim

    def attention_type(self, layer: int) -> LayerAttention:
        """Attention type of one attention layer (layer_pattern counts attention layers only)."""
        pattern = self.attention.layer_pattern
        return pattern[self._attention_layers_before(layer) % len(pattern)]

    def _attention_layers_before(self, layer: int) -> int:
        """Attention layers among layers 0 … layer−1, in O(period): mixers repeat with the mixer pattern's length
        (or mamba's attention_period), so the per-layer loops over a deep model stay linear, not quadratic."""
        if self.mixer_pattern is None and self.mamba is None:
            return layer
        period = len(self.mixer_pattern) if self.mixer_pattern is not None else self.mamba.attention_period
        cycles, rest = divmod(layer, period)
        per_cycle = sum(self.is_attention_layer(i) for i in range(period))
        return cycles * per_cycle + sum(self.is_attention_layer(i) for i in range(rest))

    @property
    def num_experts(self) -> int:
        return self.moe.num_experts if self.moe else 1

    @property
    def top_k(self) -> int:
        return self.moe.top_k if self.moe else 1
