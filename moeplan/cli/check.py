"""`moeplan check`: capacity assertions for CI, with exit codes (0 pass, 1 fail, 2 bad input)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from moeplan.cli.options import JsonOpt, deployment_command
from moeplan.report.console import console, print_json
from moeplan.errors import SpecError
from moeplan.inputs import check_output
from moeplan.spec.deployment import Deployment

EPILOG = "Exit codes: 0 every assertion holds; 1 an assertion fails (or, in the quick form, it does not fit); 2 bad input; 3 missing environment; 4 internal error."

PLAN_SUFFIXES = (".yaml", ".yml", ".toml")


def _is_plan_file(target: str) -> bool:
    path = Path(target)
    if not (path.is_file() and path.suffix.lower() in PLAN_SUFFIXES):
        return False
    return "deployments" in path.read_text(errors="replace")


@deployment_command
def check(
    deployment: Deployment,
    target: Annotated[list[str], typer.Argument(help="A plan file (YAML/TOML with `deployments`), a model for the quick form, or -- and an engine launch command (vllm serve, python -m sglang.launch_server, trtllm-serve, llama-server).")],
    json_: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table (for a CI job summary).")] = False,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML: one test case per assertion.")] = None,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Use a `moeplan profile --save` calibration instead of catalogue peaks.")] = None,
    engine: Annotated[Optional[str], typer.Option("--engine", help="With an engine command: the engine version whose semantics apply (vllm==0.19).")] = None,
    assert_: Annotated[list[str], typer.Option("--assert", metavar="<name=value>", help="With an engine command: NAME=VALUE, NAME one of min_kv_tokens, min_concurrency, min_kv_pool_gib, max_tpot_ms, max_ttft_ms.")] = [],
) -> None:
    """Check deployments against capacity assertions (fits, headroom, tokens/s, latency, context, traffic).

    Examples:

    \b
        moeplan check examples/plan.yaml --junit moeplan.xml
        moeplan check examples/plan.yaml --markdown >> "$GITHUB_STEP_SUMMARY"
        moeplan check mixtral-8x7b --gpu l40s --num-gpus 2 --context 32k --batch 8
        moeplan check --gpu h200 -- vllm serve deepseek-ai/DeepSeek-V3 -tp 8 --max-model-len 32768
    """
    from moeplan.check.evaluate import evaluate_plan
    from moeplan.check.output import check_markdown, check_tables, write_junit
    from moeplan.check.planfile import PlannedDeployment, load_plan

    if len(target) > 1 or (" " in target[0] and not Path(target[0]).exists()) or engine is not None or assert_:
        from moeplan.engines.cli import check_engine

        raise typer.Exit(check_engine(target, deployment, engine, assert_, json_, markdown or bool(junit or calibration)))
    target = target[0]
    if calibration is not None and not calibration.exists():  # the flag's path, not a deployment's
        raise SpecError(f"--calibration {calibration}: no such file")
    if junit is not None:  # before any work, and never over the plan or calibration it reads
        check_output(junit, "--junit", [Path(target), calibration])
    if _is_plan_file(target):
        if deployment.model_fields_set:
            given = ", ".join(f"--{f.replace('_', '-')}" for f in sorted(deployment.model_fields_set))
            raise SpecError(f"{given}: deployment flags belong to the quick form; with a plan file set them in the file")
        deployments, base = load_plan(Path(target)), Path(target).parent
    else:
        quick = PlannedDeployment(name=target, model=target, **deployment.model_dump(), **{"assert": {"fits": True}})
        deployments, base = [quick], Path.cwd()
    report = evaluate_plan(deployments, base, calibration)
    if junit is not None:
        write_junit(report, junit)
    if json_:
        print_json(report)
    elif markdown:
        print(check_markdown(report), end="")
    else:
        from moeplan.report.render_estimate import render_warnings

        for result in report.deployments:
            render_warnings([f"{result.name}: {warning}" for warning in result.report.warnings])
        console.print(check_tables(report))
    raise typer.Exit(0 if report.passed else 1)
