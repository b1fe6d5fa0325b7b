"""The first ten minutes of a new user, through the CLI at 100 columns: the verdict first, flags that complete a
partial layout, training speed, context suffixes."""

import os
import subprocess
import sys

import pytest

from conftest import CONFIGS, ROOT
from moeplan.accounting.flops import training_flops_per_token
from moeplan.report.console import console
from moeplan.spec.presets import load_preset

WIDTH = 100


@pytest.fixture(autouse=True)
def narrow(monkeypatch):
    """Every rich console and typer's help at WIDTH columns."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setattr(console.real(), "width", WIDTH)


def lines(text: str) -> list[str]:
    return text.splitlines()


def flowing(text: str) -> str:
    """Rich panels' text as one line: box borders dropped, wrapped lines joined, spaces collapsed."""
    return " ".join(" ".join(line.strip(" │╭╮╰╯─") for line in lines(text)).split())


def test_verdict_opens_the_report_and_names_the_fewest_gpus(cli):
    result = cli("estimate", "mixtral-8x7b")
    assert result.exit_code == 0, result.stderr
    out = lines(result.stdout)
    assert all(len(line) <= WIDTH for line in out)
    block = out[:out.index(next(line for line in out if line.startswith("╰"))) + 1]
    text = " ".join(line.strip("│╭╮╰╯─ ") for line in block)
    assert "DOES NOT FIT on 1 × NVIDIA H100 SXM5 80GB (tp=1 ep=1 pp=1 dp=1)" in text
    # the same search as `moeplan plan mixtral-8x7b --gpu h100-sxm`: 2 GPUs is the fewest that fit
    assert "Fewest NVIDIA H100 SXM5 80GB that fit: 2" in text and "moeplan plan mixtral-8x7b --gpu h100-sxm" in text
    assert "Assumed: GPU h100-sxm (the default; change with --gpu" in text
    assert "Assumed: 1 GPU (the default; change with --num-gpus N" in text
    assert "tokens/s" not in text  # no speed headline for a deployment that does not fit
    assert next(i for i, line in enumerate(out) if line.startswith("Parameters and weights")) > len(block)
    assert "does not fit: for comparison only" in flowing(result.stdout)
    first_note = next(i for i, line in enumerate(out) if line.startswith("·"))
    assert not any(set(line) & set("│┃└┘") for line in out[first_note:])  # notes last


def test_brief_prints_only_the_verdict(cli):
    result = cli("estimate", "mixtral-8x7b", "--gpu", "h200", "--brief")
    assert result.exit_code == 0, result.stderr
    out = lines(result.stdout)
    assert out[0].startswith("╭─ mixtral-8x7b, inference") and out[-1].startswith("╰")
    text = " ".join(out)
    assert "FITS on 1 × NVIDIA H200" in text and "decode" in text and "tokens/s" in text
    assert "Assumed: GPU" not in text and "Assumed: 1 GPU" in text


def test_brief_json_is_the_verdict(cli):
    verdict = cli("estimate", "mixtral-8x7b", "--brief", "--json").json()
    plan = cli("plan", "mixtral-8x7b", "--gpu", "h100-sxm", "--json").json()
    assert verdict["fits"] is False and verdict["fewest_gpus"] == plan["layouts"][0]["gpus"] == 2
    assert verdict["headroom_bytes"] == verdict["usable_bytes"] - verdict["per_gpu_bytes"] < 0
    assert verdict["plan_command"] == "moeplan plan mixtral-8x7b --gpu h100-sxm"
    full = cli("estimate", "mixtral-8x7b", "--dtype", "fp8", "--json").json()
    assert full["verdict"]["fits"] is True and full["verdict"]["fewest_gpus"] is None


def test_plan_command_repeats_the_settings_given(cli):
    verdict = cli("estimate", "deepseek-v3", "--gpu", "h100", "--context", "32K", "--num-gpus", "8", "--brief", "--json").json()
    assert verdict["fits"] is False
    assert verdict["plan_command"] == "moeplan plan deepseek-v3 --gpu h100 --context 32K"
    assert verdict["fewest_gpus"] > 8


