"""Built-in presets: the Hugging Face configs shipped in moeplan/data/configs and the spec files in
moeplan/data/paper (systems known only from papers). A preset's name is its file name."""

import difflib
import json
from functools import cache
from importlib.resources import files

from moeplan.errors import SpecError
from moeplan.spec.hf import spec_from_hf_config
from moeplan.spec.model import ModelSpec
from moeplan.spec.specfile import spec_from_document

_DATA = files("moeplan") / "data"

PRESET_ORIGINS = {
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-v0.1 config.json",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B-v0.1 config.json",
    "deepseek-v3": "deepseek-ai/DeepSeek-V3 config.json (fp8 quantization_config kept)",
    "deepseek-v2": "deepseek-ai/DeepSeek-V2 config.json",
    "deepseek-v2-lite": "deepseek-ai/DeepSeek-V2-Lite config.json",
    "kimi-k2": "moonshotai/Kimi-K2-Instruct config.json (DeepSeek-V3 architecture)",
    "qwen1.5-moe-a2.7b": "Qwen/Qwen1.5-MoE-A2.7B config.json",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B config.json",
    "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B config.json",
    "gpt-oss-20b": "openai/gpt-oss-20b config.json (MXFP4 quantization_config kept)",
    "gpt-oss-120b": "openai/gpt-oss-120b config.json (MXFP4 quantization_config kept)",
    "llama-4-scout": "meta-llama/Llama-4-Scout-17B-16E-Instruct config.json, text part",
    "llama-4-maverick": "meta-llama/Llama-4-Maverick-17B-128E-Instruct config.json, text part",
    "dbrx": "databricks/dbrx-instruct config.json",
    "olmoe-1b-7b": "allenai/OLMoE-1B-7B-0924, assembled from its published config fields",
    "jamba-v0.1": "ai21labs/Jamba-v0.1, assembled from its published config fields",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct config.json (dense)",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B config.json (dense)",
    "qwen3-32b": "Qwen/Qwen3-32B config.json (dense)",
    "minimax-m2": "MiniMaxAI/MiniMax-M2 config.json (fields as reproduced in a public MiniMax-M2.5 quantization guide, "
                  "which shares the architecture; the Hub file's fp8 quantization_config, e4m3 in 128×128 blocks, kept)",
    "qwen3-next-80b-a3b": "Qwen/Qwen3-Next-80B-A3B-Instruct config.json fields as published (model card: 48 layers, "
                          "12 × (3 gated DeltaNet + 1 gated attention), 512 experts top-10 + 1 shared)",
    "nemotron-3-nano-30b-a3b": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B config.json (as transcribed in full in public "
                               "test code; Mamba-2, attention and MoE layers)",
    "lfm2-8b-a1b": "LiquidAI/LFM2-8B-A1B config.json architecture fields (as transcribed in public test code, "
                   "layer_types in full; embeddings tied, the class default)",
    "deepseek-v3.2": "deepseek-ai/DeepSeek-V3.2 config.json fields as published: DeepSeek-V3's config.json (fp8 "
                     "quantization_config kept) with model_type deepseek_v32 and the indexer's index_n_heads 64, "
                     "index_head_dim 128, index_topk 2048",
    "deepseek-r1": "deepseek-ai/DeepSeek-R1 config.json (DeepSeek-V3's architecture and fields; fp8 quantization_config kept)",
    "deepseek-v3.1": "deepseek-ai/DeepSeek-V3.1 config.json (DeepSeek-V3's architecture and fields; fp8 quantization_config kept)",
    "glm-4.5": "zai-org/GLM-4.5 config.json",
    "glm-4.5-air": "zai-org/GLM-4.5-Air config.json",
    "phi-3.5-moe": "microsoft/Phi-3.5-MoE-instruct config.json (longrope factor lists left out: they change no count)",
    "qwen2-57b-a14b": "Qwen/Qwen2-57B-A14B config.json",
    "granite-3.1-3b-a800m": "ibm-granite/granite-3.1-3b-a800m-instruct config.json (Granite MoE)",
    "kimi-k2.5": "moonshotai/Kimi-K2.5 config.json, text_config (Kimi-K2's DeepSeek-V3 text model, 256K context) with "
                 "its compressed-tensors INT4 quantization_config (routed experts, group 32); the vision tower is not included",
}
"""Where each shipped Hugging Face config came from (see moeplan/data/configs/README.md)."""


def preset_for_repo(repo_id: str) -> str | None:
    """The preset built from a Hugging Face repository's config.json (case-insensitive id), if any."""
    wanted = repo_id.lower()
    return next((name for name, origin in PRESET_ORIGINS.items() if origin.split()[0].rstrip(",;:").lower() == wanted), None)


def _config_files() -> dict[str, object]:
    return {p.name.removesuffix(".json"): p for p in (_DATA / "configs").iterdir() if p.name.endswith(".json")}


def _paper_files() -> dict[str, object]:
    return {p.name.removesuffix(".yaml"): p for p in (_DATA / "paper").iterdir() if p.name.endswith(".yaml")}


def preset_names() -> list[str]:
    """All preset names, sorted."""
    return sorted({*_config_files(), *_paper_files()})


@cache
def load_preset(name: str) -> ModelSpec:
    """The spec of a preset; an unknown name raises SpecError with the nearest names."""
    configs, papers = _config_files(), _paper_files()
    if name in configs:
        source = f"preset {name}: {PRESET_ORIGINS.get(name, 'Hugging Face config.json')}"
        return spec_from_hf_config(json.loads(configs[name].read_text()), name=name, source=source)
    if name in papers:
        import yaml

        document = yaml.safe_load(papers[name].read_text())
        return spec_from_document(document, source=f"preset {name}")
    close = difflib.get_close_matches(name.lower(), preset_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; presets: {', '.join(preset_names())}"
    raise SpecError(f"unknown preset or file {name!r}{hint}")
