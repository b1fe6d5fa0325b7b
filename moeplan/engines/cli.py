"""The engine hooks of the command line: `check -- <engine command>`, and the launch commands `plan --engine`
and `estimate --engine` print. Imported only when one of them is used."""

from pydantic import BaseModel, SerializeAsAny
from rich.markup import escape

from moeplan.engines.command import EngineVersion
from moeplan.engines.flags import command_line, split_command
from moeplan.engines.report import check_engine_command, launch_command, parse_assertions
from moeplan.errors import SpecError
from moeplan.report.document import Document
from moeplan.report.console import console, print_json
from moeplan.spec.deployment import Deployment


def is_engine_command(words: list[str]) -> bool:
    """`check` was given a launch command (after --) rather than a plan file or a model."""
    return len(words) > 1 or (len(words) == 1 and " " in words[0].strip())


def check_engine(words: list[str], deployment: Deployment, engine: str | None, asserts: list[str], json_: bool,
                 other_outputs: bool = False) -> int:
    """Run `check -- <engine command>`; returns the exit code (0 starts and meets every assertion, 1 not)."""
    if not is_engine_command(words):
        raise SpecError("--engine/--assert with `check` need an engine command: moeplan check [flags] -- vllm serve MODEL ...")
    if other_outputs:
        raise SpecError("--markdown, --junit and --calibration apply to plan files, not to `check -- <engine command>`")
    report = check_engine_command(split_command(words), deployment, EngineVersion.parse(engine) if engine else None,
                                  parse_assertions(asserts))
    if json_:
        print_json(report)
    else:
        from moeplan.engines.render import render_engine_report

        render_engine_report(report)
    return 0 if report.passed else 1


class LaunchCommand(BaseModel):
    """One ranked layout and the command that realises it."""

    layout: str
    command: str | None
    """The shell line; None when the engine's flags cannot express the layout."""
    reason: str | None = None
    """Why not, when command is None."""


class EnginePlan(Document):
    """`moeplan plan --engine … --json`: the plan and each ranked layout's launch command."""

    engine: str
    plan: SerializeAsAny[Document]
    launch_commands: list[LaunchCommand]


def _serving_engine(engine: str, deployment: Deployment) -> EngineVersion:
    """The engine version asked for; a training deployment has no serving engine to launch."""
    if deployment.mode == "training":
        raise SpecError(f"--engine {engine} is an inference setting; --mode training has no serving engine (drop --engine)")
    return EngineVersion.parse(engine)


def estimate_launch_command(engine: str, layout, deployment: Deployment, spec) -> str:
    """The launch command for one deployment, as a shell line (estimate --engine)."""
    _serving_engine(engine, deployment)
    return command_line(launch_command(EngineVersion.parse(engine), layout, deployment, spec))


def plan_commands(engine: str, report, spec) -> EnginePlan:
    """Each ranked layout of a plan with its launch command (plan --engine)."""
    from moeplan.layout.parallel import Layout

    version = _serving_engine(engine, report.deployment)
    commands = []
    for row in report.layouts:
        layout = Layout(tp=row.tp, ep=row.ep, pp=row.pp, dp=row.dp, etp=row.etp)
        settings = report.deployment.model_copy(update={"tp": row.tp, "ep": row.ep, "pp": row.pp, "dp": row.dp, "etp": row.etp})
        try:
            commands.append(LaunchCommand(layout=layout.describe(), command=command_line(launch_command(version, layout, settings, spec))))
        except SpecError as error:
            commands.append(LaunchCommand(layout=layout.describe(), command=None, reason=str(error)))
    return EnginePlan(engine=version.describe(), plan=report, launch_commands=commands)


def render_plan_commands(plan: EnginePlan, top: int) -> None:
    console.print(f"Launch commands ({plan.engine}):", highlight=False)
    for i, item in enumerate(plan.launch_commands[:top], 1):
        console.print(f"{i:>3}. {escape(item.command or f'({item.layout}) {item.reason}')}", soft_wrap=True)
