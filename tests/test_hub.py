"""Hugging Face ids: a fake cache on disk in the real layout (never the network), and the online path against a
local HTTP server on 127.0.0.1 that answers as the Hub does."""

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from moeplan.errors import SpecError
from moeplan.spec.hub import not_cached_error
from moeplan.spec.resolve import resolve_spec

CONFIG = json.loads((Path(__file__).parent / "data" / "hf-configs" / "qwen3_moe.json").read_text())
COMMIT = "a" * 40
OTHER = "b" * 40


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid safetensors file of zeros: 8-byte header length, JSON header, data."""
    sizes = {"BF16": 2, "F32": 4, "U8": 1}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = sizes[dtype]
        for n in shape:
            size *= n
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


TENSORS = {
    "model.embed_tokens.weight": ("BF16", [1087, 104]),
    "model.layers.0.self_attn.q_proj.weight": ("BF16", [160, 104]),
    "model.layers.4.eh_proj.weight": ("BF16", [104, 208]),  # a layer past num_hidden_layers: MTP
}
STORED = 1087 * 104 + 160 * 104 + 104 * 208


def put(cache: Path, repo: str, commit: str, files: dict[str, bytes], ref: str | None = "main") -> Path:
    """Files of one snapshot, stored as the cache stores them: blobs by hash, snapshot entries linking to them."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return hub


def test_cached_id_reads_config_and_headers(cli, cache):
    put(cache, "acme/tiny-moe", COMMIT, {"config.json": json.dumps(CONFIG).encode(),
                                         "model.safetensors": safetensors_bytes(TENSORS)})
    out = cli("estimate", "acme/tiny-moe", "--json").json()
    assert out["spec"]["name"] == "acme/tiny-moe"
    assert out["spec"]["source"].startswith("Hugging Face cache ") and "acme/tiny-moe@aaaaaaaaaaaa" in out["spec"]["source"]
    assert out["checkpoint"]["elements"] == STORED and out["checkpoint"]["mtp_elements"] == 104 * 208
    local = cli("estimate", Path(__file__).parent / "data" / "hf-configs" / "qwen3_moe.json", "--json").json()
    assert out["params"] == local["params"] and out["weights"] == local["weights"]
    text = cli("estimate", "acme/tiny-moe")
    assert text.exit_code in (0, 1) and "acme/tiny-moe" in text.stdout


def test_cache_locations_and_revisions(cli, cache, monkeypatch, tmp_path):
    config = json.dumps(CONFIG).encode()
    put(cache, "acme/tiny-moe", COMMIT, {"config.json": config})
    put(cache, "acme/tiny-moe", OTHER, {"config.json": json.dumps({**CONFIG, "num_hidden_layers": 2}).encode()}, ref="v2")
    assert resolve_spec("acme/tiny-moe").spec.num_layers == 4
    assert resolve_spec("acme/tiny-moe@v2").spec.num_layers == 2  # a branch or tag through refs/
    assert resolve_spec(f"acme/tiny-moe@{OTHER}").spec.num_layers == 2  # a commit
    # the repository's cache folder (its main snapshot) and one snapshot folder, as paths
    folder = cache / "models--acme--tiny-moe"
    assert resolve_spec(str(folder)).spec.name == "acme/tiny-moe"
    snap = resolve_spec(str(folder / "snapshots" / OTHER)).spec
    assert (snap.name, snap.num_layers) == ("acme/tiny-moe", 2)
    # HF_HOME/hub when HF_HUB_CACHE is not set
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert resolve_spec("acme/tiny-moe").spec.num_layers == 4


def test_a_snapshot_without_refs_main(cache):
    put(cache, "acme/by-commit", COMMIT, {"config.json": json.dumps(CONFIG).encode()}, ref=None)
    assert resolve_spec("acme/by-commit").spec.name == "acme/by-commit"  # the one cached revision
    put(cache, "acme/by-commit", OTHER, {"config.json": json.dumps(CONFIG).encode()}, ref=None)
    with pytest.raises(SpecError, match=r"2 cached revisions and no refs/main; name one: acme/by-commit@aaaaaaaaaaaa"):
        resolve_spec("acme/by-commit")
    assert resolve_spec(f"acme/by-commit@{OTHER}").spec.name == "acme/by-commit"


