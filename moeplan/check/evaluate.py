"""Evaluate a plan file's assertions against moeplan's estimates."""

from pathlib import Path

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_serializer

from moeplan.errors import SpecError
from moeplan.check.planfile import PlannedDeployment, parse_bytes
from moeplan.report.document import Document
from moeplan.calibration import load_calibration
from moeplan.report.estimate import EstimateReport, build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.overrides import ALIASES
from moeplan.spec.resolve import resolve_spec

Unit = Literal["fits", "bytes", "fraction", "tokens_per_s", "s", "tokens"]
"""The unit of an assertion's numbers: base units (bytes, seconds, tokens), a fraction, or a fit (true/false)."""


class AssertionResult(BaseModel):
    """One assertion: what was required and what moeplan estimates, as numbers in base units named by the keys
    (``required_bytes``, ``actual_fraction``, ...; only the pair of the assertion's unit is present), and whether it holds."""

    model_config = ConfigDict(extra="forbid")

    deployment: str
    assertion: str
    unit: Unit
    """Which ``required_*``/``actual_*`` pair is set."""
    comparison: Literal["==", ">=", "<="]
    """actual comparison required must hold."""
    written: str | None = None
    """The requirement as the plan file wrote it ('8 GiB', '10%'), for the table and Markdown."""
    required_fits: bool | None = None
    actual_fits: bool | None = None
    required_bytes: int | None = None
    actual_bytes: int | None = None
    required_fraction: float | None = None
    actual_fraction: float | None = None
    """Headroom as a fraction of usable memory (0.05 = 5%)."""
    required_tokens_per_s: float | None = None
    actual_tokens_per_s: float | None = None
    required_s: float | None = None
    actual_s: float | None = None
    required_tokens: int | None = None
    actual_tokens: int | None = None
    """None: no context exhausts memory."""
    passed: bool

    @model_serializer(mode="wrap")
    def _set_pairs_only(self, handler):
        return {key: value for key, value in handler(self).items() if value is not None or key == f"actual_{self.unit}"}

    @property
    def required(self) -> bool | int | float:
        return getattr(self, f"required_{self.unit}")

    @property
    def actual(self) -> bool | int | float | None:
        return getattr(self, f"actual_{self.unit}")


class DeploymentResult(BaseModel):
    name: str
    model: str
    layout: str
    gpu: str
    assertions: list[AssertionResult]
    report: EstimateReport

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.assertions)


class CheckReport(Document):
    """The result of `moeplan check`; `--json` prints this model."""

    passed: bool
    deployments: list[DeploymentResult]


def _checks(d: PlannedDeployment, r: EstimateReport) -> list[dict]:
    """The fields of an AssertionResult for every assertion the deployment sets."""
    a, memory, out = d.assertions, r.memory, []

    def check(name: str, unit: Unit, comparison: str, required, actual, written: str | None = None) -> None:
        holds = {"==": lambda: actual == required, ">=": lambda: actual is None or actual >= required,
                 "<=": lambda: actual <= required}[comparison]()
        out.append({"assertion": name, "unit": unit, "comparison": comparison, "written": written,
                    f"required_{unit}": required, f"actual_{unit}": actual, "passed": holds})

    if a.fits is not None:
        check("fits", "fits", "==", a.fits, memory.fits)
    if a.min_headroom is not None:
        text = a.min_headroom.strip()
        if text.endswith("%"):
            check("min_headroom", "fraction", ">=", float(text.removesuffix("%")) / 100, memory.headroom_fraction, text)
        else:
            check("min_headroom", "bytes", ">=", parse_bytes(text), memory.headroom_bytes, text)
    if a.min_decode_tokens_per_s is not None:
        check("min_decode_tokens_per_s", "tokens_per_s", ">=", a.min_decode_tokens_per_s, r.throughput.decode_tokens_per_s)
    if a.max_time_per_output_token_ms is not None:
        check("max_time_per_output_token_ms", "s", "<=", a.max_time_per_output_token_ms / 1e3, r.throughput.time_per_output_token_s)
    if a.min_max_context is not None:
        check("min_max_context", "tokens", ">=", a.min_max_context, memory.max_context)
    if a.max_all_to_all_bytes_per_layer is not None:
        have = r.all_to_all.per_layer_bytes_per_rank if r.all_to_all else 0
        check("max_all_to_all_bytes_per_layer", "bytes", "<=", a.max_all_to_all_bytes_per_layer, round(have))
    return out


def evaluate_deployment(d: PlannedDeployment, base: Path, calibration: Path | None = None) -> DeploymentResult:
    """Estimate one deployment and check its assertions."""
    model = d.model
    local = base / model  # a path in a plan file is relative to the file; org/name with no such path is a Hub id
    if not Path(model).is_absolute() and (local.exists() or model.endswith((".json", ".yaml", ".yml", ".gguf"))):
        model = str(local)
    overrides = {ALIASES.get(k, k): v for k, v in d.set.items()}
    deployment = Deployment(**d.model_dump(include=set(Deployment.model_fields)))
    report = build_estimate(resolve_spec(model, overrides), deployment, *load_calibration(calibration, deployment.gpu))
    checks = [AssertionResult(deployment=d.name, **fields) for fields in _checks(d, report)]
    return DeploymentResult(name=d.name, model=d.model, layout=report.layout.describe(), gpu=report.gpu.name, assertions=checks, report=report)


def evaluate_plan(deployments: list[PlannedDeployment], base: Path, calibration: Path | None = None) -> CheckReport:
    results = []
    for d in deployments:
        try:
            results.append(evaluate_deployment(d, base, calibration))
        except SpecError as error:  # an unknown preset or GPU, a bad layout: say which deployment, where
            raise SpecError(f"{d.where}: {error}" if d.where else str(error)) from None
    return CheckReport(passed=all(r.passed for r in results), deployments=results)
