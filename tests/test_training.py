"""Training memory against Megatron-LM's theoretical memory (megatron/training/theoretical_memory_usage.py,
re-implemented below from its source) and Korthikanti et al. 2022 (arXiv:2205.05198)."""

import math

import pytest

from moeplan.accounting.memory import memory_report
from moeplan.accounting.params import count_params
from moeplan.accounting.training import (
    activation_bytes,
    attention_activation_per_token,
    bytes_per_param,
    layer_activation,
    mlp_activation_per_token,
    stage_activation,
    training_state,
)
from moeplan.hardware.catalogue import get_gpu
from moeplan.layout import Layout, stage_layers
from moeplan.spec.model import AttentionSpec, ModelSpec
from moeplan.spec.presets import load_preset


def gpt(layers=24, hidden=2048, heads=16, vocab=51200) -> ModelSpec:
    """A GPT-style dense model as Megatron-LM's formulas assume: MHA, 4h GeLU MLP, LayerNorm, no biases."""
    return ModelSpec(num_layers=layers, hidden_size=hidden, vocab_size=vocab, attention=AttentionSpec(num_heads=heads),
                     intermediate_size=4 * hidden, dense_mlp_gated=False, norm="layernorm")


def megatron_activation_memory(s, b, h, ffn, layers, vocab, tp, pp):
    """compute_activation_memory (sequence parallel + selective recomputation), non-interleaved, micro-batches ≥ pp."""
    memory = s * b * h * (18 + 4 * (ffn / h)) * layers
    memory += 8 * s * b * pp  # input to embedding
    memory += s * b * h * pp  # dropout in embedding layer
    if pp == 1:
        memory += s * b * h * 4 * (1 + vocab / h)  # inputs to output layer and CE loss
    return memory / tp


def megatron_parameters(layers, h, ffn, vocab):
    """compute_weight_and_optimizer_memory's count for an untied dense LayerNorm model."""
    layer = 2 * h * (ffn + 2) + 2 * h * h * 2  # MLP and two LayerNorms; attention with as many query groups as heads
    return layer * layers + 2 * h + 2 * h * vocab


def test_bytes_per_param():
    # Megatron: 18 B per parameter without the distributed optimizer (2 bf16 + 4 fp32 grad + 12 optimizer)
    assert bytes_per_param("fp32") == 18
    assert bytes_per_param("bf16") == 16


@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (8, 1), (2, 4), (8, 8)])
def test_activations_equal_megatron_formula(tp, pp):
    spec = gpt()
    s, b = 2048, 4
    layout = Layout(tp=tp, pp=pp)
    ours = activation_bytes(stage_activation(spec, layout, 0, stage_layers(24, pp)[0], "selective"), b, s, tp)
    assert ours == math.ceil(megatron_activation_memory(s, b, 2048, 8192, 24, 51200, tp, pp))


def test_weights_and_optimizer_equal_megatron_formula():
    spec = gpt()
    params = count_params(spec).total
    assert params == megatron_parameters(24, 2048, 8192, 51200)
    # use_distributed_optimizer: 6 + 12 / dp bytes per parameter
    state = training_state(params, 0, Layout(dp=8), zero=1)
    assert state.params_bytes + state.gradients_bytes + state.optimizer_bytes == params * (6 + 12 / 8)
    state = training_state(params, 0, Layout(dp=8), zero=0)
    assert state.params_bytes + state.gradients_bytes + state.optimizer_bytes == 18 * params


