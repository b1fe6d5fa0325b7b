"""Rich rendering of an EstimateReport."""

from rich.table import Table

from moeplan.accounting.params import COMPONENTS
from moeplan.report.console import console
from moeplan.report.estimate import EstimateReport
from moeplan.units import fmt_count


def _spec_table(report: EstimateReport) -> Table:
    spec = report.spec
    attn = spec.attention
    table = Table(title=f"{spec.name} — {spec.architecture}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("source", spec.source)
    table.add_row("layers / hidden / vocab", f"{spec.num_layers} / {spec.hidden_size} / {spec.vocab_size}")
    if attn.kind == "mla":
        table.add_row("attention", f"MLA, {attn.num_heads} heads, kv_lora_rank {attn.kv_lora_rank}, "
                      f"q_lora_rank {attn.q_lora_rank}, qk {attn.qk_nope_head_dim}+{attn.qk_rope_head_dim}, v {attn.v_head_dim}")
    else:
        table.add_row("attention", f"{attn.num_heads} q heads, {attn.kv_heads} kv heads, head_dim {spec.head_dim}, "
                      f"layers {'/'.join(attn.layer_pattern)}")
    if spec.moe:
        moe = spec.moe
        shared = f", {moe.num_shared_experts} shared × {moe.shared_intermediate_size or moe.expert_intermediate_size}" if moe.num_shared_experts else ""
        table.add_row("MoE", f"{moe.num_experts} experts, top-{moe.top_k}, expert size {moe.expert_intermediate_size}{shared}, "
                      f"{report.params.moe_layers} of {spec.num_layers} layers")
    else:
        table.add_row("MLP", f"dense, intermediate {spec.intermediate_size}")
    if spec.mamba:
        table.add_row("hybrid", f"{spec.num_layers - spec.attention_layer_count} Mamba layers, {spec.attention_layer_count} attention layers")
    return table


def _params_table(report: EstimateReport) -> Table:
    params = report.params
    table = Table(title="Parameters", title_justify="left")
    table.add_column("component")
    table.add_column("total", justify="right")
    table.add_column("active per token", justify="right")
    for name in COMPONENTS:
        if params.by_component[name]:
            table.add_row(name, f"{params.by_component[name]:,}", f"{params.active_by_component[name]:,}")
    table.add_row("[bold]all[/]", f"[bold]{params.total:,}[/] ({fmt_count(params.total)})", f"[bold]{params.active:,}[/] ({fmt_count(params.active)})")
    table.add_row("active without embedding", "", f"{params.active_without_embedding:,} ({fmt_count(params.active_without_embedding)})")
    table.add_row("active without embedding and lm_head", "", f"{params.active_without_embedding_and_head:,} ({fmt_count(params.active_without_embedding_and_head)})")
    if params.mtp:
        table.add_row("multi-token prediction (not in total)", f"{params.mtp:,} ({fmt_count(params.mtp)})", "")
    return table


def _checkpoint_table(report: EstimateReport) -> Table:
    ckpt = report.checkpoint
    table = Table(title=f"Checkpoint: {ckpt.files} safetensors files, {ckpt.tensors} tensors", title_justify="left")
    table.add_column("dtype")
    table.add_column("elements", justify="right")
    table.add_column("bytes", justify="right")
    for dtype, total in ckpt.by_dtype.items():
        table.add_row(dtype, f"{total.elements:,}", f"{total.bytes:,}")
    derived = report.params.total + report.params.mtp
    table.add_row("[bold]stored[/]", f"[bold]{ckpt.elements:,}[/]", f"{ckpt.bytes:,}")
    table.add_row("from config", f"{derived:,}", "")
    table.add_row("difference", f"{ckpt.elements - derived:+,}", "")
    return table


def render_estimate(report: EstimateReport) -> None:
    console.print(_spec_table(report))
    console.print(_params_table(report))
    if report.checkpoint is not None:
        console.print(_checkpoint_table(report))
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