@pytest.mark.parametrize("args, fixed, gpus", [
    (["--ep", "8"], {"ep": 8}, 8),
    (["--num-gpus", "8", "--ep", "8"], {"ep": 8}, 8),
    (["--tp", "2", "--ep", "4"], {"tp": 2, "ep": 4, "dp": 2}, 4),
    (["--num-gpus", "8", "--tp", "2"], {"tp": 2}, 8),
])
def test_partial_layouts_are_completed(cli, args, fixed, gpus):
    data = cli("estimate", "mixtral-8x7b", *args, "--json").json()
    layout = data["layout"]
    assert layout["tp"] * layout["pp"] * layout["dp"] == gpus
    assert {k: layout[k] for k in fixed} == fixed
    assert (layout["tp"] * layout["dp"]) % layout["ep"] == 0  # EP GPUs carved out of tp × dp
    assert data["layout_choice"].startswith(" ".join(args[i] for i in _flag_order(args)))
    result = cli("estimate", "mixtral-8x7b", *args, "--brief")
    assert result.exit_code == 0 and "Layout for " in result.stdout and "`moeplan plan`'s search" in result.stdout.replace("\n", " ")


def _flag_order(args: list[str]) -> list[int]:
    """Indices of args in the order the layout note names them: tp, ep, pp, dp, etp, then num-gpus."""
    order = ["--tp", "--ep", "--pp", "--dp", "--etp", "--num-gpus"]
    pairs = sorted(range(0, len(args), 2), key=lambda i: order.index(args[i]))
    return [j for i in pairs for j in (i, i + 1)]


def test_num_gpus_alone_is_plans_best_layout(cli):
    plan = cli("plan", "mixtral-8x7b", "--num-gpus", "3", "--json").json()["layouts"][0]
    data = cli("estimate", "mixtral-8x7b", "--num-gpus", "3", "--json").json()
    assert {k: data["layout"][k] for k in ("tp", "ep", "pp", "dp")} == {k: plan[k] for k in ("tp", "ep", "pp", "dp")}
    assert data["memory"]["fits"] is True and data["memory"]["per_gpu_bytes"] == plan["per_gpu_bytes"]


def test_impossible_layout_is_a_deployment_error(cli):
    result = cli("estimate", "mixtral-8x7b", "--tp", "4", "--dp", "4", "--num-gpus", "8")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "invalid deployment --tp 4 --dp 4 --num-gpus 8" in result.stderr
    assert "spec" not in result.stderr


def test_training_reports_step_time_tokens_and_mfu(cli):
    args = ["estimate", "mixtral-8x7b", "--mode", "training", "--tp", "8", "--dp", "2", "--batch", "2", "--grad-accum", "4",
            "--context", "4096"]
    data = cli(*args, "--json").json()
    t = data["training"]
    assert "throughput" not in data  # the inference speed block (decode, TTFT) is not a training figure
    assert t["global_batch"] == 2 * 4 * 2 and t["tokens_per_step"] == 16 * 4096
    model_flops = training_flops_per_token(load_preset("mixtral-8x7b"), 4096, "none") * 16 * 4096
    assert t["model_flops_per_step"] == pytest.approx(model_flops)
    assert t["mfu"] == pytest.approx(model_flops / (t["step_s"] * 16 * t["peak_flops_per_s"]))
    assert t["step_s"] == pytest.approx(4 * t["micro_batch_s"] + t["bubble_s"] + t["gradient_allreduce_s"] + t["optimizer_s"])
    assert t["tokens_per_s"] == pytest.approx(16 * 4096 / t["step_s"])
    # one micro-batch on one GPU: training FLOPs of its 2 × 4096 tokens over tp = 8, at the dense BF16 peak
    assert t["micro_batch_compute_s"] == pytest.approx(data["flops"]["training_per_token"] * 2 * 4096 / 8 / t["peak_flops_per_s"])
    assert 0 < t["mfu"] < 1 and t["bubble_s"] == 0  # pp = 1: no pipeline bubble
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "Training speed" in result.stdout and "MFU" in result.stdout and "global batch" in result.stdout
    for absent in ("KV cache", "time to first token", "decode", "prefill"):
        assert absent not in result.stdout
    assert "training step" in result.stdout.split("╰")[0]  # the verdict's headline


