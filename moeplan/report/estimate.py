"""The report of ``moeplan estimate``: one pydantic model, printed as a rich report or as JSON."""

from pydantic import Field

from moeplan.accounting.params import ParamCounts, count_params
from moeplan.report.document import Document
from moeplan.spec.checkpoint import CheckpointSummary
from moeplan.spec.model import ModelSpec
from moeplan.spec.resolve import ResolvedSpec

class EstimateReport(Document):
    """Everything `moeplan estimate` computes; `--json` prints this model."""

    spec: ModelSpec
    params: ParamCounts
    checkpoint: CheckpointSummary | None = None
    """Stored tensors of a model directory's safetensors files, beside the config-derived count."""
    notes: list[str] = Field(default_factory=list)
    """Assumptions and conventions worth reading next to the figures."""


def build_estimate(resolved: ResolvedSpec) -> EstimateReport:
    """Compute the report for a resolved spec."""
    spec = resolved.spec
    params = count_params(spec)
    notes = [
        "active = all non-routed parameters + top-k routed experts per MoE layer, embedding and lm_head included",
    ]
    if params.mtp:
        notes.append(f"multi-token-prediction layers ({params.mtp:,} parameters as stored) are not part of total")
    if resolved.checkpoint is not None:
        stored = resolved.checkpoint.elements
        notes.append(f"checkpoint stores {stored:,} elements vs {params.total + params.mtp:,} derived from the config "
                     f"(difference {stored - params.total - params.mtp:+,}; quantized tensors count packed elements and scales)")
    return EstimateReport(spec=spec, params=params, checkpoint=resolved.checkpoint, notes=notes)
