"""The memory-vs-context curve in the terminal (`--curve`): one stacked bar per context, the usable line marked.

Each component has its own glyph as well as its own colour, so the chart reads without colour too.
"""

from rich.text import Text

from moeplan.report.console import console
from moeplan.report.estimate import EstimateReport
from moeplan.report.sweep import COMPONENTS, MemoryPoint, context_sweep
from moeplan.units import GiB

GLYPHS = {"weights": ("█", "blue"), "gradients and optimizer": ("▓", "cyan"), "KV cache": ("▒", "magenta"),
          "activations": ("░", "yellow"), "overhead": ("·", "bright_black")}
"""Component → (glyph, colour)."""
WIDTH = 48
"""Columns of the longest bar (or of the usable line, whichever is further)."""


def _context_label(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens:,}"  # K = 1024 tokens, as --context reads it


def bar_cells(point: MemoryPoint, scale: float) -> list[tuple[str, str]]:
    """(glyph, style) per column: each component ends at the column its cumulative bytes round to."""
    cells, running = [], 0
    for name in COMPONENTS:
        running += point.component_bytes[name]
        end = round(running * scale)
        cells += [GLYPHS[name]] * (end - len(cells))
    return cells


def curve_text(report: EstimateReport, points: list[MemoryPoint]) -> Text:
    """The chart as rich Text: a header, a legend, then per context its bar, the usable line at its
    column, and the total in GiB (red with ✗ where it exceeds the usable memory)."""
    usable = report.memory.usable_bytes
    scale = WIDTH / max(usable, *(p.total_bytes for p in points))
    line = round(usable * scale)
    text = Text(f"Memory per GPU vs context: {report.spec.name}, {report.layout.describe()}, batch {report.deployment.batch}, "
                f"{report.gpu.name}\n", style="bold")
    shown = [name for name in COMPONENTS if any(p.component_bytes[name] for p in points)]
    for name in shown:
        glyph, style = GLYPHS[name]
        text.append(f"{glyph} {name}  ", style=style)
    text.append(f"│ usable {usable / GiB:,.1f} GiB\n")
    for point in points:
        cells = bar_cells(point, scale)
        cells += [(" ", "")] * (max(line, WIDTH) + 1 - len(cells))
        cells[line] = ("│", "bold")
        over = point.total_bytes > usable
        marker = ">" if point.context == report.deployment.context else " "
        text.append(f"{marker}{_context_label(point.context):>7} ")
        for glyph, style in cells:
            text.append(glyph, style=style)
        text.append(f" {point.total_bytes / GiB:8,.1f} GiB" + (" ✗" if over else ""), style="red" if over else "")
        text.append("\n")
    return text


def render_curve(report: EstimateReport) -> None:
    """Print the memory-vs-context chart of the estimate's most-loaded GPU."""
    console.print(curve_text(report, context_sweep(report)), end="", soft_wrap=True)
