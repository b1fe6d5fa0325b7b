"""profile tables at 80 columns: no number cropped, no word of moeplan's own split (QA pass of issue 14)."""

import io

import pytest
from rich.console import Console

from moeplan.profile.render import COLUMNS, _table
from moeplan.profile.results import Measurement
from moeplan.profile.stats import Stats


def _stats(median_s: float) -> Stats:
    return Stats(samples_s=[median_s], median_s=median_s, p10_s=median_s, p90_s=median_s)


HBM = [Measurement(section="hbm", name="copy", device="cpu", params={"size_bytes": size}, stats=_stats(t),
                   rates={"copy_bytes_per_s": rate, "dram_bytes_per_s": 2 * rate}, verdict="n/a")
       for size, t, rate in ((16 * 2**20, 7.95e-3, 2.11e9), (64 * 2**20, 16.5e-3, 4.06e9))]
GEMM = [Measurement(section="gemm", name="experts", device="cpu", stats=_stats(86.3e-6),
                    params={"pattern": load, "kernel_path": path, "tokens_per_rank": 128, "rows": 263,
                            "rows_per_expert": 65.8, "experts_active": 4, "experts_local": 4},
                    rates={"flops_per_s": 0.00876e12, "weight_bytes_per_s": 0.137e9}, verdict="n/a")
        for load in ("balanced", "multinomial") for path in ("grouped_mm", "bmm_padded")]


def _render(section: str, points: list[Measurement], width: int) -> str:
    console = Console(file=io.StringIO(), width=width, highlight=False)
    _table(console, section, points, COLUMNS[section])
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 100])
def test_hbm_verdict_column_whole(width):
    """At 80 columns rich squeezed every column and cropped the last: header `verdi`, cells `n`."""
    text = _render("hbm", HBM, width)
    rows = [line for line in text.splitlines() if line.lstrip().startswith("cpu")]
    assert len(rows) == 2 and all(line.rstrip().endswith("n/a") for line in rows), text
    assert "verdict" in text and "7.95 ms" in text and "16.5 ms" in text
    assert all(len(line) <= width for line in text.splitlines())


def test_gemm_names_not_split_at_80():
    """`multinomial` and `grouped_mm` wrapped into `multinomi` / `al` and `grouped_m` / `m` at 80 columns."""
    text = _render("gemm", GEMM, 80)
    for word in ("multinomial", "grouped_mm", "bmm_padded", "86.3 µs", "0.137", "0.00876"):
        assert word in text, text
    lines = text.splitlines()
    body = [line for i, line in enumerate(lines) if line.strip() and any("─" in above for above in lines[max(0, i - 5):i])
            and "─" not in line and "part" not in line]
    assert body and all(line.split()[0] in ("balanced", "multinomial") for line in body), text
    assert all(line.split()[1] in ("grouped_mm", "bmm_padded") for line in body), text
    assert all(len(line) <= 80 for line in lines)


def test_moe_all_to_all_parts_name_their_point():
    """Part 2 of the MoE dispatch/combine table repeated only phase and mode: `dispatch rank` twice (bf16 and fp8,
    uniform and zipf rows alike) with different medians and nothing to tell them apart."""
    from moeplan.profile.render import MOE

    points = [Measurement(section="a2a", name="dispatch", device="cpu", stats=_stats(t),
                          params={"mode": "rank", "dtype": dtype, "routing": routing, "tokens_per_rank": 64,
                                  "bottleneck_rank": 3, "split_exchange_s": 9.27e-4, "alpha_beta_s": 1.79e-3,
                                  "bytes_match": True},
                          rates={"physical_bytes_per_s": 0.502e9, "logical_bytes_per_s": 0.68e9})
              for dtype, routing, t in (("bf16", "uniform", 1.52e-3), ("fp8", "uniform", 9.15e-4),
                                        ("bf16", "zipf:1.0", 1.25e-3), ("fp8", "zipf:1.0", 9.69e-4))]
    console = Console(file=io.StringIO(), width=80, highlight=False)
    _table(console, "a2a", points, MOE)
    text = console.file.getvalue()
    assert "(part 2 of" in text, text
    rows = [line.split() for line in text.splitlines() if line.lstrip().startswith("dispatch")]
    assert len(rows) >= 8 and all(row[2] in ("bf16", "fp8") and row[3] in ("uniform", "zipf:1.0") for row in rows), text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_part_title_wraps_at_the_terminal_not_at_the_part():
    """A narrow second part squeezed its long title into a 21-column block of six lines."""
    from moeplan.profile.render import UNIFORM

    title = "a2a: all_to_all_single size sweep (nccl-tests columns; time = max over ranks)"
    points = [Measurement(section="a2a", name="uniform", device="cpu", stats=_stats(1.08e-4),
                          params={"size_bytes": 2**k, "count": 2**k, "type": "uint8", "wrong": 0},
                          rates={"algbw_bytes_per_s": 0.00951e9, "busbw_bytes_per_s": 0.00476e9})
              for k in range(10, 23, 2)]
    console = Console(file=io.StringIO(), width=100, highlight=False)
    _table(console, title, points, UNIFORM)
    lines = console.file.getvalue().splitlines()
    assert sum(title in line for line in lines) == 2 and any("(part 2 of 2)" in line for line in lines)
