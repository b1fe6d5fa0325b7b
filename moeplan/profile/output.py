"""Where results go while the run is in progress: the report object, ``--out`` JSONL (one object per line,
flushed as each measurement finishes, so an interrupted run keeps everything done) and a progress bar."""

import json
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from moeplan.profile.results import SCHEMA_VERSION, Measurement, ProfileReport, SectionResult


class Recorder:
    """Collects measurements into the report, appends each to the JSONL file and advances the progress bar."""

    def __init__(self, report: ProfileReport, out: Path | None = None, progress: bool = False):
        self.report = report
        self._out = open(out, "a", encoding="utf-8") if out else None  # noqa: SIM115 - closed in close()
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True) if progress else None
        self._task = None
        if self._progress:
            self._progress.start()
        self.line("run", report.model_dump(mode="json", include={"moeplan_version", "created_at", "device", "options", "environment", "shape", "notes"}))

    def line(self, kind: str, payload: dict) -> None:
        """Append one JSONL object {"schema": 1, "type": kind, ...} and flush it."""
        if self._out:
            self._out.write(json.dumps({"schema": SCHEMA_VERSION, "type": kind, **payload}) + "\n")
            self._out.flush()

    def _model_line(self, model: BaseModel) -> None:
        self.line(model.type, model.model_dump(mode="json", exclude={"type"}))

    def start(self, section: str, total: int) -> None:
        """A progress task for a section of ``total`` points."""
        if self._progress:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(section, total=total)

    def emit(self, measurement: Measurement) -> None:
        self.report.measurements.append(measurement)
        self._model_line(measurement)
        if self._progress and self._task is not None:
            self._progress.advance(self._task)

    def section(self, result: SectionResult) -> None:
        self.report.sections.append(result)
        self._model_line(result)

    def close(self) -> None:
        if self._progress:
            self._progress.stop()
        if self._out:
            self._out.close()
