"""The verdict's fewest GPUs (scalar estimates, no numpy) is `moeplan plan`'s best layout (its numpy search), and the
layouts it tries are plan's, in plan's order."""

import pytest

from moeplan.layout.parallel import search_gpu_counts, search_layouts
from moeplan.plan.layouts import enumerate_layouts, gpu_counts
from moeplan.plan.search import search
from moeplan.report.estimate import build_estimate
from moeplan.report.verdict import fewest_gpus
from moeplan.spec.deployment import Deployment
from moeplan.spec.presets import load_preset
from moeplan.spec.resolve import ResolvedSpec

CASES = [
    ("mixtral-8x7b", {}),
    ("mixtral-8x7b", {"batch": 64, "context": 32768}),
    ("mixtral-8x7b", {"mode": "training"}),
    ("mixtral-8x7b", {"isl": 2048, "osl": 512, "concurrency": 64, "gpu": "l40s"}),
    ("deepseek-v3", {"context": 32768, "num_gpus": 8}),
    ("deepseek-v3", {"gpu": "h200", "dtype": "bf16", "tp": 8}),
    ("qwen3-30b-a3b", {"gpu": "l4", "batch": 8}),
    ("jamba-v0.1", {"gpu": "a100-40gb", "context": 65536}),
    ("gpt-oss-120b", {"gpu": "l40s", "gpus_per_node": 4}),
    ("kimi-k2", {"mode": "training"}),
    ("qwen3-30b-a3b", {"mode": "training", "gpu": "h200"}),  # training ranked by prefill, layouts one by one
    ("gpt-oss-20b", {"mode": "training"}),
    ("llama-3.1-8b", {"mode": "training", "gpu": "a100-40gb"}),
]


@pytest.mark.parametrize(("name", "settings"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_fewest_gpus_is_plans_best_layout(name, settings):
    resolved = ResolvedSpec(spec=load_preset(name))
    report = build_estimate(resolved, Deployment(**settings))
    assert not report.memory.fits
    released = report.deployment.model_copy(update=dict.fromkeys(("num_gpus", "tp", "ep", "pp", "dp", "etp")))
    plan = search(resolved, released, 64, keep=1)
    expected = (plan.layouts[0].gpus, plan.layouts[0].describe()) if plan.layouts else None
    assert fewest_gpus(resolved, report) == expected


@pytest.mark.parametrize(("name", "gpus_per_node"), [("mixtral-8x7b", 8), ("deepseek-v3", 8), ("jamba-v0.1", 4), ("gpt-oss-120b", 8)])
def test_search_layouts_are_plans_in_its_order(name, gpus_per_node):
    spec = load_preset(name)
    assert search_gpu_counts(64, gpus_per_node) == gpu_counts(64, gpus_per_node).tolist()
    arrays = enumerate_layouts(spec, gpu_counts(64, gpus_per_node), gpus_per_node)
    plans = [arrays.layout(i).model_dump() for i in range(len(arrays))]
    ours = [layout.model_dump() for n in search_gpu_counts(64, gpus_per_node) for layout in search_layouts(spec, n, gpus_per_node)]
    assert ours == plans
