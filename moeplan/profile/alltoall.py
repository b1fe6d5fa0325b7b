"""All-to-all with torch.distributed ``all_to_all_single``: one process per rank (gloo on CPU, nccl on CUDA).

1. Uniform sweep, as nccl-tests ``alltoall_perf``: per-rank buffer S, per-peer chunk (S/n) rounded down
   to 16 B; columns size, count, time, algbw = S/t, busbw = algbw·(n−1)/n; then an α–β fit.
2. MoE-shaped dispatch/combine: split sizes from a seeded routing sample of T tokens per rank
   (moeplan.profile.routing); rows ordered by destination rank; ``rank`` or ``expert`` mode; bf16 or fp8
   dispatch payload (fp8: e4m3 values plus one fp32 scale per 128 channels, H + 4·ceil(H/128) B per row),
   bf16 combine. Bytes moved are read back from the tensors sent (split sizes × row bytes) and compared
   with moeplan.profile.a2a_bytes for the same sample.

Communicator set-up, a warm-up collective and the split-size exchange stay outside the timed region
(the exchange is timed on its own). As nccl-tests: one barrier, then the iterations queued back to back with
an event between each (no barrier per iteration: it would add its own latency to α); a sample is the max over
ranks of one iteration. Data check (nccl-tests ``#wrong``): every uniform buffer carries a pattern of its source
and destination; each rank counts the bytes it received wrong, summed over ranks, and any wrong byte fails the run.
"""

import math
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from moeplan.profile.a2a_bytes import combine_bytes, dispatch_bytes, dispatch_row_bytes, node_split, traffic
from moeplan.profile.context import RunContext
from moeplan.profile.copies import pattern_bytes
from moeplan.profile.predict import apply_verdict
from moeplan.profile.results import Measurement
from moeplan.profile.routing import routing_sample
from moeplan.profile.stats import AlphaBetaFit, alltoall_algbw, alltoall_busbw, summarize
from moeplan.profile.timing import try_allocate
from moeplan.traffic.alltoall import A2AMode, DispatchDtype

ALIGN_BYTES = 16
"""nccl-tests aligns each per-peer chunk to 16 B."""
DISTRIBUTIONS = ("uniform", "zipf:1.0")


@dataclass(frozen=True)
class MoEPoint:
    tokens: int
    """T, tokens per rank."""
    distribution: str
    """simulate_routing distribution: 'uniform' or 'zipf:1.0'."""
    mode: A2AMode
    phase: str
    """'dispatch' or 'combine'."""
    dtype: DispatchDtype
    """Payload of the rows sent (combine is always bf16)."""


@dataclass(frozen=True)
class A2AJob:
    """Everything a rank needs; picklable, sent to every worker."""

    backend: str
    cuda_indices: tuple[int, ...] | None
    """torch device index of each rank; None on CPU."""
    warmup: int
    iters: int
    sizes: tuple[int, ...]
    moe_points: tuple[MoEPoint, ...]
    hidden: int
    num_experts: int
    top_k: int
    seed: int
    timeout_s: float


def moe_points(tokens: tuple[int, ...]) -> tuple[MoEPoint, ...]:
    """For each T, distribution and mode: dispatch in bf16 and fp8, and the bf16 combine."""
    return tuple(
        MoEPoint(t, dist, mode, phase, dtype)
        for t in tokens
        for dist in DISTRIBUTIONS
        for mode in ("rank", "expert")
        for phase, dtype in (("dispatch", "bf16"), ("dispatch", "fp8"), ("combine", "bf16"))
    )


def sample_for(job: A2AJob, world: int, point: MoEPoint) -> np.ndarray:
    """The routing sample [n, T, k] of a point; every rank and the parent draw the same one."""
    return routing_sample(world, point.tokens, job.num_experts, job.top_k, point.distribution, job.seed + point.tokens)


def destination_rows(dest: np.ndarray, world: int, mode: A2AMode) -> list[np.ndarray]:
    """Token indices this rank sends to each rank, in order: each token once per destination rank (rank mode)
    or once per selected expert there (expert mode). ``dest`` is [T, k] destination ranks."""
    if mode == "rank":
        return [np.flatnonzero((dest == d).any(axis=1)) for d in range(world)]
    return [np.nonzero(dest == d)[0] for d in range(world)]


