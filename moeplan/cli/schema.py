"""`moeplan schema`: JSON Schemas of spec files and of every command's --json output."""

import json
from typing import Annotated

import typer

from moeplan.errors import SpecError


def _schemas() -> dict:
    """Name → function returning that document's JSON Schema (imported on demand)."""
    from moeplan.check.evaluate import CheckReport
    from moeplan.cli.gpus import GPUList
    from moeplan.cli.presets import PresetList
    from moeplan.engines.report import EngineReport
    from moeplan.plan.search import PlanReport
    from moeplan.calibration import Calibration
    from moeplan.profile.results import ProfileReport
    from moeplan.report.estimate import EstimateReport
    from moeplan.spec.specfile import spec_json_schema

    return {
        "spec": spec_json_schema,
        "estimate": lambda: EstimateReport.model_json_schema(by_alias=True),
        "presets": lambda: PresetList.model_json_schema(by_alias=True),
        "gpus": lambda: GPUList.model_json_schema(by_alias=True),
        "check": lambda: CheckReport.model_json_schema(by_alias=True),
        "plan": lambda: PlanReport.model_json_schema(by_alias=True),
        "engine": lambda: EngineReport.model_json_schema(by_alias=True),
        "profile": lambda: ProfileReport.model_json_schema(by_alias=True),
        "calibration": lambda: Calibration.model_json_schema(by_alias=True),
    }


def schema(name: Annotated[str, typer.Argument(help="spec, estimate, check, engine (check -- <engine command>), plan, profile, calibration, presets, gpus.")]) -> None:
    """Print the JSON Schema of a spec file or of a command's --json output."""
    schemas = _schemas()
    if name not in schemas:
        raise SpecError(f"unknown schema {name!r}; choose from {', '.join(schemas)}")
    print(json.dumps(schemas[name](), indent=2))
