"""The parallel layout: tensor (TP), expert (EP), pipeline (PP) and data (DP) parallel sizes.

GPUs = TP × PP × DP. EP is not a fourth factor: as in vLLM (EP = TP × DP) and Megatron-Core (MoE parallel
folding), the routed experts of a pipeline stage are spread over that stage's TP × DP GPUs, as EP groups
of expert-tensor-parallel (ETP) GPUs, so EP × ETP must divide TP × DP; the quotient is the number of
expert replicas (Megatron's expert data parallel). See docs/formulas.md §Memory, "Parallel layout".
"""

import math
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError, model_validator

from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError
from moeplan.spec.model import ModelSpec

GPUS_PER_NODE = 8
"""GPUs joined by NVLink in one node (HGX boards): the default layout keeps TP inside one node."""


class Layout(BaseModel):
    """How a model is split over GPUs."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=add_field_docstrings)

    tp: PositiveInt = 1
    """Tensor parallel: query heads, dense and shared-expert MLPs, Mamba mixers, embedding and lm_head split over tp GPUs."""
    ep: PositiveInt = 1
    """Expert parallel: each EP rank holds E/ep whole routed experts of every MoE layer of its stage."""
    pp: PositiveInt = 1
    """Pipeline parallel: consecutive layers split into pp stages (embedding on the first, lm_head on the last)."""
    dp: PositiveInt = 1
    """Data parallel: model replicas (attention and dense parts replicated; experts spread when EP spans them)."""
    etp: PositiveInt | None = None
    """Expert tensor parallel: each routed expert split over etp GPUs. Default: tp when ep = 1 (experts split
    like any MLP, vLLM without --enable-expert-parallel), else 1 (whole experts, vLLM with it)."""

    @model_validator(mode="after")
    def _check(self) -> "Layout":
        if (self.tp * self.dp) % (self.ep * self.expert_tp):
            raise ValueError(
                f"ep × etp ({self.ep} × {self.expert_tp}) must divide tp × dp ({self.tp} × {self.dp}): "
                "the experts of a stage are spread over that stage's tp × dp GPUs"
            )
        return self

    @property
    def expert_tp(self) -> int:
        """ETP in effect."""
        if self.etp is not None:
            return self.etp
        return self.tp if self.ep == 1 else 1

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def expert_replicas(self) -> int:
        """Copies of each routed expert within a stage (Megatron's expert data-parallel size)."""
        return self.tp * self.dp // (self.ep * self.expert_tp)

    @property
    def replicas_per_expert_group(self) -> int:
        """Data-parallel replicas whose tokens one copy of the routed experts serves: ⌈ep·etp / tp⌉ (1 when every
        replica holds its own experts, dp when EP spans all of them)."""
        return -(-self.ep * self.expert_tp // self.tp)

    def sizes(self) -> str:
        """'tp=… ep=… pp=… dp=…' (and etp when experts are split)."""
        extra = f" etp={self.expert_tp}" if self.ep > 1 and self.expert_tp > 1 else ""
        return f"tp={self.tp} ep={self.ep} pp={self.pp} dp={self.dp}{extra}"

    def describe(self) -> str:
        return f"{self.sizes()} ({self.num_gpus} GPU{'s' if self.num_gpus > 1 else ''})"


def mixer_tp_counts(spec: ModelSpec) -> dict[str, int]:
    """What TP splits in the Mamba-2, linear-attention and short-convolution layers, which it must divide:
    description → count (Mamba-2 heads, linear-attention value and key heads, short-convolution channels)."""
    mixers = {spec.mixer(i) for i in range(spec.num_layers)}
    counts = {}
    if "mamba2" in mixers:
        counts["Mamba-2 heads"] = spec.mamba2.num_heads
    if "linear_attention" in mixers:
        counts["linear-attention heads"] = spec.linear_attention.num_heads
        counts["linear-attention key heads"] = spec.linear_attention.key_heads
    if "short_conv" in mixers:
        counts["short-convolution channels"] = spec.hidden_size
    return counts


def layout_problems(spec: ModelSpec, layout: Layout) -> list[str]:
    """What a serving/training framework would refuse in this layout for this model (empty when valid)."""
    tp, problems = layout.tp, []
    attn = spec.attention
    if spec.attention_layer_count:
        if attn.num_heads % tp:
            problems.append(f"tp={tp} must divide the {attn.num_heads} query heads")
        kv = attn.kv_heads
        if attn.kind == "gqa" and (kv % tp if kv >= tp else tp % kv):
            problems.append(f"tp={tp} and the {kv} KV heads: one must divide the other (KV heads are split, or replicated when fewer)")
    if spec.mamba and (spec.mamba.expand * spec.hidden_size) % tp:
        problems.append(f"tp={tp} must divide the Mamba inner size {spec.mamba.expand * spec.hidden_size}")
    problems += [f"tp={tp} must divide the {count} {name}" for name, count in mixer_tp_counts(spec).items() if count % tp]
    if spec.intermediate_size and any(not spec.is_moe_layer(i) for i in range(spec.num_layers)) and spec.intermediate_size % tp:
        problems.append(f"tp={tp} must divide the dense MLP intermediate size {spec.intermediate_size}")
    if spec.moe:
        moe = spec.moe
        if moe.num_experts % layout.ep:
            problems.append(f"ep={layout.ep} must divide the {moe.num_experts} routed experts")
        if moe.expert_intermediate_size % layout.expert_tp:
            problems.append(f"etp={layout.expert_tp} must divide the expert intermediate size {moe.expert_intermediate_size}")
        if moe.shared_size % tp:
            problems.append(f"tp={tp} must divide the shared-expert intermediate size {moe.shared_size}")
    elif layout.ep > 1:
        problems.append(f"ep={layout.ep} needs a mixture-of-experts model; {spec.name} is dense")
    if layout.pp > spec.num_layers:
        problems.append(f"pp={layout.pp} exceeds the {spec.num_layers} layers")
    return problems


def check_layout(spec: ModelSpec, layout: Layout) -> Layout:
    """The layout itself when valid for the model; otherwise SpecError listing every problem."""
    problems = layout_problems(spec, layout)
    if problems:
        raise SpecError(f"layout {layout.describe()} does not suit {spec.name}: {'; '.join(problems)}")
    return layout


def stage_layers(num_layers: int, pp: int) -> list[range]:
    """Layers of each pipeline stage, as vLLM's get_pp_indices splits them: L // pp each, and the
    remainder one by one to the stages before the last (which also holds lm_head)."""
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    starts = [sum(sizes[:s]) for s in range(pp)]
    return [range(start, start + size) for start, size in zip(starts, sizes)]


def implied_num_gpus(given: dict[str, int]) -> int:
    """GPUs a partial layout needs when no GPU count is given: EP GPUs are carved out of tp × dp, so tp × dp
    is the least multiple of the tp (or dp) given that holds ep × etp GPUs (etp 1 by default), times pp.
    ``given`` holds the sizes the user set (keys tp, ep, pp, dp, etp)."""
    expert_gpus = given.get("ep", 1) * given.get("etp", 1)
    if "tp" in given and "dp" in given:
        width = given["tp"] * given["dp"]
    else:
        width = math.lcm(given.get("tp", 1) * given.get("dp", 1), expert_gpus)
    return given.get("pp", 1) * width


def search_gpu_counts(max_gpus: int, gpus_per_node: int) -> list[int]:
    """GPU counts `moeplan plan` searches: any count within one node, then whole nodes, up to max_gpus."""
    return [*range(1, min(max_gpus, gpus_per_node) + 1), *range(2 * gpus_per_node, max_gpus + 1, gpus_per_node)]


def placement_allowed(layouts, gpus_per_node: int):
    """The placement rules of the search, on a Layout (a bool) or moeplan.plan's LayoutArrays (a mask): a TP group
    stays inside one node (tp ≤ GPUs per node, and tp divides GPUs per node once the deployment spans nodes), and
    an EP group is either inside one node or made of whole nodes (the all-to-all model's rule, spec_all_to_all_traffic)."""
    tp, ep = layouts.tp, layouts.ep
    single_node = layouts.num_gpus <= gpus_per_node
    ok = (tp <= gpus_per_node) & (single_node | (gpus_per_node % tp == 0))
    return ok & ((ep <= gpus_per_node) | (ep % gpus_per_node == 0))


def search_layouts(spec: ModelSpec, num_gpus: int, gpus_per_node: int) -> Iterator[Layout]:
    """The layouts of `moeplan plan`'s search on ``num_gpus`` GPUs, in its order (moeplan.plan.layouts.enumerate_layouts):
    tp up to a node, then pp up to the layer count, then ep among the divisors of the expert count (at most
    num_gpus, since ep × etp divides tp × dp), etp by default; those Layout, layout_problems and
    placement_allowed accept."""
    experts = spec.moe.num_experts if spec.moe else 1
    eps = [ep for ep in range(1, min(experts, num_gpus) + 1) if experts % ep == 0]
    for tp in range(1, gpus_per_node + 1):
        for pp in range(1, spec.num_layers + 1):
            if num_gpus % (tp * pp):
                continue
            for ep in eps:
                try:
                    layout = Layout(tp=tp, ep=ep, pp=pp, dp=num_gpus // (tp * pp))
                except ValidationError:
                    continue
                if placement_allowed(layout, gpus_per_node) and not layout_problems(spec, layout):
                    yield layout
