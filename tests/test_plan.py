"""`moeplan plan`: the vectorised layout model agrees with `moeplan estimate` layout by layout; the layout
rules agree with layout_problems; ranking, JSON, exit codes through the CLI."""

import numpy as np
import pytest
from pydantic import ValidationError

import moeplan.plan.model as plan_model
from moeplan.accounting.training import training_state
from moeplan.layout.parallel import Layout, layout_problems
from moeplan.plan.layouts import LayoutArrays, allowed, default_expert_tp, enumerate_layouts, gpu_counts, placement_allowed
from moeplan.plan.model import LayoutModel
from moeplan.plan.search import search
from moeplan.report.estimate import build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.presets import load_preset
from moeplan.spec.resolve import ResolvedSpec, resolve_spec
from moeplan.accounting.training import training_state_bytes
from moeplan.namespace import numpy_namespace
from moeplan.perf.roofline import Efficiency
from moeplan.perf.speed import BOUNDS

DENSE = {"num_layers": 32, "hidden_size": 4096, "attention.num_heads": 32, "attention.num_kv_heads": 8, "vocab_size": 128256,
         "intermediate_size": 14336, "tie_word_embeddings": True, "max_position_embeddings": 8192}
"""A Llama-3-8B-shaped dense model with tied embeddings (so pp > 1 adds the last stage's own lm_head copy)."""


def _resolved(name: str) -> ResolvedSpec:
    return resolve_spec(None, DENSE) if name == "dense" else ResolvedSpec(spec=load_preset(name))


CASES = [
    ("mixtral-8x7b", {"batch": 8, "context": 8192}, 256),
    ("mixtral-8x7b", {"batch": 3, "context": 32768, "kv_dtype": "fp8", "dtype": "fp8", "gpus_per_node": 4}, 64),
    ("mixtral-8x7b", {"batch": 4, "routing": "zipf:1.2"}, 16),
    ("deepseek-v3", {"batch": 16, "context": 4096}, 1024),
    ("deepseek-v3", {"batch": 1, "context": 131072, "a2a_mode": "expert", "dispatch_dtype": "fp8", "gpu": "h200"}, 512),
    ("qwen3-30b-a3b", {"batch": 32, "context": 16384, "prefill_chunk": 2048, "gpu": "a100-80gb"}, 128),
    ("jamba-v0.1", {"batch": 4, "context": 65536}, 64),
    ("gpt-oss-120b", {"batch": 8, "context": 65536}, 64),
    ("llama-4-scout", {"batch": 2, "context": 100000, "nic_gb_s": 25}, 128),
    ("dense", {"batch": 8, "context": 8192, "gpu": "l40s"}, 32),
    ("mixtral-8x7b", {"mode": "training", "batch": 1, "context": 4096}, 128),
    ("deepseek-v3", {"mode": "training", "batch": 1, "context": 4096, "zero": 3, "recompute": "full", "grad_dtype": "bf16"}, 2048),
    ("jamba-v0.1", {"mode": "training", "batch": 2, "context": 8192, "zero": 2, "recompute": "none"}, 64),
    ("dense", {"mode": "training", "batch": 4, "context": 2048, "zero": 0}, 32),
    ("qwen3-30b-a3b", {"mode": "training", "batch": 2, "context": 4096, "zero": 3, "etp": 1}, 64),
    ("deepseek-v3", {"isl": 1024, "osl": 1024, "concurrency": 256, "mtp": 2, "gpu": "h200"}, 64),
    ("llama-3.1-8b", {"isl": 4096, "osl": 512, "concurrency": 64, "kv_dtype": "fp8"}, 16),
    ("gpt-oss-120b", {"isl": 8192, "osl": 1024, "concurrency": 30, "enforce_eager": True, "dtype": "fp8"}, 32),
    ("qwen3-30b-a3b", {"isl": 2048, "osl": 256, "concurrency": 48, "prefill_first": True}, 32),
]
SAMPLES = 24


