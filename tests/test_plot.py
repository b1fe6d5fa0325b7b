"""--plot (PNG/SVG files of the expected size), --curve (the terminal chart), and their errors."""

import re
import sys
import xml.etree.ElementTree as ET

import pytest

from moeplan.report.curve import GLYPHS, WIDTH, bar_cells
from moeplan.report.estimate import build_estimate
from moeplan.report.sweep import COMPONENTS, MemoryPoint, batch_values, context_values, memory_at, memory_point
from moeplan.spec.deployment import Deployment
from moeplan.spec.presets import load_preset
from moeplan.spec.resolve import ResolvedSpec
from moeplan.units import GiB

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIXTRAL = ["mixtral-8x7b", "--num-gpus", "2", "--batch", "16"]


def _png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which follows the 8-byte signature and the chunk's length and type."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_estimate_png(cli, tmp_path):
    out = tmp_path / "mixtral.png"
    result = cli("estimate", *MIXTRAL, "--plot", out)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stderr
    assert _png_size(out) == (1500, 450)  # 15 × 4.5 inches at 100 dpi
    image = pytest.importorskip("matplotlib.image").imread(out)
    assert image.shape == (450, 1500, 4) and image[..., :3].std() > 0.05  # drawn, not blank


def test_estimate_svg_with_json(cli, tmp_path):
    out = tmp_path / "deepseek.svg"
    result = cli("estimate", "deepseek-v3", "--tp", "8", "--ep", "16", "--dp", "2", "--plot", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["memory"]["fits"]  # stdout stays one JSON document
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("1080pt", "324pt")  # 15 × 4.5 inches at 72 pt
    axes = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g") if (g.get("id") or "").startswith("axes_")}
    assert axes == {"axes_1", "axes_2", "axes_3"}


def test_plan_plots_the_best_layout(cli, tmp_path):
    out = tmp_path / "plan.png"
    result = cli("plan", "qwen3-30b-a3b", "--max-gpus", "8", "--plot", out, "--curve")
    assert result.exit_code == 0, result.stderr
    assert _png_size(out) == (1500, 450)
    assert "Memory per GPU vs context: qwen3-30b-a3b" in result.stdout


@pytest.mark.parametrize("command", ["estimate", "plan"])
def test_plot_errors(cli, tmp_path, monkeypatch, command):
    result = cli(command, *MIXTRAL[:1], "--plot", tmp_path / "x.jpg")
    assert result.exit_code == 2 and ".png, .svg or .pdf" in result.stderr
    result = cli(command, *MIXTRAL[:1], "--curve", "--json")
    assert result.exit_code == 2 and "--curve" in result.stderr
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    result = cli(command, *MIXTRAL[:1], "--plot", tmp_path / "x.png")
    assert result.exit_code == 3 and "pip install 'moeplan[plot]'" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_curve_rows_and_totals(cli):
    """One row per context from 1k to the model's 32k; totals are memory_report's; rows over the usable line carry ✗."""
    result = cli("estimate", *MIXTRAL, "--curve")
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.match(r"^[> ]\s*\d+K ", line)]
    contexts = [int(re.match(r"^[> ]\s*(\d+)K", row).group(1)) * 1024 for row in rows]
    assert contexts == [1024, 2048, 4096, 8192, 16384, 32768]
    assert [row.startswith(">") for row in rows] == [c == 4096 for c in contexts]  # the estimate's own context
    report = build_estimate(ResolvedSpec(spec=load_preset("mixtral-8x7b")), Deployment(num_gpus=2, batch=16))
    for row, context in zip(rows, contexts):
        memory = memory_at(report, 16, context)
        assert f"{memory.per_gpu_bytes / GiB:8,.1f} GiB" in row
        assert row.endswith("✗") == (not memory.fits)
        assert row.count("│") == 1
    assert f"usable {report.memory.usable_bytes / GiB:,.1f} GiB" in result.stdout


def test_bar_cells_by_hand():
    """Components 10, 0, 5, 3, 2 GiB at 2 columns per GiB: ends at 20, 20, 30, 36, 40 columns."""
    point = MemoryPoint(batch=1, context=1, component_bytes=dict(zip(COMPONENTS, [g * GiB for g in (10, 0, 5, 3, 2)])), total_bytes=20 * GiB)
    cells = bar_cells(point, 2 / GiB)
    glyphs = [GLYPHS[name][0] for name in COMPONENTS]
    assert "".join(glyph for glyph, _ in cells) == glyphs[0] * 20 + glyphs[2] * 10 + glyphs[3] * 6 + glyphs[4] * 4
    assert WIDTH >= 40


def test_sweep_points():
    report = build_estimate(ResolvedSpec(spec=load_preset("mixtral-8x7b")), Deployment(num_gpus=2, batch=16))
    batches = batch_values(report)
    assert batches[0] == 1 and 16 in batches and batches[-1] >= 1.25 * report.memory.max_batch
    assert context_values(report) == [1024, 2048, 4096, 8192, 16384, 32768]  # max_position_embeddings 32768
    point = memory_point(report, 16, 4096)
    assert sum(point.component_bytes.values()) == point.total_bytes == report.memory.per_gpu_bytes
    assert point.component_bytes["KV cache"] == report.memory.most_loaded.kv_cache_bytes
