"""The ``--gpus`` selector: ``0-7``, ``0,2,4``, ``1,4-6`` or ``all``, checked before torch is imported."""

import re

from moeplan.errors import SpecError

_ITEM = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
MAX_GPU_INDEX = 1023
"""Highest index accepted (so no selector builds a giant set); no machine has more GPUs."""


def gpu_selector(text: str) -> list[int] | None:
    """The indices named by ``text``, sorted and de-duplicated (None for 'all'); SpecError on bad syntax or range."""
    text = text.strip()
    if text == "all":
        return None
    indices: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item.strip())
        if not match:
            raise SpecError(f"--gpus {text!r}: expected 'all', a range such as 0-7, or a list such as 0,2,4")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise SpecError(f"--gpus {text!r}: range {item.strip()} runs backwards")
        if last > MAX_GPU_INDEX:
            raise SpecError(f"--gpus {text!r}: GPU index {last} is above {MAX_GPU_INDEX}")
        indices.update(range(first, last + 1))
    return sorted(indices)


def parse_gpus(text: str, count: int) -> list[int]:
    """GPU indices named by ``text``, each checked against ``count`` GPUs present (all of them for 'all')."""
    selected = gpu_selector(text)
    if selected is None:
        if count == 0:
            raise SpecError("--gpus all: no GPU is present")
        return list(range(count))
    missing = [i for i in selected if i >= count]
    if missing:
        present = f"GPUs 0-{count - 1}" if count > 1 else ("GPU 0" if count == 1 else "no GPU")
        raise SpecError(f"--gpus {text!r}: GPU {', '.join(map(str, missing))} does not exist (this machine has {present})")
    return selected
