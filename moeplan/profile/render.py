"""The rich report of `moeplan profile`: one table per section, hints and flags under it (p10/p90, raw
samples and per-point notes are in --json and --out).

Display units: time in µs or ms, rates in GB/s (1e9 B/s) or TFLOP/s, sizes in KiB/MiB/GiB (2^10 B ...).
Numbers are never cut: a table too wide for the terminal is split into parts that repeat its first column,
number columns keep their full width, and only text wraps.
"""

import os
import sys
from collections.abc import Callable

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from moeplan.profile.results import Measurement, ProfileReport
from moeplan.profile.topology import TopologySnapshot

Column = tuple[str, Callable[[Measurement], str]]
WIDE = 160
"""Table width when stdout is not a terminal and COLUMNS is not set."""
TEXT_COLUMNS = {"device", "load", "kernel path", "copy", "memory", "GPUs", "pair", "via", "phase", "mode", "routing", "link"}
"""Columns whose cells may wrap; every other column holds numbers and keeps its full width."""
KEY_COLUMNS = TEXT_COLUMNS | {"T", "size", "payload"}
"""Columns that name a point; a table split into parts repeats its leading ones."""
TEXT_MIN = 12
"""Width a wrapping text column is planned with (the longest word moeplan itself writes, `multinomial`, fits)."""