def test_recomputation_is_never_faster_and_moves_one_micro_batch(cli):
    """DeepSeek-V3 on 2048 H800s (QA case): HBM traffic is one micro-batch's activations, not the 1F1B peak."""
    args = ["estimate", "deepseek-v3", "--mode", "training", "--gpu", "h800", "--pp", "16", "--ep", "64", "--dp", "128",
            "--tp", "1", "--grad-accum", "60", "--json", "--recompute"]
    runs = {mode: cli(*args, mode).json()["training"] for mode in ("none", "selective", "full")}
    assert runs["none"]["step_s"] <= runs["selective"]["step_s"] <= runs["full"]["step_s"]
    assert runs["none"]["micro_batch_memory_s"] < 2 * runs["none"]["micro_batch_compute_s"]  # was 12× (445 vs 36 ms)
    assert runs["full"]["micro_batch_memory_s"] >= runs["none"]["micro_batch_memory_s"]


def test_training_weights_row_is_bf16_whole_and_active(cli):
    """DeepSeek-V3's fp8 checkpoint trains in bf16: whole model and active share the format (was active in fp8)."""
    data = cli("estimate", "deepseek-v3", "--mode", "training", "--gpu", "h800", "--pp", "16", "--ep", "64", "--dp", "128",
               "--json").json()
    assert data["memory"]["weights_bytes"] == 2 * data["params"]["total"] == 1_342_052_808_704
    assert 2 * data["params"]["active"] == 75_104_565_248  # 69.95 GiB
    out = flowing(cli("estimate", "deepseek-v3", "--mode", "training", "--gpu", "h800", "--pp", "16", "--ep", "64",
                      "--dp", "128").stdout)
    assert "1,249.88 GiB (1,342.05 GB), active 69.95 GiB (75.10 GB), bf16 (training's parameters)" in out


@pytest.mark.parametrize("flags, named", [(["--mtp", "2"], "--mtp"), (["--kv-dtype", "fp8"], "--kv-dtype"),
                                           (["--isl", "1000", "--osl", "100", "--concurrency", "8"], "--isl"),
                                           (["--engine", "vllm"], "--engine vllm")])
@pytest.mark.parametrize("command", ["estimate", "plan"])
def test_training_refuses_inference_settings(cli, command, flags, named):
    out = cli(command, "mixtral-8x7b", "--mode", "training", *flags)
    assert out.exit_code == 2 and out.stdout == ""
    assert f"{named} is an inference setting; --mode training" in out.stderr and len(lines(out.stderr.strip())) == 1


def test_training_plan_file_refuses_inference_settings(cli, tmp_path):
    plan = tmp_path / "train.yaml"
    plan.write_text("deployments:\n  - name: train\n    model: mixtral-8x7b\n    mode: training\n    mtp: 2\n")
    out = cli("check", str(plan))
    assert out.exit_code == 2 and "--mtp is an inference setting; --mode training" in out.stderr


def test_pipeline_bubble(cli):
    t = cli("estimate", "mixtral-8x7b", "--mode", "training", "--tp", "8", "--pp", "4", "--grad-accum", "8", "--json").json()["training"]
    assert t["bubble_s"] == pytest.approx(3 * t["micro_batch_s"])  # (pp − 1) idle slots of 1F1B


