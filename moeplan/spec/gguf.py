"""GGUF files (llama.cpp): the spec from the header's metadata, and weight memory from each tensor's stored type.

Only the header is read, with the ``gguf`` package llama.cpp publishes (imported here, only for .gguf files):
its reader maps the file and parses the key/value metadata and the tensor table; tensor data is never
touched. A split model (``name-00001-of-00003.gguf``) is read from all its parts. The metadata is turned into
the Hugging Face config of the same architecture (llama.cpp's convert_hf_to_gguf.py writes it from that
config), so one reader per architecture builds the spec; memory comes from the file's own bytes, so llama.cpp's
``_M``/``_S`` mixes (attn_v or ffn_down at a higher type) count exactly.
"""

import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from moeplan.accounting.params import COMPONENTS, count_params
from moeplan.accounting.weights import WeightMemory, active_weight_bytes
from moeplan.errors import SpecError
from moeplan.spec.model import ModelSpec

SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$")
"""llama.cpp's gguf-split file names."""


class StoredTensor(NamedTuple):
    """One tensor of a GGUF file: its name, stored type, elements and bytes."""

    name: str
    type: str
    """ggml type, lower case (q4_k, q6_k, f32, ...)."""
    elements: int
    bytes: int
    layer: int | None
    """The block (decoder layer) it belongs to; None for token_embd, output and output_norm."""
    component: str
    """params.COMPONENTS entry it counts under."""


_COMPONENT_RULES = (
    (re.compile(r"_(exps|exp)(\.|$)"), "routed_experts"),
    (re.compile(r"_(shexp)(\.|$)"), "shared_experts"),
    (re.compile(r"^(ffn_gate_inp|exp_probs_b)(\.|$)"), "router"),
    (re.compile(r"^(ffn_gate|ffn_up|ffn_down)(\.|$)"), "dense_mlp"),
    (re.compile(r"^attn_(norm|post_norm)(\.|$)|^(ffn_norm|post_attention_norm|post_ffw_norm|layer_output_norm)(\.|$)"), "norms"),
    (re.compile(r"^attn_"), "attention"),
    (re.compile(r"^ssm_"), "mamba"),
)
"""Tensor name inside a block (after 'blk.N.') → component, first match wins (llama.cpp's tensor names)."""
_TOP = {"token_embd": "embedding", "output": "lm_head", "output_norm": "norms"}


def classify(name: str) -> tuple[int | None, str | None]:
    """(block, component) of a GGUF tensor name; component None when the name is not one moeplan knows."""
    if name.startswith("blk."):
        _, layer, rest = name.split(".", 2)
        component = next((c for rule, c in _COMPONENT_RULES if rule.search(rest)), None)
        return (int(layer) if layer.isdigit() else None), component
    return None, _TOP.get(name.rsplit(".", 1)[0])


