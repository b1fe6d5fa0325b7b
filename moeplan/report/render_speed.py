"""The speed rows of `moeplan estimate`'s report (expected beside the bound) and the --breakdown table."""

from rich.table import Table

from moeplan.perf.step import OPS
from moeplan.units import counted


def speed_rows(table: Table, report) -> None:
    """Add the expected and bound speed rows to the estimate's speed table."""
    t, e = report.throughput, report.throughput.expected
    if e.serving is not None:
        s = e.serving
        table.add_row("serving point", f"{s.concurrency:,} requests in flight (ISL {s.isl:,}, OSL {s.osl:,}): {s.sequences_per_replica:,.1f} "
                      f"decoding per replica; {s.mixed_steps_per_cycle:,.0f} of every {s.osl:,} steps carry "
                      f"{s.prefill_tokens_per_mixed_step:,.0f} prompt tokens")
    for name, step in (("decode step", e.decode_step), ("step with prefill", e.mixed_step), ("prompt chunk step", e.prefill_step)):
        if step is None:
            continue
        top = sorted(step.ops_s.items(), key=lambda kv: -kv[1])[:3]
        parts = ", ".join(f"{op} {seconds * 1e3:,.2f}" for op, seconds in top)
        table.add_row(f"expected {name}", f"{step.time_s * 1e3:,.2f} ms ({counted(round(step.decode_sequences), 'sequence')}, "
                      f"{counted(round(step.prefill_tokens), 'prompt token')}; largest: {parts} ms)")
    mtp = f" ({e.tokens_per_step:.2f} tokens per step with MTP)" if e.tokens_per_step > 1 else ""
    table.add_row("expected", f"[bold]TPOT {t.time_per_output_token_s * 1e3:,.2f} ms[/], TTFT {t.ttft_s * 1e3:,.1f} ms; "
                  f"[bold]{t.decode_tokens_per_s:,.1f} output tokens/s[/] ({t.tokens_per_s_per_gpu:,.1f} per GPU, "
                  f"{t.tokens_per_s_per_user:,.1f} per user){mtp}")
    table.add_row("bound (speed of light)", f"TPOT ≥ {t.roofline_time_per_output_token_s * 1e3:,.2f} ms, TTFT ≥ {t.roofline_ttft_s * 1e3:,.1f} ms, "
                  f"≤ {t.roofline_decode_tokens_per_s:,.1f} output tokens/s; decode {t.bound}-bound")


def breakdown_table(report) -> Table:
    """Where one decode step's time goes: seconds per operation, per layer of each kind and once per step."""
    e = report.throughput.expected
    table = Table(title="Decode step by operation (--breakdown)", title_justify="left")
    for column in ("where", "operation", "ms per layer", "ms per step", "share"):
        table.add_column(column, justify="left" if column in ("where", "operation") else "right")
    total = e.decode_step.time_s
    for name in OPS:
        seconds = e.decode_step.ops_s[name]
        where = next((kind for kind, ops in e.breakdown.items() if name in ops), "")
        per_layer = e.breakdown.get(where, {}).get(name, seconds)
        table.add_row(where, name, f"{per_layer * 1e3:,.4f}" if where != "once per step" else "", f"{seconds * 1e3:,.3f}",
                      f"{seconds / total:.1%}" if total else "")
    table.add_row("", "[bold]step[/]", "", f"[bold]{total * 1e3:,.3f}[/]", "100.0%")
    return table
