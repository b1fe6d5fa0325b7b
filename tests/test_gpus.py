"""The GPU catalogue: datasheet conversions, lookup, custom GPUs and `moeplan gpus`."""

import json

import pytest

from moeplan.errors import SpecError
from moeplan.hardware.catalogue import (
    GPUSpec,
    apply_overrides,
    catalogue,
    get_gpu,
    load_gpu,
    pcie_bytes_per_s_per_direction,
)

REQUIRED = ["a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h800", "h20", "h200", "b200", "gb200",
            "l40s", "l4", "rtx-4090", "rtx-5090", "mi300x", "mi325x"]


def test_catalogue_has_the_required_rows_with_sources():
    names = [gpu.name for gpu in catalogue()]
    assert set(REQUIRED) <= set(names)
    keys = [key.lower() for gpu in catalogue() for key in (gpu.name, *gpu.aliases)]
    assert len(keys) == len(set(keys)), "a name or alias is used twice"
    for gpu in catalogue():
        assert gpu.source and gpu.link_bytes_per_s_per_direction > 0


def test_dense_figures_are_half_the_sparse_datasheet_figures():
    # H100 SXM datasheet: BF16 1,979 TFLOPS and FP8 3,958 TFLOPS "with sparsity"
    h100 = get_gpu("h100-sxm")
    assert h100.bf16_flops_per_s == 1979e12 / 2
    assert h100.fp8_flops_per_s == 3958e12 / 2
    # L4 datasheet: BF16 242 TFLOPS*, FP8 485 TFLOPS* (*with sparsity)
    assert get_gpu("l4").bf16_flops_per_s == 242e12 / 2
    # HGX B200 board: FP16/BF16 36 PFLOPS with sparsity for 8 GPUs
    assert get_gpu("b200").bf16_flops_per_s == 36e15 / 8 / 2
    # GB200 NVL72: 360 PFLOPS BF16 with sparsity for 72 GPUs; 13.4 TB / 72 = 186 GB per GPU
    assert get_gpu("gb200").bf16_flops_per_s == pytest.approx(360e15 / 72 / 2)
    assert get_gpu("gb200").memory_bytes == 186 * 2**30
    # Every GPU listed runs FP8 at twice its BF16 rate; a sparse/dense mix-up would break this.
    for gpu in catalogue():
        if gpu.fp8_flops_per_s:
            assert gpu.fp8_flops_per_s / gpu.bf16_flops_per_s == pytest.approx(2, rel=0.02), gpu.name


def test_memory_and_links():
    assert get_gpu("h100-sxm").memory_bytes == 80 * 2**30
    assert get_gpu("h200").memory_bytes == 141 * 2**30
    assert get_gpu("mi300x").memory_bytes == 192 * 2**30
    # "NVLink 900 GB/s" is bidirectional: 18 links x 25 GB/s per direction
    assert get_gpu("h100-sxm").link_bytes_per_s_per_direction == 18 * 25e9
    assert get_gpu("a100-80gb").link_bytes_per_s_per_direction == 12 * 25e9
    assert get_gpu("h800").link_bytes_per_s_per_direction == 400e9 / 2
    assert get_gpu("b200").link_bytes_per_s_per_direction == 1.8e12 / 2
    # MI300X: 7 Infinity Fabric links of 128 GB/s bidirectional
    assert get_gpu("mi300x").link_bytes_per_s_per_direction == 7 * 128e9 / 2


def test_pcie_per_direction_from_generation_and_lanes():
    # Gen4: 16 GT/s per lane, 128b/130b coding; x16 → 31.5 GB/s per direction ("64 GB/s" bidirectional on datasheets)
    assert pcie_bytes_per_s_per_direction(4, 16) == pytest.approx(16e9 * 16 * 128 / 130 / 8)
    assert pcie_bytes_per_s_per_direction(4, 16) / 1e9 == pytest.approx(31.51, abs=0.01)
    assert pcie_bytes_per_s_per_direction(5, 16) == 2 * pcie_bytes_per_s_per_direction(4, 16)
    assert pcie_bytes_per_s_per_direction(3, 8) == pytest.approx(8e9 * 8 * 128 / 130 / 8)
    # A PCIe-only card's GPU-to-GPU link is its PCIe link.
    l40s = get_gpu("l40s")
    assert l40s.interconnect == "pcie-only"
    assert l40s.link_bytes_per_s_per_direction == l40s.pcie_bytes_per_s_per_direction == pcie_bytes_per_s_per_direction(4, 16)
    with pytest.raises(SpecError, match="give pcie_bytes_per_s_per_direction"):
        pcie_bytes_per_s_per_direction(7, 16)


@pytest.mark.parametrize(("alias", "name"), [("h100", "h100-sxm"), ("H100", "h100-sxm"), ("a100", "a100-80gb"),
                                             ("4090", "rtx-4090"), ("5090", "rtx-5090"), ("GB200", "gb200"), (" MI300X ", "mi300x")])
def test_aliases_are_case_insensitive(alias, name):
    assert get_gpu(alias).name == name


