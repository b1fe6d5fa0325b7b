"""moeplan: memory and throughput planner for Mixture-of-Experts language models."""


def __getattr__(name: str) -> str:
    # The version is read on first use: importlib.metadata costs `moeplan estimate` ~30 ms of start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("moeplan")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0+local"
    raise AttributeError(f"module 'moeplan' has no attribute {name!r}")