@pytest.mark.parametrize(("name", "settings", "max_gpus"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_vectorised_model_equals_build_estimate(name, settings, max_gpus):
    """Per random layout: memory terms exactly (integer bytes), fit, stage, and throughput to 1e-9."""
    _check_agreement(name, settings, max_gpus)


def test_agreement_with_measured_efficiencies():
    """A profile calibration's efficiencies (below-peak HBM, GEMM, links, slower collectives) flow through alike."""
    efficiency = Efficiency(hbm=0.8, gemm=0.55, link=0.7, pcie=0.9, collective_latency_s=25e-6)
    _check_agreement("deepseek-v3", {"batch": 32, "context": 8192}, 512, efficiency)
    _check_agreement("mixtral-8x7b", {"batch": 4, "gpu": "l40s"}, 32, efficiency)


def _check_agreement(name: str, settings: dict, max_gpus: int, efficiency: Efficiency | None = None) -> None:
    resolved, d = _resolved(name), Deployment(**settings)
    fixed = {"etp": d.etp} if d.etp else {}
    layouts = enumerate_layouts(resolved.spec, gpu_counts(max_gpus, d.gpus_per_node), d.gpus_per_node, fixed)
    metrics = LayoutModel(resolved, d, efficiency).evaluate(layouts)
    rng = np.random.default_rng(len(name) * 1000 + max_gpus)
    for i in rng.choice(len(layouts), min(SAMPLES, len(layouts)), replace=False).tolist():
        layout = layouts.layout(i)
        report = build_estimate(resolved, d.model_copy(update={"tp": layout.tp, "ep": layout.ep, "pp": layout.pp, "dp": layout.dp,
                                                               "etp": layout.etp}), efficiency)
        worst, speed = report.memory.most_loaded, report.throughput
        where = f"{name} {layout.describe()}"
        assert metrics.per_gpu_bytes[i] == report.memory.per_gpu_bytes, where
        assert metrics.worst_stage[i] == worst.stage, where
        assert metrics.weights_bytes[i] == worst.weights_bytes, where
        assert metrics.state_bytes[i] == worst.gradients_bytes + worst.optimizer_bytes, where
        assert metrics.kv_cache_bytes[i] == worst.kv_cache_bytes, where
        assert metrics.activation_bytes[i] == worst.activation_bytes, where
        assert metrics.overhead_bytes[i] == worst.cuda_context_bytes + worst.allocator_reserve_bytes, where
        assert (metrics.per_gpu_bytes[i] <= report.memory.usable_bytes) == report.memory.fits, where
        if not report.memory.fits:  # a serving estimate that does not fit caps its sequences at what memory holds
            continue
        assert BOUNDS[metrics.bound[i]] == speed.bound, where
        for ours, theirs in ((metrics.decode_tokens_per_s[i], speed.decode_tokens_per_s),
                             (metrics.time_per_output_token_s[i], speed.time_per_output_token_s),
                             (metrics.prefill_tokens_per_s[i], speed.prefill_tokens_per_s), (metrics.ttft_s[i], speed.ttft_s),
                             (metrics.roofline_time_per_output_token_s[i], speed.roofline_time_per_output_token_s)):
            assert ours == theirs, where  # the same formula on floats and on arrays: bit for bit


def test_search_calls_the_scalar_estimate_once(monkeypatch):
    """The search evaluates thousands of layouts with one scalar estimate (the 1-GPU reference), not one per layout."""
    calls = []
    original = plan_model.build_estimate
    monkeypatch.setattr(plan_model, "build_estimate", lambda *a, **k: calls.append(1) or original(*a, **k))
    report = search(ResolvedSpec(spec=load_preset("deepseek-v3")), Deployment(batch=8), max_gpus=1024)
    assert report.evaluated > 10_000 and len(calls) == 1


@pytest.mark.parametrize("name", ["mixtral-8x7b", "deepseek-v3", "jamba-v0.1", "gpt-oss-120b", "dense"])
def test_allowed_equals_layout_problems(name):
    """Over a grid with valid and invalid sizes alike: allowed() accepts exactly what Layout and layout_problems accept."""
    spec = _resolved(name).spec
    grid = np.array(np.meshgrid([1, 2, 3, 4, 8, 16], [1, 2, 3, 4, 8, 16, 32, 128], [1, 2, 7, spec.num_layers, spec.num_layers + 1],
                                [1, 2, 3, 6]), dtype=np.int64).reshape(4, -1)
    tp, ep, pp, dp = grid
    mask = allowed(spec, LayoutArrays(tp, ep, pp, dp, default_expert_tp(tp, ep)))
    for i in range(len(tp)):
        try:
            ok = not layout_problems(spec, Layout(tp=int(tp[i]), ep=int(ep[i]), pp=int(pp[i]), dp=int(dp[i])))
        except ValidationError:
            ok = False
        assert mask[i] == ok, (name, tp[i], ep[i], pp[i], dp[i])
    assert 0 < mask.sum() < len(mask)


def test_enumeration_by_hand():
    """Mixtral (32 heads, 8 KV heads, 8 experts) on up to 2 GPUs: 1 GPU → tp1; 2 GPUs → tp1 dp2 with ep 1 or 2,
    tp1 pp2, tp2 with ep 1 or 2."""
    layouts = enumerate_layouts(load_preset("mixtral-8x7b"), gpu_counts(2, 8), 8)
    found = {(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(layouts.tp, layouts.ep, layouts.pp, layouts.dp)}
    assert found == {(1, 1, 1, 1), (1, 1, 1, 2), (1, 2, 1, 2), (1, 1, 2, 1), (2, 1, 1, 1), (2, 2, 1, 1)}
    assert len(layouts) == len(found)


def test_gpu_counts_and_placement():
    assert gpu_counts(40, 8).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 40]
    assert gpu_counts(4, 8).tolist() == [1, 2, 3, 4]
    # (tp, ep, pp, dp) on 4-GPU nodes: tp 8 spans nodes; tp 3 on 6 GPUs straddles them; ep 6 is neither inside a node nor whole nodes
    tp, ep, pp, dp = (np.array(v) for v in ([8, 3, 4, 1, 3, 2], [1, 1, 8, 6, 1, 8], [1, 1, 1, 1, 1, 1], [1, 2, 2, 6, 1, 4]))
    ok = placement_allowed(LayoutArrays(tp, ep, pp, dp, default_expert_tp(tp, ep)), 4)
    assert ok.tolist() == [False, False, True, False, True, True]


def test_fixed_sizes_hold():
    layouts = enumerate_layouts(load_preset("deepseek-v3"), np.array([64]), 8, {"tp": 8, "ep": 16})
    assert len(layouts) and set(layouts.tp.tolist()) == {8} and set(layouts.ep.tolist()) == {16}
    assert set(layouts.num_gpus.tolist()) == {64} and set((layouts.pp * layouts.dp).tolist()) == {8}


def test_training_state_on_arrays():
    """training_state_bytes over numpy arrays equals training_state layout by layout (one formula, two namespaces)."""
    rng = np.random.default_rng(3)
    dense, expert, gathered = (rng.integers(1, 10**11, 50) for _ in range(3))
    tp, dp = rng.choice([1, 2, 4, 8], 50), rng.choice([1, 3, 8, 24], 50)
    for zero in (0, 1, 2, 3):
        for grad in ("fp32", "bf16"):
            layouts = LayoutArrays(tp, np.ones(50, np.int64), np.ones(50, np.int64), dp, tp)
            ours = training_state_bytes(numpy_namespace(), dense, expert, dp, layouts.expert_replicas, zero, grad, gathered)
            for i in range(50):
                state = training_state(int(dense[i]), int(expert[i]), Layout(tp=int(tp[i]), dp=int(dp[i])), zero, grad, int(gathered[i]))
                assert (ours[0][i], ours[1][i], ours[2][i]) == (state.params_bytes, state.gradients_bytes, state.optimizer_bytes)


# --- the command -------------------------------------------------------------------------------------


def _plan(cli, *args):
    result = cli("plan", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_plan_json_document(cli):
    data = _plan(cli, "mixtral-8x7b", "--max-gpus", "16", "--batch", "8")
    assert data["schema"] == 1 and data["moeplan_version"] and data["model"] == "mixtral-8x7b" and data["gpu"] == "h100-sxm"
    estimate = build_estimate(_resolved("mixtral-8x7b"), Deployment(batch=8))
    assert data["usable_bytes"] == estimate.memory.usable_bytes  # 0.9 × the driver-visible memory
    rows = data["layouts"]
    assert len(rows) == min(data["feasible"], 10) > 0 and data["evaluated"] >= data["feasible"]  # --json honours --top
    for row in rows:
        assert row["per_gpu_bytes"] <= data["usable_bytes"]
        assert row["headroom_bytes"] == data["usable_bytes"] - row["per_gpu_bytes"]
        assert row["gpus"] == row["tp"] * row["pp"] * row["dp"] <= 16
        assert row["per_gpu_bytes"] == row["weights_bytes"] + row["state_bytes"] + row["kv_cache_bytes"] + row["activation_bytes"] + row["overhead_bytes"]
        assert row["tokens_per_s_per_gpu"] == pytest.approx(row["decode_tokens_per_s"] / row["gpus"])
    # Mixtral bf16 weights are 87 GiB: one 80 GB H100 never holds them
    assert min(row["gpus"] for row in rows) == 2
    best = rows[0]
    estimate = cli("estimate", "mixtral-8x7b", "--batch", "8", *[f"--{k}={best[k]}" for k in ("tp", "ep", "pp", "dp")], "--json").json()
    assert estimate["memory"]["per_gpu_bytes"] == best["per_gpu_bytes"]
    assert estimate["throughput"]["decode_tokens_per_s"] == pytest.approx(best["decode_tokens_per_s"], rel=1e-9)


@pytest.mark.parametrize("objective", ["fewest-gpus", "throughput-per-gpu", "latency", "cost"])
def test_ranking_per_objective(cli, objective):
    data = _plan(cli, "qwen3-30b-a3b", "--max-gpus", "32", "--batch", "16", "--objective", objective, "--gpu-hour-price", "2.5", "--top", "1000")
    rows = data["layouts"]
    assert len(rows) > 20
    gpus = [r["gpus"] for r in rows]
    per_gpu = [r["tokens_per_s_per_gpu"] for r in rows]
    for r in rows:  # $/M tokens = 2.5 $/GPU-h × GPUs / 3600 s / tokens/s × 1e6
        assert r["cost_per_million_tokens"] == pytest.approx(2.5 * r["gpus"] / 3600 / r["decode_tokens_per_s"] * 1e6)
    if objective == "fewest-gpus":
        assert gpus == sorted(gpus)
        for a, b in zip(rows, rows[1:]):
            assert a["gpus"] < b["gpus"] or a["tokens_per_s_per_gpu"] >= b["tokens_per_s_per_gpu"]
    elif objective == "throughput-per-gpu":
        assert per_gpu == sorted(per_gpu, reverse=True)
    elif objective == "latency":
        tpot = [r["time_per_output_token_s"] for r in rows]
        assert tpot == sorted(tpot)
    else:
        cost = [r["cost_per_million_tokens"] for r in rows]
        assert cost == sorted(cost)


def test_plan_table(cli):
    result = cli("plan", "mixtral-8x7b", "--max-gpus", "16", "--top", "3", "--gpu-hour-price", "2")
    assert result.exit_code == 0, result.stderr
    assert "layouts evaluated" in result.stdout and "tp/ep/pp/dp" in result.stdout and "$/M tok" in result.stdout
    ranks = [line.split()[0] for line in result.stdout.split("───")[-1].splitlines()[1:4]]
    assert ranks == ["1", "2", "3"]


def test_fixed_sizes_through_the_cli(cli):
    rows = _plan(cli, "deepseek-v3", "--tp", "8", "--num-gpus", "32")["layouts"]
    assert rows and all(r["tp"] == 8 and r["gpus"] == 32 for r in rows)


def test_training_ranks_by_prefill(cli):
    data = _plan(cli, "mixtral-8x7b", "--mode", "training", "--max-gpus", "32", "--objective", "throughput-per-gpu")
    rows = data["layouts"]
    assert rows and all(r["state_bytes"] > 0 and r["kv_cache_bytes"] == 0 for r in rows)
    assert [r["tokens_per_s_per_gpu"] for r in rows] == sorted((r["prefill_tokens_per_s"] / r["gpus"] for r in rows), reverse=True)


def test_training_lists_step_time_tokens_and_mfu(cli):
    """Each listed training layout carries `moeplan estimate`'s training speed; the table shows no inference column."""
    rows = _plan(cli, "mixtral-8x7b", "--mode", "training", "--max-gpus", "16", "--top", "3")["layouts"]
    assert len(rows) == 3
    for row in rows:
        layout = [f"--{k}={row[k]}" for k in ("tp", "ep", "pp", "dp")]
        alone = cli("estimate", "mixtral-8x7b", "--mode", "training", *layout, "--json").json()["training"]
        assert row["training"]["step_s"] == pytest.approx(alone["step_s"]) and row["training"]["mfu"] == pytest.approx(alone["mfu"])
    out = cli("plan", "mixtral-8x7b", "--mode", "training", "--max-gpus", "16", "--top", "3").stdout
    first = rows[0]["training"]
    assert "MFU" in out and f"{first['step_s']:,.2f}" in out and f"{first['tokens_per_s'] / rows[0]['gpus']:,.1f}" in out
    assert "TPOT" not in out and "decode" not in out


def test_nothing_fits_exits_1(cli):
    """DeepSeek-V3 (fp8, ~640 GiB of weights) on up to 8 L40S (48 GiB): no layout fits."""
    result = cli("plan", "deepseek-v3", "--gpu", "l40s", "--max-gpus", "8")
    assert result.exit_code == 1
    assert "nothing fits" in result.stderr and "--max-gpus" in result.stderr
    result = cli("plan", "deepseek-v3", "--gpu", "l40s", "--max-gpus", "8", "--json")
    assert result.exit_code == 1
    data = result.json()
    assert data["feasible"] == 0 and data["layouts"] == []
    assert data["closest"]["per_gpu_bytes"] > data["usable_bytes"]


@pytest.mark.parametrize("args", [
    ["--objective", "fastest"],
    ["--max-gpus", "0"],
    ["--objective", "cost"],
    ["--gpu-hour-price", "-1"],
    ["--tp", "3"],
    ["--mode", "training", "--objective", "latency"],
    ["--offload-experts"],
    ["--gpu", "h1000"],
    ["--curve", "--json"],
    ["--plot", "out.jpg"],
])
def test_bad_input_exits_2(cli, args):
    result = cli("plan", "mixtral-8x7b", *args)
    assert result.exit_code == 2, (args, result.stdout, result.stderr)
