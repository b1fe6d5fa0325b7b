"""`moeplan estimate`: parameters, memory, compute and traffic of a model."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from moeplan.cli.app import app
from moeplan.cli.figures import CurveOpt, PlotOpt, check_figures, show_figures
from moeplan.cli.options import JsonOpt, deployment_command, model_command
from moeplan.report.console import print_json
from moeplan.calibration import load_calibration
from moeplan.report.estimate import build_estimate
from moeplan.report.render_estimate import render_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.resolve import ResolvedSpec


@app.command()
@model_command
@deployment_command
def estimate(
    resolved: ResolvedSpec,
    deployment: Deployment,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Efficiencies measured by `moeplan profile --save`, used instead of catalogue peaks.")] = None,
    json_: JsonOpt = False,
    plot: PlotOpt = None,
    curve: CurveOpt = False,
) -> None:
    """Estimate parameters and memory of a model.

    Examples:

    \b
        moeplan estimate mixtral-8x7b --dtype bf16
        moeplan estimate ./DeepSeek-V3/config.json --json
        moeplan estimate qwen3-30b-a3b --set experts=256 --set top_k=16
        moeplan estimate --layers 24 --hidden 2048 --heads 16 --vocab 32000 --experts 64 --top-k 6 --expert-intermediate 1408
        moeplan estimate mixtral-8x7b --num-gpus 2 --curve --plot mixtral.png
    """
    check_figures(plot, curve, json_)
    report = build_estimate(resolved, deployment, *load_calibration(calibration, deployment.gpu))
    if json_:
        print_json(report)
    else:
        render_estimate(report)
    show_figures(report, plot, curve)
