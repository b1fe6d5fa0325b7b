"""`moeplan check`: plan files, assertions, exit codes and the JSON/Markdown/JUnit outputs."""

import json
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT

PLAN = ROOT / "examples" / "plan.yaml"


def test_example_plan_passes(cli, tmp_path):
    junit = tmp_path / "check.xml"
    result = cli("check", PLAN, "--json", "--junit", junit)
    assert result.exit_code == 0, result.stdout + result.stderr
    data = result.json()
    assert data["schema"] == 1 and data["passed"] is True
    names = [d["name"] for d in data["deployments"]]
    assert names == ["mixtral-8x7b-chat", "deepseek-v3-serving", "gpt-oss-120b-single-gpu", "qwen3-30b-a3b-l40s"]
    suites = ET.parse(junit).getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) == sum(len(d["assertions"]) for d in data["deployments"]) == 11
    assert not suites.findall(".//failure")


def test_values_come_from_the_estimate(cli):
    data = cli("check", PLAN, "--json").json()
    chat = data["deployments"][0]
    estimate = cli("estimate", "mixtral-8x7b", "--gpu", "h100-sxm", "--dtype", "bf16", "--tp", "2", "--batch", "8",
                   "--context", "32k", "--json").json()
    assert chat["report"]["memory"]["per_gpu_bytes"] == estimate["memory"]["per_gpu_bytes"]
    checks = {a["assertion"]: a for a in chat["assertions"]}
    assert checks["min_decode_tokens_per_s"]["actual_tokens_per_s"] == estimate["throughput"]["decode_tokens_per_s"]


def _plan(tmp_path, body: str, suffix=".yaml"):
    path = tmp_path / f"plan{suffix}"
    path.write_text(body)
    return path


def test_failing_assertion_exits_1_with_markdown_and_junit(cli, tmp_path):
    plan = _plan(tmp_path, """
deployments:
  - name: too-small
    model: mixtral-8x7b
    gpu: l4
    assert: {fits: true, min_headroom: 10%}
  - name: fine
    model: olmoe-1b-7b
    gpu: h100
    assert: {fits: true, min_max_context: 4k}
""")
    junit = tmp_path / "out.xml"
    result = cli("check", plan, "--markdown", "--junit", junit)
    assert result.exit_code == 1
    assert "| too-small | l4 tp=1" in result.stdout and "**FAIL**" in result.stdout
    root = ET.parse(junit).getroot()
    failures = root.findall(".//failure")
    assert len(failures) == 2 and "required true, estimated false" in failures[0].get("message")
    assert root.find("testsuite[@name='fine']").get("failures") == "0"


def test_toml_plan_and_relative_model_path(cli, tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text((ROOT / "moeplan/data/configs/qwen3-30b-a3b.json").read_text())
    plan = _plan(tmp_path, """
[defaults]
gpu = "h100-sxm"

[[deployments]]
name = "qwen"
model = "cfg/config.json"
batch = 4
context = "8k"
assert = { fits = true, max_time_per_output_token_ms = 100 }
""", ".toml")
    result = cli("check", plan, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["deployments"][0]["report"]["spec"]["num_layers"] == 48


@pytest.mark.parametrize("body, where", [
    ("deployments:\n  - name: a\n    model: mixtral-8x7b\n    gpuu: h100\n", "line 4, deployment 'a', key gpuu"),
    ("deployments:\n  - name: a\n    model: mixtral-8x7b\n    assert:\n      fits: maybe\n", "line 5, deployment 'a', key assert.fits"),
    ("deployments:\n  - name: a\n    model: mixtral-8x7b\n    assert:\n      min_headroom: lots\n", "line 5"),
    ("deployments:\n  - name: a\n    model: mixtral-8x7b\n    batch: 0\n", "line 4, deployment 'a', key batch"),
    ("deployments: [\n", "malformed YAML"),
    ("deployments: []\n", "key deployments"),
])
def test_plan_errors_name_file_line_and_key(cli, tmp_path, body, where):
    plan = _plan(tmp_path, body)
    result = cli("check", plan)
    assert result.exit_code == 2, result.stdout
    assert str(plan) in result.stderr and where in result.stderr, result.stderr


def test_unknown_model_in_plan_is_bad_input(cli, tmp_path):
    plan = _plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-9x9b\n    assert: {fits: true}\n")
    result = cli("check", plan)
    assert result.exit_code == 2 and "did you mean" in result.stderr


def test_quick_form_exit_code_by_fit(cli):
    assert cli("check", "mixtral-8x7b", "--gpu", "l40s", "--num-gpus", "2", "--context", "32k", "--batch", "8").exit_code == 1
    ok = cli("check", "mixtral-8x7b", "--gpu", "h100", "--num-gpus", "2", "--context", "32k", "--batch", "8", "--json")
    assert ok.exit_code == 0 and ok.json()["deployments"][0]["assertions"][0]["assertion"] == "fits"


def test_deployment_flags_with_a_plan_file_are_refused(cli):
    result = cli("check", PLAN, "--gpu", "l4")
    assert result.exit_code == 2 and "--gpu" in result.stderr


def test_missing_calibration_blames_the_flag(cli, tmp_path):
    result = cli("check", PLAN, "--calibration", tmp_path / "calib.json")
    assert result.exit_code == 2
    assert f"--calibration {tmp_path / 'calib.json'}: no such file" in result.stderr
    assert "deployment" not in result.stderr and "line" not in result.stderr, result.stderr


def test_markdown_escapes_user_text(cli, tmp_path):
    plan = _plan(tmp_path, "deployments:\n  - name: 'a|b <c> &d'\n    model: olmoe-1b-7b\n    gpu: h100\n    assert: {fits: true}\n")
    result = cli("check", plan, "--markdown")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "fits" in line)
    assert row.startswith(r"| a\|b &lt;c&gt; &amp;d | h100")
    assert row.replace(r"\|", "").count("|") == 7 and "<c>" not in result.stdout


def test_unusable_calibration_names_the_flag(cli, tmp_path):
    bad = tmp_path / "calib.json"
    bad.write_text('{"kind": "something else"}')
    result = cli("check", PLAN, "--calibration", bad)
    assert result.exit_code == 2
    assert f"--calibration {bad}: not a moeplan calibration" in result.stderr, result.stderr
