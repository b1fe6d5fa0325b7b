"""Array forms of the few scalar formulas that cannot take numpy arrays (they branch, call math.ceil or build
a pydantic model per value). Each restates exactly one scalar function, named in its docstring, in the
same operation order, so results agree to the last bit for integers and to rounding for floats;
tests/test_plan.py checks each against its original and the whole against build_estimate.
"""

import numpy as np

from moeplan.accounting.training import ADAM_BYTES, GRAD_BYTES, MASTER_BYTES, PARAM_BYTES, GradDtype, ZeroStage

BOUNDS = ("memory", "compute", "communication")
"""Bound codes of step_time: index into this tuple (roofline.Bound, in the order its tie-break uses)."""


def training_state_bytes(dense_params: np.ndarray, expert_params: np.ndarray, dp: np.ndarray, expert_replicas: np.ndarray,
                         zero: ZeroStage, grad_dtype: GradDtype, gathered_params: np.ndarray) -> tuple[np.ndarray, ...]:
    """accounting.training.training_state over arrays: (params, gradients, optimizer) bytes of one GPU.
    A state sharded at this ZeRO stage takes ⌈dense·b / dp⌉ + ⌈expert·b / expert replicas⌉, else dense·b + expert·b."""

    def part(per_param: int, stage_from: int) -> np.ndarray:
        dense = dense_params * per_param
        expert = expert_params * per_param
        if zero >= stage_from:
            return np.ceil(dense / dp).astype(np.int64) + np.ceil(expert / expert_replicas).astype(np.int64)
        return dense + expert

    params = part(PARAM_BYTES, 3) + (gathered_params * PARAM_BYTES if zero == 3 else 0)
    return params, part(GRAD_BYTES[grad_dtype], 2), part(MASTER_BYTES + ADAM_BYTES, 1)


def all_to_all_layer_s(tokens: int, tp: np.ndarray, per_layer_bytes_per_token: np.ndarray, inter_node_bytes_per_token: np.ndarray,
                       link_bytes_per_s: float, nic_bytes_per_s: float, latency_s: float) -> np.ndarray:
    """The EP term of roofline.communication_s for one MoE layer, over arrays: a replica's ``tokens`` are
    dispatched by its tp GPUs in slices of ⌈tokens / tp⌉; the per-token traffic of all_to_all_traffic
    (linear in tokens per rank) times that slice, intra-node part over the link, inter-node part over the
    NIC, whichever is longer, plus 2α."""
    per_rank_tokens = -(-tokens // tp)
    per_layer = per_rank_tokens * per_layer_bytes_per_token
    inter_node = per_rank_tokens * inter_node_bytes_per_token
    intra = per_layer - 2 * inter_node
    return np.maximum(intra / link_bytes_per_s, 2 * inter_node / nic_bytes_per_s) + 2 * latency_s


def communication_s(layers: np.ndarray, moe_layers: np.ndarray, ep: np.ndarray, allreduce_s: np.ndarray,
                    all_to_all_s: np.ndarray) -> np.ndarray:
    """roofline.communication_s over arrays: one TP all-reduce after every attention and after every
    TP-split MLP (dense layers, and MoE layers when ep = 1), plus one all-to-all pair per MoE layer when ep > 1."""
    split_mlps = layers - moe_layers + np.where(ep == 1, moe_layers, 0)
    total = (layers + split_mlps) * allreduce_s
    return total + np.where((ep > 1) & (moe_layers > 0), moe_layers * all_to_all_s, 0.0)


def step_time(bytes_read: np.ndarray, flops: np.ndarray, communication: np.ndarray, hbm_bytes_per_s: float,
              peak_flops_per_s: float) -> tuple[np.ndarray, np.ndarray]:
    """roofline._step over arrays: (time_s = max(memory, compute) + communication, bound code into BOUNDS,
    the largest term, the first on ties)."""
    memory_s = bytes_read / hbm_bytes_per_s
    compute_s = flops / peak_flops_per_s
    bound = np.argmax(np.stack([memory_s, compute_s, communication]), axis=0)
    return np.maximum(memory_s, compute_s) + communication, bound
