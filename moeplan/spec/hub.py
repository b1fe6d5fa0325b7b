"""Hugging Face model ids (``org/name[@revision]``): the local cache first, then the Hub's metadata, never weights.

The cache is the one huggingface_hub writes (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else
~/.cache/huggingface/hub: ``models--org--name/refs/<branch>`` and ``snapshots/<commit>/``), read through
huggingface_hub's own cache API. Online (unless ``HF_HUB_OFFLINE``), only config.json is downloaded (into that
cache) and the safetensors headers are read by byte range (``get_safetensors_metadata``); ``HF_TOKEN`` and
``HF_ENDPOINT`` are honoured. huggingface_hub is imported only here, and only when an id is resolved.
"""

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from moeplan.errors import EnvError, SpecError
from moeplan.spec.checkpoint import CheckpointSummary, summarize_checkpoint, summarize_headers

REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<quant>[\w.-]+))?(?:@(?P<revision>[\w./-]+))?$")
"""org/name with an optional :QUANT (llama.cpp's -hf org/name:Q4_K_M, a GGUF file of the repository) and @revision
(branch, tag or commit)."""
CACHE_FOLDER = re.compile(r"^models--(?P<org>[^/]+?)--(?P<name>[^/]+)$")
"""A repository's folder in the cache."""
_TRUE = ("1", "ON", "YES", "TRUE")


class NoConfig(SpecError):
    """The repository has no config.json (a repository of GGUF files)."""


class HubConfig(NamedTuple):
    """A model's config.json and where its stored tensors can be counted, from the cache or the Hub."""

    config: dict
    source: str
    """Where it came from: 'Hugging Face cache <path>' or 'Hugging Face Hub <endpoint>', with the commit."""
    snapshot: Path | None = None
    """The cached snapshot folder (cache only)."""
    headers: dict[str, dict] | None = None
    """Safetensors headers by file name (Hub only; None when the repository has none)."""
    notes: tuple[str, ...] = ()

    def checkpoint(self, num_layers: int) -> tuple[CheckpointSummary | None, list[str]]:
        """Stored tensors and notes; MTP layers are those from ``num_layers`` on."""
        if self.headers is not None:
            return summarize_headers(self.headers, num_layers), list(self.notes)
        if self.snapshot is not None:
            checkpoint, notes = _snapshot_checkpoint(self.snapshot, num_layers)
            return checkpoint, [*self.notes, *notes]
        return None, list(self.notes)


def parse_repo_id(text: str) -> tuple[str, str | None, str | None] | None:
    """(repo id, revision, GGUF quant tag) when ``text`` reads as org/name[:QUANT][@revision], else None."""
    match = REPO_ID.match(text)
    return (match["repo"], match["revision"], match["quant"]) if match else None


def hub_cache_dir() -> Path:
    """The Hugging Face cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (read at each call)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def is_offline() -> bool:
    """HF_HUB_OFFLINE is set to a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def cache_folder_repo(path: Path) -> tuple[str, Path, str | None] | None:
    """(repo id, cache dir, snapshot commit or None) when ``path`` is a repository's cache folder
    (models--org--name) or one of its snapshots (models--org--name/snapshots/<commit>), else None."""
    path = path.expanduser().resolve()
    if path.parent.name == "snapshots" and (match := CACHE_FOLDER.match(path.parent.parent.name)):
        return f"{match['org']}/{match['name']}", path.parent.parent.parent, path.name
    if match := CACHE_FOLDER.match(path.name):
        return f"{match['org']}/{match['name']}", path.parent, None
    return None


