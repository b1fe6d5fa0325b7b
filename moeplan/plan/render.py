"""Rich rendering of a PlanReport: the best layouts as a table. Memory in GiB = 2^30 B."""

from rich.table import Table
from rich.text import Text

from moeplan.plan.search import PlanReport, PlanRow
from moeplan.report.console import console, fitted_table
from moeplan.units import GiB


def _header(report: PlanReport) -> str:
    d = report.deployment
    return (f"{report.model} on {report.gpu} (usable {report.usable_bytes / GiB:,.2f} GiB per GPU), {d.mode}, batch {d.batch:,}, "
            f"context {d.context:,}: {report.evaluated:,} layouts evaluated in {report.search_s:.2f} s, {report.feasible:,} fit")


def _layout(row: PlanRow) -> str:
    etp = f" etp {row.etp}" if row.ep > 1 and row.etp > 1 else ""
    return f"{row.tp}/{row.ep}/{row.pp}/{row.dp}{etp}"


def plan_table(report: PlanReport, top: int) -> Table:
    """The first ``top`` layouts, ranked by the objective; no cell wraps or truncates at 80 columns."""
    training = report.deployment.mode == "training"
    speed = (["step\ns", "train\ntok/s/GPU", "MFU"] if training
             else ["decode\ntok/s", "tok/s\nper GPU", "TPOT\nms", "prefill\ntok/s"])
    columns = ["#", "GPUs", "nodes", "tp/ep/pp/dp", "GiB/\nGPU", "head-\nroom", *speed, "bound"]
    if report.gpu_hour_price is not None:
        columns.append("$/M\ntok")
    rows = []
    for i, row in enumerate(report.layouts[:top], 1):
        if not training:
            figures = [f"{row.decode_tokens_per_s:,.0f}", f"{row.tokens_per_s_per_gpu:,.1f}",
                       f"{row.time_per_output_token_s * 1e3:,.2f}", f"{row.prefill_tokens_per_s:,.0f}", row.bound]
        elif t := row.training:
            figures = [f"{t.step_s:,.2f}", f"{t.tokens_per_s / row.gpus:,.1f}", f"{t.mfu:.1%}", t.bound]
        else:  # beyond the first TRAINING_ROWS
            figures = ["–", "–", "–", "–"]
        cells = [str(i), f"{row.gpus:,}", f"{row.nodes:,}", _layout(row), f"{row.per_gpu_bytes / GiB:,.2f}",
                 f"{row.headroom_fraction:.0%}", *figures]
        if row.cost_per_million_tokens is not None:
            cells.append(f"{row.cost_per_million_tokens:,.3f}")
        rows.append(cells)
    table = fitted_table(columns, rows, left=("tp/ep/pp/dp", "bound"),
                         title=Text(f"{_header(report)}; best {min(top, report.feasible)} by {report.ranking}"))
    if report.gpu_hour_price is not None:
        table.caption = f"$/M tok: dollars per million tokens at ${report.gpu_hour_price:g} per GPU-hour"
    return table


def no_fit_message(report: PlanReport) -> str:
    """One line for stderr when no layout fits, naming the layout that needs the least memory."""
    row = report.closest
    return (f"nothing fits: {_header(report)}. The least memory per GPU is {row.per_gpu_bytes / GiB:,.2f} GiB "
            f"({row.describe()}, {row.gpus} GPUs) against {report.usable_bytes / GiB:,.2f} GiB usable; try a larger --max-gpus, "
            "a smaller --dtype or --kv-dtype (fp8), or a smaller --batch/--context")


def render_plan(report: PlanReport, top: int) -> None:
    """Print the table and the notes (the caller handles the no-fit case)."""
    console.print(plan_table(report, top))
    for note in report.notes:
        console.print(f"· {note}", highlight=False)
