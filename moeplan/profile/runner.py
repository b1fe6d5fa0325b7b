"""Run the selected sections in order and build the report.

Devices: ``--device cuda`` measures the GPUs chosen by ``--gpus`` (NVML indices, matched to CUDA devices
by UUID); ``--device cpu`` runs the same code on host tensors and all-to-all across ``--procs`` local
processes with gloo. Launched under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set), this process is one rank
of a possibly multi-node all-to-all and only ``--only a2a`` runs; rank 0 reports.
"""

import dataclasses
import os
from datetime import datetime, timezone

from moeplan.errors import EnvError, SpecError
from moeplan.hardware.catalogue import GPUSpec, load_gpu
from moeplan.profile import alltoall
from moeplan.profile.context import CPU_SWEEPS, CUDA_SWEEPS, RunContext, Target
from moeplan.profile.env import cuda_devices, environment, require_backend, require_cuda, require_torch
from moeplan.profile.gpus import gpu_selector, parse_gpus
from moeplan.profile.nvml import NvmlApi, PynvmlApi, RecordedNvml, record
from moeplan.profile.options import ProfileOptions
from moeplan.profile.output import Recorder
from moeplan.profile.predict import Predictor, catalogue_gpu_for
from moeplan.profile.procs import RanksFailed, run_ranks
from moeplan.profile.results import Measurement, ModelShape, ProfileReport, SectionResult
from moeplan.profile.stats import fit_alpha_beta, sweep_tail
from moeplan.profile.stopping import Stopped
from moeplan.profile.timing import DeviceLost, first_line, is_sticky_cuda_error, watchdog
from moeplan.profile.topology import CudaDevice, normalize_uuid, snapshot
from moeplan.spec.resolve import resolve_spec

CPU_PROCS = 2
CPU_NO_PREDICTION = "CPU run: the GPU catalogue has no figures for a host CPU"


@dataclasses.dataclass
class Setup:
    ctx: RunContext
    world: int
    """All-to-all ranks."""
    device_name: str
    gpu: GPUSpec | None
    nvml_selected: list[int]
    """NVML indices the topology section covers."""
    nvml_missing: str | None = None
    """Why there is no NVML (topology skipped)."""
    cuda: list[CudaDevice] | None = None
    """torch's CUDA devices (None on --device cpu), to match NVML devices by UUID."""
    torchrun_rank: int | None = None
    """This process's rank when launched by torchrun."""


def _torchrun_rank() -> int | None:
    return env_int("RANK") if {"RANK", "WORLD_SIZE", "LOCAL_RANK"} <= os.environ.keys() else None


def env_int(name: str, env=os.environ) -> int:
    """A torchrun variable as a whole number ≥ 0; EnvError naming it otherwise (exit 3, never a traceback)."""
    value = env[name]
    if not value.strip().isdigit():
        raise EnvError(f"{name}={value!r} is not a whole number; torchrun sets it (launch with "
                       "`torchrun --nproc-per-node N -m moeplan profile`, or unset RANK, WORLD_SIZE and LOCAL_RANK)")
    return int(value)


