"""The --plot and --curve options of `estimate` and `plan`, declared once."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from moeplan.errors import SpecError
from moeplan.inputs import check_output
from moeplan.report.estimate import EstimateReport

PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Write memory vs batch and vs context (stacked by component, usable line) and the decode/prefill roofline "
                   "to FILE.png, FILE.svg or FILE.pdf, with the largest batch and context that fit marked (needs the plot extra: pip install 'moeplan[plot]').", metavar="FILE")]
CurveOpt = Annotated[bool, typer.Option("--curve", help="Also draw memory per GPU vs context in the terminal.")]


def check_figures(plot: Path | None, curve: bool, json_: bool, inputs: list[str | Path | None]) -> None:
    """Before any work: refuse --curve with --json (JSON owns stdout), an unknown plot type, a missing matplotlib,
    a --plot path that cannot be written or is one of ``inputs`` (the model file, the calibration)."""
    if curve and json_:
        raise SpecError("--curve draws on the terminal; leave out --json (or use --plot FILE)")
    if plot is not None:
        from moeplan.report.plot import check_plot

        check_output(plot, "--plot", inputs)
        check_plot(plot)


def show_figures(report: EstimateReport, plot: Path | None, curve: bool) -> None:
    """Draw what was asked for: the terminal curve and/or the plot file (reported on stderr)."""
    if curve:  # the sweeps and matplotlib load only when asked for
        from moeplan.report.curve import render_curve

        render_curve(report)
    if plot is not None:
        from moeplan.report.plot import write_plot

        write_plot(report, plot)
        typer.echo(f"wrote {plot}", err=True)