def test_gguf_repositories_in_the_cache(cli, cache, tmp_path):
    from test_gguf import expected_bytes, tensors, write

    names = list(tensors())
    files = {
        "tiny-Q4_K_M.gguf": write(tmp_path / "a.gguf").read_bytes(),
        "mmproj-F16.gguf": b"not a model",
        "Q8_0/tiny-Q8_0-00001-of-00002.gguf": write(tmp_path / "x-00001-of-00002.gguf", names[:20], split=(0, 2)).read_bytes(),
        "Q8_0/tiny-Q8_0-00002-of-00002.gguf": write(tmp_path / "x-00002-of-00002.gguf", names[20:], metadata=False, split=(1, 2)).read_bytes(),
    }
    put(cache, "unsloth/tiny-GGUF", COMMIT, files)
    out = cli("estimate", "unsloth/tiny-GGUF:Q4_K_M", "--gpu", "l4", "--json").json()
    assert out["spec"]["name"] == "unsloth/tiny-GGUF:Q4_K_M" and out["weights"]["total_bytes"] == expected_bytes()
    split = resolve_spec("unsloth/tiny-GGUF:q8_0")  # the tag is case-insensitive; a split file is read from all its parts
    assert split.weights.total_bytes == expected_bytes() and split.spec.name == "unsloth/tiny-GGUF:q8_0"
    several = cli("estimate", "unsloth/tiny-GGUF")
    assert several.exit_code == 2 and "2 cached GGUF files (Q8_0/tiny-Q8_0-00001-of-00002.gguf, tiny-Q4_K_M.gguf)" in several.stderr
    missing = cli("estimate", "unsloth/tiny-GGUF:Q2_K")
    assert missing.exit_code == 3 and "hf download unsloth/tiny-GGUF --include '*Q2_K*'" in missing.stderr


def test_partly_cached_shards_are_not_counted(cli, cache):
    index = {"metadata": {"total_size": 1}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    put(cache, "acme/tiny-moe", COMMIT, {"config.json": json.dumps(CONFIG).encode(),
                                         "model.safetensors.index.json": json.dumps(index).encode(),
                                         "model-00001-of-00002.safetensors": safetensors_bytes(TENSORS)})
    out = cli("estimate", "acme/tiny-moe", "--json").json()
    assert out["checkpoint"] is None
    assert "1 of 2 safetensors shards are cached; stored tensors not counted" in out["notes"]


def test_modelopt_hf_quant_config_in_the_snapshot(cache):
    quant = {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]}}
    put(cache, "nvidia/tiny-fp4", COMMIT, {"config.json": json.dumps(CONFIG).encode(), "hf_quant_config.json": json.dumps(quant).encode()})
    spec = resolve_spec("nvidia/tiny-fp4").spec
    assert spec.quantization["quant_method"] == "modelopt"
    from moeplan.accounting.weights import weight_memory

    assert weight_memory(spec).formats["routed_experts"] == "nvfp4"