def torchrun_nodes(env=os.environ) -> int:
    """Nodes of a torchrun group: WORLD_SIZE / LOCAL_WORLD_SIZE (ranks are laid out node by node)."""
    world, local = env_int("WORLD_SIZE", env), env_int("LOCAL_WORLD_SIZE" if "LOCAL_WORLD_SIZE" in env else "WORLD_SIZE", env)
    return max(1, world // max(1, local))


def _optional_nvml() -> tuple[NvmlApi | None, str | None]:
    """The live NVML, or None and why (the run goes on without a topology snapshot)."""
    try:
        return PynvmlApi(), None
    except EnvError as error:
        return None, str(error)


def model_shape(model: str, ep: int | None, world: int) -> ModelShape:
    """The expert shapes of a model and the EP degree (default: the number of ranks); SpecError if they do not fit."""
    spec = resolve_spec(model).spec
    if spec.moe is None:
        raise SpecError(f"{spec.name} is a dense model: moeplan profile measures expert GEMMs and all-to-all")
    ep = ep or world
    if spec.moe.num_experts % ep:
        raise SpecError(f"expert parallelism {ep} does not divide the {spec.moe.num_experts} experts of {spec.name}; pass --ep")
    shared = spec.moe.num_shared_experts * (spec.moe.shared_intermediate_size or spec.moe.expert_intermediate_size)
    units = shared // spec.moe.expert_intermediate_size if shared % spec.moe.expert_intermediate_size == 0 else 0
    return ModelShape(
        shared_expert_units=units,
        model=spec.name,
        hidden_size=spec.hidden_size,
        expert_intermediate_size=spec.moe.expert_intermediate_size,
        num_experts=spec.moe.num_experts,
        top_k=spec.moe.top_k,
        gated=spec.moe.gated,
        ep=ep,
    )


def select_targets(gpus: str, nvml: NvmlApi | None, cuda: list[CudaDevice]) -> tuple[list[tuple[int, int | None]], list[int]]:
    """(CUDA index, NVML index or None) of each selected GPU, and the NVML indices the snapshot covers.

    ``all`` means every GPU CUDA can see (CUDA_VISIBLE_DEVICES applies); explicit indices are NVML (nvidia-smi)
    indices. The two are matched by UUID; a CUDA device NVML cannot name (refused UUID, MIG) has no NVML index.
    """
    if nvml is None:
        return [(i, None) for i in parse_gpus(gpus, len(cuda))], []
    nvml_by_uuid = {}
    for i in range(nvml.device_count()):
        uuid = nvml.uuid(i)
        if uuid:
            nvml_by_uuid[normalize_uuid(uuid)] = i
    if gpu_selector(gpus) is None:
        if not cuda:
            raise SpecError("--gpus all: CUDA sees no GPU")
        pairs = [(d.index, nvml_by_uuid.get(normalize_uuid(d.uuid))) for d in cuda]
        return pairs, [n for _, n in pairs if n is not None]
    cuda_by_uuid = {normalize_uuid(d.uuid): d.index for d in cuda}
    pairs = []
    for i in parse_gpus(gpus, nvml.device_count()):
        uuid = nvml.uuid(i)
        index = cuda_by_uuid.get(normalize_uuid(uuid)) if uuid else None
        if index is None:
            raise SpecError(f"--gpus: GPU {i} ({uuid or 'UUID refused by NVML'}) is not visible to CUDA (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
        pairs.append((index, i))
    return pairs, [n for _, n in pairs]


def _cuda_targets(torch, options: ProfileOptions, nvml: NvmlApi | None, cuda: list[CudaDevice]) -> tuple[list[Target], list[int]]:
    """The selected GPUs as targets (see ``select_targets``)."""
    pairs, selected = select_targets(options.gpus, nvml, cuda)
    return [Target(f"cuda:{c}", torch.device("cuda", c), n) for c, n in pairs], selected


def prepare(torch, options: ProfileOptions) -> Setup:
    """Check the options against this machine and build the run context (SpecError/EnvError before any work)."""
    rank = _torchrun_rank()
    if rank is not None and options.only != ["a2a"]:
        raise SpecError("under torchrun only the all-to-all runs: add --only a2a (run the other sections without torchrun)")
    nvml, nvml_missing, selected, cuda = None, None, [], None
    if options.device == "cpu":
        if options.nvml_file:
            nvml = RecordedNvml.from_file(options.nvml_file)
            selected = parse_gpus(options.gpus, nvml.device_count())
        elif options.gpus != "all":
            raise SpecError("--gpus selects CUDA devices; with --device cpu set the all-to-all ranks with --procs")
        else:
            nvml_missing = "no GPU on --device cpu (replay a recorded box with --nvml-file FILE)"
        world = env_int("WORLD_SIZE") if rank is not None else options.procs or CPU_PROCS
        targets, device_name, gpu, gpu_missing = [Target("cpu", torch.device("cpu"))], "cpu", None, CPU_NO_PREDICTION
        backend = "gloo"
    else:
        if options.nvml_file:
            raise SpecError("--nvml-file replays a recorded box: use it with --device cpu")
        require_cuda(torch)
        if rank is not None:
            local = env_int("LOCAL_RANK")
            targets, world = [Target(f"cuda:{local}", torch.device("cuda", local))], env_int("WORLD_SIZE")
            nvml, nvml_missing = _optional_nvml()
            if nvml is not None:  # this rank's own GPU, matched by UUID
                mine = normalize_uuid(cuda_devices(torch)[local].uuid)
                selected = [n for n in range(nvml.device_count()) if nvml.uuid(n) and normalize_uuid(nvml.uuid(n)) == mine][:1]
                targets = [Target(f"cuda:{local}", torch.device("cuda", local), selected[0] if selected else None)]
        else:
            nvml, nvml_missing = _optional_nvml()
            cuda = cuda_devices(torch)
            targets, selected = _cuda_targets(torch, options, nvml, cuda)
            world = len(targets)
            if options.procs not in (None, world):
                raise SpecError(f"--procs {options.procs}: on CUDA the all-to-all runs one process per selected GPU ({world}); leave --procs out or change --gpus")
        device_name = torch.cuda.get_device_name(targets[0].device)
        gpu, gpu_missing = catalogue_gpu_for(device_name)
        backend = "nccl"
    if options.gpu:
        gpu, gpu_missing = load_gpu(options.gpu), None
    if options.nvml_record and nvml is None:
        raise EnvError(f"--nvml-record needs NVML: {nvml_missing}")
    if "a2a" in options.only and world > 1:
        require_backend(torch, backend)
    sweeps = CUDA_SWEEPS if options.device == "cuda" else CPU_SWEEPS
    sweeps = dataclasses.replace(sweeps, warmup=sweeps.warmup if options.warmup is None else options.warmup, iters=options.iters or sweeps.iters)
    nodes = torchrun_nodes() if rank is not None else 1
    ctx = RunContext(
        nodes=nodes,
        device_type=options.device,
        targets=targets,
        shape=model_shape(options.model, options.ep, world),
        sweeps=sweeps,
        predictor=Predictor(gpu, gpu_missing),
        seed=options.seed,
        timeout_s=options.timeout_s,
        nvml=nvml,
    )
    return Setup(ctx=ctx, world=world, device_name=device_name, gpu=gpu, nvml_selected=selected, nvml_missing=nvml_missing, cuda=cuda, torchrun_rank=rank)


def new_report(torch, options: ProfileOptions, setup: Setup) -> ProfileReport:
    return ProfileReport(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device=options.device,
        options=options.model_dump(mode="json"),
        environment=environment(torch),
        shape=setup.ctx.shape,
        notes=list(setup.ctx.sweeps.notes),
    )


def _points(recorder: Recorder, ctx: RunContext, section: str, points: list, measure) -> list[Measurement]:
    """Measure every point under the watchdog, emitting each as it finishes; a sticky CUDA error raises DeviceLost."""
    recorder.start(section, len(points))
    done = []
    for number, point in enumerate(points, 1):
        with watchdog(ctx.timeout_s, f"{section} point {number} of {len(points)}"):
            try:
                measurement = measure(*point)
            except RuntimeError as error:
                if is_sticky_cuda_error(error):
                    raise DeviceLost(f"{section} point {number} of {len(points)}: {first_line(error)}") from error
                raise
        recorder.emit(measurement)
        done.append(measurement)
    return done


TOPOLOGY_USERS = ("topo", "h2d", "p2p", "a2a")
"""Sections that use the snapshot (links, P2P status, PCIe); hbm and gemm read clocks on their own."""


def _topology(setup: Setup, options: ProfileOptions, recorder: Recorder) -> SectionResult:
    """Take the snapshot when a selected section uses it; report it when selected. A failure never blocks measurements."""
    ctx = setup.ctx
    if ctx.nvml is None:
        return SectionResult(section="topo", status="skipped", reason=setup.nvml_missing)
    if not set(TOPOLOGY_USERS) & set(options.only):
        return SectionResult(section="topo", status="skipped", reason="not selected")
    if options.nvml_record:
        try:
            options.nvml_record.write_text(record(ctx.nvml, f"recorded by moeplan profile on {recorder.report.environment.hostname}").model_dump_json(indent=1) + "\n")
        except OSError as error:
            raise SpecError(f"--nvml-record {options.nvml_record}: cannot write: {error.strerror or error}") from error
    try:
        ctx.topology = snapshot(ctx.nvml, setup.nvml_selected, setup.cuda, os.environ)
    except Exception as error:  # noqa: BLE001 - an NVML surprise must not block the measurements
        return SectionResult(section="topo", status="failed", reason=f"NVML snapshot failed ({type(error).__name__}: {first_line(error)}); measuring without it")
    if "topo" in options.only:
        recorder.report.topology = ctx.topology
        recorder.line("topology", ctx.topology.model_dump(mode="json"))
    return SectionResult(section="topo", status="ran", notes=[f"replayed from {options.nvml_file}"] if options.nvml_file else [])


def _hbm(setup: Setup, recorder: Recorder) -> SectionResult:
    from moeplan.profile.hbm import hbm_points, measure_hbm

    ctx = setup.ctx
    done = _points(recorder, ctx, "hbm", hbm_points(ctx), lambda target, size, kind: measure_hbm(ctx, target, size, kind))
    largest: dict[str, Measurement] = {}
    for m in done:
        if m.stats and m.name == "copy" and (m.device not in largest or m.params["size_bytes"] > largest[m.device].params["size_bytes"]):
            largest[m.device] = m
    ctx.measured_dram_bytes_per_s = min((m.rates["dram_bytes_per_s"] for m in largest.values()), default=None)
    notes = ["host-memory copy (--device cpu)"] if ctx.device_type == "cpu" else []
    return SectionResult(section="hbm", status="ran", notes=notes)


def _gemm(setup: Setup, recorder: Recorder) -> SectionResult:
    from moeplan.profile.gemm import FP8_PATHS, KERNEL_PATHS, fp8_unavailable, gemm_dims, gemm_points, grouped_mm_unavailable, make_weights, measure_gemm

    ctx = setup.ctx
    target = ctx.targets[0]
    notes = []
    if len(ctx.targets) > 1:
        notes.append(f"expert GEMMs ran on {target.label} only")
    if ctx.sweeps.gemm_scale > 1:
        hidden, inter = gemm_dims(ctx)
        notes.append(f"shapes scaled down by {ctx.sweeps.gemm_scale}: H {ctx.shape.hidden_size}→{hidden}, I {ctx.shape.expert_intermediate_size}→{inter}")
    weights, reason = make_weights(ctx, target.device)
    if weights is None:
        return SectionResult(section="gemm", status="skipped", reason=reason)
    paths = list(KERNEL_PATHS)
    no_fp8 = fp8_unavailable(target.device)
    if no_fp8:
        notes.append(f"fp8 paths not run: {no_fp8}")
    else:
        paths += list(FP8_PATHS)
    if ctx.shape.shared_expert_units:
        notes.append(f"shared experts fused as {ctx.shape.shared_expert_units} extra local expert(s) that every token reaches")
    unavailable = grouped_mm_unavailable(target.device)
    if unavailable:
        paths.remove("grouped_mm")
        notes.append(f"grouped_mm path not run: {unavailable}")
    elif target.device.type == "cuda":
        import torch

        major, _ = torch.cuda.get_device_capability(target.device)
        if major not in (9, 10):
            notes.append(f"torch._grouped_mm on sm{major}x runs torch's fallback, not the sm90/sm100 grouped kernels")
    else:
        notes.append("torch._grouped_mm on CPU runs torch's reference implementation")
    _points(recorder, ctx, "gemm", gemm_points(ctx, paths), lambda tokens, pattern, path: measure_gemm(ctx, target, weights, tokens, pattern, path))
    return SectionResult(section="gemm", status="ran", notes=notes)


def _h2d(setup: Setup, recorder: Recorder) -> SectionResult:
    from moeplan.profile.host_copy import host_copy_points, measure_host_copy

    ctx = setup.ctx
    if ctx.device_type != "cuda":
        return SectionResult(section="h2d", status="skipped", reason="host↔device copies need a CUDA device")
    _points(recorder, ctx, "h2d", host_copy_points(ctx), lambda targets, size, direction, memory: measure_host_copy(ctx, targets, size, direction, memory))
    return SectionResult(section="h2d", status="ran")


def _p2p(setup: Setup, recorder: Recorder) -> SectionResult:
    from moeplan.profile.peer import measure_peer, peer_points

    ctx = setup.ctx
    if ctx.device_type != "cuda":
        return SectionResult(section="p2p", status="skipped", reason="peer copies need CUDA GPUs")
    if len(ctx.targets) < 2:
        return SectionResult(section="p2p", status="skipped", reason=f"peer copies need two or more GPUs; {len(ctx.targets)} selected")
    _points(recorder, ctx, "p2p", peer_points(ctx), lambda a, b, kind: measure_peer(ctx, a, b, kind))
    return SectionResult(section="p2p", status="ran")


class A2ACollector:
    """Turns rank 0's messages into measurements as they arrive; fits α–β once the uniform sweep is done."""

    def __init__(self, ctx: RunContext, world: int, job: alltoall.A2AJob, recorder: Recorder):
        self.ctx, self.world, self.job, self.recorder = ctx, world, job, recorder
        self.uniform: list[Measurement] = []
        self.fitted = False

    def fit(self):
        if not self.fitted:
            points = [m for m in self.uniform if m.stats]
            points = [points[i] for i in sweep_tail([m.params["size_bytes"] for m in points])]
            fit = fit_alpha_beta([m.params["size_bytes"] for m in points], [m.stats.median_s for m in points], self.world)
            self.recorder.report.alltoall_fit = fit
            if fit:
                self.recorder.line("fit", fit.model_dump(mode="json"))
            self.fitted = True
        return self.recorder.report.alltoall_fit

    def __call__(self, message: dict) -> None:
        if message["kind"] == "uniform":
            measurement = alltoall.uniform_measurement(self.ctx, self.world, message)
            self.uniform.append(measurement)
        else:
            measurement = alltoall.moe_measurement(self.ctx, self.world, self.job, message, self.fit())
        self.recorder.emit(measurement)


def _a2a(setup: Setup, recorder: Recorder) -> SectionResult:
    ctx, world = setup.ctx, setup.world
    experts = ctx.shape.num_experts
    if world < 2:
        fix = "select two or more GPUs" if ctx.device_type == "cuda" else "use --procs 2 or more"
        return SectionResult(section="a2a", status="skipped", reason=f"all-to-all needs two or more ranks; {fix}")
    if experts % world:
        return SectionResult(section="a2a", status="skipped", reason=f"the {experts} experts do not split evenly over {world} ranks")
    cuda = ctx.device_type == "cuda"
    job = alltoall.A2AJob(
        backend="nccl" if cuda else "gloo",
        cuda_indices=tuple(t.device.index for t in ctx.targets) if cuda else None,
        warmup=ctx.sweeps.warmup,
        iters=ctx.sweeps.iters,
        sizes=ctx.sweeps.a2a_bytes,
        moe_points=alltoall.moe_points(ctx.sweeps.a2a_tokens),
        hidden=ctx.shape.hidden_size,
        num_experts=experts,
        top_k=ctx.shape.top_k,
        seed=ctx.seed,
        timeout_s=ctx.timeout_s,
    )
    collector = A2ACollector(ctx, world, job, recorder)
    recorder.start("a2a", len(job.sizes) + len(job.moe_points))
    try:
        if setup.torchrun_rank is None:
            run_ranks(alltoall.a2a_worker, world, (job,), ctx.timeout_s, collector)
        else:
            _torchrun_rank_a2a(setup, job, collector)
    except RanksFailed as error:
        return SectionResult(section="a2a", status="failed", reason=str(error))
    collector.fit()
    return SectionResult(section="a2a", status="ran", notes=[f"{world} ranks, {job.backend}" + (" (torchrun)" if setup.torchrun_rank is not None else " (local processes)")])


def _torchrun_rank_a2a(setup: Setup, job: alltoall.A2AJob, collector: A2ACollector) -> None:
    """This process as one rank of a torchrun group (env:// rendezvous); rank 0 collects, the others only take part."""
    rank, cuda = setup.torchrun_rank, setup.ctx.device_type == "cuda"
    local = dataclasses.replace(job, cuda_indices=(setup.ctx.targets[0].device.index,) * setup.world if cuda else None)
    try:
        alltoall.a2a_worker(rank, setup.world, "env://", collector if rank == 0 else _discard, local)
    except RuntimeError as error:  # torch.distributed errors, timeouts included, are RuntimeErrors
        lines = str(error).strip().splitlines()
        raise RanksFailed(f"rank {rank} failed: {type(error).__name__}: {lines[0] if lines else ''}") from error


def _discard(message: dict) -> None:
    """Ranks other than 0 report nothing."""


SECTION_RUNNERS = {"hbm": _hbm, "gemm": _gemm, "h2d": _h2d, "p2p": _p2p, "a2a": _a2a}


def section_order(options: ProfileOptions, topology) -> tuple[list[str], str | None]:
    """The measuring sections in run order, and a note when it differs from the report order.

    A GPU in an exclusive compute mode takes one CUDA context at a time: the all-to-all ranks run first, before
    this process creates contexts of its own for the other sections.
    """
    order = [s for s in options.only if s in SECTION_RUNNERS]
    exclusive = [g.nvml_index for g in (topology.gpus if topology else []) if g.compute_mode in ("exclusive_process", "exclusive_thread")]
    if exclusive and "a2a" in order and order[0] != "a2a":
        order.remove("a2a")
        return ["a2a", *order], f"GPU {', '.join(map(str, exclusive))} in exclusive compute mode: the all-to-all ran first, before this process held a CUDA context"
    return order, None


def run_profile(options: ProfileOptions, recorder_factory) -> tuple[ProfileReport, Setup]:
    """Run every selected section; ``recorder_factory(report)`` makes the Recorder (JSONL, progress).

    SIGTERM/SIGINT (``Stopped``) ends the run in order: the section cut short is recorded as failed, the
    report keeps what finished and says so in ``stopped``. A sticky CUDA error (``DeviceLost``) fails its
    section and skips the rest: the context is unusable, so later points would all be wrong.
    """
    torch = require_torch()
    setup = prepare(torch, options)
    report = new_report(torch, options, setup)
    recorder = recorder_factory(report) if setup.torchrun_rank in (None, 0) else Recorder(report)
    current = "topo"
    try:
        topo = _topology(setup, options, recorder)
        if "topo" in options.only:
            recorder.section(topo)
        order, note = section_order(options, setup.ctx.topology)
        if note:
            report.notes.append(note)
        for number, current in enumerate(order):
            try:
                result = SECTION_RUNNERS[current](setup, recorder)
            except DeviceLost as error:
                recorder.section(SectionResult(section=current, status="failed", reason=f"sticky CUDA error at {error}; the CUDA context is unusable, the run stopped"))
                for later in order[number + 1 :]:
                    recorder.section(SectionResult(section=later, status="skipped", reason=f"not run: the CUDA context was lost in {current}"))
                break
            recorder.section(result)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    except Stopped as stop:
        report.stopped = stop.signal
        recorder.section(SectionResult(section=current, status="failed", reason=f"stopped by {stop.signal}"))
    finally:
        recorder.close()
    return report, setup