def fp8_payload(x):
    """Rows of bf16 x ([R, H]) as fp8 payload bytes ([R, H + 4·ceil(H/128)] uint8): e4m3 values, then fp32 scales."""
    import torch

    rows, hidden = x.shape
    groups = math.ceil(hidden / 128)
    padded = torch.nn.functional.pad(x.float(), (0, groups * 128 - hidden)).view(rows, groups, 128)
    scale = padded.abs().amax(dim=2).clamp(min=1e-4) / 448.0  # [R, G]; 448 = largest e4m3 value
    values = (padded / scale[..., None]).to(torch.float8_e4m3fn).view(rows, groups * 128)[:, :hidden]
    return torch.cat([values.contiguous().view(torch.uint8), scale.contiguous().view(torch.uint8)], dim=1)


def pattern(source: int, dest: int, nbytes: int, device):
    """The uint8 chunk rank ``source`` sends to rank ``dest`` in the uniform sweep: (i + 31·source + 7·dest) mod 251."""
    return pattern_bytes(nbytes, device, 31 * source + 7 * dest)


def uniform_input(rank: int, world: int, per_peer: int, device):
    """What ``rank`` sends: one patterned chunk per destination, in rank order."""
    import torch

    return torch.cat([pattern(rank, dest, per_peer, device) for dest in range(world)])


def count_wrong(received, rank: int, world: int, per_peer: int) -> int:
    """Bytes of ``received`` that differ from what each source should have sent to ``rank``."""
    expected = uniform_input_for(rank, world, per_peer, received.device)
    return int((received != expected).sum())


def uniform_input_for(rank: int, world: int, per_peer: int, device):
    """What ``rank`` should receive: source s's chunk for ``rank``, in source order."""
    import torch

    return torch.cat([pattern(source, rank, per_peer, device) for source in range(world)])


def a2a_worker(rank: int, world: int, init_method: str, emit, job: A2AJob) -> None:
    """One rank: set up the group, run the uniform sweep and the MoE points; rank 0 emits the results."""
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", job.cuda_indices[rank]) if job.cuda_indices else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)
    dist.init_process_group(
        job.backend, init_method=init_method, rank=rank, world_size=world, timeout=timedelta(seconds=job.timeout_s), device_id=device if device.type == "cuda" else None
    )
    try:
        warm = torch.zeros(world * ALIGN_BYTES, dtype=torch.uint8, device=device)
        dist.all_to_all_single(torch.empty_like(warm), warm)  # connections are made here, untimed
        for size in job.sizes:
            _uniform(rank, world, device, emit, job, size)
        for point in job.moe_points:
            _moe(rank, world, device, emit, job, point)
    finally:
        dist.destroy_process_group()


def _max_over_ranks(values: list[float], device) -> list[float]:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def _time_collective(op, device, job: A2AJob) -> list[float]:
    """Per-iteration times (s), max over ranks: one barrier, then the iterations queued with an event (CUDA) or
    a clock reading (CPU, where gloo calls return when done) between consecutive ones."""
    import torch
    import torch.distributed as dist

    for _ in range(job.warmup):
        op()
    dist.barrier()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = [torch.cuda.Event(enable_timing=True) for _ in range(job.iters + 1)]
        events[0].record()
        for event in events[1:]:
            op()
            event.record()
        torch.cuda.synchronize(device)
        samples = [a.elapsed_time(b) / 1e3 for a, b in zip(events, events[1:])]
    else:
        stamps = [time.perf_counter()]
        for _ in range(job.iters):
            op()
            stamps.append(time.perf_counter())
        samples = [b - a for a, b in zip(stamps, stamps[1:])]
    return _max_over_ranks(samples, device)


def _allocate_everywhere(make, device):
    """make() on every rank, or None on every rank when any rank runs out of memory (so none enters the collective alone)."""
    import torch.distributed as dist

    made, _ = try_allocate(make, "all-to-all buffers")
    failed = _max_over_ranks([float(made is None)], device)[0]
    dist.barrier()
    return None if failed else made


