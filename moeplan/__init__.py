"""moeplan: memory and throughput planner for Mixture-of-Experts language models."""

__version__ = "0.1.0"
"""The package version (pyproject.toml reads it from here): a constant, so no start-up looks up package metadata."""