def test_zero_stages():
    p, dp = 1_000_000, 8
    layout = Layout(dp=dp)
    assert training_state(p, 0, layout, zero=2).model_dump() == {"params_bytes": 2 * p, "gradients_bytes": 4 * p // dp, "optimizer_bytes": 12 * p // dp}
    stage3 = training_state(p, 0, layout, zero=3, gathered_params=1000)
    assert stage3.model_dump() == {"params_bytes": 2 * p // dp + 2 * 1000, "gradients_bytes": 4 * p // dp, "optimizer_bytes": 12 * p // dp}
    assert training_state(p, 0, layout, zero=2, grad_dtype="bf16").gradients_bytes == 2 * p // dp


def test_korthikanti_per_layer_gpt3_175b():
    # Table 3 of the paper: GPT-3 175B has a = 96, h = 12288; s = 2048. Table 2 per layer: s·b·h·(34 + 5·a·s/h)
    # without recomputation, 34·s·b·h/t with tensor + sequence parallel and selective recomputation.
    spec = gpt(layers=96, hidden=12288, heads=96)
    s, b, h = 2048, 1, 12288
    none = layer_activation(spec, 0, "none")
    assert activation_bytes(none, b, s, 1) == s * b * h * (34 + 5 * 96 * s / h)
    assert 5 * 96 * s // h == 80  # the paper's 5as/h = 80 for GPT-3
    selective = layer_activation(spec, 0, "selective")
    assert activation_bytes(selective, b, s, 8) == 34 * s * b * h / 8 == 106_954_752
    assert activation_bytes(layer_activation(spec, 0, "full"), b, s, 1) == 2 * s * b * h
    # Selective recomputation removes the score terms: 80/114 = 70 % for GPT-3, 64/98 = 65 % for MT-NLG 530B
    # (Table 3: a = 128, h = 20480), derived from Table 2 with the paper's model dimensions
    assert round(1 - activation_bytes(selective, b, s, 1) / activation_bytes(none, b, s, 1), 2) == 0.70
    mtnlg = gpt(layers=105, hidden=20480, heads=128)
    saved = 1 - activation_bytes(layer_activation(mtnlg, 0, "selective"), b, s, 1) / activation_bytes(layer_activation(mtnlg, 0, "none"), b, s, 1)
    assert round(saved, 2) == 0.65


def test_moe_and_gqa_terms_by_hand():
    spec = load_preset("mixtral-8x7b")  # h 4096, 32 heads, 8 KV heads of 128, E 8, k 2, I 14336 (SwiGLU)
    h = 4096
    assert attention_activation_per_token(spec) == 2 * h + 2 * h + 2 * 1024 + 2 * 1024 + 2 * h + h
    # router input 2h, fp32 router scores 4E, per routed copy: permuted input 2h + output kept for the
    # weighted combine 2h + SwiGLU intermediate 6I, dropout mask h
    assert mlp_activation_per_token(spec, 0) == 2 * h + 4 * 8 + 2 * (4 * h + 6 * 14336) + h
    deepseek = load_preset("deepseek-v3")  # first 3 layers dense (I 18432), then 1 shared expert of 2048, 8 of 256
    assert mlp_activation_per_token(deepseek, 0) == 2 * 7168 + 6 * 18432 + 7168
    assert mlp_activation_per_token(deepseek, 3) == 2 * 7168 + 4 * 256 + 8 * (4 * 7168 + 6 * 2048) + 6 * 2048 + 7168


def test_pipeline_in_flight_micro_batches():
    spec = gpt(layers=8)
    layout = Layout(pp=4)
    per_layer = layer_activation(spec, 0, "selective").linear
    stages = [stage_activation(spec, layout, i, r, "selective").linear for i, r in enumerate(stage_layers(8, 4))]
    assert stages[0] == 4 * (2 * per_layer + 8 + 2048)  # 4 micro-batches in flight, embedding inputs
    assert stages[1] == 3 * 2 * per_layer
    assert stages[3] == 1 * 2 * per_layer + 4 * 2048 + 4 * 51200  # output layer on the last stage


def test_expert_states_shard_over_expert_replicas():
    spec = load_preset("mixtral-8x7b")
    report = memory_report(spec, {}, get_gpu("h100"), Layout(dp=8, ep=8), batch=1, context=4096, mode="training")
    held = {c: b // 2 for c, b in report.most_loaded.weights_by_component_bytes.items()}
    experts = held["routed_experts"]
    dense = sum(held.values()) - experts
    assert experts == count_params(spec).by_component["routed_experts"] // 8  # one expert per layer per GPU
    # ZeRO-1: dense optimizer states over dp = 8; experts have one replica, so theirs are not sharded
    assert report.most_loaded.optimizer_bytes == math.ceil(12 * dense / 8) + 12 * experts
    assert report.weights_bytes == 2 * count_params(spec).total
