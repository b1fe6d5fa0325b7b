"""`moeplan check -- <engine command>` at 80 columns: the verdict and notes wrap at words (QA pass of issue 14)."""

import os
import subprocess
import sys


def test_engine_report_wraps_at_80_columns():
    """The verdict was printed as one 167-character line (soft wrap), cut mid-word by the terminal, with
    the GPU count twice and nested parentheses: `on 8 × h100-sxm (tp=8 ep=1 pp=1 dp=1 (8 GPUs))`."""
    argv = ["check", "--", "vllm", "serve", "deepseek-ai/DeepSeek-V3", "-tp", "8", "--max-model-len", "32768"]
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    result = subprocess.run([sys.executable, "-m", "moeplan", *argv], capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    head = " ".join(" ".join(lines[:3]).split())
    assert head.startswith("vllm will not start: model loading") and "short by 2.20 GiB per GPU" in head
    assert "deepseek-v3 on h100-sxm, tp=8 ep=1 pp=1 dp=1 (8 GPUs)" in head and "((" not in head
    assert any(line.startswith("· MLA: the latent cache is replicated") for line in lines)


def test_a_refusal_that_is_not_memory_has_no_shortfall(cli):
    """A --max-model-len beyond the model's limit ended in '— short by 0.00 GiB per GPU'."""
    result = cli("check", "--", "vllm", "serve", "mistralai/Mixtral-8x7B-v0.1", "-tp", "2", "--max-model-len", "300000")
    assert result.exit_code == 1 and "will not start" in result.stdout, result.stdout
    assert "max_position_embeddings" in result.stdout and "short by" not in result.stdout