def _uniform(rank: int, world: int, device, emit, job: A2AJob, size: int) -> None:
    import torch
    import torch.distributed as dist

    per_peer = (size // world) & ~(ALIGN_BYTES - 1)
    message = {"kind": "uniform", "size_bytes": per_peer * world, "per_peer_bytes": per_peer}
    buffers = _allocate_everywhere(lambda: (uniform_input(rank, world, per_peer, device), torch.empty(per_peer * world, dtype=torch.uint8, device=device)), device) if per_peer else None
    if buffers is None:
        if rank == 0:
            emit(message | {"skipped": f"per-peer chunk of {size} B / {world} ranks rounds to 0" if not per_peer else "out of memory"})
        return
    inp, out = buffers
    samples = _time_collective(lambda: dist.all_to_all_single(out, inp), device, job)
    wrong = torch.tensor([count_wrong(out, rank, world, per_peer)], dtype=torch.int64, device=device)
    dist.all_reduce(wrong)
    if rank == 0:
        emit(message | {"samples_s": samples, "wrong": int(wrong.item())})


def _moe(rank: int, world: int, device, emit, job: A2AJob, point: MoEPoint) -> None:
    import torch
    import torch.distributed as dist

    sample = sample_for(job, world, point)
    per_dest = destination_rows(sample[rank] // (job.num_experts // world), world, point.mode)
    send_rows = [len(rows) for rows in per_dest]
    counts = torch.tensor(send_rows, dtype=torch.int64, device=device)
    received = torch.empty_like(counts)
    dist.barrier()
    start = time.perf_counter()
    dist.all_to_all_single(received, counts)  # the split-size exchange: a host sync, outside the timed region
    recv_rows = received.tolist()
    exchange_s = _max_over_ranks([time.perf_counter() - start], device)[0]

    generator = torch.Generator(device=device).manual_seed(job.seed * 1000 + rank)
    if point.phase == "dispatch":
        x = torch.randn(point.tokens, job.hidden, dtype=torch.bfloat16, device=device, generator=generator)  # [T, H]
        index = torch.from_numpy(np.concatenate(per_dest)).to(device)
        rows = x[index]
        send = fp8_payload(rows) if point.dtype == "fp8" else rows.view(torch.uint8)  # [Σ send_rows, row bytes]
        metadata = dispatch_row_bytes(job.hidden, point.mode, point.dtype) - send.shape[1]
        if metadata:  # DeepEP low-latency: per-message metadata (source token index, expert, ...) beside the payload
            send = torch.cat([send, torch.zeros(len(send), metadata, dtype=torch.uint8, device=device)], dim=1)
        in_splits, out_splits = send_rows, recv_rows
    else:
        expert_out = torch.randn(sum(recv_rows), job.hidden, dtype=torch.bfloat16, device=device, generator=generator)
        send = expert_out.view(torch.uint8)  # [Σ recv_rows, 2H]
        in_splits, out_splits = recv_rows, send_rows
    out = torch.empty(sum(out_splits), send.shape[1], dtype=send.dtype, device=device)
    samples = _time_collective(lambda: dist.all_to_all_single(out, send, out_splits, in_splits), device, job)

    send_row_bytes = send.shape[1] * send.element_size()
    sent = [rows * send_row_bytes for rows in in_splits]
    recv = [rows * out.shape[1] * out.element_size() for rows in out_splits]
    if sum(sent) != send.numel() * send.element_size() or sum(recv) != out.numel() * out.element_size():
        raise RuntimeError(f"split sizes {in_splits} do not cover the {tuple(send.shape)} tensor sent")
    matrices = []
    for vector in (sent, recv):
        mine = torch.tensor(vector, dtype=torch.int64, device=device)
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine)
        matrices.append([g.tolist() for g in gathered])
    if rank == 0:
        emit({"kind": "moe", "point": point, "samples_s": samples, "sent_matrix": matrices[0], "recv_matrix": matrices[1], "row_bytes": send_row_bytes, "exchange_s": exchange_s})


def uniform_measurement(ctx: RunContext, world: int, message: dict) -> Measurement:
    """A uniform sweep point in nccl-tests terms."""
    size = message["size_bytes"]
    base = Measurement(section="a2a", name="uniform", device=f"ranks 0-{world - 1}", params={"ranks": world, "nodes": ctx.nodes, "size_bytes": size, "count": message["per_peer_bytes"], "type": "uint8", "link": ctx.a2a_link()}, bytes=size)
    if "skipped" in message:
        base.skipped = message["skipped"]
        return base
    base.params["wrong"] = message["wrong"]
    per_node = world // ctx.nodes
    base.params["intra_node_bytes"], base.params["inter_node_bytes"] = message["per_peer_bytes"] * (per_node - 1), message["per_peer_bytes"] * (world - per_node)
    if message["wrong"]:
        base.notes.append(f"{message['wrong']} bytes received differ from what was sent (data check)")
    stats = summarize(message["samples_s"])
    algbw = alltoall_algbw(size, stats.median_s)
    base.stats = stats
    base.rates = {"algbw_bytes_per_s": algbw, "busbw_bytes_per_s": alltoall_busbw(algbw, world)}
    base.primary_rate = "busbw_bytes_per_s"
    base.prediction = ctx.predictor.alltoall(base.params["intra_node_bytes"], ctx.nvlinked(), inter_bytes=base.params["inter_node_bytes"])
    base.hints = ctx.hints([t.nvml_index for t in ctx.targets], ("nccl_env", "p2p_disabled", "vm"))
    return apply_verdict(base)


def _moe_prediction(ctx: RunContext, world: int, predicted_bytes: np.ndarray, fit: AlphaBetaFit | None):
    """The busiest sender's intra-node bytes over the node's link and inter-node bytes over the NIC."""
    intra, inter = node_split(predicted_bytes, world // ctx.nodes)
    return ctx.predictor.alltoall(intra, ctx.nvlinked(), fit, inter_bytes=inter)


def moe_measurement(ctx: RunContext, world: int, job: A2AJob, message: dict, fit: AlphaBetaFit | None) -> Measurement:
    """An MoE-shaped point: measured bytes beside moeplan's prediction for the same routing sample."""
    point: MoEPoint = message["point"]
    sample = sample_for(job, world, point)
    if point.phase == "dispatch":
        predicted = dispatch_bytes(sample, job.num_experts, job.hidden, point.mode, point.dtype)
    else:
        predicted = combine_bytes(sample, job.num_experts, job.hidden, point.mode)
    measured, expected = traffic(np.array(message["sent_matrix"])), traffic(predicted)
    consistent = np.array_equal(np.array(message["recv_matrix"]).T, np.array(message["sent_matrix"]))
    stats = summarize(message["samples_s"])
    base = Measurement(
        section="a2a",
        name=point.phase,
        device=f"ranks 0-{world - 1}",
        params={
            "ranks": world,
            "tokens_per_rank": point.tokens,
            "routing": point.distribution,
            "mode": point.mode,
            "dtype": point.dtype,
            "row_bytes": message["row_bytes"],
            "bottleneck_rank": measured.bottleneck_rank,
            "bytes_match": measured == expected and consistent,
            "split_exchange_s": message["exchange_s"],
            "nodes": ctx.nodes,
        },
        stats=stats,
        bytes=measured.physical_bytes,
        rates={"physical_bytes_per_s": measured.physical_bytes / stats.median_s, "logical_bytes_per_s": measured.logical_bytes / stats.median_s},
        primary_rate="physical_bytes_per_s",
        prediction=_moe_prediction(ctx, world, predicted, fit),
        traffic=measured,
        predicted_traffic=expected,
        hints=ctx.hints([t.nvml_index for t in ctx.targets], ("nccl_env", "p2p_disabled", "vm")),
    )
    base.params["intra_node_bytes"], base.params["inter_node_bytes"] = node_split(np.array(message["sent_matrix"]), world // ctx.nodes)
    if not base.params["bytes_match"]:
        base.notes.append("bytes moved differ from moeplan's prediction for this routing sample" if measured != expected else "ranks disagree on bytes sent and received")
    if fit is not None:
        base.params["alpha_beta_s"] = fit.alpha_s + expected.physical_bytes / fit.beta_bytes_per_s
    return apply_verdict(base)