def _time(seconds: float | None) -> str:
    """Three significant figures in µs, ms or s."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"


def _figure(value: float | None, scale: float) -> str:
    """value / scale: whole numbers from 100 up, three significant figures below."""
    if value is None:
        return "-"
    value /= scale
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _gbs(value: float | None) -> str:
    return _figure(value, 1e9)


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.4g} {unit}"
    return f"{nbytes} B"


def _rate(name: str) -> Callable[[Measurement], str]:
    return lambda m: _gbs(m.rates.get(name))


def _param(name: str) -> Callable[[Measurement], str]:
    return lambda m: "-" if m.params.get(name) is None else str(m.params[name])


def _median(m: Measurement) -> str:
    return f"skipped: {m.skipped}" if m.stats is None else _time(m.stats.median_s)


def _spec(m: Measurement) -> str:
    ceiling = m.prediction.spec_ceiling_per_s
    if ceiling is None:
        return "-"
    return f"{ceiling / 1e12:,.0f} TFLOP/s" if m.primary_rate == "flops_per_s" else f"{ceiling / 1e9:,.1f} GB/s"


TAIL: list[Column] = [
    ("median", _median),
    ("predicted", lambda m: _time(m.prediction.time_s)),
    ("spec", _spec),
    ("ratio", lambda m: "-" if m.ratio is None else f"{m.ratio:.2f}"),
    ("verdict", lambda m: m.verdict),
]
COLUMNS: dict[str, list[Column]] = {
    "hbm": [("device", lambda m: m.device), ("size", lambda m: _size(m.params["size_bytes"])), ("copy GB/s", _rate("copy_bytes_per_s")), ("DRAM GB/s (2x)", _rate("dram_bytes_per_s"))],
    "gemm": [
        ("load", _param("pattern")),
        ("kernel path", _param("kernel_path")),
        ("T", _param("tokens_per_rank")),
        ("rows", _param("rows")),
        ("rows/expert", lambda m: f"{m.params['rows_per_expert']:,.1f}"),
        ("experts", lambda m: f"{m.params['experts_active']}/{m.params['experts_local']}"),
        ("TFLOP/s", lambda m: _figure(m.rates.get("flops_per_s"), 1e12)),
        ("weights GB/s", _rate("weight_bytes_per_s")),
    ],
    "h2d": [("copy", lambda m: m.name), ("memory", _param("memory")), ("GPUs", lambda m: m.device), ("size", lambda m: _size(m.params["size_bytes"])), ("GB/s per direction", _rate("per_direction_bytes_per_s")), ("GB/s total", _rate("bytes_per_s"))],
    "p2p": [("copy", lambda m: m.name), ("pair", lambda m: m.device), ("via", _param("via")), ("link", _param("link")), ("GB/s per direction", _rate("per_direction_bytes_per_s"))],
}
UNIFORM: list[Column] = [
    ("size", lambda m: _size(m.params["size_bytes"])),
    ("count", _param("count")),
    ("type", _param("type")),
    ("algbw GB/s", _rate("algbw_bytes_per_s")),
    ("busbw GB/s", _rate("busbw_bytes_per_s")),
    ("#wrong", _param("wrong")),
]
MOE: list[Column] = [
    ("phase", lambda m: m.name),
    ("mode", _param("mode")),
    ("payload", _param("dtype")),
    ("routing", _param("routing")),
    ("T", _param("tokens_per_rank")),
    ("busiest", _param("bottleneck_rank")),
    ("phys GB/s", _rate("physical_bytes_per_s")),
    ("logical GB/s", _rate("logical_bytes_per_s")),
    ("splits", lambda m: _time(m.params["split_exchange_s"])),
    ("α–β", lambda m: _time(m.params.get("alpha_beta_s"))),
    ("bytes ok", lambda m: "yes" if m.params["bytes_match"] else "NO"),
]


def _needed(header: str, cells: list[str]) -> int:
    """Planned width of a column: numbers at full length (the header may wrap at spaces), text at TEXT_MIN."""
    longest = max((len(c) for c in cells if not c.startswith("skipped")), default=1)
    words = max(len(w) for w in header.split())
    return max(min(longest, TEXT_MIN), words) if header in TEXT_COLUMNS else max(longest, words)


def column_parts(headers: list[str], rows: list[list[str]], width: int) -> list[list[int]]:
    """Column indices of each part of a table that fits ``width``; every part after the first repeats the leading
    key columns (those naming the point: text columns, T, size, payload; as many as fit in half the width), so
    that each row of every part says which point it is. A column takes its content, 2 of padding and 1 divider;
    the table 1 more for its edges."""
    needed = [_needed(h, [r[i] for r in rows]) + 3 for i, h in enumerate(headers)]
    keys = []
    for i, header in enumerate(headers):
        if header not in KEY_COLUMNS or (keys and 1 + sum(needed[k] for k in keys) + needed[i] > width // 2):
            break
        keys.append(i)
    keys = keys or [0]
    start = 1 + sum(needed[i] for i in keys)
    parts, current, used = [], list(keys), start
    for i in range(len(keys), len(headers)):
        if used + needed[i] > width and len(current) > len(keys):
            parts.append(current)
            current, used = list(keys), start
        current.append(i)
        used += needed[i]
    parts.append(current)
    return parts


def _table(console: Console, title: str, measurements: list[Measurement], columns: list[Column]) -> None:
    headers = [header for header, _ in columns + TAIL]
    rows = [[cell(m) for _, cell in columns + TAIL] for m in measurements]
    parts = column_parts(headers, rows, console.width)
    for number, part in enumerate(parts):
        suffix = f" (part {number + 1} of {len(parts)})" if len(parts) > 1 else ""
        console.print(title + suffix, markup=False)  # wraps at the terminal's width, not at a narrow part's
        table = Table(box=box.SIMPLE_HEAD)
        natural = 1 + sum(max(len(headers[i]), *(len(r[i]) for r in rows)) + 3 for i in part)
        for i in part:
            text = headers[i] in TEXT_COLUMNS
            # Too wide as it is: number columns get their planned width (rich then shrinks only text columns;
            # left to itself it squeezes every column evenly and crops the last one's numbers).
            fixed = None if text or natural <= console.width else _needed(headers[i], [r[i] for r in rows])
            table.add_column(headers[i], justify="left" if text else "right", overflow="fold", width=fixed,
                             min_width=None if text else _needed(headers[i], [r[i] for r in rows]))
        for row in rows:
            table.add_row(*(row[i] for i in part))
        console.print(table)
    notes = dict.fromkeys(h for m in measurements for h in m.hints)
    unavailable = dict.fromkeys(m.prediction.unavailable for m in measurements if m.prediction.unavailable)
    for line in [*notes, *(f"no prediction: {u}" for u in unavailable)]:
        console.print(f"  - {line}", soft_wrap=True)


def _topology(console: Console, topo: TopologySnapshot) -> None:
    table = Table(title=f"Topology (driver {topo.driver_version})", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("GPU", "CUDA", "name", "bus id", "NUMA", "memory GiB", "SMs", "SM MHz", "clock reasons", "PCIe now / max", "NVLinks", "virtualization"):
        table.add_column(header)
    for g in topo.gpus:
        table.add_row(
            str(g.nvml_index),
            "-" if g.cuda_index is None else str(g.cuda_index),
            escape(g.name or "-"),
            g.bus_id or "-",
            "-" if g.numa_node is None else str(g.numa_node),
            "-" if g.memory is None else f"{g.memory.total_bytes / 2**30:,.1f}",
            "-" if g.sm_count is None else str(g.sm_count),
            "-" if g.clocks is None else f"{g.clocks.sm_mhz}/{g.clocks.sm_max_mhz}",
            ", ".join(g.clock_reasons) or "-",
            "-" if g.pcie is None else f"Gen{g.pcie.cur_gen} x{g.pcie.cur_width} / Gen{g.pcie.max_gen} x{g.pcie.max_width}",
            "-" if g.nvlinks is None else f"{len(g.nvlinks)}{' (NVSwitch)' if g.nvswitch else ''}",
            g.virtualization,
        )
    console.print(table)
    if len(topo.gpus) > 1:
        matrix = Table(title="Links (nvidia-smi topo -m codes) and P2P read/write", title_justify="left", box=box.SIMPLE_HEAD)
        matrix.add_column("")
        for g in topo.gpus:
            matrix.add_column(f"GPU{g.nvml_index}")
        pairs = {(p.a, p.b): p for p in topo.pairs}
        for a in topo.gpus:
            cells = []
            for b in topo.gpus:
                p = pairs.get((a.nvml_index, b.nvml_index))
                cells.append("X" if p is None else f"{p.link} {p.p2p['read']}/{p.p2p['write']}")
            matrix.add_row(f"GPU{a.nvml_index}", *cells)
        console.print(matrix)
    for flag in topo.flags:
        console.print(f"  ! {flag.code}: {flag.message}", soft_wrap=True)


def render_report(report: ProfileReport) -> None:
    """Print the report on stdout: at the terminal's width (COLUMNS when set), else 160 columns."""
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else None if sys.stdout.isatty() else WIDE
    console = Console(highlight=False, width=width)
    shape = report.shape
    env = report.environment
    console.print(f"[bold]moeplan profile[/] on {report.device} ({env.hostname}; torch {env.torch}" + (f", CUDA {env.cuda}, NCCL {env.nccl}" if env.cuda else "") + ")")
    if shape:
        console.print(f"model {shape.model}: H {shape.hidden_size}, I {shape.expert_intermediate_size}, E {shape.num_experts}, top-{shape.top_k}, EP {shape.ep} ({shape.num_experts // shape.ep} experts per GPU)")
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if report.topology:
        _topology(console, report.topology)
    by_section = {s.section: s for s in report.sections}
    for name, columns in COLUMNS.items():
        points = [m for m in report.measurements if m.section == name]
        if points:
            _table(console, name, points, columns)
    uniform = [m for m in report.measurements if m.section == "a2a" and m.name == "uniform"]
    if uniform:
        _table(console, "a2a: all_to_all_single size sweep (nccl-tests columns; time = max over ranks)", uniform, UNIFORM)
    if report.alltoall_fit:
        fit = report.alltoall_fit
        console.print(f"  α–β fit over {fit.points} sizes: α = {_time(fit.alpha_s)}, β = {fit.beta_bytes_per_s / 1e9:,.3g} GB/s busbw (worst residual {fit.max_relative_residual:.0%})")
    moe = [m for m in report.measurements if m.section == "a2a" and m.name != "uniform"]
    if moe:
        _table(console, "a2a: MoE dispatch/combine (phys = busiest rank's remote bytes / t; logical = most bytes received incl. self / t; splits = split-size exchange, untimed in median; α–β = fitted model; bytes ok = moved bytes equal moeplan's prediction)", moe, MOE)
    status = Table(title="Sections", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("section", "status", "why / notes"):
        status.add_column(header)
    for s in by_section.values():
        status.add_row(s.section, s.status, "; ".join(filter(None, [s.reason, *s.notes])) or "-")
    console.print(status)
    console.print("Units: GB/s = 1e9 B/s per direction unless marked; ratio = measured / predicted time; verdict ok within 15%, warn within 50%, fail beyond.", soft_wrap=True)
