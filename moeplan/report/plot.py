"""`--plot FILE.png|svg`: memory stacked by component against batch and against context, with the GPU's
usable-memory line, and the roofline of the decode and prefill steps. matplotlib (the `plot` extra),
drawn on the Agg canvas without pyplot, so nothing global changes.
"""

from pathlib import Path

from moeplan.errors import EnvError, SpecError
from moeplan.report.estimate import EstimateReport
from moeplan.report.sweep import COMPONENTS, MemoryPoint, batch_sweep, context_sweep
from moeplan.perf.roofline import StepTime, peak_flops
from moeplan.units import GiB, counted

FORMATS = (".png", ".svg", ".pdf")
FIGURE_INCHES = (15.0, 4.5)
DPI = 100
"""A PNG is FIGURE_INCHES × DPI pixels (1500 × 450); an SVG is FIGURE_INCHES × 72 points."""
COLOURS = {"weights": "#4c72b0", "gradients and optimizer": "#64b5cd", "KV cache": "#c44e52", "activations": "#dd8452",
           "overhead": "#8c8c8c"}


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise EnvError("--plot needs matplotlib: pip install 'moeplan[plot]'") from None
    return Figure, FigureCanvasAgg, FuncFormatter


def _stack(ax, points: list[MemoryPoint], x: list[int], current: int, fits: bool, usable: int, capacity: int,
           largest: int | None, what: str) -> None:
    """Memory stacked by component, the usable and capacity lines, the estimate's own point (dashed; labelled
    when it does not fit) and the largest ``what`` that fits (dotted green; None: no limit in range)."""
    shown = [name for name in COMPONENTS if any(p.component_bytes[name] for p in points)]
    ax.stackplot(x, *[[p.component_bytes[name] / GiB for p in points] for name in shown],
                 labels=shown, colors=[COLOURS[name] for name in shown], alpha=0.85)
    ax.axhline(usable / GiB, color="black", linestyle="-", linewidth=1.2, label=f"usable {usable / GiB:,.1f} GiB")
    ax.axhline(capacity / GiB, color="black", linestyle=":", linewidth=1, label=f"capacity {capacity / GiB:,.0f} GiB")
    ax.axvline(current, color="grey", linestyle="--", linewidth=1, label="this estimate")
    top = max(capacity, *(p.total_bytes for p in points)) / GiB * 1.05
    if not fits:
        ax.annotate("does not fit", (current, usable / GiB), xytext=(4, 6), textcoords="offset points", color="#c00000",
                    fontsize=8, fontweight="bold")
    if largest:
        ax.axvline(largest, color="#2ca02c", linestyle="-.", linewidth=1.4, label="largest that fits")
        ax.annotate(f"largest {what} that fits: {largest:,}", (largest, top * 0.97), xytext=(4, -10), textcoords="offset points",
                    color="#2ca02c", fontsize=8)
    ax.set_ylabel("GiB on the most-loaded GPU")
    ax.set_ylim(0, top)
    ax.grid(alpha=0.3)


def _roofline(ax, report: EstimateReport) -> None:
    gpu = report.gpu
    peak = peak_flops(gpu, report.weights)
    steps: dict[str, StepTime] = {"decode": report.throughput.decode, "prefill": report.throughput.prefill}
    intensities = [s.flops / s.bytes_read for s in steps.values() if s.bytes_read]
    ridge = peak / gpu.hbm_bytes_per_s
    low, high = min([ridge / 100, *intensities]) / 2, max([ridge * 100, *intensities]) * 2
    xs = [low, ridge, high]
    ax.loglog(xs, [min(peak, x * gpu.hbm_bytes_per_s) / 1e12 for x in xs], color="black",
              label=f"roof: {gpu.hbm_bytes_per_s / 1e12:.2f} TB/s, {peak / 1e12:,.0f} TFLOP/s")
    for (name, step), marker in zip(steps.items(), ("o", "s")):
        if step.bytes_read and step.time_s:
            x = step.flops / step.bytes_read
            ax.loglog([x], [step.flops / step.time_s / 1e12], marker=marker, linestyle="none", markersize=8,
                      label=f"{name} ({counted(step.tokens, 'token')}): {step.bound}-bound")
    ax.set_xlabel("arithmetic intensity (FLOP per HBM byte)")
    ax.set_ylabel("attained TFLOP/s per GPU")
    ax.set_title(f"Roofline, {gpu.name}")
    ax.grid(alpha=0.3, which="both")


def check_plot(path: Path) -> None:
    """Before any work: the file type is known and matplotlib is installed."""
    if path.suffix.lower() not in FORMATS:
        raise SpecError(f"--plot {path}: the file must end in .png, .svg or .pdf")
    _matplotlib()


def write_plot(report: EstimateReport, path: Path) -> Path:
    """Draw the three panels for ``report``, with one legend, into ``path`` (.png, .svg or .pdf)."""
    check_plot(path)
    Figure, FigureCanvasAgg, FuncFormatter = _matplotlib()
    fig = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    by_batch, by_context, roof = fig.subplots(1, 3)
    usable, capacity, d = report.memory.usable_bytes, report.gpu.memory_bytes, report.deployment
    fits = report.memory.fits
    points = batch_sweep(report)
    _stack(by_batch, points, [p.batch for p in points], d.batch, fits, usable, capacity, report.memory.max_batch, "batch")
    by_batch.set_xlabel("batch (sequences per replica)")
    by_batch.set_title(f"Memory vs batch at context {d.context:,}")
    points = context_sweep(report)
    _stack(by_context, points, [p.context for p in points], d.context, fits, usable, capacity, report.memory.max_context, "context")
    by_context.set_xscale("log", base=2)
    by_context.xaxis.set_major_formatter(FuncFormatter(lambda tokens, _: f"{tokens / 1024:g}K"))
    by_context.set_xlabel("context (tokens; K = 1024)")
    by_context.set_title(f"Memory vs context at batch {d.batch:,}")
    _roofline(roof, report)
    legend = {}  # one legend for the three panels, each label once
    for ax in (by_batch, by_context, roof):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(len(legend), 6), fontsize=8, frameon=False)
    fig.suptitle(f"{report.spec.name} on {report.gpu.name}, {report.layout.describe()}, {d.mode}")
    try:
        fig.savefig(path, dpi=DPI, format=path.suffix.lower().lstrip("."))
    except OSError as error:
        raise SpecError(f"--plot {path}: {error.strerror or error}") from None
    return path