def test_context_suffixes_follow_vllm(cli):
    contexts = [cli("estimate", "mixtral-8x7b", "--context", text, "--allow-long-context", "--json").json()["deployment"]["context"]
                for text in ("128k", "128K", "32000", "1m")]
    assert contexts == [128_000, 131_072, 32_000, 1_000_000]
    help_text = flowing(cli("estimate", "--help").stdout)
    assert "k = 1000 and K = 1024, as vLLM reads them (128k = 128,000; 128K = 131,072)" in help_text


def test_help_shows_defaults_choices_and_types(cli):
    out = cli("estimate", "-h")
    assert out.exit_code == 0
    text = flowing(out.stdout)
    assert all(len(line) <= WIDTH for line in lines(out.stdout))
    assert "[default: h100-sxm]" in text and "[default: 4096]" in text and "[default: 128]" in text and "[default: 1]" in text
    for choices in ("<inference|training>", "<bf16|fp16|fp8|fp32>", "<none|selective|full>", "<rank|expert>", "<0|1|2|3>"):
        assert choices in text
    assert "--num-gpus <int>" in text and "--batch <int>" in text and "--context <tokens>" in text
    assert "<bool>" not in text and "--offload-experts Keep" in text and "--brief Print" in text
    assert "pip install 'moeplan[plot]'" in text


def test_top_level_help_has_examples_and_completion(cli):
    text = flowing(cli("-h").stdout)
    assert "Examples:" in text and "moeplan estimate mixtral-8x7b --gpu h100 --num-gpus 2" in text
    assert "--install-completion" in text and "<bool>" not in text


def test_completion_of_presets_and_gpus():
    from moeplan.cli.options import complete_gpu, complete_preset

    assert "Mixtral-8x7b" in complete_preset("Mix") and "mixtral-8x22b" in complete_preset("mixtral")
    assert {"h100-sxm", "h100-pcie", "h100"} <= set(complete_gpu("h1"))


