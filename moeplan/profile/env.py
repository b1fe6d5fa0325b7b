"""What the environment must provide, as one-line EnvErrors naming the fix, and what it records about itself."""

import os
import platform
import socket
import sys

from moeplan.errors import EnvError
from moeplan.profile.nvml import PROFILE_EXTRA
from moeplan.profile.results import Environment
from moeplan.profile.topology import CudaDevice

CUDA_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cu128"
ENV_PREFIXES = ("NCCL_", "CUDA_", "TORCH_")


def require_torch():
    """The torch module, or an EnvError with the install command."""
    try:
        import torch
    except ImportError as error:
        raise EnvError(f"moeplan profile needs torch and nvidia-ml-py: {PROFILE_EXTRA}") from error
    return torch


def require_cuda(torch) -> None:
    """An EnvError unless torch sees a CUDA device."""
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, but no device or driver answers"
        raise EnvError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU ({build}); install a CUDA build ({CUDA_TORCH}) or run with --device cpu")


def require_backend(torch, backend: str) -> None:
    """An EnvError unless torch.distributed has the backend (nccl for CUDA, gloo for CPU)."""
    import torch.distributed as dist

    available = dist.is_available() and (dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available())
    if not available:
        fix = CUDA_TORCH if backend == "nccl" else "reinstall torch from pytorch.org (pip install --force-reinstall torch)"
        raise EnvError(f"torch {torch.__version__} has no {backend.upper()} backend for all-to-all; {fix}")


def cuda_devices(torch) -> list[CudaDevice]:
    """torch's CUDA devices with their UUIDs (to match NVML's order)."""
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        devices.append(CudaDevice(index=i, uuid=str(props.uuid), name=props.name, sm_count=props.multi_processor_count, capability=f"{props.major}.{props.minor}"))
    return devices


def environment(torch) -> Environment:
    """Versions and the NCCL_/CUDA_/TORCH_ variables that are set."""
    nccl = None
    if torch.cuda.is_available() and torch.distributed.is_nccl_available():
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
    return Environment(
        python=sys.version.split()[0],
        platform=platform.platform(),
        hostname=socket.gethostname(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        nccl=nccl,
        cpu_count=os.cpu_count() or 1,
        env={k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
    )
