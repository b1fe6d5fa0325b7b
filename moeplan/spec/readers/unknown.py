"""What moeplan does with a config whose model_type it has no reader for.

A config of an unknown architecture is read (as a dense Llama-style decoder, with a warning that becomes
part of the result) only when every key that can change a count is one that reading understands. Any
other key - experts, shared experts, layer types, per-layer patterns, extra attention modules, state-space
layers, or a key moeplan has never seen - could change the count, so the config is refused (exit 2) with the
keys named. A model_type moeplan knows but does not read (``REFUSED``) is refused with its reason.
"""

import re

from moeplan.errors import SpecError
from moeplan.spec.readers.refused import REFUSED

GENERIC_KEYS = frozenset({
    "num_hidden_layers", "hidden_size", "vocab_size", "tie_word_embeddings", "intermediate_size",
    "max_position_embeddings", "num_attention_heads", "num_key_value_heads", "head_dim", "attention_bias", "mlp_bias",
})
"""Keys the generic (Llama) reading places: together they fix every parameter of a Llama decoder."""

NEUTRAL_KEYS = frozenset({
    # PretrainedConfig's own keys and those transformers 4 wrote into every config.json
    "_name_or_path", "architectures", "auto_map", "model_type", "transformers_version", "dtype", "torch_dtype",
    "id2label", "label2id", "problem_type", "return_dict", "output_attentions", "output_hidden_states",
    "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder",
    "torchscript", "use_bfloat16", "tf_legacy_loss", "pruned_heads", "finetuning_task", "task_specific_params",
    "tokenizer_class", "prefix", "cross_attention_hidden_size", "_attn_implementation", "attn_implementation",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    # generation settings transformers 4 stored beside the architecture
    "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty",
    "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
    "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
    "suppress_tokens", "begin_suppress_tokens", "num_logits_to_keep",
    # numerics, initialisation, dropout, rotary tables, caching: no parameters
    "hidden_act", "initializer_range", "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "attention_dropout",
    "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop", "emb_pdrop", "rope_theta", "rope_scaling",
    "rope_parameters", "use_cache", "pretraining_tp", "quantization_config",
})
"""Keys that never change a parameter count or a cache size (token ids, generation, numerics, rotary tables).
quantization_config changes bytes, not counts, and is kept on the spec as written."""

WHAT_TO_DO = (
    "describe the model in a spec file (start from one: `moeplan spec mixtral-8x7b > model.yaml`, edit it, "
    "`moeplan estimate model.yaml`), or build it from flags (`--layers --hidden --heads --vocab --experts --top-k "
    "--expert-intermediate`, `--set moe.…`), or report the architecture so moeplan can read it"
)

def _empty(value) -> bool:
    """A value that describes nothing (null, false, zero, empty), so the key cannot add parameters."""
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def _all_full_attention(value) -> bool:
    return isinstance(value, list) and all(kind == "full_attention" for kind in value)


def unplaced_keys(config: dict) -> list[str]:
    """Keys of a config that the generic reading cannot place and that could change a count."""
    return sorted(
        key
        for key, value in config.items()
        if key not in GENERIC_KEYS
        and key not in NEUTRAL_KEYS
        and not _empty(value)
        and not (key == "layer_types" and _all_full_attention(value))
    )


_EXPERT_KEY = re.compile(r"expert|moe", re.IGNORECASE)


def check_dense(config: dict, model_type: str | None, source: str) -> None:
    """Refuse a config of a dense model_type (llama, mistral, qwen2, qwen3) whose keys describe experts: transformers'
    dense class would ignore them, but the checkpoint (usually with its own modeling code, auto_map) is an MoE."""
    keys = sorted(key for key, value in config.items() if _EXPERT_KEY.search(key) and not _empty(value))
    if keys:
        raise SpecError(
            f"{source}: model_type {model_type!r} is a dense architecture, but the config describes experts "
            f"({', '.join(keys)}): its own code builds another model than {model_type}, and moeplan would count "
            f"it as dense; {WHAT_TO_DO}"
        )


def check_unknown(config: dict, model_type: str | None, source: str) -> str:
    """Refuse a config moeplan cannot count exactly (SpecError, exit 2); otherwise the warning that goes with
    reading it as a dense Llama-style decoder."""
    if model_type in REFUSED:
        raise SpecError(f"{source}: model_type {model_type!r} is not read by moeplan: {REFUSED[model_type]}; {WHAT_TO_DO}")
    unplaced = unplaced_keys(config)
    if unplaced:
        raise SpecError(
            f"{source}: unknown model_type {model_type!r}; moeplan cannot place the keys {', '.join(unplaced)} "
            f"(they may describe experts, layer patterns or modules it would not count), so it refuses to guess a count; "
            f"{WHAT_TO_DO}"
        )
    used = ", ".join(sorted(key for key in GENERIC_KEYS if not _empty(config.get(key))))
    return (
        f"unknown model_type {model_type!r} read as a dense Llama-style decoder from the keys {used} "
        f"(its other keys change no count); check the result against the checkpoint"
    )
