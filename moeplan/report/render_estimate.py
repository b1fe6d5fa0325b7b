"""Rich rendering of an EstimateReport. Memory in GiB (and GB), bandwidth in GB/s = 1e9 B/s."""

import math

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from moeplan.accounting.params import COMPONENTS
from moeplan.accounting.training import PARAM_BYTES
from moeplan.report.console import console
from moeplan.report.estimate import EstimateReport
from moeplan.report.render_speed import speed_rows
from moeplan.units import GB, GiB, counted, fmt_bytes, fmt_count


def _kv_table(title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    return table


def _layer_mix(spec) -> str | None:
    """Layers per sequence mixer ('36 gated DeltaNet, 12 attention'), or None when every layer is attention."""
    counts: dict[str, int] = {}
    for layer in range(spec.num_layers):
        mixer = spec.mixer(layer)
        if mixer == "linear_attention":
            mixer = {"gated_deltanet": "gated DeltaNet", "kda": "Kimi delta attention", "lightning": "lightning attention"}[spec.linear_attention.kind]
        counts[mixer] = counts.get(mixer, 0) + 1
    if set(counts) == {"attention"}:
        return None
    names = {"mamba": "Mamba", "mamba2": "Mamba-2", "short_conv": "short-convolution", "none": "MLP/MoE-only"}
    return ", ".join(f"{n} {names.get(kind, kind)}" for kind, n in counts.items()) + " layers"


def _spec_table(report: EstimateReport) -> Table:
    spec, attn = report.spec, report.spec.attention
    table = _kv_table(f"{escape(spec.name)} — {escape(spec.architecture)}")
    table.add_row("source", escape(spec.source))
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
    if attn.indexer:
        shared = f", none in {len(attn.indexer.shared_layers)} shared layers" if attn.indexer.shared_layers else ""
        table.add_row("sparse attention", f"indexer {attn.indexer.num_heads} heads × {attn.indexer.head_dim}, "
                      f"top-{attn.indexer.top_k} tokens per query{shared}")
    if mix := _layer_mix(spec):
        table.add_row("hybrid", mix)
    return table


def _params_table(report: EstimateReport) -> Table:
    params, weights = report.params, report.weights
    table = Table(title="Parameters and weights", title_justify="left")
    for column in ("component", "parameters", "active per token", "format", "weights (GiB)"):
        table.add_column(column, justify="left" if column in ("component", "format") else "right")
    for name in COMPONENTS:
        if params.by_component[name]:
            table.add_row(name, f"{params.by_component[name]:,}", f"{params.active_by_component[name]:,}",
                          weights.formats.get(name, weights.vector_format), f"{weights.by_component_bytes[name] / GiB:,.2f}")
    table.add_row("[bold]all[/]", f"[bold]{params.total:,}[/] ({fmt_count(params.total)})",
                  f"[bold]{params.active:,}[/] ({fmt_count(params.active)})", "", f"[bold]{weights.total_bytes / GiB:,.2f}[/]")
    table.add_row("active without embedding", "", f"{params.active_without_embedding:,} ({fmt_count(params.active_without_embedding)})", "", "")
    table.add_row("active without embedding and lm_head", "",
                  f"{params.active_without_embedding_and_head:,} ({fmt_count(params.active_without_embedding_and_head)})", "", "")
    if params.mtp:
        table.add_row("multi-token prediction (not in total)", f"{params.mtp:,} ({fmt_count(params.mtp)})", "", "", f"{weights.mtp_bytes / GiB:,.2f}")
    return table


def _memory_table(report: EstimateReport) -> Table:
    m, w = report.memory, report.memory.most_loaded
    table = _kv_table(f"Memory: {escape(report.gpu.display_name)} × {report.layout.num_gpus}, {report.layout.describe()}, "
                      f"{m.mode}, batch {m.batch}, context {m.context:,}")
    if m.mode == "training":  # training holds bf16 parameters whatever the checkpoint's format
        table.add_row("weights (whole model)", f"{fmt_bytes(m.weights_bytes)}, active "
                      f"{fmt_bytes(report.params.active * PARAM_BYTES)}, bf16 (training's parameters)")
    else:
        table.add_row("weights (whole model)", fmt_bytes(m.weights_bytes) + f", active {fmt_bytes(report.weights.active_bytes)}")
    if m.mode == "inference":
        table.add_row("KV cache per token", f"{m.kv_cache_bytes_per_token:,} B ({m.kv_dtype}, one sequence, all layers)")
        if m.kv_cache.state_bytes_per_sequence:
            table.add_row("recurrent state per sequence", f"{m.kv_cache.state_bytes_per_sequence:,} B (conv and SSM/linear-attention "
                          f"states, {sum(m.kv_cache.state_layers.values())} layers; in the KV cache below)")
        table.add_row("KV cache (whole batch)", fmt_bytes(m.kv_cache_bytes))
    state = ((("gradients", w.gradients_bytes), ("optimizer", w.optimizer_bytes)) if m.mode == "training"
             else (("KV", w.kv_cache_bytes),))
    parts = (("weights", w.weights_bytes), *state, ("activations", w.activation_bytes), ("CUDA context", w.cuda_context_bytes),
             ("reserve", w.allocator_reserve_bytes))
    table.add_row(f"most-loaded GPU (stage {w.stage})", " + ".join(f"{name} {value / GiB:,.2f}" for name, value in parts)
                  + f" = [bold]{w.total_bytes / GiB:,.2f} GiB[/]")
    table.add_row("usable per GPU", f"{m.usable_bytes / GiB:,.2f} GiB ({m.gpu_util:.0%} of the {m.gpu_memory_bytes / GiB:,.2f} GiB the driver reports)")
    verdict = "[bold green]fits[/]" if m.fits else "[bold red]does not fit[/]"
    table.add_row("fit", f"{verdict}, headroom {m.headroom_bytes / GiB:+,.2f} GiB ({m.headroom_fraction:+.1%})")
    table.add_row("largest batch", f"{m.max_batch:,} at context {m.context:,}")
    table.add_row("largest context", ("any" if m.max_context is None else f"{m.max_context:,}") + f" at batch {m.batch} ({m.max_context_limit})")
    return table


def _speed_table(report: EstimateReport) -> Table:
    t, f = report.throughput, report.flops
    fits = "" if report.memory.fits else " (the deployment does not fit: for comparison only)"
    table = _kv_table(f"Compute, traffic and speed (expected, and its speed-of-light bound){fits}")
    table.add_row("FLOPs per token", f"decode {f.decode_per_token / 1e9:,.2f} G at context {f.context_tokens:,}; "
                  f"prefill {f.prefill_per_token / 1e9:,.2f} G; training {f.training_per_token / 1e9:,.2f} G")
    a2a = report.all_to_all
    if a2a is not None and report.layout.ep > 1:
        table.add_row(f"all-to-all per MoE layer (EP={a2a.ep_size}, {a2a.tokens_per_rank:,} tokens/rank, {a2a.mode} mode)",
                      f"dispatch {a2a.dispatch_bytes_per_rank / GB:,.3f} GB + combine {a2a.combine_bytes_per_rank / GB:,.3f} GB "
                      f"sent per rank; inter-node {a2a.inter_node_bytes_per_rank / GB:,.3f} GB; self {a2a.self_bytes_per_rank / GB:,.3f} GB; "
                      f"per forward ({a2a.all_to_alls_per_forward} all-to-alls) {a2a.per_forward_bytes_per_rank / GB:,.2f} GB")
    if report.all_to_all_skew is not None:
        skew = report.all_to_all_skew
        table.add_row(f"bottleneck rank ({report.deployment.routing})",
                      f"dispatch {skew.dispatch_bytes_per_rank_max / GB:,.3f} GB vs mean {skew.dispatch_bytes_per_rank_mean / GB:,.3f} GB")
    if report.routing is not None:
        r = report.routing
        dropped = "" if r.dropped_fraction is None else f"; capacity {r.capacity_tokens:,} tokens/expert drops {r.dropped_fraction:.2%}"
        per_rank = report.spec.num_experts // report.layout.ep
        table.add_row("experts touched per decode step", f"{t.experts_touched_per_layer:,.1f} of the {per_rank} on the busiest EP rank, "
                      f"per MoE layer{dropped}")
    for name, step in (("bound: decode step", t.decode), ("bound: prompt chunk", t.prefill)):
        table.add_row(name, f"{counted(step.tokens, 'token')}: memory {step.memory_s * 1e3:,.3f} ms, compute {step.compute_s * 1e3:,.3f} ms, "
                      f"communication {step.communication_s * 1e3:,.3f} ms → [bold]{step.bound}-bound[/]")
    speed_rows(table, report)
    if t.offload is not None:
        o = t.offload
        table.add_row("offload", f"{o.host_bytes / GiB:,.1f} GiB in host RAM ({'fits' if o.fits_in_host_memory else 'does NOT fit'}; "
                      f"{', '.join(o.rules)}), "
                      f"{o.gpu_bytes / GiB:,.1f} GiB in VRAM → {o.decode_tokens_per_s:,.1f} tokens/s (CPU {o.cpu_time_s * 1e3:,.1f} ms + "
                      f"GPU {o.gpu_time_s * 1e3:,.1f} ms per step; streaming over PCIe instead: {o.pcie_stream_time_s * 1e3:,.1f} ms); "
                      f"prefill: the host part of each {o.ubatch_tokens:,}-token micro-batch {o.prefill_host_s * 1e3:,.1f} ms "
                      f"({o.prefill_host_path}), {o.prompt_host_s * 1e3:,.1f} ms of the TTFT")
    return table


def render_warnings(warnings: list[str]) -> None:
    """Warnings of a result, first and in bold: each may make the figures below wrong."""
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)


