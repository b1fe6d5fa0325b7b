"""The objectives `moeplan plan` ranks by (kept apart from the search so the CLI declares them without numpy)."""

from typing import Literal

Objective = Literal["fewest-gpus", "throughput-per-gpu", "latency", "cost"]
OBJECTIVES: dict[str, str] = {
    "fewest-gpus": "fewest GPUs, then highest tokens/s per GPU",
    "throughput-per-gpu": "highest tokens/s per GPU, then fewest GPUs",
    "latency": "lowest time per output token, then fewest GPUs",
    "cost": "lowest $ per million tokens, then fewest GPUs",
}
"""Objective → what it sorts by."""
