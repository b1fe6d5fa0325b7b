"""check and plan use the expected speed, end to end through the CLI, at a continuous-batching steady state."""

import pytest


def test_check_asserts_the_expected_tpot(cli, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("""
deployments:
  - name: serving
    model: llama-3.1-8b
    gpu: h100
    tp: 2
    isl: 1024
    osl: 256
    concurrency: 32
    assert: {max_time_per_output_token_ms: 1000, min_decode_tokens_per_s: 1}
""")
    result = cli("check", plan, "--json")
    assert result.exit_code == 0, result.stderr
    checks = {a["assertion"]: a for a in result.json()["deployments"][0]["assertions"]}
    estimate = cli("estimate", "llama-3.1-8b", "--gpu", "h100", "--tp", "2", "--isl", "1024", "--osl", "256",
                   "--concurrency", "32", "--json").json()["throughput"]
    assert checks["max_time_per_output_token_ms"]["actual_s"] == estimate["time_per_output_token_s"]
    assert checks["min_decode_tokens_per_s"]["actual_tokens_per_s"] == estimate["decode_tokens_per_s"]
    assert estimate["time_per_output_token_s"] > estimate["roofline_time_per_output_token_s"]  # expected, not the bound


def test_check_fails_a_tpot_only_the_bound_meets(cli, tmp_path):
    """A TPOT between the bound and the expected figure fails: check asserts what a deployment is expected to do."""
    estimate = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--tp", "2", "--json").json()["throughput"]
    between = (estimate["roofline_time_per_output_token_s"] + estimate["time_per_output_token_s"]) / 2 * 1e3
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"deployments:\n  - name: m\n    model: mixtral-8x7b\n    gpu: h100\n    tp: 2\n"
                    f"    assert: {{max_time_per_output_token_ms: {between}}}\n")
    assert cli("check", plan, "--json").exit_code == 1


def test_plan_ranks_serving_layouts_by_expected_tpot(cli):
    result = cli("plan", "qwen3-30b-a3b", "--gpu", "h100", "--max-gpus", "8", "--isl", "2048", "--osl", "512",
                 "--concurrency", "64", "--objective", "latency", "--top", "50", "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json()["layouts"]
    tpot = [r["time_per_output_token_s"] for r in rows]
    assert len(rows) > 5 and tpot == sorted(tpot)
    assert all(r["roofline_time_per_output_token_s"] < r["time_per_output_token_s"] for r in rows)
    best = rows[0]
    estimate = cli("estimate", "qwen3-30b-a3b", "--gpu", "h100", "--isl", "2048", "--osl", "512", "--concurrency", "64",
                   *[f"--{k}={best[k]}" for k in ("tp", "ep", "pp", "dp", "etp")], "--json").json()["throughput"]
    assert estimate["time_per_output_token_s"] == best["time_per_output_token_s"]
    assert estimate["ttft_s"] == pytest.approx(best["ttft_s"], rel=0, abs=0)


def test_plan_dp_replicas_rank_as_their_own_expert_copies(cli):
    """Fix 1 through plan: tp1/dp8 Mixtral at batch 1 is as fast per token as one replica, so per GPU it ranks
    among the best 8-GPU layouts (it used to be 17th)."""
    rows = cli("plan", "mixtral-8x7b", "--gpu", "h200", "--num-gpus", "8", "--batch", "1", "--objective",
               "throughput-per-gpu", "--top", "100", "--json").json()["layouts"]
    order = [(r["tp"], r["ep"], r["pp"], r["dp"]) for r in rows]
    assert order.index((1, 1, 1, 8)) < 3
