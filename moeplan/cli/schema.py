"""`moeplan schema`: JSON Schemas of spec files and of every command's --json output."""

import json
from typing import Annotated

import typer

from moeplan.cli.app import app
from moeplan.errors import SpecError


def _schemas() -> dict:
    """Name → function returning that document's JSON Schema (imported on demand)."""
    from moeplan.check.evaluate import CheckReport
    from moeplan.cli.presets import PresetList
    from moeplan.report.estimate import EstimateReport
    from moeplan.spec.specfile import spec_json_schema

    return {
        "spec": spec_json_schema,
        "estimate": lambda: EstimateReport.model_json_schema(by_alias=True),
        "presets": lambda: PresetList.model_json_schema(by_alias=True),
        "check": lambda: CheckReport.model_json_schema(by_alias=True),
    }


@app.command()
def schema(name: Annotated[str, typer.Argument(help="spec, estimate, presets, ...")]) -> None:
    """Print the JSON Schema of a spec file or of a command's --json output."""
    schemas = _schemas()
    if name not in schemas:
        raise SpecError(f"unknown schema {name!r}; choose from {', '.join(schemas)}")
    print(json.dumps(schemas[name](), indent=2))
