"""Model types of the pinned transformers release (5.24) that define mixture-of-experts layers and that
moeplan refuses by name, each with the reason. A model_type leaves this table when a reader for it lands
in moeplan.spec.hf.READERS (tests/test_architecture_catalogue.py checks that every MoE model_type of the
installed transformers is in one of the two)."""

_NOT_A_DECODER = "not a decoder-only language model"
_ENCODER_DECODER = "an encoder-decoder (translation/T5-style) model; moeplan plans decoder-only models"
_BEYOND = "an MoE decoder whose layers moeplan cannot describe yet, so it cannot count it exactly"
_MULTIMODAL_TEXT = "the text decoder of a multimodal model that moeplan has no reader for yet"

REFUSED: dict[str, str] = {
    # not decoder-only language models
    "nllb-moe": _ENCODER_DECODER,
    "switch_transformers": _ENCODER_DECODER,
    "vitpose_backbone": f"{_NOT_A_DECODER} (a vision backbone with expert heads)",
    "vitpose": f"{_NOT_A_DECODER} (pose estimation)",
    "openai_privacy_filter": f"{_NOT_A_DECODER} (a token classifier)",
    "dots3_note_vision_encoder": f"{_NOT_A_DECODER} (a vision encoder)",
    "qwen3_omni_moe_talker_text": f"{_NOT_A_DECODER} of text (Qwen3-Omni's speech talker)",
    "gemma4_assistant": "a speculative-decoding draft model attached to a Gemma-4 target, not a model to plan on its own",
    # MoE decoders whose layers moeplan's spec cannot describe yet
    "axk2": f"{_BEYOND} (an MLP inside each layer norm, a gated sparse-attention indexer)",
    "deepseek_v4": f"{_BEYOND} (hyper-connections mixing several residual streams, compressed sparse attention)",
    "hy_v4": f"{_BEYOND} (hyper-connections mixing several residual streams, a sparse-attention indexer, sinks)",
    "doge": f"{_BEYOND} (dynamic-mask attention with its own A and dt projection, learned residual scales)",
    "longcat_flash": f"{_BEYOND} (two attention blocks and two dense MLPs per layer beside a shortcut MoE with "
                     "zero-computation experts); transformers 5.24 also gives the zero-computation experts gate_up "
                     "weights the checkpoint does not hold (741B parameters for the 560B model)",
    "zaya": f"{_BEYOND} (an MLP router with its own norm, learned residual scales, a fused QKV with a temperature)",
    "step3p5": "Step-3.7's text decoder, which transformers builds only inside its multimodal model; no reader yet",
    # text decoders of multimodal models (their containers resolve to these through text_config)
    "deepseek_ocr2_text": _MULTIMODAL_TEXT,
    "diffusion_gemma_text": f"{_MULTIMODAL_TEXT} (a diffusion decoder, not autoregressive)",
    "dots3_note_text": _MULTIMODAL_TEXT,
    "ernie4_5_vl_moe_text": f"{_MULTIMODAL_TEXT} (text and vision experts in each MoE layer)",
    "glm5_next_text": _MULTIMODAL_TEXT,
    "hy_v4_vl_text": _MULTIMODAL_TEXT,
    "inkling_text": _MULTIMODAL_TEXT,
    "inkling2_text": _MULTIMODAL_TEXT,
    "inkling2_loop_text": _MULTIMODAL_TEXT,
    "mistral_large4_text": _MULTIMODAL_TEXT,
    "muse_spark_text": _MULTIMODAL_TEXT,
    "qwen4_exp_text": _MULTIMODAL_TEXT,
    "unlimited_ocr_text": _MULTIMODAL_TEXT,
}
"""model_type → why moeplan refuses it."""