def split_parts(path: Path) -> list[Path]:
    """All files of a split model given any of them (the file itself when it is not split)."""
    match = SPLIT.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    parts = [path.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise SpecError(f"{path}: split GGUF model is missing {', '.join(missing)}")
    return parts


class GGUFHeader(NamedTuple):
    """What the header of a (split) GGUF file holds."""

    metadata: dict[str, object]
    """Key/value metadata of the first part (scalars and short arrays; long arrays as their length)."""
    tensors: list[tuple[str, str, int, int, list[int]]]
    """(name, ggml type, elements, bytes, shape) of every tensor in every part."""


_LONG_ARRAY = 64
"""Metadata arrays longer than this (the tokenizer's vocabulary, scores, merges) are kept as their length only."""
_MAX_COUNT = 10_000_000
"""Bound on any count the header declares (tensors, keys, array items): a corrupt header cannot hang the read."""


class HeaderTruncated(SpecError):
    """The bytes end inside the header (a truncated file, or a first range of a remote file too short)."""


class _Header:
    """A little-endian GGUF v2/v3 header over a memory map or bytes, parsed with gguf's type tables (gguf.constants).

    gguf's GGUFReader builds a numpy view of every vocabulary entry (seconds for a 129k-token tokenizer);
    this walks the same structure once, skipping numeric arrays by their size, and never touches tensor data.
    """

    def __init__(self, buffer, path: Path | str):
        import struct

        from gguf import GGUF_MAGIC, GGUFValueType

        self.buffer, self.path, self.struct, self.types = buffer, path, struct, GGUFValueType
        self.scalar = {GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
                       GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
                       GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
                       GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d"}
        self.at = 0
        if self.buffer[:4] != struct.pack("<I", GGUF_MAGIC):
            raise SpecError(f"{path}: not a GGUF file (no GGUF magic)")
        self.at = 4
        self.version = self._read("<I")
        if self.version not in (2, 3):
            raise SpecError(f"{path}: GGUF version {self.version} is not read (2 and 3 are; a big-endian file reads as a huge version)")
        self.tensor_count, self.kv_count = self._count(), self._count()

    @classmethod
    def of_file(cls, path: Path) -> "_Header":
        import mmap

        with path.open("rb") as handle:
            return cls(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), path)

    def _truncated(self) -> HeaderTruncated:
        return HeaderTruncated(f"{self.path}: GGUF header ends early (truncated file)")

    def _read(self, fmt: str):
        try:
            (value,) = self.struct.unpack_from(fmt, self.buffer, self.at)
        except self.struct.error:
            raise self._truncated() from None
        self.at += self.struct.calcsize(fmt)
        return value

    def _count(self) -> int:
        value = self._read("<Q")
        if value > _MAX_COUNT:
            raise SpecError(f"{self.path}: GGUF header declares {value:,} entries; not a valid file")
        return value

    def _string(self) -> str:
        size = self._read("<Q")
        if self.at + size > len(self.buffer):
            raise self._truncated()
        text = self.buffer[self.at : self.at + size].decode("utf-8", errors="replace")
        self.at += size
        return text

    def _skip_strings(self, count: int) -> None:
        for _ in range(count):
            size = self._read("<Q")
            self.at += size
        if self.at > len(self.buffer):
            raise self._truncated()

    def _value(self, kind: int):
        try:
            kind = self.types(kind)
        except ValueError:
            raise SpecError(f"{self.path}: unknown GGUF value type {kind}") from None
        if kind == self.types.STRING:
            return self._string()
        if kind != self.types.ARRAY:
            return self._read(self.scalar[kind])
        item, count = self._read("<I"), self._count()
        if count > _LONG_ARRAY:  # keep the length; step over the items
            if item == self.types.STRING:
                self._skip_strings(count)
            elif item in self.scalar:
                self.at += count * self.struct.calcsize(self.scalar[self.types(item)])
            else:
                raise SpecError(f"{self.path}: GGUF array of type {item} is not read")
            return count
        return [self._value(item) for _ in range(count)]

    def read(self) -> tuple[dict[str, object], list[tuple[str, str, int, int, list[int]]]]:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        metadata = {}
        for _ in range(self.kv_count):
            key = self._string()
            metadata[key] = self._value(self._read("<I"))
        tensors = []
        for _ in range(self.tensor_count):
            name = self._string()
            dims = [self._read("<Q") for _ in range(self._read("<I"))]
            code = self._read("<I")
            self._read("<Q")  # the data offset: the data is not read
            try:
                kind = GGMLQuantizationType(code)
                block, size = GGML_QUANT_SIZES[kind]
            except (ValueError, KeyError):
                raise SpecError(f"{self.path}: tensor {name!r} has ggml type {code}, unknown to gguf {_gguf_version()}") from None
            elements = 1
            for n in dims:
                elements *= n
            tensors.append((name, kind.name.lower(), elements, elements // block * size, list(reversed(dims))))
        if hasattr(self.buffer, "close"):
            self.buffer.close()
        return metadata, tensors


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def read_header(path: Path) -> GGUFHeader:
    """Metadata and tensor table of a GGUF file (all parts of a split one), reading no tensor data.
    Tensor shapes are in PyTorch order (outermost first): token_embd is [vocab, hidden]."""

    def read(part: Path) -> tuple[dict[str, object], list]:
        try:
            return _Header.of_file(part).read()
        except (OSError, ValueError) as error:
            raise SpecError(f"{part}: not a readable GGUF file ({error})") from None

    return _joined([read(part) for part in split_parts(path)])


def header_from_bytes(parts: list[tuple[str, bytes]]) -> GGUFHeader:
    """Metadata and tensor table from the first bytes of each part of a (remote) GGUF file, in part order;
    HeaderTruncated when a part's bytes end inside its header."""
    return _joined([_Header(data, name).read() for name, data in parts])


def _joined(parts: list[tuple[dict[str, object], list]]) -> GGUFHeader:
    """One header from its parts' (metadata, tensors), in part order: the first part's metadata, every tensor."""
    return GGUFHeader(parts[0][0] if parts else {}, [tensor for _, tensors in parts for tensor in tensors])


def _hf_config(metadata: dict[str, object], tensors: dict[str, list[int]], source: str) -> dict:
    """The Hugging Face config of the file's architecture, from llama.cpp's metadata keys."""
    arch = str(metadata.get("general.architecture", ""))

    def get(key: str, default=None):
        return metadata.get(f"{arch}.{key}", default)

    if get("block_count") is None or get("embedding_length") is None:
        raise SpecError(f"{source}: GGUF metadata has no {arch}.block_count / {arch}.embedding_length")
    embedding = tensors.get("token_embd.weight")
    vocab = get("vocab_size") or metadata.get("tokenizer.ggml.tokens") or (embedding[0] if embedding else None)
    experts = get("expert_count") or 0
    config = {
        "num_hidden_layers": get("block_count"),
        "hidden_size": get("embedding_length"),
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": get("attention.head_count"),
        "num_key_value_heads": get("attention.head_count_kv"),
        "max_position_embeddings": get("context_length"),
        "vocab_size": vocab,
        "rms_norm_eps": get("attention.layer_norm_rms_epsilon", 1e-6),
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    if get("attention.key_length"):
        config["head_dim"] = get("attention.key_length")
    moe = {"num_experts_per_tok": get("expert_used_count"), "moe_intermediate_size": get("expert_feed_forward_length")}
    if arch == "llama":
        return {**config, "model_type": "mixtral", "num_local_experts": experts, **moe} if experts else {**config, "model_type": "llama"}
    if arch in ("qwen2", "qwen3"):
        return {**config, "model_type": arch}
    if arch == "qwen3moe":
        return {**config, "model_type": "qwen3_moe", "num_experts": experts, "decoder_sparse_step": 1, "mlp_only_layers": [], **moe}
    if arch == "qwen2moe":
        return {**config, "model_type": "qwen2_moe", "num_experts": experts, "decoder_sparse_step": 1, "mlp_only_layers": [],
                "shared_expert_intermediate_size": get("expert_shared_feed_forward_length"), **moe}
    if arch == "olmoe":
        return {**config, "model_type": "olmoe", "num_experts": experts, **moe}
    if arch == "deepseek2":
        rope = get("rope.dimension_count")
        key = get("attention.key_length_mla") or get("attention.key_length")
        value = get("attention.value_length_mla") or get("attention.value_length")
        config.pop("head_dim", None)
        return {
            **config, "model_type": "deepseek_v3" if get("expert_gating_func") == 2 else "deepseek_v2",
            "q_lora_rank": get("attention.q_lora_rank") or None, "kv_lora_rank": get("attention.kv_lora_rank"),
            "qk_rope_head_dim": rope, "qk_nope_head_dim": key - rope, "v_head_dim": value,
            "n_routed_experts": experts, "n_shared_experts": get("expert_shared_count", 0),
            "first_k_dense_replace": get("leading_dense_block_count", 0), "n_group": get("expert_group_count", 1),
            "topk_group": get("expert_group_used_count", 1), "num_experts_per_tok": get("expert_used_count"),
            "moe_intermediate_size": get("expert_feed_forward_length"), "moe_layer_freq": 1,
            "num_nextn_predict_layers": get("nextn_predict_layers", 0),
        }
    if arch == "glm4moe":  # convert_hf_to_gguf.py counts the nextn (MTP) blocks in block_count
        nextn = get("nextn_predict_layers", 0)
        return {
            **config, "model_type": "glm4_moe", "num_hidden_layers": get("block_count") - nextn, "num_nextn_predict_layers": nextn,
            "n_routed_experts": experts, "n_shared_experts": get("expert_shared_count", 0),
            "first_k_dense_replace": get("leading_dense_block_count", 0), "n_group": get("expert_group_count", 1),
            "topk_group": get("expert_group_used_count", 1), "use_qk_norm": "blk.0.attn_q_norm.weight" in tensors,
            "attention_bias": "blk.0.attn_q.bias" in tensors, **moe,
        }
    if arch == "gpt-oss":  # llama.cpp: sliding-window attention in every other layer, from layer 0
        layers = get("block_count")
        return {
            **config, "model_type": "gpt_oss", "num_local_experts": experts, "num_experts_per_tok": get("expert_used_count"),
            "intermediate_size": get("expert_feed_forward_length"), "sliding_window": get("attention.sliding_window"),
            "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)], "attention_bias": True,
        }
    raise SpecError(f"{source}: GGUF architecture {arch!r} is not modelled (known: llama, qwen2, qwen3, qwen2moe, "
                    "qwen3moe, olmoe, deepseek2, glm4moe, gpt-oss); write a moeplan.yaml spec instead")


def _stored(header: GGUFHeader) -> list[StoredTensor]:
    rows = []
    for name, kind, elements, size, _ in header.tensors:
        layer, component = classify(name)
        rows.append(StoredTensor(name, kind, elements, size, layer, component or "other"))
    return rows


def _dominant(tensors: list[StoredTensor]) -> str:
    by_type = Counter()
    for t in tensors:
        by_type[t.type] += t.bytes
    return by_type.most_common(1)[0][0]


def weight_memory_from_tensors(spec: ModelSpec, tensors: list[StoredTensor], origin: str) -> WeightMemory:
    """Weight memory from stored tensors: each tensor's own bytes, by component and layer (MTP blocks apart)."""
    from moeplan.accounting.formats import FORMATS

    main = [t for t in tensors if t.layer is None or t.layer < spec.num_layers]
    mtp = [t for t in tensors if t.layer is not None and t.layer >= spec.num_layers]
    unknown = [t.name for t in main if t.component == "other"]
    by_component = dict.fromkeys(COMPONENTS, 0)
    for t in main:
        by_component["norms" if t.component == "other" else t.component] += t.bytes
    layer_component = [dict.fromkeys(COMPONENTS, 0) for _ in range(spec.num_layers)]
    for t in main:
        if t.layer is not None:
            layer_component[t.layer]["norms" if t.component == "other" else t.component] += t.bytes
    routed = by_component["routed_experts"]
    per_expert = routed // max(spec.num_experts * spec.moe_layer_count, 1) if spec.moe else 0
    scales = sum(t.bytes - -(-t.elements * FORMATS[t.type].value_bits // 8) for t in main
                 if t.type in FORMATS and not FORMATS[t.type].is_plain_float)
    formats, notes = {}, []
    for component in COMPONENTS:
        matrices = [t for t in main if t.component == component and not t.name.endswith(".bias")]
        if not matrices or component == "norms":
            continue
        formats[component] = _dominant(matrices)
        mix = Counter()
        for t in matrices:
            mix[t.type] += t.bytes
        if len(mix) > 1:
            total = sum(mix.values())
            shares = [f"{k} {v / total:.0%}" for k, v in mix.most_common() if v / total >= 0.005]
            if len(shares) > 1:
                notes.append(f"{component}: {', '.join(shares)} of bytes")
    if unknown:
        notes.append(f"{len(unknown)} tensors of unknown role counted with norms: {', '.join(unknown[:5])}")
    vectors = [t for t in main if t.component == "norms"]
    buffers = spec.moe is not None and spec.moe.router_correction_bias and not spec.moe.router_correction_is_parameter
    stored_params = sum(t.elements for t in main if not (buffers and ".exp_probs_b" in t.name))  # a buffer, not a parameter
    expected = count_params(spec).total
    if stored_params != expected:
        notes.append(f"the file stores {stored_params:,} weights; the spec built from its metadata has {expected:,}")
    total = sum(by_component.values())
    return WeightMemory(
        total_bytes=total,
        by_component_bytes=by_component,
        active_bytes=active_weight_bytes(spec, total, routed, per_expert),
        per_expert_bytes=per_expert,
        layer_bytes=[sum(layer.values()) for layer in layer_component],
        layer_component_bytes=layer_component,
        scale_bytes=scales,
        mtp_bytes=sum(t.bytes for t in mtp),
        formats=formats,
        vector_format=_dominant(vectors) if vectors else "f32",
        origin=origin,
        bits_per_param=8 * total / expected,
        notes=notes,
    )


class GGUFModel(NamedTuple):
    spec: ModelSpec
    weights: WeightMemory
    tensors: list[StoredTensor]


def model_from_header(header: GGUFHeader, file_name: str, source: str) -> GGUFModel:
    """The spec, exact weight memory and tensor table a GGUF header describes (``file_name``: the file's name)."""
    from moeplan.spec.hf import spec_from_hf_config

    shapes = {name: shape for name, _, _, _, shape in header.tensors}
    config = _hf_config(header.metadata, shapes, source)
    split = SPLIT.match(file_name)
    name = str(header.metadata.get("general.name") or (split["stem"] if split else file_name.removesuffix(".gguf")))
    spec = spec_from_hf_config(config, name=name, source=f"GGUF {source}")
    tensors = _stored(header)
    weights = weight_memory_from_tensors(spec, tensors, f"GGUF {file_name}: each tensor's stored type and bytes")
    return GGUFModel(spec, weights, tensors)


def read_gguf(path: Path) -> GGUFModel:
    """The spec, exact weight memory and tensor table of a GGUF file."""
    return model_from_header(read_header(path), path.name, str(path))