def test_unknown_gpu_suggests_the_nearest_names():
    with pytest.raises(SpecError, match="did you mean h100-sxm"):
        get_gpu("h100-smx")
    with pytest.raises(SpecError, match="unknown GPU"):
        get_gpu("h1")  # no fuzzy match: prefixes are not names


def test_custom_gpu_from_yaml_and_json(tmp_path):
    fields = {"name": "my-accel", "display_name": "My accelerator", "vendor": "ACME", "memory_bytes": 64 * 2**30,
              "hbm_bytes_per_s": 2e12, "bf16_flops_per_s": 500e12, "interconnect": "pcie-only",
              "pcie_generation": 5, "pcie_lanes": 16, "source": "ACME brochure"}
    (tmp_path / "a.json").write_text(json.dumps(fields))
    (tmp_path / "a.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()))
    for path in (tmp_path / "a.json", tmp_path / "a.yaml"):
        gpu = load_gpu(str(path))
        assert gpu.memory_bytes == 64 * 2**30
        assert gpu.link_bytes_per_s_per_direction == pcie_bytes_per_s_per_direction(5, 16)
    (tmp_path / "bad.yaml").write_text("name: x\nmemory_bytes: -1\n")
    with pytest.raises(SpecError, match="memory_bytes"):
        load_gpu(str(tmp_path / "bad.yaml"))
    with pytest.raises(SpecError, match="no such GPU file"):
        load_gpu(str(tmp_path / "missing.json"))
    nvlink = {**fields, "interconnect": "nvlink"}
    (tmp_path / "n.json").write_text(json.dumps(nvlink))
    with pytest.raises(SpecError, match="link_bytes_per_s_per_direction is needed"):
        load_gpu(str(tmp_path / "n.json"))


def test_overrides_convert_units_and_validate():
    gpu = load_gpu("h100", {"memory_gib": 96, "hbm_tb_s": 4.0, "bf16_tflops": 1000, "link_gb_s": 400, "fp8_tflops": None})
    assert gpu.memory_bytes == 96 * 2**30
    assert gpu.hbm_bytes_per_s == 4.0e12
    assert gpu.bf16_flops_per_s == 1000e12
    assert gpu.link_bytes_per_s_per_direction == 400e9
    assert gpu.fp8_flops_per_s == get_gpu("h100").fp8_flops_per_s
    assert "memory_gib=96" in gpu.notes and gpu.display_name.endswith("(custom)")
    assert get_gpu("h100").memory_bytes == 80 * 2**30  # the catalogue row is untouched
    assert apply_overrides(get_gpu("l4"), {}) is get_gpu("l4")
    for bad in (0, -3, float("nan")):
        with pytest.raises(SpecError, match="must be a positive number"):
            apply_overrides(get_gpu("h100"), {"memory_gib": bad})
    with pytest.raises(SpecError, match="unknown GPU override"):
        apply_overrides(get_gpu("h100"), {"memory_gb": 80})


def test_cli_lists_the_catalogue_as_json(cli):
    result = cli("gpus", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["schema"] == 1
    assert [row["name"] for row in data["gpus"]] == [gpu.name for gpu in catalogue()]
    h100 = next(row for row in data["gpus"] if row["name"] == "h100-sxm")
    assert GPUSpec.model_validate(h100) == get_gpu("h100-sxm")  # the JSON row is a valid custom GPU file


def test_cli_table_and_one_gpu(cli):
    table = cli("gpus")
    assert table.exit_code == 0, table.stderr
    for name in REQUIRED:
        assert name in table.stdout
    assert "\x1b[" not in table.stdout
    one = cli("gpus", "H100")
    assert one.exit_code == 0
    assert "h100-sxm" in one.stdout and "1,979" in one.stdout and "sparsity" in one.stdout
    assert cli("gpus", "mi300x", "--json").json()["gpus"][0]["link_bytes_per_s_per_direction"] == 448e9


def test_cli_unknown_gpu_exits_2_with_a_suggestion(cli):
    result = cli("gpus", "h100-smx")
    assert result.exit_code == 2
    assert "did you mean h100-sxm" in result.stderr


def test_cli_fp4_peak_shown_or_said_absent(cli, monkeypatch):
    from moeplan.report.console import console

    assert "FP4 dense        │ none (no FP4 tensor cores)" in cli("gpus", "h100").stdout
    assert "FP8 dense        │ none (no FP8 tensor cores)" in cli("gpus", "a100").stdout
    assert "15,000.0 TFLOP/s" in cli("gpus", "gb300").stdout
    monkeypatch.setattr(console.real(), "width", 100)
    wide = cli("gpus").stdout
    gb300 = next(line for line in wide.splitlines() if line.startswith("gb300"))
    assert "FP4" in wide and "5,000.0 15,000.0" in gb300 and max(map(len, wide.splitlines())) <= 100
    monkeypatch.setattr(console.real(), "width", 80)  # no room for the FP4 column: left out, nothing truncated
    narrow = cli("gpus").stdout
    assert "FP4" not in narrow and "…" not in narrow and max(map(len, narrow.splitlines())) <= 80
