"""Write the synthetic configs of the hybrid and sparse-attention architectures (linear attention, Mamba-2, short
convolutions, DSA indexers) used by tests/test_transformers_crosscheck.py, as make_configs.py does for the others:
each is what the transformers config class writes (``to_json_file``), with reduced sizes that differ between
fields, so a reader that confuses two of them cannot match transformers' count by accident. time_step_limit
(no parameters) is set finite because JSON cannot hold the classes' default infinity; Kimi Linear's and Ling-2.5's
vocabularies hold their default pad_token_id (163839, 156892), which torch requires when the test leaves it out.

Run from anywhere: ``python tests/data/hf-configs/make_hybrid_configs.py`` (needs transformers).
"""

from pathlib import Path

from transformers import (
    BailingHybridConfig,
    DeepseekV32Config,
    GlmMoeDsaConfig,
    GraniteMoeHybridConfig,
    KimiLinearConfig,
    LaraMiniConfig,
    Lfm2MoeConfig,
    MiniMaxConfig,
    NemotronHConfig,
    Qwen3_5Config,
    Qwen3_5MoeConfig,
    Qwen3NextConfig,
)

HERE = Path(__file__).parent

CONFIGS = {
    "qwen3_next": Qwen3NextConfig(
        vocab_size=1201, hidden_size=96, intermediate_size=184, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2, head_dim=20, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=12,
        linear_value_head_dim=14, linear_conv_kernel_dim=3, moe_intermediate_size=28, shared_expert_intermediate_size=36,
        num_experts=6, num_experts_per_tok=2, mlp_only_layers=[1], full_attention_interval=3,
    ),
    "qwen3_5_moe": Qwen3_5MoeConfig(
        text_config=dict(
            vocab_size=1207, hidden_size=88, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1,
            head_dim=22, linear_num_key_heads=2, linear_num_value_heads=6, linear_key_head_dim=10,
            linear_value_head_dim=12, moe_intermediate_size=26, shared_expert_intermediate_size=34, num_experts=7,
            num_experts_per_tok=3,
        ),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=88),
    ),
    "qwen3_5": Qwen3_5Config(
        text_config=dict(
            vocab_size=1289, hidden_size=84, intermediate_size=148, num_hidden_layers=5, num_attention_heads=6,
            num_key_value_heads=2, head_dim=14, linear_num_key_heads=3, linear_num_value_heads=6,
            linear_key_head_dim=10, linear_value_head_dim=8, layer_types=["linear_attention", "full_attention"] * 2
            + ["full_attention"],
        ),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=84),
    ),
    "kimi_linear": KimiLinearConfig(
        vocab_size=163843, hidden_size=88, intermediate_size=168, moe_intermediate_size=36, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=20, q_lora_rank=None, qk_rope_head_dim=8,
        qk_nope_head_dim=12, v_head_dim=14, num_experts=8, num_experts_per_token=2, num_shared_experts=2,
        linear_head_dim=16, linear_num_heads=3, linear_conv_kernel_dim=3, first_k_dense_replace=2,
    ),
    "bailing_hybrid": BailingHybridConfig(
        vocab_size=157201, hidden_size=80, intermediate_size=144, moe_intermediate_size=22, num_hidden_layers=5,
        num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=18, q_lora_rank=None, qk_rope_head_dim=6,
        qk_nope_head_dim=10, v_head_dim=12, head_dim=14, short_conv_kernel_size=3, layer_group_size=3,
        num_experts=7, num_experts_per_token=2, num_shared_experts=2, first_k_dense_replace=1, num_expert_group=1,
        topk_group=1,
    ),
    "lara_mini": LaraMiniConfig(
        vocab_size=1283, hidden_size=72, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2, head_dim=18,
        sliding_window=16, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=10,
        linear_value_head_dim=14, linear_conv_kernel_dim=3, moe_intermediate_size=22, shared_expert_intermediate_size=30,
        num_experts=5, num_experts_per_tok=2, eos_token_id=1, tie_word_embeddings=False,
    ),
    "minimax": MiniMaxConfig(
        vocab_size=1223, hidden_size=80, intermediate_size=52, num_hidden_layers=4, num_attention_heads=5,
        num_key_value_heads=1, head_dim=12, num_local_experts=6, num_experts_per_tok=2,
    ),
    "nemotron_h": NemotronHConfig(
        vocab_size=1229, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=18,
        layers_block_type=["linear_attention", "moe", "full_attention", "mlp", "linear_attention", "moe"],
        intermediate_size=100, ssm_state_size=10, mamba_num_heads=6, mamba_head_dim=12, n_groups=2, conv_kernel=3,
        n_routed_experts=5, n_shared_experts=1, moe_intermediate_size=30, moe_shared_expert_intermediate_size=44,
        num_experts_per_tok=2, time_step_limit=(0.0, 1e9),
    ),
    "nemotron_h-latent": NemotronHConfig(
        vocab_size=1279, hidden_size=56, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
        layers_block_type=["linear_attention", "moe", "linear_attention", "moe", "full_attention", "moe"],
        ssm_state_size=12, mamba_num_heads=4, mamba_head_dim=10, n_groups=1, conv_kernel=4, n_routed_experts=6,
        n_shared_experts=1, moe_intermediate_size=26, moe_shared_expert_intermediate_size=38, moe_latent_size=24,
        num_experts_per_tok=2, time_step_limit=(0.0, 1e9),
    ),
    "granitemoehybrid": GraniteMoeHybridConfig(
        vocab_size=1231, hidden_size=48, intermediate_size=40, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, layer_types=["linear_attention", "linear_attention", "full_attention", "linear_attention"],
        mamba_n_heads=6, mamba_d_head=16, mamba_expand=2, mamba_n_groups=2, mamba_d_state=10, mamba_d_conv=3,
        mamba_conv_bias=False, mamba_proj_bias=True, num_local_experts=5, num_experts_per_tok=2,
        shared_intermediate_size=36, time_step_limit=None,
    ),
    "lfm2_moe": Lfm2MoeConfig(
        vocab_size=1237, hidden_size=72, intermediate_size=120, moe_intermediate_size=26, num_hidden_layers=5,
        num_attention_heads=6, num_key_value_heads=2, num_dense_layers=2, num_experts=6, num_experts_per_tok=2,
        layer_types=["conv", "conv", "full_attention", "conv", "full_attention"], conv_L_cache=4, conv_bias=True,
    ),
    "deepseek_v32": DeepseekV32Config(
        vocab_size=1249, hidden_size=104, intermediate_size=192, moe_intermediate_size=24, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
        first_k_dense_replace=1, n_group=2, topk_group=1, q_lora_rank=40, kv_lora_rank=20, qk_nope_head_dim=12,
        qk_rope_head_dim=8, v_head_dim=14, index_n_heads=3, index_head_dim=16, index_topk=64,
    ),
    "glm_moe_dsa": GlmMoeDsaConfig(
        vocab_size=1259, hidden_size=112, intermediate_size=208, moe_intermediate_size=20, num_hidden_layers=5,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=6, n_shared_experts=2, num_experts_per_tok=2,
        first_k_dense_replace=2, q_lora_rank=36, kv_lora_rank=18, qk_nope_head_dim=14, qk_rope_head_dim=6,
        v_head_dim=16, index_n_heads=2, index_head_dim=10, index_topk=32,
        indexer_types=["full", "full", "shared", "full", "shared"],
    ),
}
"""File stem -> config object."""


def main() -> None:
    for stem, config in CONFIGS.items():
        path = HERE / f"{stem}.json"
        config.to_json_file(path)
        print(path.name)


if __name__ == "__main__":
    main()
