"""`moeplan profile`: measure this box (GPUs, or the host with --device cpu) beside moeplan's predictions.

torch and pynvml stay out of this module: everything under moeplan.profile is imported inside the command.
"""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from moeplan.cli.options import JsonOpt


class Device(str, Enum):
    cuda = "cuda"
    cpu = "cpu"


def profile(
    model: Annotated[str, typer.Option("--model", "-m", help="Preset, config.json, model directory or spec file whose expert shapes (H, I, E, k) are measured.")] = "mixtral-8x7b",
    device: Annotated[Device, typer.Option("--device", help="cuda: the GPUs in --gpus; cpu: the same code on host tensors, all-to-all over --procs local processes (gloo).")] = Device.cuda,
    gpus: Annotated[str, typer.Option("--gpus", help="GPUs by NVML (nvidia-smi) index: 0-7, 0,2,4, or all (every GPU CUDA sees).")] = "all",
    procs: Annotated[Optional[int], typer.Option("--procs", min=1, help="All-to-all ranks with --device cpu [default: 2]; on CUDA one per GPU.", show_default=False)] = None,
    only: Annotated[Optional[str], typer.Option("--only", help="Sections to run, comma-separated: topo,hbm,gemm,h2d,p2p,a2a [default: all].", show_default=False)] = None,
    ep: Annotated[Optional[int], typer.Option("--ep", min=1, help="Expert parallelism of the GEMM shapes (experts per GPU = E/ep) [default: the number of ranks].", show_default=False)] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", help="Catalogue GPU (or GPU file) to predict with, when the device name is not recognised.", show_default=False)] = None,
    warmup: Annotated[Optional[int], typer.Option("--warmup", min=0, help="Untimed calls before each point [default: 5 on CUDA, 2 on CPU].", show_default=False)] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", min=1, help="Timed samples per point [default: 20 on CUDA, 7 on CPU].", show_default=False)] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds any single step may take before the run stops with a clear message.")] = 300.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the routing samples and random tensors.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Append every measurement to this JSONL file as it finishes.", show_default=False)] = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Write the measured efficiencies (calibration) to this JSON file.", show_default=False)] = None,
    nvml_file: Annotated[Optional[Path], typer.Option("--nvml-file", help="Replay a recorded NVML box (with --device cpu) for the topology section.", show_default=False)] = None,
    nvml_record: Annotated[Optional[Path], typer.Option("--nvml-record", help="Record what NVML reports on this box to a JSON file.", show_default=False)] = None,
    min_busbw: Annotated[Optional[float], typer.Option("--min-busbw", min=0.001, help="Exit 1 when the largest all-to-all's busbw (GB/s) is below this.", show_default=False)] = None,
    json_: JsonOpt = False,
) -> None:
    """Measure HBM, expert GEMMs, host and peer copies and all-to-all, each beside moeplan's prediction.

    Examples:

    \b
        moeplan profile --gpus 0-7 --model deepseek-v3 --out run.jsonl --save calib.json
        moeplan profile --gpus 0 --only hbm,gemm,h2d --json > h100.json
        moeplan profile --device cpu --procs 4 --only hbm,gemm,h2d,a2a --model mixtral-8x7b
        torchrun --nnodes 2 --nproc-per-node 8 -m moeplan profile --only a2a --model deepseek-v3
    """
    from moeplan.profile.command import profile_command
    from moeplan.profile.options import ProfileOptions, parse_only

    options = ProfileOptions(
        model=model,
        device=device.value,
        gpus=gpus,
        procs=procs,
        only=parse_only(only),
        ep=ep,
        gpu=gpu,
        warmup=warmup,
        iters=iters,
        timeout_s=timeout,
        seed=seed,
        nvml_file=nvml_file,
        nvml_record=nvml_record,
        min_busbw_gb_s=min_busbw,
    )
    profile_command(options, out=out, save=save, as_json=json_)
