"""An id with @revision keeps its revision in the one-line error and in the `hf download` it suggests (QA pass:
`acme/moe-x@zzz` offline said `acme/moe-x: not in the cache` and `hf download acme/moe-x config.json`)."""

import socket

from moeplan.spec.hub import not_cached_error


def test_not_cached_error_names_the_revision():
    message = str(not_cached_error("acme/moe-x", "zzz"))
    assert message.startswith("acme/moe-x@zzz: not in the Hugging Face cache")
    assert "`hf download acme/moe-x config.json --revision zzz`" in message
    assert "--revision" not in str(not_cached_error("acme/moe-x"))


def test_unreachable_hub_at_a_revision_suggests_that_revision(cli, tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = cli("estimate", "acme/tiny-moe@v2")
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("error: acme/tiny-moe@v2: cannot reach http://127.0.0.1:")
    assert "hf download acme/tiny-moe config.json --revision v2" in result.stderr


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
