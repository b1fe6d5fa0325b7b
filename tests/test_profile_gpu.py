"""`moeplan profile` on a real GPU (skipped cleanly where torch sees no CUDA device)."""

import json

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


pytestmark = pytest.mark.gpu


def test_one_gpu_profile(cli):
    result = cli("profile", "--gpus", "0", "--only", "topo,hbm,gemm,h2d,p2p,a2a", "--iters", "3", "--warmup", "1", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    status = {s["section"]: s for s in report["sections"]}
    assert status["p2p"]["status"] == "skipped" and "two or more GPUs" in status["p2p"]["reason"]
    assert status["a2a"]["status"] == "skipped" and "two or more ranks" in status["a2a"]["reason"]
    assert report["topology"]["gpus"][0]["cuda_index"] is not None
    for m in report["measurements"]:
        assert m["stats"] or m["skipped"]
    hbm = [m for m in report["measurements"] if m["section"] == "hbm" and m["stats"]]
    assert hbm and all(m["rates"]["dram_bytes_per_s"] == pytest.approx(2 * m["rates"]["copy_bytes_per_s"]) for m in hbm)
    if hbm[0]["prediction"]["time_s"] is not None:  # the GPU is in the catalogue
        assert all(m["verdict"] in ("ok", "warn", "fail") for m in hbm)


def test_gpu_methods(cli, tmp_path):
    """The CUDA-only methods: spin-kernel and SM copies verified, GEMMs replayed from CUDA graphs with fresh
    routing, fp8 paths measured or skipped with the kernel's reason, and a calibration for this GPU."""
    result = cli("profile", "--gpus", "0", "--only", "hbm,gemm", "--iters", "3", "--warmup", "1", "--json", "--save", tmp_path / "calib.json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    hbm = [m for m in report["measurements"] if m["section"] == "hbm" and m["stats"]]
    assert {m["name"] for m in hbm} == {"copy", "sm_copy"} and all(m["params"]["verified"] for m in hbm)
    gemm = [m for m in report["measurements"] if m["section"] == "gemm"]
    assert {m["params"]["tokens_per_rank"] for m in gemm} >= {1, 24, 1536, 4096}  # vLLM's grid
    graphed = [m for m in gemm if m["stats"] and not any("timed eagerly" in n for n in m["notes"])]
    assert graphed, [n for m in gemm for n in m["notes"]][:5]
    assert any("fresh routing per replay" in n for m in gemm for n in m["notes"])
    major = torch.cuda.get_device_capability(0)[0]
    fp8 = [m for m in gemm if m["params"]["dtype"] == "fp8"]
    assert bool(fp8) == (major >= 9) and all(m["stats"] or m["skipped"] for m in fp8)
    calibration = json.loads((tmp_path / "calib.json").read_text())
    assert calibration["device_kind"] == "cuda" and all(p["kernel_path"] in ("grouped_mm", "bmm_padded", "loop") for p in calibration["gemm"])
