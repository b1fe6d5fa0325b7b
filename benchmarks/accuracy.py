"""Predicted vs measured serving speed: every expressible row of the measured H100 serving runs.

    python benchmarks/accuracy.py [CSV] [--plot accuracy.png] [--rows]

CSV defaults to ../shared/accuracy/measured-serving-h100.csv next to the repository (InferenceX runs as copied
into NVIDIA aiconfigurator's silicon_sample.csv; see that folder's README). Each row becomes a `moeplan estimate`
deployment (preset, formats, layout, --isl/--osl/--concurrency); rows moeplan cannot express are counted with
the reason. Prints, per model × engine and overall: rows predicted, median predicted/measured, median absolute
percentage error and its 90th percentile, for TPOT and TTFT. See docs/accuracy.md.
"""

import argparse
import csv
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from moeplan.errors import SpecError
from moeplan.report.estimate import build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.presets import load_preset, preset_names
from moeplan.spec.resolve import ResolvedSpec

DEFAULT_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "accuracy" / "measured-serving-h100.csv"
PRESETS = {
    "deepseek-ai/DeepSeek-R1": "deepseek-r1",
    "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "MiniMaxAI/MiniMax-M2.5": "minimax-m2",  # M2.5 keeps M2's architecture
    "Qwen/Qwen3-32B": "qwen3-32b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
}
"""Hugging Face id in the CSV → moeplan preset."""
FORMATS = {"": "bf16", "bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "nvfp4", "w4a16_mxfp4": "mxfp4"}
"""gemm_quant_mode / moe_quant_mode → moeplan weight format (fp8_block: DeepSeek-style 128×128 block scales)."""
PROMPTS_PER_CONCURRENCY = 10
"""InferenceX's client sends --num-prompts = 10 × concurrency (its bench_serving invocation, --request-rate inf)."""
PREFILL_FIRST = {"sglang"}
"""Engines whose scheduler runs waiting prompts in prefill batches of their own before decoding resumes: SGLang
(scheduler.get_next_batch_to_run: a new prefill batch first; mixed with decode only under --enable-mixed-chunk,
off by default). vLLM V1 and TensorRT-LLM schedule running decodes first and fill the step's token budget with
prompt chunks."""
KV_FREE_FRACTION = 0.9
"""TensorRT-LLM's kv_cache_free_gpu_memory_fraction default: its KV pool is 0.9 of the memory the weights and the
warm-up leave free (KvCacheConfig, 1.x; moeplan.engines.trtllm), where vLLM's --gpu-memory-utilization 0.9 is
a share of the whole GPU."""
GPUS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200", "gb200": "gb200", "b300_sxm": "b300", "gb300": "gb300"}


class NotExpressible(Exception):
    """A row moeplan cannot state as a deployment (the message says why)."""


def _int(value: str, default: int | None = None) -> int | None:
    return int(value) if value not in ("", None) else default


def concurrency(row: dict) -> int:
    """Requests in flight: the source's silicon_concurrency (or the id's cNNN), else batch_size × attention_dp_size
    (decode pool: decode_batch_size × its attention DP × decode workers)."""
    match = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"]) or re.search(r"_c(\d+)_", row.get("id", ""))
    if match:
        return int(match.group(1))
    if row["batch_size"]:
        return int(row["batch_size"]) * (_int(row["attention_dp_size"], 1) or 1)
    if not row.get("decode_batch_size"):
        raise NotExpressible("no concurrency given")
    return int(row["decode_batch_size"]) * (_int(row["decode_attention_dp_size"], 1) or 1) * (_int(row["decode_num_workers"], 1) or 1)


def _model(row: dict) -> tuple[str, str, str, str]:
    """(preset, GPU, dense format, expert format) of a row, or NotExpressible."""
    preset = PRESETS.get(row["model_path"])
    if preset is None or preset not in preset_names():
        raise NotExpressible(f"no preset for {row['model_path']}")
    gpu = GPUS.get(row["system"])
    if gpu is None:
        raise NotExpressible(f"GPU {row['system']} not in the catalogue")
    try:
        dtype, expert_dtype = FORMATS[row["gemm_quant_mode"]], FORMATS[row["moe_quant_mode"]]
    except KeyError as missing:
        raise NotExpressible(f"format {missing} has no moeplan equivalent") from None
    return preset, gpu, dtype, expert_dtype


def _experts(spec, tp: int, dp: int, moe_tp: str, moe_ep: str) -> dict[str, int]:
    """ep/etp of a pool: moe_tp × moe_ep must equal its GPUs (tp × dp); dense models ignore them."""
    etp, ep = _int(moe_tp, 0), _int(moe_ep, 0)
    if spec.moe:
        if not etp or not ep or etp * ep != tp * dp:
            raise NotExpressible("moe_tp × moe_ep ≠ GPUs")
        return {"ep": ep, "etp": etp}
    if etp == 0 or ep == 0:
        raise NotExpressible("moe_tp × moe_ep ≠ GPUs")
    return {}


def disaggregated_deployments(row: dict) -> tuple[str, Deployment, Deployment]:
    """(preset, decode pool, prefill pool) of a disaggregated row: each pool one worker's layout, the decode pool at
    its decode_batch_size per attention-DP rank, the prefill pool at concurrency / prefill workers."""
    preset, gpu, dtype, expert_dtype = _model(row)
    spec, c = load_preset(preset), concurrency(row)
    pools = []
    for pool in ("decode", "prefill"):
        tp, dp = _int(row[f"{pool}_tp_size"], 1), _int(row[f"{pool}_attention_dp_size"], 1) or 1
        experts = _experts(spec, tp, dp, row[f"{pool}_moe_tp_size"], row[f"{pool}_moe_ep_size"])
        workers = _int(row[f"{pool}_num_workers"], 1) or 1
        requests = _int(row["decode_batch_size"], 0) * dp if pool == "decode" and row["decode_batch_size"] else math.ceil(c / workers)
        pools.append(Deployment(gpu=gpu, dtype=dtype, expert_dtype=expert_dtype, isl=int(row["isl"]), osl=int(row["osl"]),
                                concurrency=max(requests, 1), disaggregated=True, gpu_util=0.9, tp=tp, dp=dp,
                                pp=_int(row[f"{pool}_pp_size"], 1), **experts))
    return preset, pools[0], pools[1]


def deployment_of(row: dict) -> tuple[str, Deployment]:
    """(preset, Deployment) of an aggregated row, or NotExpressible."""
    if row["mode"] != "agg":
        raise NotExpressible("disaggregated serving")
    preset, gpu, dtype, expert_dtype = _model(row)
    spec = load_preset(preset)
    c, per_replica = concurrency(row), int(row["batch_size"])
    dp = _int(row["attention_dp_size"], 1) or 1
    tp = int(row["tp_size"])
    if c != per_replica * dp:  # TensorRT-LLM attention DP: tp_size GPUs each one attention replica
        if c % per_replica or tp % (c // per_replica):
            raise NotExpressible("concurrency, batch_size and attention DP disagree")
        dp, tp = c // per_replica, tp // (c // per_replica)
    layout = {"tp": tp, "dp": dp, "pp": _int(row["pp_size"], 1), **_experts(spec, tp, dp, row["moe_tp_size"], row["moe_ep_size"])}
    return preset, Deployment(gpu=gpu, dtype=dtype, expert_dtype=expert_dtype, isl=int(row["isl"]), osl=int(row["osl"]),
                              concurrency=c, num_prompts=PROMPTS_PER_CONCURRENCY * c, gpu_util=0.9,
                              prefill_first=row["backend"] in PREFILL_FIRST, **layout)


def trtllm_gpu_util(memory) -> float:
    """--gpu-util at which moeplan's KV cache equals TensorRT-LLM's default pool, KV_FREE_FRACTION of what the
    weights and the warm-up leave free: u·T − fixed = f·(T − fixed), so u = f + (1 − f)·fixed/T."""
    gpu = memory.most_loaded
    fixed = gpu.weights_bytes + gpu.activation_bytes + gpu.cuda_context_bytes + gpu.allocator_reserve_bytes
    total = memory.usable_bytes / memory.gpu_util
    return min(KV_FREE_FRACTION + (1 - KV_FREE_FRACTION) * fixed / total, 1.0)


def _estimate(preset: str, deployment: Deployment, engine: str):
    """The estimate of one pool; a TensorRT-LLM pool sized the way TensorRT-LLM sizes its KV cache (SGLang and vLLM
    pools at --gpu-util 0.9)."""
    resolved = ResolvedSpec(spec=load_preset(preset))
    try:
        report = build_estimate(resolved, deployment)
        if engine == "trtllm":
            report = build_estimate(resolved, deployment.model_copy(update={"gpu_util": trtllm_gpu_util(report.memory)}))
    except SpecError as error:
        raise NotExpressible(str(error)) from None
    return report.throughput


def predict(row: dict) -> tuple[float, float]:
    """(TPOT ms, TTFT ms) that `moeplan estimate` expects for a row: aggregated, one estimate; disaggregated, TPOT
    of the decode pool and TTFT of the prefill pool (KV transfer between them not counted)."""
    if row["mode"] == "disagg":
        preset, decode, prefill = disaggregated_deployments(row)
        engine = row["backend"]
        return _estimate(preset, decode, engine).time_per_output_token_s * 1e3, _estimate(preset, prefill, engine).ttft_s * 1e3
    preset, deployment = deployment_of(row)
    speed = _estimate(preset, deployment, row["backend"])
    return speed.time_per_output_token_s * 1e3, speed.ttft_s * 1e3


def _stats(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median predicted/measured, median APE, p90 APE) of (predicted, measured) pairs."""
    ratios = [p / m for p, m in pairs]
    errors = sorted(abs(r - 1) for r in ratios)
    p90 = errors[min(len(errors) - 1, math.ceil(0.9 * len(errors)) - 1)]
    return statistics.median(ratios), statistics.median(errors), p90


def evaluate(rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Predictions of every expressible row, and the count of the others by reason."""
    done, skipped = [], defaultdict(int)
    for row in rows:
        try:
            tpot, ttft = predict(row)
        except NotExpressible as reason:
            skipped[str(reason)] += 1
            continue
        done.append({**row, "tpot_pred": tpot, "ttft_pred": ttft,
                     "tpot": float(row["silicon_tpot_ms"]), "ttft": float(row["silicon_ttft_ms"])})
    return done, dict(skipped)


def table(done: list[dict], total: int, skipped: dict[str, int]) -> str:
    groups = defaultdict(list)
    for r in done:
        groups[(r["model_path"].split("/")[-1], r["backend"])].append(r)
    head = f"{'model × engine':<34} {'rows':>5} | {'TPOT pred/meas':>14} {'APE med':>8} {'p90':>7} | {'TTFT pred/meas':>14} {'APE med':>8} {'p90':>7}"
    lines = [head, "-" * len(head)]

    def line(name: str, rs: list[dict]) -> str:
        t = _stats([(r["tpot_pred"], r["tpot"]) for r in rs])
        f = _stats([(r["ttft_pred"], r["ttft"]) for r in rs])
        return (f"{name:<34} {len(rs):>5} | {t[0]:>14.2f} {t[1]:>8.1%} {t[2]:>7.1%} | {f[0]:>14.2f} {f[1]:>8.1%} {f[2]:>7.1%}")

    for key in sorted(groups):
        lines.append(line(" × ".join(key), groups[key]))
    lines.append("-" * len(head))
    lines.append(line("overall", done))
    lines.append(f"expressible: {len(done)} of {total} rows ({len(done) / total:.1%})")
    for reason, count in sorted(skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  not expressible: {count:>4}  {reason}")
    return "\n".join(lines)


def plot(done: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    models = sorted({r["model_path"].split("/")[-1] for r in done})
    for ax, key, title in ((axes[0], "tpot", "TPOT (ms)"), (axes[1], "ttft", "TTFT (ms)")):
        for model in models:
            rs = [r for r in done if r["model_path"].split("/")[-1] == model]
            ax.scatter([r[key] for r in rs], [r[f"{key}_pred"] for r in rs], s=10, alpha=0.6, label=model)
        values = [r[key] for r in done] + [r[f"{key}_pred"] for r in done]
        low, high = min(values) * 0.8, max(values) * 1.25
        ax.plot([low, high], [low, high], "k-", lw=0.8)
        for factor in (0.7, 1.3):
            ax.plot([low, high], [low * factor, high * factor], "k:", lw=0.6)
        ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), xlabel=f"measured {title}",
               ylabel=f"moeplan expected {title}", title=f"{title}: {len(done)} H100 runs (dotted ±30%)")
        ax.grid(True, which="both", lw=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--plot", type=Path, help="write the predicted-vs-measured PNG here")
    parser.add_argument("--rows", action="store_true", help="print every row's prediction")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"{args.csv}: no such file (give the measured-serving CSV)", file=sys.stderr)
        return 2
    with args.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    done, skipped = evaluate(rows)
    if args.rows:
        for r in done:
            print(f"{r['id'][:90]:<90} tpot {r['tpot_pred']:8.2f} / {r['tpot']:8.2f}   ttft {r['ttft_pred']:9.1f} / {r['ttft']:9.1f}")
    print(table(done, len(rows), skipped))
    if args.plot:
        plot(done, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