def cached_snapshot(repo_id: str, revision: str | None = None, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot folder holding ``repo_id``'s config.json at ``revision`` (default main), or None."""
    from huggingface_hub import try_to_load_from_cache

    cache_dir = cache_dir or hub_cache_dir()
    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    if isinstance(found, str):
        return Path(found).parent
    return _only_snapshot(repo_id, cache_dir) if revision is None else None


def _only_snapshot(repo_id: str, cache_dir: Path) -> Path | None:
    """Without refs/main (a download by commit): the one cached revision that holds config.json."""
    repo = _cached_repo(repo_id, cache_dir)
    revisions = sorted((r for r in repo.revisions if (r.snapshot_path / "config.json").is_file()),
                       key=lambda r: r.commit_hash) if repo else []
    if len(revisions) > 1:
        named = ", ".join(f"{repo_id}@{r.commit_hash[:12]}" for r in revisions)
        raise SpecError(f"{repo_id}: {len(revisions)} cached revisions and no refs/main; name one: {named}")
    return revisions[0].snapshot_path if revisions else None


def _cached_repo(repo_id: str, cache_dir: Path):
    """huggingface_hub's record (CachedRepoInfo) of the model repository ``repo_id`` in the cache, or None; the
    whole cache is scanned only when it has a folder for the repository."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    if not (cache_dir / ("models--" + repo_id.replace("/", "--"))).is_dir():
        return None
    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return None
    return next((r for r in info.repos if r.repo_id == repo_id and r.repo_type == "model"), None)


def cached_gguf(repo_id: str, revision: str | None, quant: str | None, cache_dir: Path | None = None) -> Path | None:
    """The cached GGUF file (first part of a split one) of ``repo_id`` whose path names ``quant`` (case-insensitive),
    from the cache's file listing (``scan_cache_dir``); None when none is cached. Several candidates: SpecError
    naming them. Multimodal projector files (mmproj) are not models."""
    repo = _cached_repo(repo_id, cache_dir or hub_cache_dir())
    if repo is None:
        return None
    revisions = [r for r in repo.revisions if (revision or "main") in r.refs or (revision and r.commit_hash.startswith(revision))]
    if not revisions and revision is None and len(repo.revisions) == 1:
        revisions = list(repo.revisions)
    listed = [f.file_path.relative_to(r.snapshot_path).as_posix() for r in revisions for f in r.files]
    chosen = pick_gguf(listed, repo_id, quant, "cached ")
    return revisions[0].snapshot_path / chosen if chosen else None


def pick_gguf(paths: list[str], repo_id: str, quant: str | None, where: str = "") -> str | None:
    """The one GGUF model file among a repository's ``paths`` (first parts of split files; no mmproj) whose path
    names ``quant`` (case-insensitive); None when there is none, SpecError naming them when there are several."""
    from moeplan.spec.gguf import SPLIT

    def first_part(name: str) -> bool:
        split = SPLIT.match(name.rsplit("/", 1)[-1])
        return not split or split["part"] == "00001"

    files = sorted(p for p in paths if p.lower().endswith(".gguf") and "mmproj" not in p.lower() and first_part(p))
    if quant:
        files = [f for f in files if quant.lower() in f.lower()]
    if len(files) > 1:
        raise SpecError(f"{repo_id}: {len(files)} {where}GGUF files ({', '.join(files[:6])}); name one as {repo_id}:QUANT (e.g. :Q4_K_M)")
    return files[0] if files else None


_FIRST_RANGE_BYTES = 2**20
_MAX_HEADER_BYTES = 2**28
"""A remote GGUF header is fetched by byte range: 1 MiB first, four times more while it ends inside the header,
at most 256 MiB (a 256k-token vocabulary with merges is about 10 MiB)."""


def fetch_gguf_from_hub(repo_id: str, revision: str | None, quant: str | None):
    """The header of a repository's GGUF file (every part of a split one) by byte ranges, never the tensors;
    (GGUFHeader, the file's path in the repository, source)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    from moeplan.spec.gguf import SPLIT, HeaderTruncated, header_from_bytes

    api = _hub_api()
    endpoint = api.endpoint
    label = f"{repo_id}:{quant}" if quant else repo_id
    with _hub_call(repo_id, revision, endpoint):
        listed = [f.path for f in api.list_repo_tree(repo_id, recursive=True, revision=revision) if isinstance(f, RepoFile)]
    chosen = pick_gguf(listed, repo_id, quant)
    if chosen is None:
        raise SpecError(f"{label}: the repository holds no GGUF file{' naming ' + quant if quant else ''} on {endpoint}")
    folder, _, name = chosen.rpartition("/")
    split = SPLIT.match(name)
    names = [chosen] if not split else [
        f"{folder + '/' if folder else ''}{split['stem']}-{i:05d}-of-{split['count']}.gguf" for i in range(1, int(split["count"]) + 1)]
    missing = [n for n in names if n not in listed]
    if missing:
        raise SpecError(f"{label}: split GGUF model is missing {', '.join(missing)} on {endpoint}")
    parts = []
    for part in names:
        size = _FIRST_RANGE_BYTES
        while True:
            url = hf_hub_url(repo_id, part, revision=revision, endpoint=endpoint)
            with _hub_call(repo_id, revision, endpoint):
                response = get_session().get(url, headers={**build_hf_headers(token=api.token), "range": f"bytes=0-{size - 1}"},
                                             timeout=10, follow_redirects=True)
                hf_raise_for_status(response)
            data = response.content
            try:
                header_from_bytes([(part, data)])
                break
            except HeaderTruncated:
                if len(data) < size or size >= _MAX_HEADER_BYTES:
                    raise SpecError(f"{label}: {part} has no complete GGUF header in its first {len(data):,} bytes") from None
                size *= 4
        parts.append((part, data))
    return header_from_bytes(parts), chosen, f"Hugging Face Hub {endpoint} ({repo_id}/{chosen})"


def not_cached_gguf_error(repo_id: str, quant: str) -> EnvError:
    """A GGUF quant asked for by id that the cache does not hold while HF_HUB_OFFLINE is set."""
    return EnvError(f"{repo_id}:{quant}: no cached GGUF file names {quant} and HF_HUB_OFFLINE is set; "
                    f"run `hf download {repo_id} --include '*{quant}*'` where there is network")


def _snapshot_checkpoint(snapshot: Path, num_layers: int | None) -> tuple[CheckpointSummary | None, list[str]]:
    """Stored tensors of a cached snapshot: every shard its index lists must be there, or none is counted."""
    index = snapshot / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, [f"{index}: unreadable safetensors index; stored tensors not counted"]
        present = {s for s in shards if (snapshot / s).is_file()}
        if present != shards:
            return None, [f"{len(present)} of {len(shards)} safetensors shards are cached; stored tensors not counted"]
    return summarize_checkpoint(snapshot, num_layers), []


def read_json_object(path: Path) -> dict:
    """A JSON file of a snapshot or checkpoint folder that must hold an object; SpecError naming it otherwise."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{path}: unreadable ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must hold a JSON object")
    return data


def read_cached(repo_id: str, snapshot: Path) -> HubConfig:
    """config.json of a cached snapshot."""
    config = read_json_object(snapshot / "config.json")
    return HubConfig(config, f"Hugging Face cache {snapshot} ({repo_id}@{snapshot.name[:12]})", snapshot=snapshot)


def _offline_hint(repo_id: str, revision: str | None = None) -> str:
    at = f" --revision {revision}" if revision else ""
    return f"offline alternative: `hf download {repo_id} config.json{at}` where there is network, then run again"


def _hub_error(error: Exception, repo_id: str, revision: str | None, endpoint: str) -> Exception:
    """One line naming the repository for each way the Hub can refuse."""
    from huggingface_hub import errors

    where = f"{repo_id}@{revision}" if revision else repo_id
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, errors.LocalEntryNotFoundError):  # the Hub could not be reached (and nothing is cached)
        return EnvError(f"{where}: cannot reach {endpoint}; {_offline_hint(repo_id, revision)}")
    if isinstance(error, errors.GatedRepoError) or status == 403:
        return EnvError(f"{where}: gated or forbidden on {endpoint} (HTTP {status}); accept its terms on the model page "
                        f"and set HF_TOKEN to a token that may read it; {_offline_hint(repo_id, revision)}")
    if isinstance(error, errors.RevisionNotFoundError):
        return SpecError(f"{where}: no such revision on {endpoint}")
    if isinstance(error, errors.RepositoryNotFoundError) or status == 401:
        return SpecError(f"{where}: no such model on {endpoint} (HTTP {status}; a private repository needs HF_TOKEN); "
                         "check the id, or give a local directory or preset")
    if isinstance(error, errors.EntryNotFoundError) or status == 404:
        return NoConfig(f"{where}: the repository has no config.json on {endpoint}")
    return EnvError(f"{where}: cannot reach {endpoint} ({type(error).__name__}); {_offline_hint(repo_id, revision)}")


def _hub_api():
    """huggingface_hub's HfApi for HF_ENDPOINT and HF_TOKEN, with HF_HUB_OFFLINE and the cache folder read now
    (huggingface_hub reads them once at import; moeplan at each call: the safetensors index it downloads went to
    the import-time cache) and its retry warnings silenced (they would break the one-line error)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import logging

    constants.HF_HUB_OFFLINE = is_offline()
    constants.HF_HUB_CACHE = str(hub_cache_dir())
    logging.set_verbosity_error()
    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or "https://huggingface.co", token=os.environ.get("HF_TOKEN") or None)


@contextmanager
def _hub_call(repo_id: str, revision: str | None, endpoint: str):
    """A request to the Hub whose transport errors become one line naming the repository (_hub_error)."""
    from huggingface_hub import errors

    try:
        yield
    except Exception as error:
        if not _is_transport_error(error, errors):
            raise
        raise _hub_error(error, repo_id, revision, endpoint) from None


def _is_transport_error(error: Exception, errors) -> bool:
    """An HTTP status, a missing file or a failed connection (huggingface_hub's HTTP client raises its own types)."""
    known = (errors.HfHubHTTPError, errors.LocalEntryNotFoundError, OSError)
    return isinstance(error, known) or type(error).__module__.split(".")[0].startswith("httpx")


def fetch_from_hub(repo_id: str, revision: str | None) -> HubConfig:
    """config.json (downloaded into the cache) and the safetensors headers (byte ranges) of ``repo_id``."""
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import disable_progress_bars

    api = _hub_api()
    endpoint = api.endpoint
    disable_progress_bars()
    # one HEAD without retries first: huggingface_hub retries a failing download for up to a minute
    with _hub_call(repo_id, revision, endpoint):
        get_hf_file_metadata(hf_hub_url(repo_id, "config.json", revision=revision, endpoint=endpoint), token=api.token,
                             endpoint=endpoint)
        path = Path(api.hf_hub_download(repo_id, "config.json", revision=revision, cache_dir=hub_cache_dir()))
    config = read_cached(repo_id, path.parent).config
    notes: list[str] = []
    try:
        metadata = api.get_safetensors_metadata(repo_id, revision=revision)
    except errors.NotASafetensorsRepoError:
        metadata, notes = None, ["the repository holds no safetensors files; stored tensors not counted"]
    except Exception as error:
        if not (isinstance(error, errors.SafetensorsParsingError) or _is_transport_error(error, errors)):
            raise
        metadata, notes = None, [f"safetensors headers unreadable ({type(error).__name__}); stored tensors not counted"]
    headers = None if metadata is None else {
        name: {tensor: {"dtype": info.dtype, "shape": info.shape, "data_offsets": info.data_offsets} for tensor, info in file.tensors.items()}
        for name, file in metadata.files_metadata.items()
    }
    return HubConfig(config, f"Hugging Face Hub {endpoint} ({repo_id}@{path.parent.name[:12]})", headers=headers, notes=tuple(notes))


def not_cached_error(repo_id: str, revision: str | None = None) -> EnvError:
    """The error for an id (at ``revision``) that is neither cached nor fetchable because HF_HUB_OFFLINE is set."""
    where = f"{repo_id}@{revision}" if revision else repo_id
    return EnvError(f"{where}: not in the Hugging Face cache ({hub_cache_dir()}) and HF_HUB_OFFLINE is set; "
                    f"{_offline_hint(repo_id, revision)}")
