"""`moeplan profile` on a real GPU (skipped cleanly where torch sees no CUDA device)."""

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
