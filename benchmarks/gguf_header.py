"""Time `moeplan estimate model.gguf` on a DeepSeek-V3-sized GGUF file (Q4_K_M-like types, 129,280-token
vocabulary, 61 blocks of 256 experts): the header is written with gguf's writer and the file extended to its
full size sparsely, so no tensor data exists on disk and any read of it would show as time.
Prints the file size, the library time of resolve_spec and the whole CLI process time (median of RUNS).
Usage: python benchmarks/gguf_header.py [RUNS]
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

Q = GGMLQuantizationType
H, L, E, FF, DENSE, VOCAB, HEADS = 7168, 61, 256, 2048, 18432, 129_280, 128


def tensors() -> dict[str, tuple[list[int], GGMLQuantizationType]]:
    table = {"token_embd.weight": ([VOCAB, H], Q.Q4_K), "output.weight": ([VOCAB, H], Q.Q6_K), "output_norm.weight": ([H], Q.F32)}
    for i in range(L):
        b = f"blk.{i}"
        table |= {f"{b}.attn_norm.weight": ([H], Q.F32), f"{b}.ffn_norm.weight": ([H], Q.F32),
                  f"{b}.attn_q_a.weight": ([1536, H], Q.Q4_K), f"{b}.attn_q_a_norm.weight": ([1536], Q.F32),
                  f"{b}.attn_q_b.weight": ([HEADS * 192, 1536], Q.Q4_K), f"{b}.attn_kv_a_mqa.weight": ([576, H], Q.Q4_K),
                  f"{b}.attn_kv_a_norm.weight": ([512], Q.F32), f"{b}.attn_kv_b.weight": ([HEADS * 256, 512], Q.Q6_K),
                  f"{b}.attn_output.weight": ([H, HEADS * 128], Q.Q4_K)}
        if i < 3:
            table |= {f"{b}.ffn_gate.weight": ([DENSE, H], Q.Q4_K), f"{b}.ffn_up.weight": ([DENSE, H], Q.Q4_K),
                      f"{b}.ffn_down.weight": ([H, DENSE], Q.Q6_K)}
        else:
            table |= {f"{b}.ffn_gate_inp.weight": ([E, H], Q.F32), f"{b}.exp_probs_b.bias": ([E], Q.F32),
                      f"{b}.ffn_gate_exps.weight": ([E, FF, H], Q.Q4_K), f"{b}.ffn_up_exps.weight": ([E, FF, H], Q.Q4_K),
                      f"{b}.ffn_down_exps.weight": ([E, H, FF], Q.Q6_K if i % 2 else Q.Q4_K),
                      f"{b}.ffn_gate_shexp.weight": ([FF, H], Q.Q4_K), f"{b}.ffn_up_shexp.weight": ([FF, H], Q.Q4_K),
                      f"{b}.ffn_down_shexp.weight": ([H, FF], Q.Q6_K)}
    return table


def write(path: Path) -> int:
    writer = GGUFWriter(str(path), "deepseek2")
    writer.add_name("DeepSeek-V3-shaped benchmark")
    for key, value in {"block_count": L, "embedding_length": H, "feed_forward_length": DENSE, "context_length": 163840,
                       "expert_count": E, "expert_used_count": 8, "expert_feed_forward_length": FF, "expert_shared_count": 1,
                       "leading_dense_block_count": 3, "expert_group_count": 8, "expert_group_used_count": 4,
                       "expert_gating_func": 2, "rope.dimension_count": 64, "attention.head_count": HEADS,
                       "attention.head_count_kv": HEADS, "attention.key_length": 192, "attention.value_length": 128,
                       "attention.q_lora_rank": 1536, "attention.kv_lora_rank": 512}.items():
        writer.add_uint32(f"deepseek2.{key}", value)
    writer.add_float32("deepseek2.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_token_list([f"token-{i}".encode() for i in range(VOCAB)])
    total = 0
    for name, (shape, kind) in tensors().items():
        block, size = GGML_QUANT_SIZES[kind]
        nbytes = int(np.prod(shape)) // block * size
        total += nbytes
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with path.open("r+b") as handle:  # room for every tensor (with alignment), as a hole: nothing is written
        handle.truncate(path.stat().st_size + total + 32 * len(tensors()))
    return total


def main(runs: int) -> None:
    from moeplan.spec.resolve import resolve_spec

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "deepseek-v3-Q4_K_M.gguf"
        data = write(path)
        library = []
        for _ in range(runs):
            start = time.perf_counter()
            resolved = resolve_spec(str(path))
            library.append(time.perf_counter() - start)
        cli = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "moeplan", "estimate", str(path), "--gpu", "b300", "--num-gpus", "8", "--json"],
                           check=True, capture_output=True)
            cli.append(time.perf_counter() - start)
        print(f"file {path.stat().st_size / 1e9:,.1f} GB apparent ({data / 1e9:,.1f} GB of tensors, none on disk), "
              f"{len(tensors())} tensors, {VOCAB:,} tokens")
        print(f"weights {resolved.weights.total_bytes / 1e9:,.2f} GB, {resolved.weights.bits_per_param:.3f} bits/param")
        print(f"resolve_spec: median {statistics.median(library) * 1e3:,.0f} ms over {runs} runs")
        print(f"moeplan estimate --json (whole process): median {statistics.median(cli) * 1e3:,.0f} ms over {runs} runs")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