def _headline(report: EstimateReport) -> str:
    """The speed of a deployment that fits, in one line: training step or decode and prefill rates."""
    if report.training is not None:
        t = report.training
        return (f"training step {t.step_s:,.3f} s for {t.global_batch:,} sequences (micro-batch {t.micro_batch} × grad accumulation "
                f"{t.grad_accum} × dp {report.layout.dp}): {t.tokens_per_s:,.0f} tokens/s, MFU {t.mfu:.1%}, {t.bound}-bound")
    t = report.throughput
    return (f"decode {t.decode_tokens_per_s:,.1f} tokens/s ({t.time_per_output_token_s * 1e3:,.2f} ms per output token, "
            f"{t.bound}-bound); prefill {t.prefill_tokens_per_s:,.0f} tokens/s, time to first token {t.ttft_s * 1e3:,.1f} ms")


def _host_need(o) -> str:
    return (f"the offloaded weights and KV cache need {(o.host_bytes + o.host_kv_cache_bytes) / GiB:,.2f} GiB of "
            f"{o.host_memory_bytes / GiB:,.2f} GiB (--host-memory-gib)")


def _host_fix(report: EstimateReport) -> str:
    """How to make an offload that host RAM does not hold fit: fewer layers' experts on the CPU, or more host RAM."""
    o, d = report.throughput.offload, report.deployment
    more = f"--host-memory-gib {math.ceil((o.host_bytes + o.host_kv_cache_bytes) / GiB)} or more"
    if o.most_n_cpu_moe is None:
        return f"Fix: more host memory ({more}); no --n-cpu-moe fits both host RAM and VRAM."
    instead = " instead of --offload-experts" if d.offload_experts else ""
    return (f"Fix: --n-cpu-moe {o.most_n_cpu_moe}{instead} (fewer layers' experts on the CPU; fits host RAM and VRAM), "
            f"or more host memory ({more}).")