def test_preset_completion_through_the_shell_script_ignores_case():
    """zsh keeps only candidates that start with the typed word: they come back in the case typed."""
    env = {**os.environ, "_MOEPLAN_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "moeplan estimate MIXtral-8x"}
    out = subprocess.run([sys.executable, "-m", "moeplan"], env=env, capture_output=True, text=True, timeout=60).stdout
    assert '"MIXtral-8x22b"' in out and '"MIXtral-8x7b"' in out, out
    env["_TYPER_COMPLETE_ARGS"] = "moeplan estimate --gpu H10"
    out = subprocess.run([sys.executable, "-m", "moeplan"], env=env, capture_output=True, text=True, timeout=60).stdout
    assert '"H100-sxm"' in out, out


def test_preset_names_are_case_insensitive(cli):
    assert cli("estimate", "DeepSeek-V3", "--json").json()["params"] == cli("estimate", "deepseek-v3", "--json").json()["params"]


def test_user_text_is_never_markup(cli, tmp_path):
    model = tmp_path / "Mixtral [fp8]"
    model.mkdir()
    (model / "config.json").write_text((CONFIGS / "mixtral-8x7b.json").read_text())
    out = cli("estimate", model, "--brief")
    assert out.exit_code == 0 and "Mixtral [fp8], inference" in out.stdout
    assert "moeplan plan '" in flowing(out.stdout) and "Mixtral [fp8]' --gpu h100-sxm" in flowing(out.stdout)
    assert "Mixtral [fp8] — mixtral" in cli("estimate", model).stdout
    plan = tmp_path / "plan.yaml"
    plan.write_text("deployments:\n  - name: chat [/prod]\n    model: mixtral-8x7b\n    num_gpus: 2\n"
                    "    assert: {fits: true, min_headroom: 1 GB}\n")
    out = cli("check", plan)
    assert out.exit_code == 0, out.stderr
    assert "chat [/prod]: mixtral-8x7b on h100-sxm" in out.stdout and "≥ 1 GB" in out.stdout


def test_check_json_numbers_with_units(cli, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("deployments:\n  - name: chat\n    model: mixtral-8x7b\n    num_gpus: 2\n"
                    "    assert: {min_headroom: 5%, max_all_to_all_bytes_per_layer: 1 GB, min_max_context: 32k}\n"
                    "  - name: bytes\n    model: mixtral-8x7b\n    num_gpus: 2\n    assert: {min_headroom: 8 GiB}\n")
    data = cli("check", plan, "--json").json()
    headroom, context, a2a = data["deployments"][0]["assertions"]
    estimate = data["deployments"][0]["report"]["memory"]
    assert headroom["required_fraction"] == 0.05 and headroom["actual_fraction"] == estimate["headroom_fraction"]
    assert a2a["required_bytes"] == 10**9 and isinstance(a2a["actual_bytes"], int)
    assert context["required_tokens"] == 32_000 and context["actual_tokens"] == estimate["max_context"]
    assert not any(isinstance(v, str) and "≥" in v for a in (headroom, a2a, context) for v in a.values())
    gib = data["deployments"][1]["assertions"][0]
    assert gib["required_bytes"] == 8 * 2**30 and gib["written"] == "8 GiB"
    table = cli("check", plan).stdout
    assert "≥ 5%" in table and "≤ 1 GB" in table and "≥ 8 GiB" in table and f"{gib['actual_bytes'] / 2**30:,.2f} GiB" in table
    markdown = cli("check", plan, "--markdown").stdout
    assert "| ≤ 1 GB |" in markdown and "1,000,000,000" not in markdown


def test_gpu_json_loads_back(cli, tmp_path):
    path = tmp_path / "g.json"
    path.write_text(cli("gpus", "h100", "--json").stdout)
    again = cli("gpus", path, "--json").json()
    assert again["gpus"] == cli("gpus", "h100", "--json").json()["gpus"]
    assert cli("estimate", "mixtral-8x7b", "--gpu", path, "--json").json()["gpu"]["memory_bytes"] == again["gpus"][0]["memory_bytes"]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_gpus_table_fits_the_terminal(cli, monkeypatch, width):
    monkeypatch.setattr(console.real(), "width", width)
    out = cli("gpus").stdout
    assert all(len(line) <= width for line in lines(out)) and "…" not in out
    h200 = next(line for line in lines(out) if line.startswith("h200"))
    assert "141 (151.4)" in h200 and "4.80" in h200 and "989.5" in h200 and "1,979.0" in h200 and "450.0" in h200
    assert any(line.strip().startswith("1. NVIDIA A100") for line in lines(out))  # the source as a footnote
    wide = cli("gpus", "--wide").stdout
    assert width < 100 or "source" in wide and "NVIDIA" in wide and not any(line.strip().startswith("1. ") for line in lines(wide))


@pytest.mark.parametrize("width", [80, 100, 120])
def test_plan_and_check_tables_never_truncate(cli, monkeypatch, width):
    monkeypatch.setattr(console.real(), "width", width)
    out = cli("plan", "mixtral-8x7b", "--top", "3").stdout
    assert "…" not in out and "bound" in out and "memory" in out
    out = cli("check", ROOT / "examples" / "plan.yaml").stdout
    assert "…" not in out and "max_all_to_all_bytes_per_layer" in out and "gpt-oss-120b-single-gpu:" in out


def test_spec_file_is_its_own_source(cli, tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(cli("spec", "mixtral-8x7b").stdout)
    assert path.read_text().startswith("# written by `moeplan spec` from preset mixtral-8x7b")
    assert cli("estimate", path, "--json").json()["spec"]["source"] == str(path)


def test_plot_pdf_marks_the_limits(cli, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "x.pdf"
    out = cli("estimate", "mixtral-8x7b", "--num-gpus", "2", "--plot", path, "--brief")
    assert out.exit_code == 0, out.stderr
    assert path.read_bytes().startswith(b"%PDF")
    from moeplan.report import plot

    drawn = {}
    real = plot._stack
    monkey = lambda ax, points, x, current, fits, usable, capacity, largest, what: drawn.setdefault(what, (fits, largest)) or real(  # noqa: E731
        ax, points, x, current, fits, usable, capacity, largest, what)
    import unittest.mock

    with unittest.mock.patch.object(plot, "_stack", monkey):
        assert cli("estimate", "mixtral-8x7b", "--plot", tmp_path / "no.png", "--json").exit_code == 0
    report = cli("estimate", "mixtral-8x7b", "--json").json()["memory"]
    assert drawn == {"batch": (False, report["max_batch"]), "context": (False, report["max_context"])}


def test_estimate_imports_only_its_command():
    """A fitting estimate loads neither yaml nor numpy nor the other commands' modules (start-up time)."""
    code = ("import sys; sys.argv = ['moeplan', 'estimate', 'mixtral-8x7b', '--gpu', 'h200', '--json']\n"
            "from moeplan.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "loaded = [m for m in ('yaml', 'numpy', 'moeplan.cli.plan', 'moeplan.cli.check', 'moeplan.cli.profile',"
            " 'moeplan.cli.gpus', 'moeplan.calibration', 'moeplan.plan.search', 'moeplan.report.curve', 'moeplan.report.sweep',"
            " 'moeplan.report.render_estimate', 'rich.console', 'rich.table')"
            " if m in sys.modules]\n"
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"verdict"' in result.stdout


def test_plan_title_escapes_the_model_name(cli, tmp_path):
    model = tmp_path / "Mixtral [fp8]"
    model.mkdir()
    (model / "config.json").write_text((CONFIGS / "mixtral-8x7b.json").read_text())
    out = cli("plan", model, "--top", "1")
    assert out.exit_code == 0, out.stderr
    assert flowing(out.stdout).startswith("Mixtral [fp8] on h100-sxm")


@pytest.mark.parametrize("words, expected", [("moeplan estimate mix", {"mixtral-8x7b", "mixtral-8x22b"}),
                                             ("moeplan plan mixtral-8x7b --gpu h1", {"h100-sxm", "h100", "h100-pcie"})])
def test_shell_completion_end_to_end(words, expected):
    env = {**os.environ, "_MOEPLAN_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    code = "import sys; sys.argv = ['moeplan']\nfrom moeplan.cli.app import main\nmain()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert expected <= set(result.stdout.split())


def test_version_imports_no_command():
    code = ("import sys; sys.argv = ['moeplan', '--version']\nfrom moeplan.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "loaded = [m for m in sys.modules if m.startswith('moeplan.cli.') and m != 'moeplan.cli.app'"
            " or m in ('yaml', 'numpy', 'rich.console')]\nassert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("moeplan ")


def test_every_command_help_keeps_its_brackets(cli):
    for command in ("estimate", "plan", "check", "profile", "gpus", "spec", "presets", "schema"):
        out = cli(command, "-h")
        assert out.exit_code == 0, (command, out.stderr)
        assert all(len(line) <= WIDTH for line in lines(out.stdout)), command
    assert "[default:" in flowing(cli("profile", "-h").stdout)


def test_training_step_by_hand(cli):
    """A 2-layer MoE (H 1024, 8 heads, 4 experts, top-1, I 1024, V 1000) at s = 256 on one H100, by hand."""
    data = cli("estimate", "--layers", "2", "--hidden", "1024", "--heads", "8", "--vocab", "1000", "--experts", "4", "--top-k", "1",
               "--expert-intermediate", "1024", "--mode", "training", "--context", "256", "--batch", "2", "--grad-accum", "3",
               "--gpu", "h100-sxm", "--json").json()
    t = data["training"]
    layer_matmuls = 4 * 1024**2 + 4 * 1024 + 3 * 1024**2  # q k v o, router, one active expert (gate, up, down)
    attention = 2 * 8 * 2 * 128 * 256  # QKᵀ and AV per token and layer, every key counted (Megatron-LM)
    lm_head = 1000 * 1024
    model = 3 * (2 * 2 * layer_matmuls + 2 * attention + 2 * lm_head)  # forward + backward
    assert t["model_flops_per_step"] == model * 2 * 3 * 256 == 100_564_992 * 1536
    hardware = model + 2 * attention  # selective recomputation re-runs the attention scores and values
    assert t["micro_batch_compute_s"] == pytest.approx(hardware * 2 * 256 / 989.5e12)
    params = 2 * (4 * 1024**2 + 4 * 1024 + 4 * 3 * 1024**2 + 2 * 1024) + 2 * 1000 * 1024 + 1024  # all on one GPU
    assert t["optimizer_s"] == pytest.approx(params * (2 * 2 + 4 + 2 * 12) / 3.35e12)  # bf16 w, fp32 grad, fp32 master + Adam
    # one micro-batch's activations per layer (Korthikanti et al.): norms' inputs 4h, attention 11h, MoE 2h + 4E +
    # k·(4h + 6I) + h, and the 5·a score bytes per s²; selective recomputation rewrites the scores, so all are
    # written in forward and read in backward
    layer = 2 * ((4 * 1024 + 11 * 1024 + 2 * 1024 + 4 * 4 + (4 * 1024 + 6 * 1024) + 1024) * 256 + 5 * 8 * 256**2)
    assert layer == 19_931_136
    assert t["micro_batch_memory_s"] == pytest.approx((2 * 2 * params + 2 * 4 * params + 2 * 2 * layer) / 3.35e12)
    assert t["gradient_allreduce_s"] == 0 and t["micro_batch_communication_s"] == 0  # one GPU
    assert t["step_s"] == pytest.approx(3 * max(t["micro_batch_compute_s"], t["micro_batch_memory_s"]) + t["optimizer_s"])


def test_no_fit_within_the_search_suggests_a_wider_one(cli):
    data = cli("estimate", "kimi-k2", "--mode", "training", "--json").json()
    verdict, memory = data["verdict"], data["memory"]
    assert verdict["fewest_gpus"] is None and verdict["searched_max_gpus"] == 64
    wider = -(-int(2 * memory["per_gpu_bytes"] / memory["usable_bytes"]) // 8) * 8  # twice a perfect split, whole nodes
    assert wider > 256 and verdict["plan_command"] == f"moeplan plan kimi-k2 --gpu h100-sxm --mode training --max-gpus {wider}"
    out = flowing(cli("estimate", "kimi-k2", "--mode", "training", "--brief").stdout)
    assert "No layout of up to 64 NVIDIA H100 SXM5 80GB fits. Search further:" in out


@pytest.mark.parametrize("width", [80, 120])
def test_presets_table_shows_every_name_whole(cli, monkeypatch, width):
    monkeypatch.setattr(console.real(), "width", width)
    out = cli("presets").stdout
    names = [row["name"] for row in cli("presets", "--json").json()["presets"]]
    assert "…" not in out and all(len(line) <= width for line in lines(out))
    assert all(any(line.startswith(name + " ") for line in lines(out)) for name in names)


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("command", ["estimate", "plan", "check"])
def test_help_wraps_never_cuts_and_speaks_user_words(cli, monkeypatch, command, width):
    monkeypatch.setenv("COLUMNS", str(width))
    out = cli(command, "--help").stdout
    assert all(len(line) <= width for line in lines(out))
    text = flowing(out)
    assert "…" not in out and "list[str]" not in text.replace("<list[str]> A plan file", "")  # the check target is typer's
    assert "None:" not in text and "long-context environment switch is set" in text
    if command != "check":  # check's target is a plan file, a model or an engine command
        assert "a Hugging Face model id (org/name)" in text and "a .gguf file" in text
    if command == "plan":
        assert "<objective>" in text and "l atency" not in text
    if command == "check":
        assert "2 bad input; 3 missing environment; 4 internal error" in text
