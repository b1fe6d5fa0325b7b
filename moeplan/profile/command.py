"""The body of `moeplan profile`: check the options and output paths (no torch), run, print (rich or JSON),
then write the calibration, and set the exit code."""

import sys
from pathlib import Path

from moeplan.errors import CheckFailed, EnvError, SpecError
from moeplan.inputs import check_output
from moeplan.profile.gpus import gpu_selector
from moeplan.profile.options import ProfileOptions
from moeplan.profile.stopping import Stopped, stop_on_signals


def preflight(options: ProfileOptions, out: Path | None, save: Path | None) -> None:
    """Everything that can be checked before torch is imported: --gpus, the model and --ep, the output paths."""
    from moeplan.profile.runner import model_shape

    if options.device == "cuda":
        gpu_selector(options.gpus)
    model_shape(options.model, options.ep, options.ep or 1)
    paths = {"--out": out, "--save": save, "--nvml-record": options.nvml_record}
    for option, path in paths.items():
        if path is not None:
            check_output(path, option, [options.nvml_file, options.model])
    given = [Path(p).resolve() for p in paths.values() if p is not None]
    if len(set(given)) < len(given):
        raise SpecError("--out, --save and --nvml-record must name different files")


def profile_command(options: ProfileOptions, out: Path | None, save: Path | None, as_json: bool) -> None:
    """Run the profile; a progress bar only on a terminal and never with --json; EnvError if a section failed."""
    from moeplan.profile.calibrate import calibration_from_report, save_calibration
    from moeplan.profile.output import Recorder
    from moeplan.profile.render import render_report
    from moeplan.profile.runner import run_profile
    from moeplan.report.console import print_json

    preflight(options, out, save)
    progress = not as_json and sys.stdout.isatty()
    with stop_on_signals():
        report, setup = run_profile(options, lambda report: Recorder(report, out, progress))
    if setup.torchrun_rank not in (None, 0):
        return
    if as_json:
        print_json(report)
    else:
        render_report(report)
    if save:
        calibration = calibration_from_report(report, setup.device_name, len(setup.ctx.targets), setup.gpu)
        try:
            save_calibration(calibration, save)
        except OSError as error:
            raise SpecError(f"--save {save}: cannot write: {error.strerror or error}") from error
    if report.stopped:
        raise Stopped(report.stopped)
    failed = [s for s in report.sections if s.status == "failed"]
    if failed:
        raise EnvError("; ".join(f"{s.section} failed: {s.reason}" for s in failed))
    problems = check_results(report, options.min_busbw_gb_s)
    if problems:
        raise CheckFailed("; ".join(problems))


def check_results(report, min_busbw_gb_s: float | None) -> list[str]:
    """What fails the run with exit 1: copies that fail verification, all-to-all bytes received wrong, busbw below --min-busbw."""
    uniform = [m for m in report.measurements if m.section == "a2a" and m.name == "uniform" and m.stats]
    problems = [f"{m.section} {m.name} {m.device} {m.params.get('size_bytes', '')}: destination differs from source after the copies"
                for m in report.measurements if m.params.get("verified") is False]
    wrong = sum(m.params.get("wrong") or 0 for m in uniform)
    if wrong:
        problems.append(f"all-to-all data check: {wrong} bytes received wrong over {sum(bool(m.params.get('wrong')) for m in uniform)} sizes")
    if min_busbw_gb_s is not None and uniform:
        largest = max(uniform, key=lambda m: m.params["size_bytes"])
        busbw = largest.rates["busbw_bytes_per_s"] / 1e9
        if busbw < min_busbw_gb_s:
            problems.append(f"all-to-all busbw {busbw:,.3g} GB/s at {largest.params['size_bytes']:,} B is below --min-busbw {min_busbw_gb_s:g}")
    return problems