def verdict_panel(report: EstimateReport) -> Panel:
    """The answer first: fit or not on N × GPU with headroom; if not, the fewest GPUs that fit and the command
    that lists them; the speed only when it fits; the assumed GPU and count and how to change them."""
    v, gpu = report.verdict, report.gpu.display_name
    where = f"{v.num_gpus} × {gpu} ({v.layout})"
    need = f"the most-loaded GPU needs {v.per_gpu_bytes / GiB:,.2f} GiB of {v.usable_bytes / GiB:,.2f} GiB usable"
    headroom = f"headroom {v.headroom_bytes / GiB:+,.2f} GiB ({v.headroom_fraction:+.1%})"
    text = Text()
    if v.fits:
        text.append("FITS", style="bold green")
        text.append(f" on {where}: {need}, {headroom}.\n{_headline(report)}.\n")
    elif (o := report.throughput.offload) is not None and not o.fits_in_host_memory:
        text.append("DOES NOT FIT", style="bold red")
        text.append(f" in host RAM: {_host_need(o)}; VRAM of {where}: {need}, {headroom}.\n{_host_fix(report)}\n")
    else:
        text.append("DOES NOT FIT", style="bold red")
        text.append(f" on {where}: {need}, {headroom}.\n")
        if v.fewest_gpus is not None:
            text.append(f"Fewest {gpu} that fit: {v.fewest_gpus} ({v.fewest_layout}). See the layouts: ")
        elif v.searched_max_gpus is not None:
            text.append(f"No layout of up to {v.searched_max_gpus} {gpu} fits. Search further: ")
        if v.plan_command:
            text.append(v.plan_command, style="bold")
            text.append("\n")
    if (o := report.throughput.offload) is not None:
        text.append(f"Host RAM holds {o.host_bytes / GiB:,.2f} GiB of offloaded weights of {o.host_memory_bytes / GiB:,.2f} GiB "
                    f"({'fits' if o.fits_in_host_memory else 'does NOT fit'}; {', '.join(o.rules)}).\n")
        if o.fewest_n_cpu_moe is not None:
            text.append(f"VRAM holds the GPU share from --n-cpu-moe {o.fewest_n_cpu_moe} (the other flags kept).\n")
    if report.layout_choice:
        text.append(f"Layout for {report.layout_choice}.\n")
    for item in v.assumed:
        text.append(f"Assumed: {item}.\n")
    text.rstrip()
    return Panel(text, title=Text(f"{report.spec.name}, {report.deployment.mode}"), title_align="left", expand=False)


