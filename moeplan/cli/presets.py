"""`moeplan presets` and `moeplan spec`: the built-in models, and any model as an editable spec file."""

from typing import Annotated

import typer
from pydantic import BaseModel

from moeplan.accounting.params import count_params
from moeplan.cli.options import JsonOpt, model_command
from moeplan.report.document import Document
from moeplan.report.console import console, fitted_table, print_json
from moeplan.spec.presets import load_preset, preset_names
from moeplan.spec.resolve import ResolvedSpec
from moeplan.spec.specfile import dump_spec
from moeplan.units import fmt_count


class PresetRow(BaseModel):
    name: str
    architecture: str
    total_params: int
    active_params: int
    experts: int
    top_k: int
    source: str


class PresetList(Document):
    presets: list[PresetRow]


def list_presets() -> PresetList:
    rows = []
    for name in preset_names():
        spec = load_preset(name)
        params = count_params(spec)
        rows.append(PresetRow(name=name, architecture=spec.architecture, total_params=params.total,
                              active_params=params.active, experts=spec.num_experts, top_k=spec.top_k, source=spec.source))
    return PresetList(presets=rows)


def presets(json_: JsonOpt = False) -> None:
    """List the built-in model presets with their total and active parameters."""
    result = list_presets()
    if json_:
        print_json(result)
        return
    rows = [[row.name, row.architecture, fmt_count(row.total_params), fmt_count(row.active_params), str(row.experts), str(row.top_k)]
            for row in result.presets]
    console.print(fitted_table(["name", "architecture", "total", "active", "experts", "top-k"], rows, left=("name", "architecture"),
                               title="moeplan presets: parameters (B = 1e9)"))


@model_command
def spec(
    resolved: ResolvedSpec,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
) -> None:
    """Print a model as a moeplan spec file, to copy and edit.

    Examples:

    \b
        moeplan spec mixtral-8x7b > my-model.yaml
        moeplan estimate my-model.yaml
        moeplan schema spec
    """
    if fmt not in ("yaml", "json"):
        raise typer.BadParameter(f"--format must be yaml or json, not {fmt!r}")
    print(dump_spec(resolved.spec, fmt), end="" if fmt == "yaml" else "\n")
