"""Every text MoE model_type of the installed transformers is either read by moeplan or refused by name with
a reason, and docs/spec.md lists each.

A model_type counts as MoE when its config class's defaults have a key naming experts or MoE (num_experts,
n_routed_experts, moe_intermediate_size, ...), in the config itself or in a sub-config (DBRX's ffn_config, the
text_config of a multimodal model). A multimodal container is handled through its text_config, which
spec_from_hf_config reads in its place. A new MoE architecture in a transformers upgrade fails here until it
gets a reader or a refusal."""

import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers.models.auto.configuration_auto import CONFIG_MAPPING, CONFIG_MAPPING_NAMES  # noqa: E402

from moeplan.errors import SpecError  # noqa: E402
from moeplan.spec.hf import READERS, spec_from_hf_config  # noqa: E402
from moeplan.spec.readers.refused import REFUSED  # noqa: E402

MOE_KEY = re.compile(r"expert|moe", re.IGNORECASE)
MODELS = Path(__import__("transformers").__file__).parent / "models"
DOCS = Path(__file__).parents[1] / "docs" / "spec.md"


def _classes_mentioning_experts() -> set[str]:
    """Config classes whose source file mentions experts: a cheap pre-filter, so most model_types stay unbuilt."""
    names = set()
    for path in MODELS.glob("*/configuration_*.py"):
        text = path.read_text(errors="replace")
        if MOE_KEY.search(text):
            names.update(re.findall(r"^class (\w+)\(", text, re.MULTILINE))
    return names


def _moe_model_types() -> dict[str, str | None]:
    """MoE model_type → the model_type of its text_config (None when it is no container)."""
    found, candidates = {}, _classes_mentioning_experts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model_type in sorted(CONFIG_MAPPING_NAMES):
            if CONFIG_MAPPING_NAMES[model_type] not in candidates:
                continue
            try:
                config = CONFIG_MAPPING[model_type]().to_dict()
            except Exception:  # a config class that cannot be built from its defaults (checked below by name)
                found[model_type] = None
                continue
            subconfigs = {key: value for key, value in config.items() if isinstance(value, dict)}
            own = any(MOE_KEY.search(str(key)) for key in config)
            nested = any(MOE_KEY.search(str(key)) for sub in subconfigs.values() for key in sub)
            if own or nested:
                text = subconfigs.get("text_config", {}).get("model_type")
                found[model_type] = text
    return found


MOE_TYPES = _moe_model_types()


def _handled(model_type: str | None) -> bool:
    return model_type in READERS or model_type in REFUSED


def test_every_moe_model_type_is_read_or_refused():
    unhandled = sorted(t for t, text in MOE_TYPES.items() if not (_handled(t) or _handled(text)))
    assert not unhandled, f"MoE model_types of transformers neither read nor refused by moeplan: {unhandled}"


def test_catalogue_finds_the_known_families():
    """The detection itself works: it finds read, refused and container model_types."""
    assert {"mixtral", "deepseek_v3", "minimax_m2", "ernie4_5_moe", "switch_transformers"} <= MOE_TYPES.keys()
    assert MOE_TYPES["llama4"] == "llama4_text"


def test_read_and_refused_are_disjoint_and_refusals_name_real_model_types():
    assert not READERS.keys() & REFUSED.keys()
    assert not REFUSED.keys() - CONFIG_MAPPING_NAMES.keys(), "refusals of model_types transformers does not define"


def test_reader_modules_claim_disjoint_model_types():
    """READERS merges the reader modules' tables; a model_type claimed twice would silently take the last reader."""
    from moeplan.spec.readers import hybrid, moe_decoders, sparse_attention

    tables = [hybrid.READERS, moe_decoders.READERS, sparse_attention.READERS]
    claimed = [model_type for table in tables for model_type in table]
    assert len(claimed) == len(set(claimed))
    assert all(READERS[model_type] is table[model_type] for table in tables for model_type in table)


@pytest.mark.parametrize("model_type", sorted(REFUSED))
def test_refused_model_types_exit_with_their_reason(model_type: str):
    config = {"model_type": model_type, "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100}
    with pytest.raises(SpecError) as error:
        spec_from_hf_config(config, source="config.json")
    assert f"model_type {model_type!r} is not read by moeplan: {REFUSED[model_type]}" in str(error.value)


def test_docs_list_every_read_and_refused_model_type():
    text = DOCS.read_text()
    missing = sorted(t for t in [*READERS, *REFUSED] if f"`{t}`" not in text)
    assert not missing, f"docs/spec.md does not list {missing}"
