"""The MoE decoders of moeplan/spec/readers/moe_decoders.py against transformers on the meta device: a config
built from each config class's defaults (completed where the defaults alone build no MoE) must count exactly as
transformers instantiates it, by component. The reduced synthetic configs of these families (tests/data/hf-configs)
and the published MiniMax-M2 config (the minimax-m2 preset) run through test_transformers_crosscheck.py."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoConfig  # noqa: E402

from moeplan.accounting.params import count_params  # noqa: E402
from moeplan.spec.hf import spec_from_hf_config  # noqa: E402
from moeplan.spec.readers.moe_decoders import READERS  # noqa: E402
from test_transformers_crosscheck import _components, _instantiate  # noqa: E402

COMPLETIONS = {
    "dots1": {"n_routed_experts": 128, "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1},
    "hunyuan_v1_moe": {"head_dim": 128, "num_experts": 16, "moe_topk": 2},
}
"""Keys whose class default is None or 1 (dots1's expert counts, Hunyuan's head_dim and single expert): the
defaults alone build no MoE or no model, so these are completed with the released models' values."""


def _defaults(model_type: str) -> dict:
    return AutoConfig.for_model(model_type, **COMPLETIONS.get(model_type, {})).to_dict()


VARIANTS = [
    ("laguna", {"gating": False}),  # a per-channel output gate
    ("cohere2_moe", {"rms_norm_eps": None, "num_shared_experts": 1, "first_k_dense_replace": 2}),  # LayerNorm, prefix
    ("ernie4_5_moe", {"use_bias": True, "moe_layer_interval": 2}),
]
"""Class defaults with the keys that switch a family's other variant."""


@pytest.mark.parametrize("model_type, changes", [(t, {}) for t in sorted(READERS)] + VARIANTS)
def test_class_defaults_count_exactly(model_type: str, changes: dict):
    config = AutoConfig.for_model(model_type, **COMPLETIONS.get(model_type, {}), **changes).to_dict()
    model = _instantiate(config)
    counts = count_params(spec_from_hf_config(config))
    assert counts.by_component == _components(model)
    assert counts.total == sum(p.numel() for p in model.parameters())


def test_per_layer_lists_that_differ_are_refused():
    from moeplan.errors import SpecError

    config = _defaults("hunyuan_v1_moe") | {"moe_topk": [2, 1] * 16}
    with pytest.raises(SpecError, match="moe_topk differs between layers"):
        spec_from_hf_config(config)
    assert spec_from_hf_config(config | {"moe_topk": [2] * 32}).top_k == 2
