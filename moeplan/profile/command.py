"""The body of `moeplan profile`: run, then print (rich or JSON), save the calibration, set the exit code."""

import sys
from pathlib import Path

from moeplan.errors import EnvError
from moeplan.profile.calibrate import calibration_from_report, save_calibration
from moeplan.profile.options import ProfileOptions
from moeplan.profile.output import Recorder
from moeplan.profile.render import render_report
from moeplan.profile.runner import run_profile
from moeplan.report.console import print_json


def profile_command(options: ProfileOptions, out: Path | None, save: Path | None, as_json: bool) -> None:
    """Run the profile; a progress bar only on a terminal and never with --json; EnvError if a section failed."""
    progress = not as_json and sys.stdout.isatty()
    report, setup = run_profile(options, lambda report: Recorder(report, out, progress))
    if setup.torchrun_rank not in (None, 0):
        return
    if save:
        save_calibration(calibration_from_report(report, setup.device_name, len(setup.ctx.targets), setup.gpu), save)
    if as_json:
        print_json(report)
    else:
        render_report(report)
    failed = [s for s in report.sections if s.status == "failed"]
    if failed:
        raise EnvError("; ".join(f"{s.section} failed: {s.reason}" for s in failed))
