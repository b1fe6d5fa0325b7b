"""Bytes an MoE dispatch/combine all-to-all moves for a given routing sample (numpy only; no torch).

This is moeplan's prediction that the profiler's measured byte counts must match exactly. Payload sizes
come from the planner (``moeplan.traffic.alltoall``). Letters: n ranks (= EP), T tokens per rank,
E routed experts, k top-k, H hidden size; expert e lives on rank e // (E/n). Matrices are indexed
[source rank, destination rank].

Modes (what one dispatched row is):
- ``rank``: one copy per (token, destination rank), deduplicated over the experts on that rank (DeepEP normal).
- ``expert``: one copy per (token, selected expert), no deduplication (DeepEP low-latency, pplx).
Both count the rows a rank sends to itself. Combine returns the same rows as bf16. An fp8 row in ``expert``
mode also carries DeepEP low-latency's 16 B of metadata per (token, expert) message
(DeepEP's tests/legacy/test_low_latency.py: H + H/128·4 + 16 B per selection).
"""

import numpy as np
from pydantic import BaseModel

from moeplan.traffic.alltoall import A2AMode, DispatchDtype, combine_bytes_per_copy, dispatch_bytes_per_copy


def send_row_counts(sample: np.ndarray, num_experts: int, mode: A2AMode) -> np.ndarray:
    """Rows each rank dispatches to each rank ([n, n] int64) for a sample of expert ids ([n, T, k])."""
    num_ranks, tokens, _ = sample.shape
    dest = sample // (num_experts // num_ranks)  # [n, T, k] rank holding each selected expert
    if mode == "expert":
        return np.stack([np.bincount(dest[source].ravel(), minlength=num_ranks) for source in range(num_ranks)]).astype(np.int64)
    hit = np.zeros((num_ranks, tokens, num_ranks), dtype=bool)  # [n, T, n]: token t of rank s goes to rank d
    np.put_along_axis(hit, dest, True, axis=2)
    return hit.sum(axis=1).astype(np.int64)


LOW_LATENCY_METADATA_BYTES = 16
"""DeepEP low-latency fp8 dispatch: bytes of metadata sent with each (token, expert) message."""


def dispatch_row_bytes(hidden: int, mode: A2AMode, dtype: DispatchDtype) -> int:
    """Bytes of one dispatched row: the planner's payload per copy, plus the low-latency metadata in fp8 expert mode."""
    metadata = LOW_LATENCY_METADATA_BYTES if mode == "expert" and dtype == "fp8" else 0
    return dispatch_bytes_per_copy(hidden, dtype) + metadata


def dispatch_bytes(sample: np.ndarray, num_experts: int, hidden: int, mode: A2AMode, dtype: DispatchDtype) -> np.ndarray:
    """Bytes each rank sends to each rank at dispatch ([n, n]): rows × dispatch row bytes."""
    return send_row_counts(sample, num_experts, mode) * dispatch_row_bytes(hidden, mode, dtype)


def node_split(bytes_matrix: np.ndarray, ranks_per_node: int) -> tuple[int, int]:
    """(intra-node, inter-node) bytes the busiest sender moves to other ranks, ranks laid out node by node."""
    n = len(bytes_matrix)
    node = np.arange(n) // ranks_per_node
    same = node[:, None] == node[None, :]
    remote = np.asarray(bytes_matrix) * ~np.eye(n, dtype=bool)
    inter = (remote * ~same).sum(axis=1)
    intra = (remote * same).sum(axis=1)
    busiest = int(np.argmax(inter + intra))
    return int(intra[busiest]), int(inter[busiest])


def combine_bytes(sample: np.ndarray, num_experts: int, hidden: int, mode: A2AMode) -> np.ndarray:
    """Bytes each rank sends to each rank at combine ([n, n]): the dispatched rows sent back in bf16."""
    return send_row_counts(sample, num_experts, mode).T * combine_bytes_per_copy(hidden)


class A2ATraffic(BaseModel):
    """Per-rank totals of one all-to-all, from its [source, destination] byte matrix."""

    bytes_matrix: list[list[int]]
    """Bytes sent from rank s (row) to rank d (column), self included on the diagonal."""
    sent_bytes: list[int]
    """Bytes each rank sends, self included."""
    recv_bytes: list[int]
    """Bytes each rank receives, self included."""
    remote_sent_bytes: list[int]
    remote_recv_bytes: list[int]
    bottleneck_rank: int
    """The rank with the most remote bytes in either direction."""
    physical_bytes: int
    """max over ranks of max(remote sent, remote received): what the busiest rank's link carries."""
    logical_bytes: int
    """max over ranks of bytes received including self (the DeepEP convention)."""


def traffic(bytes_matrix: np.ndarray) -> A2ATraffic:
    """Summarise a [source, destination] byte matrix: per-rank totals, bottleneck rank, physical and logical bytes."""
    matrix = np.asarray(bytes_matrix, dtype=np.int64)
    own = np.diag(matrix)
    sent, recv = matrix.sum(axis=1), matrix.sum(axis=0)
    remote = np.maximum(sent - own, recv - own)
    bottleneck = int(np.argmax(remote))
    return A2ATraffic(
        bytes_matrix=matrix.tolist(),
        sent_bytes=sent.tolist(),
        recv_bytes=recv.tolist(),
        remote_sent_bytes=(sent - own).tolist(),
        remote_recv_bytes=(recv - own).tolist(),
        bottleneck_rank=bottleneck,
        physical_bytes=int(remote[bottleneck]),
        logical_bytes=int(recv.max()),
    )
