"""moeplan: memory and throughput planner for Mixture-of-Experts language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("moeplan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"
