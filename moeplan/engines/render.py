"""Rich rendering of an EngineReport: the verdict first, then the engine's figures, its budget and notes."""

from rich.markup import escape
from rich.table import Table

from moeplan.engines.report import EngineReport
from moeplan.report.console import console
from moeplan.units import GiB


def _verdict(report: EngineReport) -> str:
    s = report.startup
    where = f"{escape(report.model)} on {escape(report.gpu)}, {report.layout.describe()}"
    if not s.starts:
        short = f" — short by {s.shortfall_bytes / GiB:,.2f} GiB per GPU" if s.shortfall_bytes > 0 else ""
        return f"[bold red]{report.engine} will not start[/]: {escape(s.failure or '')}{short}. {where}"
    failed = [a.assertion for a in report.assertions if not a.passed]
    tail = f"; [bold red]assertions fail[/]: {', '.join(failed)}" if failed else ""
    return f"[bold green]{report.engine} starts[/]: {where}{tail}"


def _shown(value: float, unit: str) -> str:
    return {"bytes": f"{value / GiB:,.2f} GiB", "s": f"{value * 1e3:,.2f} ms", "tokens": f"{value:,.0f} tokens"}.get(
        unit, f"{value:,.2f} {unit}")


def figures_table(report: EngineReport) -> Table:
    s, d = report.startup, report.deployment
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    replicas = f" per replica; {s.replicas} replicas" if s.replicas > 1 else ""
    rows = [
        ("weights per GPU", f"{s.weights_per_gpu_bytes / GiB:,.2f} GiB"),
        ("KV pool", f"{s.kv_pool_bytes / GiB:,.2f} GiB per GPU ({s.kv_bytes_per_token:,} B per token)"),
        ("KV tokens", f"{s.kv_tokens:,} in {s.kv_blocks:,} blocks of {s.block_size}{replicas}"),
        ("max concurrency", f"{s.max_concurrency:,.2f} requests of {s.max_model_len:,} tokens{replicas}"),
        ("TPOT / TTFT", f"{report.time_per_output_token_s * 1e3:,.2f} ms / {report.ttft_s * 1e3:,.1f} ms at batch "
                        f"{d.batch:,}, context {d.context:,} (moeplan's speed model)"),
    ]
    if (o := report.offload) is not None and o.host_bytes:
        rows.insert(1, ("host memory", f"{o.host_bytes / GiB:,.2f} GiB of weights ({'fits' if o.fits_in_host_memory else 'does NOT fit'} "
                                       f"in {o.host_memory_bytes / GiB:,.0f} GiB); decode CPU {o.cpu_time_s * 1e3:,.2f} ms + GPU "
                                       f"{o.gpu_time_s * 1e3:,.2f} ms per step; prefill host part {o.prompt_host_s * 1e3:,.1f} ms "
                                       f"({o.prefill_host_path})"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def budget_table(report: EngineReport) -> Table:
    table = Table(title="How the engine divides the most constrained GPU", title_justify="left")
    for column in ("allocation", "GiB", "basis"):
        table.add_column(column, justify="right" if column == "GiB" else "left")
    for line in report.startup.budget:
        table.add_row(escape(line.name), f"{line.bytes / GiB:,.2f}", escape(line.basis))
    return table


def render_engine_report(report: EngineReport) -> None:
    console.print(_verdict(report))
    console.print(figures_table(report))
    console.print(budget_table(report))
    if report.assertions:
        table = Table(title="Assertions", title_justify="left")
        for column in ("assertion", "required", "actual", "result"):
            table.add_column(column)
        for a in report.assertions:
            table.add_row(a.assertion, f"{a.comparison} {_shown(a.required, a.unit)}", _shown(a.actual, a.unit),
                          "[green]pass[/]" if a.passed else "[red]FAIL[/]")
        console.print(table)
    if report.command.ignored:
        console.print(f"ignored (not modelled): {escape(' '.join(report.command.ignored))}")
    for note in report.startup.notes:
        console.print(f"· {escape(note)}")
