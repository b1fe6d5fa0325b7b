"""`moeplan plan`: search parallel layouts for a model and rank those that fit."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from moeplan.cli.figures import CurveOpt, PlotOpt, check_figures, show_figures
from moeplan.cli.options import JsonOpt, deployment_command, model_command
from moeplan.errors import CheckFailed, SpecError
from moeplan.plan.objective import Objective
from moeplan.report.console import print_json
from moeplan.calibration import load_calibration
from moeplan.spec.deployment import Deployment, check_context
from moeplan.spec.resolve import ResolvedSpec

MAX_PLAN_GPUS = 8192
"""Largest --max-gpus: the search stays within about 200 MB (DeepSeek-V3 at 16,384 GPUs: 243k layouts, 380 MB)."""
MAX_TOP = 100000
"""Most layouts listed."""
MAX_GPU_HOUR_PRICE = 10_000
"""Dollars per GPU-hour, at most."""


@model_command
@deployment_command
def plan(
    ctx: typer.Context,
    resolved: ResolvedSpec,
    deployment: Deployment,
    max_gpus: Annotated[int, typer.Option("--max-gpus", min=1, max=MAX_PLAN_GPUS, help=f"Largest GPU count searched (1 to a node, then whole nodes; at most {MAX_PLAN_GPUS:,}).")] = 64,
    objective: Annotated[Objective, typer.Option("--objective", metavar="<objective>", help="fewest-gpus, throughput-per-gpu, latency (time per output token) or cost ($ per million tokens).")] = "fewest-gpus",
    gpu_hour_price: Annotated[Optional[float], typer.Option("--gpu-hour-price", help="Dollars per GPU-hour: adds $ per million tokens (needed by --objective cost).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=MAX_TOP, help="Layouts listed, in the table and in --json.")] = 10,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Efficiencies measured by `moeplan profile --save`, used instead of catalogue peaks.")] = None,
    json_: JsonOpt = False,
    plot: PlotOpt = None,
    curve: CurveOpt = False,
    engine: Annotated[Optional[str], typer.Option("--engine", help="Print each ranked layout's launch command for vllm, sglang or trtllm (optionally ==VERSION).")] = None,
) -> None:
    """Search parallel layouts (TP × EP × PP × DP, nodes × GPUs per node) and rank those that fit.

    --tp/--ep/--pp/--dp/--etp hold the search at that size and --num-gpus at that GPU count. Exit
    code 0 when some layout fits, 1 when none does (the closest is named), 2 on bad input, 3 when
    --plot lacks matplotlib.
    --plot and --curve draw the best layout.

    Examples:

    \b
        moeplan plan mixtral-8x7b --gpu h100-sxm
        moeplan plan deepseek-v3 --gpu h200 --max-gpus 256 --objective throughput-per-gpu --batch 64
        moeplan plan qwen3-30b-a3b --gpu l40s --objective cost --gpu-hour-price 0.9 --context 32k
        moeplan plan deepseek-v3 --gpu h100-sxm --tp 8 --json
        moeplan plan deepseek-v3 --gpu h200 --context 32k --engine vllm
    """
    from moeplan.plan.render import no_fit_message, render_plan  # numpy: loaded only when the command runs
    from moeplan.plan.search import best_estimate, search

    check_figures(plot, curve, json_, [ctx.params.get("model"), calibration])
    check_context(resolved.spec.max_position_embeddings, deployment)
    if gpu_hour_price is not None and not 0 < gpu_hour_price <= MAX_GPU_HOUR_PRICE:  # also refuses inf and NaN
        raise SpecError(f"--gpu-hour-price must be more than 0 and at most {MAX_GPU_HOUR_PRICE:,} dollars, not {gpu_hour_price:g}")
    efficiency, _ = load_calibration(calibration, deployment.gpu)
    report = search(resolved, deployment, max_gpus, objective, gpu_hour_price, efficiency, keep=top)
    commands = None
    if engine is not None:
        from moeplan.engines.cli import plan_commands, render_plan_commands

        commands = plan_commands(engine, report, resolved.spec)
    if json_:
        print_json(report if commands is None else commands)
    elif report.feasible:
        render_plan(report, top)
        if commands is not None:
            render_plan_commands(commands, top)
    if not report.feasible:
        raise CheckFailed(no_fit_message(report))
    if plot is not None or curve:
        show_figures(best_estimate(resolved, report, efficiency), plot, curve)
