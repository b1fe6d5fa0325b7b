"""Outputs of `moeplan check`: a rich table, Markdown for a CI job summary, and JUnit XML."""

import xml.etree.ElementTree as ET
from pathlib import Path

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from moeplan.check.evaluate import AssertionResult, CheckReport
from moeplan.units import GB, GiB


def _rows(report: CheckReport):
    for deployment in report.deployments:
        for a in deployment.assertions:
            yield deployment, a


BYTE_UNITS = (("TiB", 2**40), ("TB", 10**12), ("GiB", GiB), ("GB", GB), ("MiB", 2**20), ("MB", 10**6), ("KiB", 2**10), ("KB", 10**3))


def _byte_unit(written: str | None, value: int) -> tuple[str, int]:
    """The unit the plan file wrote a size in; for a number without one, the largest unit that shows it exactly
    in at most three decimals (1,000,000,000 → GB), else bytes."""
    text = (written or "").replace(" ", "")
    for name, scale in BYTE_UNITS:
        if text.endswith(name):
            return name, scale
    if not text:
        for name, scale in BYTE_UNITS:
            if value >= scale and round(value / scale, 3) * scale == value:
                return name, scale
    return "B", 1


def _number(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def required_text(a: AssertionResult) -> str:
    """The requirement as written: '≥ 10%', '≥ 8 GiB', '≤ 1 GB', '≤ 50 ms'."""
    sign = {"==": "", ">=": "≥ ", "<=": "≤ "}[a.comparison]
    if a.unit == "fits":
        return str(a.required).lower()
    if a.unit == "bytes":
        unit, scale = _byte_unit(a.written, a.required)
        return f"{sign}{_number(a.required / scale)} {unit}"
    if a.unit == "fraction":
        return f"{sign}{a.written or f'{a.required:.1%}'}"
    if a.unit == "s":
        return f"{sign}{_number(a.required * 1e3)} ms"
    return f"{sign}{_number(a.required)}"


def actual_text(a: AssertionResult) -> str:
    """The estimate in the requirement's unit."""
    if a.unit == "fits":
        return str(a.actual).lower()
    if a.unit == "bytes":
        unit, scale = _byte_unit(a.written, a.required)
        return f"{a.actual / scale:,.2f} {unit}" if scale > 1 else f"{a.actual:,} B"
    if a.unit == "fraction":
        return f"{a.actual:.1%}"
    if a.unit == "s":
        return f"{a.actual * 1e3:,.2f} ms"
    if a.unit == "tokens":
        return "unlimited" if a.actual is None else f"{a.actual:,}"
    return f"{a.actual:,.1f}"


def check_tables(report: CheckReport) -> Group:
    """The verdict line, then per deployment a line with its name, model, GPU and layout (text that wraps, never
    inside the columns) and a table of its assertions."""
    verdict = Text("moeplan check: ") + (Text("PASS", style="bold green") if report.passed else Text("FAIL", style="bold red"))
    tables: list[RenderableType] = [verdict]
    for d in report.deployments:
        tables.append(Text(f"{d.name}: {d.model} on {d.gpu}, {d.layout}", style="bold"))
        table = Table(box=box.SIMPLE_HEAD)
        for column in ("assertion", "required", "estimated", "result"):
            table.add_column(column, no_wrap=True, justify="right" if column in ("required", "estimated") else "left")
        for a in d.assertions:
            result = Text("PASS", style="green") if a.passed else Text("FAIL", style="bold red")
            table.add_row(a.assertion, required_text(a), actual_text(a), result)
        tables.append(table)
    return Group(*tables)


def _markdown_text(text: str) -> str:
    """User text made inert in Markdown: `&`, `<`, `>` as HTML entities (no tags), `|` escaped (no extra column)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def check_markdown(report: CheckReport) -> str:
    lines = [f"## moeplan check: {'✅ PASS' if report.passed else '❌ FAIL'}", "",
             "| deployment | GPU and layout | assertion | required | estimated | result |", "|---|---|---|---|---|---|"]
    for deployment, a in _rows(report):
        cells = [deployment.name, f"{deployment.gpu} {deployment.layout}", a.assertion, required_text(a), actual_text(a)]
        lines.append("| " + " | ".join(map(_markdown_text, cells)) + f" | {'PASS' if a.passed else '**FAIL**'} |")
    warnings = [f"> **warning** ({_markdown_text(d.name)}): {_markdown_text(warning)}" for d in report.deployments for warning in d.report.warnings]
    lines += ["", *warnings] if warnings else []
    return "\n".join(lines) + "\n"


def write_junit(report: CheckReport, path: Path) -> None:
    """One <testcase> per assertion, in one <testsuite> per deployment."""
    suites = ET.Element("testsuites", name="moeplan check")
    for deployment in report.deployments:
        failures = sum(not a.passed for a in deployment.assertions)
        suite = ET.SubElement(suites, "testsuite", name=deployment.name, tests=str(len(deployment.assertions)), failures=str(failures))
        for a in deployment.assertions:
            case = ET.SubElement(suite, "testcase", classname=f"moeplan.{deployment.name}", name=a.assertion)
            if not a.passed:
                required, actual = required_text(a), actual_text(a)
                failure = ET.SubElement(case, "failure", message=f"required {required}, estimated {actual}")
                failure.text = f"{deployment.model} on {deployment.gpu} {deployment.layout}: {a.assertion} required {required}, estimated {actual}"
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