def _training_table(report: EstimateReport) -> Table:
    t, f = report.training, report.flops
    table = _kv_table("Training speed (one optimizer step)")
    table.add_row("FLOPs per token", f"training {f.training_per_token / 1e9:,.2f} G (recompute {f.recompute}); "
                  f"model FLOPs {t.model_flops_per_step / t.tokens_per_step / 1e9:,.2f} G")
    table.add_row("global batch", f"{t.global_batch:,} sequences = micro-batch {t.micro_batch} × grad accumulation {t.grad_accum} "
                  f"× dp {report.layout.dp}; {t.tokens_per_step:,} tokens per step")
    table.add_row("micro-batch on one stage", f"compute {t.micro_batch_compute_s * 1e3:,.1f} ms, memory {t.micro_batch_memory_s * 1e3:,.1f} ms, "
                  f"communication {t.micro_batch_communication_s * 1e3:,.1f} ms → {t.micro_batch_s * 1e3:,.1f} ms")
    table.add_row("step", f"{t.grad_accum} × {t.micro_batch_s * 1e3:,.1f} ms + bubble {t.bubble_s * 1e3:,.1f} ms + gradient all-reduce "
                  f"{t.gradient_allreduce_s * 1e3:,.1f} ms + optimizer {t.optimizer_s * 1e3:,.1f} ms = [bold]{t.step_s:,.3f} s[/]")
    table.add_row("throughput", f"[bold]{t.tokens_per_s:,.0f} tokens/s[/], MFU [bold]{t.mfu:.1%}[/] of {t.peak_flops_per_s / 1e12:,.0f} "
                  f"TFLOP/s per GPU, [bold]{t.bound}-bound[/]")
    return table


def render_verdict(report: EstimateReport) -> None:
    """`--brief`: the warnings and the verdict block only."""
    render_warnings(report.warnings)
    console.print(verdict_panel(report))


def render_estimate(report: EstimateReport) -> None:
    """The verdict first, then the model, parameters, memory and speed; notes last."""
    render_verdict(report)
    console.print(_spec_table(report))
    console.print(_params_table(report))
    if report.checkpoint is not None:
        console.print(_checkpoint_table(report))
    console.print(_memory_table(report))
    console.print(_training_table(report) if report.training is not None else _speed_table(report))
    assumptions = report.training.assumptions if report.training is not None else report.throughput.assumptions
    for note in [*report.notes, *report.weights.notes, *report.memory.assumptions, *assumptions]:
        console.print(Text(f"· {note}", style="dim"))


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
