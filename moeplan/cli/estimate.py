"""`moeplan estimate`: parameters, memory, compute and traffic of a model."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from moeplan.cli.figures import CurveOpt, PlotOpt, check_figures, show_figures
from moeplan.cli.options import LAYOUT_FLAGS, JsonOpt, command_arguments, deployment_command, model_command
from moeplan.report.console import print_json
from moeplan.report.estimate import build_estimate
from moeplan.report.verdict import build_verdict
from moeplan.spec.deployment import Deployment
from moeplan.spec.resolve import ResolvedSpec


@model_command
@deployment_command
def estimate(
    ctx: typer.Context,
    resolved: ResolvedSpec,
    deployment: Deployment,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Efficiencies measured by `moeplan profile --save`, used instead of catalogue peaks.")] = None,
    brief: Annotated[bool, typer.Option("--brief", help="Print only the verdict: fit, headroom, and the fewest GPUs that fit when it does not.")] = False,
    json_: JsonOpt = False,
    plot: PlotOpt = None,
    curve: CurveOpt = False,
    engine: Annotated[Optional[str], typer.Option("--engine", help="Also print the launch command for vllm, sglang, trtllm or llamacpp (optionally ==VERSION).")] = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Also print where a decode step's time goes, per operation and per layer (--json always carries it).")] = False,
) -> None:
    """Estimate parameters, memory and speed of a model; the verdict (fits or not, and on how many GPUs it would) comes first.

    Examples:

    \b
        moeplan estimate mixtral-8x7b --dtype bf16
        moeplan estimate ./DeepSeek-V3/config.json --json
        moeplan estimate qwen3-30b-a3b --set experts=256 --set top_k=16
        moeplan estimate --layers 24 --hidden 2048 --heads 16 --vocab 32000 --experts 64 --top-k 6 --expert-intermediate 1408
        moeplan estimate mixtral-8x7b --num-gpus 2 --curve --plot mixtral.png
    """
    check_figures(plot, curve, json_, [ctx.params.get("model"), calibration])
    efficiency, source = _calibration(calibration, deployment.gpu)
    report = build_estimate(resolved, deployment, efficiency, source)
    plan_args = command_arguments({**ctx.params, "gpu": deployment.gpu}, LAYOUT_FLAGS)
    verdict = build_verdict(resolved, report, deployment.model_fields_set, efficiency, plan_args)
    report = report.model_copy(update={"verdict": verdict})
    if engine is not None:
        from moeplan.engines.cli import estimate_launch_command

        report.launch_command = estimate_launch_command(engine, report.layout, deployment, resolved.spec)
    if json_:
        # training reports its step time, tokens/s and MFU (`training`), not the inference speed block
        print_json(verdict if brief else report, exclude={"throughput"} if report.deployment.mode == "training" else None)
    else:
        _render(report, brief)
        if breakdown:
            from moeplan.report.console import console
            from moeplan.report.render_speed import breakdown_table

            console.print(breakdown_table(report))
    show_figures(report, plot, curve)


def _render(report, brief: bool) -> None:
    """The rich report, or only its verdict; rich's tables are imported here, not for --json."""
    from moeplan.report.render_estimate import render_estimate, render_verdict

    if brief:
        render_verdict(report)
        return
    render_estimate(report)
    if report.launch_command:
        print(f"launch command: {report.launch_command}")


def _calibration(path: Path | None, gpu: str):
    """(efficiencies, file name) of --calibration, imported only when one is given."""
    if path is None:
        return None, None
    from moeplan.calibration import load_calibration

    return load_calibration(path, gpu)
