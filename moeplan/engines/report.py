"""`moeplan check -- <engine command>`: read the command, evaluate moeplan's deployment through the estimate
facade, apply the engine's start-up semantics and the assertions.

The model argument may be a moeplan preset, a path, or a Hugging Face id. An id of a repository a preset was
taken from (spec.presets.PRESET_ORIGINS) maps to that preset, with no download; any other id goes to
spec/resolve.py's Hugging Face reading.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from moeplan.engines.command import EngineCommand, EngineVersion, engine_module, parse_command
from moeplan.engines.startup import EngineStartup, StartupInputs
from moeplan.errors import SpecError
from moeplan.layout.parallel import Layout
from moeplan.perf.offload import OffloadEstimate
from moeplan.report.document import Document
from moeplan.report.estimate import build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.presets import PRESET_ORIGINS, preset_for_repo, preset_names
from moeplan.spec.resolve import ResolvedSpec, resolve_spec
from moeplan.units import GiB

LAYOUT_FIELDS = ("tp", "ep", "pp", "dp", "etp", "num_gpus")
"""Deployment settings an engine command always decides; with `check --` they are not moeplan flags."""

MOEPLAN_FLAGS = frozenset({"--json", "--gpu", "--assert", "--engine", "--batch", "--context", "--gpu-memory-gib"})
"""`check` flags a user may type after `--` by mistake (the engine command then ignores them)."""

COMMAND_FIELDS = {"context": "max_model_len", "gpu_util": "memory_fraction", "prefill_chunk": "max_num_batched_tokens",
                  "ep": "ep_size"}
"""Deployment field → the EngineCommand field it comes from (to name the flag as written in errors)."""

ASSERTIONS = {
    "min_kv_tokens": ("tokens", ">=", 1, lambda r: r.startup.kv_tokens),
    "min_concurrency": ("requests", ">=", 1, lambda r: r.startup.max_concurrency),
    "min_kv_pool_gib": ("bytes", ">=", GiB, lambda r: r.startup.kv_pool_bytes),
    "max_tpot_ms": ("s", "<=", 1e-3, lambda r: r.time_per_output_token_s),
    "max_ttft_ms": ("s", "<=", 1e-3, lambda r: r.ttft_s),
}
"""`--assert NAME=VALUE` names → (unit of required/actual, comparison, VALUE → base units, the actual figure)."""


def _origin_id(origin: str) -> str:
    return origin.split()[0].rstrip(",;")


def model_argument(spec) -> str:
    """What a launch command names for a spec: a preset's Hugging Face id, a config's directory, else its name."""
    origin = PRESET_ORIGINS.get(spec.name)
    if spec.source.startswith("preset") and origin and "/" in _origin_id(origin):
        return _origin_id(origin)
    path = Path(spec.source)
    if path.name == "config.json":
        return str(path.parent)
    return spec.source if path.exists() else spec.name


def resolve_model(model: str) -> ResolvedSpec:
    """A preset, a path, or a Hugging Face id (the preset from that repository, else spec.resolve's own reading)."""
    if model in preset_names() or Path(model).expanduser().exists():
        return resolve_spec(model)
    preset = preset_for_repo(model)
    return resolve_spec(preset if preset else model)


class Assertion(BaseModel):
    """One `--assert`: the requirement and moeplan's figure in base units (bytes, seconds, tokens, requests)."""

    model_config = ConfigDict(extra="forbid")

    assertion: str
    written: str
    """As given: min_kv_tokens=200000."""
    unit: Literal["tokens", "requests", "bytes", "s"]
    comparison: Literal[">=", "<="]
    """actual comparison required must hold."""
    required: float
    actual: float
    passed: bool


class EngineReport(Document):
    """The result of `moeplan check -- <engine command>`; `--json` prints this model."""

    engine: str
    """Engine and version whose semantics were applied (vllm==0.19; no version: the newest moeplan knows)."""
    command: EngineCommand
    model: str
    """The spec's name."""
    gpu: str
    layout: Layout
    deployment: Deployment
    """moeplan's deployment for the command (what `moeplan estimate` would be given)."""
    startup: EngineStartup
    time_per_output_token_s: float
    ttft_s: float
    decode_tokens_per_s: float
    """From the estimate facade at the deployment's batch and context."""
    offload: OffloadEstimate | None = None
    """llama.cpp: where the weights are (VRAM and host RAM) and the offload speed, as `estimate` gives them."""
    assertions: list[Assertion]
    passed: bool
    """Starts and meets every assertion (exit code 0)."""


def parse_assertions(texts: list[str]) -> list[tuple[str, str, float]]:
    """`--assert NAME=VALUE` texts → (name, text, required in base units); SpecError naming a bad one."""
    out = []
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in ASSERTIONS:
            raise SpecError(f"--assert {text!r}: expected NAME=VALUE with NAME one of {', '.join(ASSERTIONS)}")
        try:
            number = float(value)
        except ValueError:
            raise SpecError(f"--assert {text!r}: {value!r} is not a number") from None
        out.append((name, text, number * ASSERTIONS[name][2]))
    return out


def engine_deployment(command: EngineCommand, resolved: ResolvedSpec, base: Deployment, gpu) -> tuple[Deployment, int]:
    """(moeplan's deployment, max_model_len) for a command; ``base`` carries the hardware and workload flags."""
    spec = resolved.spec
    max_model_len = command.max_model_len or spec.max_position_embeddings
    if max_model_len is None:
        raise SpecError(f"{spec.name}: the config gives no max_position_embeddings; set the engine's max model length flag")
    fields = {k: v for k, v in engine_module(command.engine).deployment_fields(command, spec, gpu).items() if v is not None}
    given = sorted(set(base.model_fields_set) & {*LAYOUT_FIELDS, *fields})
    if given:
        flags = ", ".join(f"--{f.replace('_', '-')}" for f in given)
        raise SpecError(f"{flags}: with `check -- <engine command>` the command sets this; set it there")
    values = base.model_dump(exclude_unset=True)
    values.setdefault("context", max_model_len)
    values.update(fields)
    values["allow_long_context"] = True  # the engine's own length check decides: its start-up fails (exit 1)
    try:
        return Deployment(**values), max_model_len
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        flag = command.written.get(COMMAND_FIELDS.get(field, field)) or f"--{field.replace('_', '-')}"
        raise SpecError(f"{flag}: {first['msg'].removeprefix('Value error, ')}") from None


def check_engine_command(argv: list[str], base: Deployment, engine: EngineVersion | None = None,
                         assertions: list[tuple[str, str, float]] = ()) -> EngineReport:
    """Everything `moeplan check -- <engine command>` prints."""
    from moeplan.hardware.catalogue import load_gpu

    command = parse_command(argv)
    if engine is not None and engine.engine != command.engine:
        raise SpecError(f"--engine {engine.describe()}: the command starts {command.engine}")
    version = engine or EngineVersion(engine=command.engine)
    resolved = resolve_model(command.model)
    gpu = load_gpu(base.gpu, {"memory_gib": base.gpu_memory_gib, "hbm_tb_s": base.gpu_hbm_tb_s,
                              "bf16_tflops": base.gpu_bf16_tflops, "link_gb_s": base.gpu_link_gb_s})
    deployment, max_model_len = engine_deployment(command, resolved, base, gpu)
    estimate = build_estimate(resolved, deployment)
    inputs = StartupInputs(spec=resolved.spec, command=command, version=version, gpu=estimate.gpu, layout=estimate.layout,
                           memory=estimate.memory, weights=estimate.weights, deployment=deployment, max_model_len=max_model_len,
                           offload=estimate.throughput.offload)
    startup = engine_module(command.engine).startup(inputs)
    misplaced = [word for word in (w.split()[0] for w in command.ignored) if word.split("=")[0] in MOEPLAN_FLAGS]
    if misplaced:
        startup.notes.append(f"{', '.join(misplaced)}: moeplan's own flags go before `--`, not in the engine command")
    speed = estimate.throughput
    report = EngineReport(engine=version.describe(), command=command, model=resolved.spec.name, gpu=estimate.gpu.name,
                          layout=estimate.layout, deployment=deployment, startup=startup,
                          time_per_output_token_s=speed.time_per_output_token_s, ttft_s=speed.ttft_s,
                          decode_tokens_per_s=speed.decode_tokens_per_s, offload=speed.offload, assertions=[], passed=False)
    report.assertions = [_assertion(name, text, required, report) for name, text, required in assertions]
    report.passed = startup.starts and all(a.passed for a in report.assertions)
    return report


def _assertion(name: str, text: str, required: float, report: EngineReport) -> Assertion:
    unit, comparison, _, read = ASSERTIONS[name]
    actual = read(report)
    passed = actual >= required if comparison == ">=" else actual <= required
    return Assertion(assertion=name, written=text, unit=unit, comparison=comparison, required=required, actual=actual,
                     passed=passed)


def launch_command(engine: EngineVersion, layout: Layout, deployment: Deployment, spec) -> list[str]:
    """The engine's launch command realising a layout for a spec (SpecError when the engine cannot express it)."""
    return engine_module(engine.engine).launch_argv(model_argument(spec), layout, deployment, spec)
