"""Units and their conventions, in one place.

GB = 1e9 bytes and GiB = 2**30 bytes; bandwidths are in GB/s = 1e9 B/s. Quantities inside moeplan
are kept in base units (bytes, seconds, FLOPs, parameters) and converted only for display.
"""

import re

from moeplan.errors import SpecError

GB = 10**9
GiB = 2**30
TB = 10**12

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_SUFFIX = {"": 1, "k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2}
"""As vLLM parses --max-model-len: k = 1000, K = 1024 (so 128k = 128,000 and 128K = 131,072); m = 10^6, M = 2^20."""


def parse_token_count(text: str | int, what: str = "value") -> int:
    """Parse a token count such as ``4096``, ``32k`` (32,000) or ``32K`` (32,768), by _SUFFIX."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise SpecError(f"{what} must be a positive whole number such as 4096, 32k or 128k, not {text!r}")
        number, suffix = match.groups()
        value = float(number) * _SUFFIX[suffix]
        if value != int(value):
            raise SpecError(f"{what} must be a whole number of tokens, not {text!r}")
        value = int(value)
    if value <= 0:
        raise SpecError(f"{what} must be positive, not {text!r}")
    return value


def fmt_bytes(n: float) -> str:
    """Bytes as 'X.XX GiB (Y.YY GB)'."""
    return f"{n / GiB:,.2f} GiB ({n / GB:,.2f} GB)"


def fmt_count(n: float) -> str:
    """A parameter or token count with a B/M/K suffix (B = 1e9) and the exact figure for large ones."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:,.2f}{suffix}"
    return f"{n:,.0f}"
