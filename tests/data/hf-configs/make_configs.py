"""Write the synthetic Hugging Face configs used by tests/test_transformers_crosscheck.py.

Each file is a real config.json produced by transformers' own config class (``to_json_file``; transformers 5
writes every key, as its ``save_pretrained`` does), with reduced sizes. Sizes differ between fields (hidden,
intermediate, expert and head sizes, vocabulary) so that a reader that confuses two of them cannot match
transformers' count by accident. The test also leaves keys out one at a time and renames them to their
aliases, so the readers' defaults and alternative key names are checked too.

Run from anywhere: ``python tests/data/hf-configs/make_configs.py`` (needs transformers).
"""

import json
from pathlib import Path

from transformers import (
    Dots1Config,
    Ernie4_5_MoeConfig,
    ExaoneMoeConfig,
    FlexOlmoConfig,
    Glm4MoeLiteConfig,
    HunYuanMoEV1Config,
    MiniMaxM2Config,
    SarvamMoEConfig,
    AfmoeConfig,
    BeamConfig,
    Cohere2MoeConfig,
    Kolibri1Config,
    LagunaConfig,
    MiMoV2FlashConfig,
    JetMoeConfig,
    AXK1Config,
    Gemma4TextConfig,
    AriaTextConfig,
    FlintConfig,
    GraniteMoeSWAConfig,
    HYV3Config,
    MellumConfig,
    SarvamMLAConfig,
    SolarOpenConfig,
    DbrxConfig,
    DeepseekV2Config,
    DeepseekV3Config,
    Glm4MoeConfig,
    GptOssConfig,
    GraniteMoeConfig,
    GraniteMoeSharedConfig,
    JambaConfig,
    Llama4TextConfig,
    LlamaConfig,
    MistralConfig,
    MixtralConfig,
    OlmoeConfig,
    PhimoeConfig,
    Qwen2Config,
    Qwen2MoeConfig,
    Qwen3Config,
    Qwen3MoeConfig,
)

HERE = Path(__file__).parent

