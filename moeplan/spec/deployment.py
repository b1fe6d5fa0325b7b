"""A deployment: the hardware, parallel layout, formats and workload a model is planned for.

The same model backs `moeplan estimate` flags (one flag per field, generated from this class) and the
deployments of a `moeplan check` plan file, so both accept exactly the same settings.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError
from moeplan.units import parse_token_count


MAX_GPUS = 2**17
"""Most GPUs in a deployment and in any parallel size (131,072; the largest clusters have ~100k)."""
MAX_TOKENS = 2**27
"""Most tokens per sequence, request or prefill step (134M; the longest released context is 10M)."""
MAX_COUNT = 2**20
"""Most of any other count (batch, concurrency, tokens per rank, group size...)."""
LIMITS = {"num_gpus": MAX_GPUS, "tp": MAX_GPUS, "ep": MAX_GPUS, "pp": MAX_GPUS, "dp": MAX_GPUS, "etp": MAX_GPUS,
          "gpus_per_node": MAX_GPUS, "context": MAX_TOKENS, "prefill_chunk": MAX_TOKENS, "isl": MAX_TOKENS, "osl": MAX_TOKENS}
"""Upper bounds of integer fields by name (others: MAX_COUNT)."""
FLOAT_RANGE = (1e-6, 1e9)
"""Every non-zero real setting lies in this range (bandwidths, peaks, memory sizes, factors): finite and far from
underflow or overflow, whatever unit it is in."""


class Deployment(BaseModel):
    """Where and how a model runs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings, strict=True, allow_inf_nan=False)

    gpu: str = "h100-sxm"
    """GPU from the catalogue (`moeplan gpus`) or a GPU spec file (.json/.yaml)."""
    num_gpus: PositiveInt | None = None
    """GPUs in all. Alone: the layout `moeplan plan --num-gpus N` ranks first; with some of --tp/--ep/--pp/--dp, the others are completed the same way."""
    tp: PositiveInt | None = None
    """Tensor-parallel size (splits attention heads and dense MLPs)."""
    ep: PositiveInt | None = None
    """Expert-parallel size (splits the routed experts)."""
    pp: PositiveInt | None = None
    """Pipeline-parallel stages (split the layers)."""
    dp: PositiveInt | None = None
    """Data-parallel replicas."""
    etp: PositiveInt | None = None
    """Expert tensor parallel: each routed expert split over etp GPUs (default: tp when ep = 1, else 1)."""
    gpu_memory_gib: float | None = Field(None, gt=0)
    """Override the GPU's memory, GiB."""
    gpu_hbm_tb_s: float | None = Field(None, gt=0)
    """Override the GPU's memory bandwidth, TB/s."""
    gpu_bf16_tflops: float | None = Field(None, gt=0)
    """Override the GPU's dense BF16 peak, TFLOP/s."""
    gpu_link_gb_s: float | None = Field(None, gt=0)
    """Override the GPU's NVLink/Infinity Fabric bandwidth, GB/s per direction."""
    gpus_per_node: PositiveInt | None = None
    """GPUs joined by the scale-up links (decides which traffic crosses the NIC); default: the GPU's NVLink domain
    (GB200/GB300 NVL72: 72; HGX and others: 8)."""
    nic_gb_s: float = Field(50, gt=0)
    """Network bandwidth per GPU across nodes, GB/s per direction (400 Gb/s InfiniBand/RoCE = 50)."""
    dtype: str | None = None
    """Format of the linear layers (bf16, fp8, nvfp4, mxfp8, mxfp4, int4-gptq, q4_k_m, ...); default: the config's own quantization_config, else bf16."""
    expert_dtype: str | None = None
    """Format of the routed and shared experts (overrides --dtype for them)."""
    attention_dtype: str | None = None
    """Format of the attention projections (overrides --dtype for them)."""
    embedding_dtype: str | None = None
    """Format of the embedding and lm_head (default bf16)."""
    group_size: PositiveInt = 128
    """Quantization group size for int4 GPTQ/AWQ."""
    kv_dtype: Literal["bf16", "fp16", "fp8", "fp32"] = "bf16"
    """KV-cache element type."""
    mode: Literal["inference", "training"] = "inference"
    """Inference (weights, KV cache, activations) or training (plus gradients, optimizer, activations)."""
    batch: PositiveInt = 1
    """Concurrent sequences (inference) or micro-batch size (training)."""
    grad_accum: PositiveInt = 1
    """Training: micro-batches accumulated per optimizer step (global batch = batch × grad_accum × dp sequences)."""
    context: PositiveInt = 4096
    """Tokens per sequence; k = 1000 and K = 1024, as vLLM reads them (128k = 128,000; 128K = 131,072)."""
    prefill_chunk: PositiveInt = 8192
    """Tokens processed in one prefill step (vLLM's max_num_batched_tokens)."""
    isl: PositiveInt | None = None
    """Serving: input tokens per request (with --osl and --concurrency: continuous batching, as `vllm bench serve`)."""
    osl: PositiveInt | None = None
    """Serving: output tokens per request."""
    concurrency: PositiveInt | None = None
    """Serving: requests in flight over the whole deployment (concurrency / dp per data-parallel replica)."""
    num_prompts: PositiveInt | None = None
    """Serving: requests a benchmark sends in all (`vllm bench serve --num-prompts`); the first --concurrency arrive at
    once, so the mean TTFT includes their wait (unset: the steady state alone)."""
    disaggregated: bool = False
    """Serving: the layout is one pool of disaggregated serving (prefill and decode on different GPUs): decode steps
    carry no prompts, prompts are prefilled alone; TPOT is a decode pool's, TTFT a prefill pool's."""
    prefill_first: bool = False
    """Serving: the engine prefills all waiting prompts in steps of their own before decoding resumes (SGLang's
    default scheduler, without --enable-mixed-chunk); default: decode steps carry the prompts' chunks (vLLM V1,
    TensorRT-LLM)."""
    mtp: int = Field(0, ge=0, le=16)
    """Draft tokens per step of multi-token prediction / speculative decoding (0: none)."""
    acceptance: float = Field(0.85, gt=0, le=1)
    """Probability a draft token is accepted given the ones before it (DeepSeek-V3 report §5.4.3: 85–90% for MTP)."""
    enforce_eager: bool = False
    """No CUDA graphs: every kernel is launched from the host (vLLM --enforce-eager); by default decode steps replay
    CUDA graphs, as vLLM, SGLang and TensorRT-LLM do."""
    gpu_util: float | None = Field(None, ge=0.01, le=1)
    """Fraction of GPU memory usable: default 0.9 for inference (vLLM's gpu_memory_utilization), 1.0 for training."""
    tokens_per_rank: PositiveInt = 4096
    """Tokens each expert-parallel rank routes in the reported all-to-all (DeepEP's benchmark uses 4096)."""
    a2a_mode: Literal["rank", "expert"] = "rank"
    """All-to-all copies: one per token and destination rank (DeepEP normal) or per token and chosen expert (low-latency)."""
    dispatch_dtype: Literal["bf16", "fp8"] = "bf16"
    """Payload of the dispatch all-to-all (combine is always bf16)."""
    routing: str = "uniform"
    """Expert load: uniform, or zipf:S for a skewed popularity (evaluated by a seeded simulation)."""
    capacity_factor: float | None = Field(None, gt=0, le=1000)
    """Expert buffer = capacity_factor × T·k/E tokens; tokens beyond it are dropped."""
    offload_experts: bool = False
    """Keep routed experts in host RAM and run them on the CPU (llama.cpp --cpu-moe, -ot "exps=CPU")."""
    n_cpu_moe: int | None = Field(None, ge=0)
    """llama.cpp --n-cpu-moe: keep the routed experts of the first N layers in host RAM."""
    gpu_layers: int | None = Field(None, ge=0)
    """llama.cpp -ngl: layers on the GPU (the last N; the output head too when N exceeds the layer count); default all."""
    override_tensor: str | None = None
    """llama.cpp -ot: PATTERN=CPU,... (regexes over llama.cpp tensor names, first match wins), e.g. "ffn_.*_exps=CPU"."""
    host_memory_gib: float = Field(128, gt=0)
    """Host RAM available for offloaded experts, GiB."""
    host_memory_gb_s: float = Field(80, gt=0)
    """Host memory bandwidth the CPU reaches when running offloaded experts, GB/s (dual-channel DDR5-5600: 89.6 peak)."""
    zero: Literal[0, 1, 2, 3] = 1
    """ZeRO stage for training (1: optimizer states sharded over data parallel)."""
    recompute: Literal["none", "selective", "full"] = "selective"
    """Activation recomputation for training."""
    grad_dtype: Literal["fp32", "bf16"] = "fp32"
    """Gradient element type for training (Megatron's default accumulates in fp32)."""
    allow_long_context: bool = False
    """Allow a context beyond the model's max_position_embeddings, as vLLM does when its long-context environment
    switch is set (docs/spec.md names it)."""

    @field_validator("context", "batch", "prefill_chunk", "isl", "osl", mode="before")
    @classmethod
    def _tokens(cls, value: object, info) -> int:
        """'32k' → 32,000; a validation error of this field, so that a plan file names its key and a command its flag."""
        if not isinstance(value, str):
            return value
        try:
            return parse_token_count(value, "it")
        except SpecError as error:
            raise ValueError(str(error).removeprefix("it ")) from None

    @field_validator("*")
    @classmethod
    def _bounded(cls, value, info):
        """No size beyond its bound, no real number outside FLOAT_RANGE: time and memory stay bounded."""
        if isinstance(value, int) and not isinstance(value, bool) and value > LIMITS.get(info.field_name, MAX_COUNT):
            raise ValueError(f"must be at most {LIMITS.get(info.field_name, MAX_COUNT):,}, not {value:,}")
        low, high = FLOAT_RANGE
        if isinstance(value, float) and value and not low <= abs(value) <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, not {value:g}")
        return value

    @model_validator(mode="after")
    def _serving(self) -> "Deployment":
        given = [name for name in ("isl", "osl", "concurrency") if getattr(self, name) is not None]
        if given and len(given) < 3:
            missing = ", ".join(f"--{name}" for name in ("isl", "osl", "concurrency") if name not in given)
            raise ValueError(f"--isl, --osl and --concurrency go together (continuous batching); missing {missing}")
        return self

    @model_validator(mode="after")
    def _training_takes_no_serving_setting(self) -> "Deployment":
        """Refuse an inference-only setting in training mode rather than carry it silently into the report."""
        if self.mode == "training":
            for name in ("kv_dtype", "mtp", "isl", "osl", "concurrency", "num_prompts"):
                if getattr(self, name) != type(self).model_fields[name].default:
                    flag = "--" + name.replace("_", "-")
                    raise ValueError(f"{flag} is an inference setting; --mode training has no KV cache, drafts or "
                                     f"requests (drop {flag})")
        return self

    @model_validator(mode="after")
    def _node_size(self) -> "Deployment":
        """gpus_per_node defaults to the GPU's scale-up domain (left at 8 when the GPU cannot be read here)."""
        if self.gpus_per_node is None:
            from moeplan.errors import SpecError
            from moeplan.hardware.catalogue import DEFAULT_NODE_GPUS, load_gpu

            try:
                self.gpus_per_node = load_gpu(self.gpu).node_gpus
            except SpecError:
                self.gpus_per_node = DEFAULT_NODE_GPUS  # the GPU's own error is raised where the GPU is loaded
            self.__pydantic_fields_set__.discard("gpus_per_node")  # a default, not a setting the user gave
        return self


def check_context(trained: int | None, deployment: Deployment) -> None:
    """Refuse a sequence longer than the model was trained for (``trained``: its max_position_embeddings), as vLLM
    refuses such a --max-model-len, unless allow_long_context is set."""
    longest = max(deployment.context, (deployment.isl or 0) + (deployment.osl or 0))
    if trained is not None and longest > trained and not deployment.allow_long_context:
        what = "--isl + --osl" if longest > deployment.context else "--context"
        raise SpecError(f"{what} {longest:,} is longer than the model's max_position_embeddings {trained:,}; "
                        "pass --allow-long-context (allow_long_context: true in a plan file) to estimate it anyway")
