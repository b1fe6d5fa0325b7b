"""Parallel layouts: how a model's layers, heads and experts are split over GPUs."""

from moeplan.layout.parallel import GPUS_PER_NODE, Layout, check_layout, implied_num_gpus, layout_problems, stage_layers

__all__ = ["GPUS_PER_NODE", "Layout", "check_layout", "implied_num_gpus", "layout_problems", "stage_layers"]