def test_plan_and_check_take_an_id(cli, cache, tmp_path):
    put(cache, "acme/tiny-moe", COMMIT, {"config.json": json.dumps(CONFIG).encode()})
    plan = cli("plan", "acme/tiny-moe", "--gpu", "l4", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert plan.json()["model"] == "acme/tiny-moe"
    assert "moeplan check: PASS" in cli("check", "acme/tiny-moe", "--gpu", "l4").stdout
    planfile = tmp_path / "plan.yaml"
    planfile.write_text("deployments:\n  - name: tiny\n    model: acme/tiny-moe\n    gpu: l4\n    assert:\n      fits: true\n")
    assert "PASS" in cli("check", planfile).stdout


def test_preset_stands_in_for_an_uncached_id(cli, cache):
    out = cli("estimate", "mistralai/Mixtral-8x7B-v0.1", "--json").json()
    assert out["spec"]["name"] == "mixtral-8x7b"
    assert out["notes"][0] == ("mistralai/Mixtral-8x7B-v0.1 is not in the Hugging Face cache; using preset mixtral-8x7b, "
                               "built from that repository's config.json")


def test_uncached_id_offline_is_one_line_exit_3(cli, cache):
    result = cli("estimate", "acme/missing")
    assert result.exit_code == 3
    assert result.stderr.strip().count("\n") == 0
    assert "acme/missing: not in the Hugging Face cache" in result.stderr and "hf download acme/missing config.json" in result.stderr
    assert cli("estimate", "acme/missing.json").exit_code == 2  # a file name, not an id


def test_estimate_of_a_preset_does_not_import_huggingface_hub():
    code = ("import sys; sys.argv = ['moeplan', 'estimate', 'mixtral-8x7b', '--json']\n"
            "from moeplan.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'huggingface_hub' not in sys.modules and 'gguf' not in sys.modules, 'imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- online, against a local Hub


class FakeHub(BaseHTTPRequestHandler):
    """Answers /{org}/{name}/resolve/{revision}/{file} as the Hub does: HEAD with commit and etag, ranged GET."""

    repos: dict[str, dict[str, bytes]] = {}
    gated: set[str] = set()
    seen: list[tuple[str, str, str | None]] = []
    ranges: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def _tree(self, repo: str):
        files = self.repos.get(repo)
        if files is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        payload = json.dumps([{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                              for name, data in files.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, body: bool):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "models"] and parts[4:5] == ["tree"]:
            return self._tree("/".join(parts[2:4]))
        repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
        self.seen.append((self.command, self.path, self.headers.get("authorization")))
        self.ranges.append((self.path, self.headers.get("range")))
        if repo in self.gated and self.headers.get("authorization") != "Bearer hf_good":
            return self._error(403, "GatedRepo", "Access to model is restricted.")
        if repo not in self.repos:
            return self._error(404, "RepoNotFound", "Repository not found")
        if filename not in self.repos[repo]:
            return self._error(404, "EntryNotFound", "Entry not found")
        data = self.repos[repo][filename]
        start, end = 0, len(data) - 1
        if self.headers.get("range"):
            first, last = self.headers["range"].removeprefix("bytes=").split("-")
            start, end = int(first), min(int(last), len(data) - 1)
        chunk = data[start : end + 1]
        self.send_response(206 if self.headers.get("range") else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if body:
            self.wfile.write(chunk)

    def _error(self, status: int, code: str, message: str):
        payload = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    FakeHub.repos = {"acme/tiny-moe": {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": safetensors_bytes(TENSORS)},
                     "acme/gated": {"config.json": json.dumps(CONFIG).encode()}}
    shards = {"model-00001-of-00002.safetensors": dict(list(TENSORS.items())[:2]),
              "model-00002-of-00002.safetensors": dict(list(TENSORS.items())[2:])}
    index = {"metadata": {"total_size": 0}, "weight_map": {t: f for f, ts in shards.items() for t in ts}}
    FakeHub.repos["acme/sharded"] = {"config.json": json.dumps(CONFIG).encode(), "model.safetensors.index.json": json.dumps(index).encode(),
                                     **{f: safetensors_bytes(ts) for f, ts in shards.items()}}
    FakeHub.gated, FakeHub.seen, FakeHub.ranges = {"acme/gated"}, [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.shutdown()
    server.server_close()


def test_online_fetches_config_and_header_ranges_only(cli, hub, tmp_path):
    out = cli("estimate", "acme/tiny-moe", "--json")
    assert out.exit_code == 0, out.stderr
    report = out.json()
    assert report["spec"]["name"] == "acme/tiny-moe" and report["spec"]["source"].startswith("Hugging Face Hub http://127.0.0.1:")
    assert report["checkpoint"]["elements"] == STORED
    weights = [(method, path) for method, path, _ in FakeHub.seen if path.endswith("model.safetensors") and method == "GET"]
    assert weights and all("resolve" in path for _, path in weights)
    assert not (tmp_path / "hub" / "models--acme--tiny-moe" / "snapshots" / COMMIT / "model.safetensors").exists()
    # config.json landed in the cache: the next run works offline
    assert (tmp_path / "hub" / "models--acme--tiny-moe" / "snapshots" / COMMIT / "config.json").is_file()


def test_online_sharded_repo_reads_every_shard_header_by_range(cli, hub):
    report = cli("estimate", "acme/sharded", "--json").json()
    assert report["checkpoint"]["elements"] == STORED and report["checkpoint"]["files"] == 2
    shard_gets = [r for path, r in FakeHub.ranges if path.endswith("-of-00002.safetensors") and r]
    assert sorted(shard_gets) == ["bytes=0-100000", "bytes=0-100000"]  # headers only, by byte range


def test_online_gguf_repository_reads_header_ranges_only(cli, hub, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import gguf_header  # a DeepSeek-V3-sized header: 129,280 tokens, more than the first 1 MiB range

    sparse = tmp_path / "big.gguf"
    gguf_header.write(sparse)
    with sparse.open("rb") as handle:
        head = handle.read(8 * 2**20)  # the header and zeros: the Hub serves no tensor bytes in this test
    FakeHub.repos["unsloth/Big-GGUF"] = {"README.md": b"GGUF quants", "Big-Q4_K_M.gguf": head, "mmproj-F16.gguf": b"x"}
    out = cli("estimate", "unsloth/Big-GGUF:Q4_K_M", "--gpu", "b300", "--num-gpus", "8", "--json")
    assert out.exit_code == 0, out.stderr
    report = out.json()
    assert report["spec"]["name"] == "unsloth/Big-GGUF:Q4_K_M" and report["spec"]["architecture"] == "deepseek_v3"
    assert abs(report["weights"]["total_bytes"] / 1e9 - 406.74) < 0.01
    asked = [r for path, r in FakeHub.ranges if path.endswith("Big-Q4_K_M.gguf")]
    assert asked == ["bytes=0-1048575", "bytes=0-4194303"]  # 1 MiB, then 4 MiB: the header, never the tensors
    # a repository of GGUF files and no config.json: its one GGUF file, by id alone
    FakeHub.repos["unsloth/One-GGUF"] = {"One-Q8_0.gguf": head}
    assert cli("estimate", "unsloth/One-GGUF", "--json").json()["spec"]["name"] == "unsloth/One-GGUF"
    assert "no GGUF file naming Q2_K" in cli("estimate", "unsloth/Big-GGUF:Q2_K").stderr


def test_online_errors_name_the_repo(cli, hub, monkeypatch):
    missing = cli("estimate", "acme/nope")
    assert missing.exit_code == 2 and "acme/nope: no such model on http://127.0.0.1:" in missing.stderr
    gated = cli("estimate", "acme/gated")
    assert gated.exit_code == 3 and "acme/gated: gated or forbidden" in gated.stderr and "HF_TOKEN" in gated.stderr
    assert "hf download acme/gated config.json" in gated.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    assert cli("estimate", "acme/gated", "--json").exit_code == 0
    assert ("GET", "/acme/gated/resolve/main/config.json", "Bearer hf_good") in FakeHub.seen


@pytest.mark.parametrize(("model", "download"), [("acme/tiny-moe", "hf download acme/tiny-moe config.json"),
                                                  ("acme/tiny-moe@v2", "hf download acme/tiny-moe config.json --revision v2")])
def test_no_network_is_exit_3_with_the_offline_alternative(cli, tmp_path, monkeypatch, model, download):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = cli("estimate", model)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith(f"error: {model}: cannot reach http://127.0.0.1:")
    assert download in result.stderr  # an @revision stays in the error and in the suggested download


def test_not_cached_error_names_the_revision():
    message = str(not_cached_error("acme/moe-x", "zzz"))
    assert message.startswith("acme/moe-x@zzz: not in the Hugging Face cache")
    assert "`hf download acme/moe-x config.json --revision zzz`" in message
    assert "--revision" not in str(not_cached_error("acme/moe-x"))


def test_uncached_id_at_a_revision_offline_names_it_through_the_cli(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("estimate", "acme/moe-x@v3")
    assert result.exit_code == 3, result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: acme/moe-x@v3: not in the Hugging Face cache")
    assert "`hf download acme/moe-x config.json --revision v3`" in result.stderr


def test_the_hub_client_writes_into_the_cache_read_now(monkeypatch, tmp_path):
    """The full suite wrote acme/sharded's safetensors index into tests/data/no-hf-cache: huggingface_hub's
    metadata download used the cache folder of import time, not HF_HUB_CACHE as set when the id is resolved."""
    from huggingface_hub import constants

    from moeplan.spec.hub import _hub_api

    monkeypatch.setattr(constants, "HF_HUB_CACHE", constants.HF_HUB_CACHE)  # restored after the test
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "now"))
    _hub_api()
    assert constants.HF_HUB_CACHE == str(tmp_path / "now")
