"""Evaluate a plan file's assertions against moeplan's estimates."""

from pathlib import Path

from pydantic import BaseModel

from moeplan.check.planfile import PlannedDeployment, parse_bytes
from moeplan.report.document import Document
from moeplan.calibration import load_calibration
from moeplan.report.estimate import EstimateReport, build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.overrides import ALIASES
from moeplan.spec.resolve import resolve_spec
from moeplan.units import GiB


class AssertionResult(BaseModel):
    """One assertion: what was required, what moeplan estimates, and whether it holds."""

    deployment: str
    assertion: str
    required: str
    actual: str
    passed: bool


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


def _checks(d: PlannedDeployment, r: EstimateReport) -> list[tuple[str, str, str, bool]]:
    """(assertion, required, actual, passed) for every assertion the deployment sets."""
    a, memory, out = d.assertions, r.memory, []
    if a.fits is not None:
        out.append(("fits", str(a.fits).lower(), str(memory.fits).lower(), memory.fits == a.fits))
    if a.min_headroom is not None:
        text = a.min_headroom.strip()
        if text.endswith("%"):
            need = float(text.removesuffix("%"))
            have = 100 * memory.headroom_bytes / memory.usable_bytes
            out.append(("min_headroom", f"≥ {need:g}%", f"{have:.1f}%", have >= need))
        else:
            need = parse_bytes(text)
            out.append(("min_headroom", f"≥ {need / GiB:.2f} GiB", f"{memory.headroom_bytes / GiB:.2f} GiB", memory.headroom_bytes >= need))
    if a.min_decode_tokens_per_s is not None:
        have = r.throughput.decode_tokens_per_s
        out.append(("min_decode_tokens_per_s", f"≥ {a.min_decode_tokens_per_s:g}", f"{have:,.1f}", have >= a.min_decode_tokens_per_s))
    if a.max_time_per_output_token_ms is not None:
        have = r.throughput.time_per_output_token_s * 1e3
        out.append(("max_time_per_output_token_ms", f"≤ {a.max_time_per_output_token_ms:g}", f"{have:.2f}", have <= a.max_time_per_output_token_ms))
    if a.min_max_context is not None:
        have = memory.max_context  # None: no context exhausts memory
        shown = "unlimited" if have is None else f"{have:,}"
        out.append(("min_max_context", f"≥ {a.min_max_context:,}", shown, have is None or have >= a.min_max_context))
    if a.max_all_to_all_bytes_per_layer is not None:
        have = r.all_to_all.per_layer_bytes_per_rank if r.all_to_all else 0
        out.append(("max_all_to_all_bytes_per_layer", f"≤ {a.max_all_to_all_bytes_per_layer:,}", f"{round(have):,}", have <= a.max_all_to_all_bytes_per_layer))
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
    checks = [AssertionResult(deployment=d.name, assertion=n, required=req, actual=act, passed=ok) for n, req, act, ok in _checks(d, report)]
    return DeploymentResult(name=d.name, model=d.model, layout=report.layout.describe(), gpu=report.gpu.name, assertions=checks, report=report)


def evaluate_plan(deployments: list[PlannedDeployment], base: Path, calibration: Path | None = None) -> CheckReport:
    results = [evaluate_deployment(d, base, calibration) for d in deployments]
    return CheckReport(passed=all(r.passed for r in results), deployments=results)