CONFIGS = {
    "phimoe": PhimoeConfig(
        vocab_size=1031, hidden_size=96, intermediate_size=136, num_hidden_layers=3, num_attention_heads=6,
        num_key_value_heads=2, num_local_experts=5, num_experts_per_tok=2, attention_bias=True, lm_head_bias=True,
    ),
    "granitemoe": GraniteMoeConfig(
        vocab_size=1043, hidden_size=80, intermediate_size=56, num_hidden_layers=3, num_attention_heads=5,
        num_key_value_heads=1, num_local_experts=6, num_experts_per_tok=2, attention_bias=True, tie_word_embeddings=True,
    ),
    "granitemoeshared": GraniteMoeSharedConfig(
        vocab_size=1049, hidden_size=72, intermediate_size=40, num_hidden_layers=4, num_attention_heads=6,
        num_key_value_heads=3, num_local_experts=7, num_experts_per_tok=3, shared_intermediate_size=88,
    ),
    "glm4_moe": Glm4MoeConfig(
        vocab_size=1061, hidden_size=112, intermediate_size=200, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, moe_intermediate_size=48, n_routed_experts=8, num_experts_per_tok=3,
        n_shared_experts=1, first_k_dense_replace=1, attention_bias=True, use_qk_norm=False,
    ),
    "glm4_moe-qknorm": Glm4MoeConfig(
        vocab_size=1063, hidden_size=120, intermediate_size=216, num_hidden_layers=5, num_attention_heads=6,
        num_key_value_heads=3, head_dim=28, moe_intermediate_size=44, n_routed_experts=12, num_experts_per_tok=4,
        n_shared_experts=2, first_k_dense_replace=2, n_group=3, topk_group=2, attention_bias=False, use_qk_norm=True,
    ),
    "qwen2_moe": Qwen2MoeConfig(
        vocab_size=1069, hidden_size=88, intermediate_size=184, num_hidden_layers=7, num_attention_heads=4,
        num_key_value_heads=2, moe_intermediate_size=36, shared_expert_intermediate_size=104, num_experts=9,
        num_experts_per_tok=2, decoder_sparse_step=2, mlp_only_layers=[3], qkv_bias=False,
    ),
    "qwen3_moe": Qwen3MoeConfig(
        vocab_size=1087, hidden_size=104, intermediate_size=176, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, head_dim=20, moe_intermediate_size=52, num_experts=10, num_experts_per_tok=3,
        mlp_only_layers=[0],
    ),
    "deepseek_v2-no-q-lora": DeepseekV2Config(
        vocab_size=1091, hidden_size=128, intermediate_size=232, moe_intermediate_size=40, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2,
        first_k_dense_replace=1, q_lora_rank=None, kv_lora_rank=24, qk_nope_head_dim=20, qk_rope_head_dim=12,
        v_head_dim=18, n_group=1, topk_group=1,
    ),
    "deepseek_v3": DeepseekV3Config(
        vocab_size=1093, hidden_size=136, intermediate_size=248, moe_intermediate_size=28, num_hidden_layers=5,
        num_attention_heads=6, num_key_value_heads=6, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4,
        first_k_dense_replace=2, n_group=4, topk_group=2, q_lora_rank=52, kv_lora_rank=36, qk_nope_head_dim=22,
        qk_rope_head_dim=10, v_head_dim=26, num_mtp_layers=1,
    ),
    "mixtral-tied": MixtralConfig(
        vocab_size=1097, hidden_size=64, intermediate_size=152, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=4, num_local_experts=6, num_experts_per_tok=2, tie_word_embeddings=True,
    ),
    "olmoe": OlmoeConfig(
        vocab_size=1103, hidden_size=96, intermediate_size=44, num_hidden_layers=3, num_attention_heads=12,
        num_key_value_heads=4, num_experts=11, num_experts_per_tok=3, eos_token_id=2,
    ),
    "dbrx": DbrxConfig(
        vocab_size=1109, d_model=84, n_heads=6, n_layers=3, max_seq_len=256,
        attn_config={"kv_n_heads": 2, "rope_theta": 10000.0}, ffn_config={"ffn_hidden_size": 60, "moe_num_experts": 5, "moe_top_k": 2},
    ),
    "gpt_oss": GptOssConfig(
        vocab_size=1117, hidden_size=90, intermediate_size=66, num_hidden_layers=4, num_attention_heads=6,
        num_key_value_heads=2, head_dim=14, num_local_experts=8, num_experts_per_tok=2, sliding_window=32,
    ),
    "llama4_text": Llama4TextConfig(
        vocab_size=1123, hidden_size=80, intermediate_size=48, intermediate_size_mlp=168, num_hidden_layers=6,
        num_attention_heads=5, num_key_value_heads=1, head_dim=18, num_local_experts=4, num_experts_per_tok=1,
        interleave_moe_layer_step=2, use_qk_norm=True, attention_chunk_size=64,
    ),
    "jamba-auto-dt-rank": JambaConfig(
        vocab_size=1129, hidden_size=72, intermediate_size=100, num_hidden_layers=7, num_attention_heads=6,
        num_key_value_heads=2, num_experts=5, num_experts_per_tok=2, attn_layer_period=3, attn_layer_offset=1,
        expert_layer_period=2, expert_layer_offset=0, mamba_dt_rank="auto",
    ),
    "jamba-explicit-dt-rank": JambaConfig(
        vocab_size=1151, hidden_size=60, intermediate_size=92, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=4, num_experts=3, num_experts_per_tok=1, attn_layer_period=2, attn_layer_offset=0,
        expert_layer_period=3, expert_layer_offset=2, mamba_dt_rank=7, mamba_d_state=12, mamba_d_conv=3,
        mamba_expand=3, mamba_conv_bias=False, mamba_proj_bias=True,
    ),
    "llama": LlamaConfig(
        vocab_size=1153, hidden_size=100, intermediate_size=172, num_hidden_layers=3, num_attention_heads=10,
        num_key_value_heads=5, attention_bias=True, mlp_bias=True,
    ),
    "mistral": MistralConfig(
        vocab_size=1163, hidden_size=76, intermediate_size=148, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=24, sliding_window=48,
    ),
    "qwen2-tied": Qwen2Config(
        vocab_size=1171, hidden_size=92, intermediate_size=164, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=1, tie_word_embeddings=True,
    ),
    "qwen3": Qwen3Config(
        vocab_size=1181, hidden_size=108, intermediate_size=196, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=3, head_dim=26, attention_bias=True,
    ),
    "ernie4_5_moe": Ernie4_5_MoeConfig(
        vocab_size=1187, hidden_size=84, intermediate_size=148, num_hidden_layers=6, num_attention_heads=6,
        num_key_value_heads=2, moe_intermediate_size=36, moe_k=2, moe_num_experts=7, moe_num_shared_experts=2,
        moe_layer_start_index=1, moe_layer_end_index=4, moe_layer_interval=2, use_bias=True, tie_word_embeddings=False,
    ),
    "dots1": Dots1Config(
        vocab_size=1193, hidden_size=96, intermediate_size=176, moe_intermediate_size=28, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=2, n_routed_experts=9, n_shared_experts=2, num_experts_per_tok=3,
        first_k_dense_replace=1, attention_bias=True, sliding_window=64, max_window_layers=2,
    ),
    "hunyuan_v1_moe": HunYuanMoEV1Config(
        vocab_size=1201, hidden_size=88, intermediate_size=60, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=26, num_experts=5, moe_topk=2, attention_bias=True,
    ),
    "minimax_m2": MiniMaxM2Config(
        vocab_size=1213, hidden_size=80, intermediate_size=44, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=2, head_dim=12, num_local_experts=6, num_experts_per_tok=2,
    ),
    "flex_olmo": FlexOlmoConfig(
        vocab_size=100361, hidden_size=72, intermediate_size=52, num_hidden_layers=3, num_attention_heads=6,
        num_key_value_heads=3, num_experts=5, num_experts_per_tok=2, attention_bias=True,
    ),
    "exaone_moe": ExaoneMoeConfig(
        vocab_size=1223, hidden_size=104, intermediate_size=188, num_hidden_layers=6, num_attention_heads=8,
        num_key_value_heads=2, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2, num_shared_experts=1,
        first_k_dense_replace=2, sliding_window=32, sliding_window_pattern=3,
    ),
    "glm4_moe_lite": Glm4MoeLiteConfig(
        vocab_size=1229, hidden_size=112, intermediate_size=204, moe_intermediate_size=40, num_hidden_layers=4,
        num_attention_heads=4, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, kv_lora_rank=24,
        q_lora_rank=44, qk_rope_head_dim=8, qk_nope_head_dim=20, v_head_dim=18, attention_bias=True,
    ),
    "sarvam_moe": SarvamMoEConfig(
        vocab_size=1231, hidden_size=116, intermediate_size=212, moe_intermediate_size=36, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=22, n_routed_experts=6, n_shared_experts=1,
        num_experts_per_tok=2, first_k_dense_replace=1, use_qk_norm=True, attention_bias=True,
    ),
    "sarvam_mla": SarvamMLAConfig(
        vocab_size=1237, hidden_size=124, intermediate_size=220, moe_intermediate_size=34, num_hidden_layers=3,
        num_attention_heads=4, n_routed_experts=6, n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1,
        q_lora_rank=None, kv_lora_rank=26, qk_nope_head_dim=14, qk_rope_head_dim=6, v_head_dim=16,
    ),
    "solar_open": SolarOpenConfig(
        vocab_size=1249, hidden_size=92, moe_intermediate_size=38, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=30, n_routed_experts=7, n_shared_experts=2, num_experts_per_tok=3,
        attention_bias=True,
    ),
    "mellum": MellumConfig(
        vocab_size=1259, hidden_size=100, intermediate_size=164, moe_intermediate_size=42, num_hidden_layers=4,
        num_attention_heads=5, num_key_value_heads=1, head_dim=16, num_local_experts=6, num_experts_per_tok=2,
        sliding_window=40, layer_types=["sliding_attention", "full_attention"] * 2, mlp_layer_types=["dense"] + ["sparse"] * 3,
        attention_bias=True,
    ),
    "aria_text": AriaTextConfig(
        vocab_size=1277, hidden_size=76, intermediate_size=46, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=22, moe_num_experts=5, moe_topk=2, moe_num_shared_experts=2, attention_bias=True,
        mlp_bias=True,
    ),
    "hy_v3": HYV3Config(
        vocab_size=1279, hidden_size=108, intermediate_size=196, moe_intermediate_size=30, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=2, head_dim=20, num_experts=7, num_experts_per_tok=2,
        num_shared_experts=1, attention_bias=True, mlp_bias=True,
    ),
    "flint": FlintConfig(
        vocab_size=1283, hidden_size=88, intermediate_size=148, moe_intermediate_size=26, num_hidden_layers=7,
        num_attention_heads=4, num_key_value_heads=2, head_dim=18, num_experts=6, num_experts_per_tok=2,
        shared_expert_intermediate_size=58, sliding_window=24, attention_bias=True,
    ),
    "granitemoe_swa": GraniteMoeSWAConfig(
        vocab_size=1289, hidden_size=84, intermediate_size=50, num_hidden_layers=5, num_attention_heads=6,
        num_key_value_heads=2, num_local_experts=5, num_experts_per_tok=2, sliding_window=20, attention_bias=True,
    ),
    "cohere2_moe": Cohere2MoeConfig(
        vocab_size=1291, hidden_size=96, intermediate_size=44, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2, head_dim=22, num_experts=5, num_experts_per_tok=2, num_shared_experts=2,
        prefix_dense_intermediate_size=132, mlp_layer_types=["dense"] + ["sparse"] * 5, sliding_window=16,
        sliding_window_pattern=3, attention_bias=True, tie_word_embeddings=False,
    ),
    "afmoe": AfmoeConfig(
        vocab_size=1297, hidden_size=80, intermediate_size=140, moe_intermediate_size=30, num_hidden_layers=5,
        num_dense_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=18, num_experts=6,
        num_experts_per_tok=2, num_shared_experts=1, global_attn_every_n_layers=3, sliding_window=12, attention_bias=True,
    ),
    "kolibri1": Kolibri1Config(
        vocab_size=1301, hidden_size=72, moe_intermediate_size=26, num_hidden_layers=6, num_attention_heads=6,
        num_key_value_heads=2, head_dim=14, num_local_experts=7, num_experts_per_tok=2,
        shared_expert_intermediate_size=34, sliding_window=10,
    ),
    "beam": BeamConfig(
        vocab_size=1303, hidden_size=104, intermediate_size=180, moe_intermediate_size=24, num_hidden_layers=7,
        num_attention_heads=4, num_key_value_heads=2, head_dim=26, num_experts=8, num_experts_per_tok=2, n_group=4,
        topk_group=2, sliding_window=14, attention_bias=True,
    ),
    "laguna": LagunaConfig(
        vocab_size=1307, hidden_size=68, intermediate_size=116, moe_intermediate_size=22, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=3, head_dim=10, num_experts=5, num_experts_per_tok=2,
        shared_expert_intermediate_size=28, sliding_window=12, layer_types=["sliding_attention", "full_attention"] * 2,
        attention_bias=True,
    ),
    "mimo_v2_flash": MiMoV2FlashConfig(
        vocab_size=1319, hidden_size=92, intermediate_size=156, moe_intermediate_size=22, num_hidden_layers=7,
        num_attention_heads=4, num_key_value_heads=1, head_dim=24, v_head_dim=14, n_routed_experts=6,
        num_experts_per_tok=2, sliding_window=17, attention_bias=True,
    ),
    "jetmoe": JetMoeConfig(
        vocab_size=1321, hidden_size=76, intermediate_size=50, num_hidden_layers=3, num_key_value_heads=3,
        kv_channels=14, num_local_experts=5, num_experts_per_tok=2, tie_word_embeddings=False,
    ),
    "axk1": AXK1Config(
        vocab_size=1327, hidden_size=100, intermediate_size=172, moe_intermediate_size=26, num_hidden_layers=4,
        num_attention_heads=4, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
        q_lora_rank=30, kv_lora_rank=18, qk_nope_head_dim=12, qk_rope_head_dim=8, v_head_dim=14,
        mlp_layer_types=["dense", "sparse", "dense", "sparse"],
    ),
    "gemma4_text-moe": Gemma4TextConfig(
        vocab_size=1361, hidden_size=88, intermediate_size=132, num_hidden_layers=8, num_attention_heads=4,
        num_key_value_heads=2, head_dim=12, global_head_dim=20, num_global_key_value_heads=1, attention_k_eq_v=True,
        hidden_size_per_layer_input=0, enable_moe_block=True, num_experts=6, top_k_experts=2, moe_intermediate_size=18,
        sliding_window=24, tie_word_embeddings=False, attention_bias=True,
    ),
    "gemma4_text": Gemma4TextConfig(
        vocab_size=1367, hidden_size=84, intermediate_size=144, num_hidden_layers=7, num_attention_heads=6,
        num_key_value_heads=3, head_dim=10, global_head_dim=22, hidden_size_per_layer_input=0, sliding_window=18,
    ),
}
"""File stem -> config object."""

RAW_OVERRIDES = {"jamba-auto-dt-rank": {"mamba_dt_rank": "auto"}}
"""Keys written as a user would write them where the config class resolves them (JambaConfig turns 'auto'
into ceil(H / 16) on construction; the file keeps 'auto' so the reader's own resolution is tested)."""


def main() -> None:
    for stem, config in CONFIGS.items():
        path = HERE / f"{stem}.json"
        config.to_json_file(path)
        if stem in RAW_OVERRIDES:
            path.write_text(json.dumps(json.loads(path.read_text()) | RAW_OVERRIDES[stem], indent=2, sort_keys=True) + "\n")
        print(path.name)


if __name__ == "__main__":
    main()
