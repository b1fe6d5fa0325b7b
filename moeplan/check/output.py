"""Outputs of `moeplan check`: a rich table, Markdown for a CI job summary, and JUnit XML."""

import xml.etree.ElementTree as ET
from pathlib import Path

from rich.table import Table

from moeplan.check.evaluate import CheckReport


def _rows(report: CheckReport):
    for deployment in report.deployments:
        for a in deployment.assertions:
            yield deployment, a


def check_table(report: CheckReport) -> Table:
    table = Table(title=f"moeplan check: {'PASS' if report.passed else 'FAIL'}", title_justify="left")
    for column in ("deployment", "layout", "assertion", "required", "estimated", "result"):
        table.add_column(column)
    for deployment, a in _rows(report):
        result = "[green]PASS[/]" if a.passed else "[bold red]FAIL[/]"
        table.add_row(deployment.name, f"{deployment.gpu} {deployment.layout}", a.assertion, a.required, a.actual, result)
    return table


def check_markdown(report: CheckReport) -> str:
    lines = [f"## moeplan check: {'✅ PASS' if report.passed else '❌ FAIL'}", "",
             "| deployment | GPU and layout | assertion | required | estimated | result |", "|---|---|---|---|---|---|"]
    for deployment, a in _rows(report):
        lines.append(f"| {deployment.name} | {deployment.gpu} {deployment.layout} | {a.assertion} | {a.required} | {a.actual} | "
                     f"{'PASS' if a.passed else '**FAIL**'} |")
    warnings = [f"> **warning** ({d.name}): {warning}" for d in report.deployments for warning in d.report.warnings]
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
                failure = ET.SubElement(case, "failure", message=f"required {a.required}, estimated {a.actual}")
                failure.text = f"{deployment.model} on {deployment.gpu} {deployment.layout}: {a.assertion} required {a.required}, estimated {a.actual}"
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
