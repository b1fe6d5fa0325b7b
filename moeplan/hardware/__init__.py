"""GPUs: the built-in catalogue and custom GPUs (see catalogue.py)."""

from moeplan.hardware.catalogue import GPUSpec, apply_overrides, catalogue, get_gpu, gpu_from_file, load_gpu

__all__ = ["GPUSpec", "apply_overrides", "catalogue", "get_gpu", "gpu_from_file", "load_gpu"]
