"""Units and their conventions, in one place.

GB = 1e9 bytes and GiB = 2**30 bytes; bandwidths are in GB/s = 1e9 B/s. Quantities inside moeplan
are kept in base units (bytes, seconds, FLOPs, parameters) and converted only for display.
"""

import re
from fractions import Fraction

from moeplan.errors import SpecError

GB = 10**9
GiB = 2**30
TB = 10**12

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_SUFFIX = {"": 1, "k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2}
"""As vLLM parses --max-model-len: k = 1000, K = 1024 (so 128k = 128,000 and 128K = 131,072); m = 10^6, M = 2^20."""


def parse_token_count(text: str | int, what: str = "value") -> int:
    """Parse a token count such as ``4096``, ``32k`` (32,000) or ``32K`` (32,768), by _SUFFIX (exact: no float)."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise SpecError(f"{what} must be a positive whole number such as 4096, 32k or 128k, not {text!r}")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if not match:
            raise SpecError(f"{what} must be a positive whole number such as 4096, 32k or 128k, not {text!r}")
        number, suffix = match.groups()
        exact = Fraction(number) * _SUFFIX[suffix]
        if exact.denominator != 1:
            raise SpecError(f"{what} must be a whole number of tokens, not {text!r}")
        value = int(exact)
    if value <= 0:
        raise SpecError(f"{what} must be positive, not {text!r}")
    return value


_BYTE_UNITS = {"TiB": 2**40, "GiB": GiB, "MiB": 2**20, "KiB": 2**10, "TB": TB, "GB": GB, "MB": 10**6, "KB": 10**3, "B": 1}
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)(" + "|".join(_BYTE_UNITS) + r")?$")
MAX_BYTES = 2**60
"""Largest byte size accepted (1 EiB)."""


def parse_bytes(value: object, what: str = "value") -> int:
    """'8 GiB', '100MB', '1.5 TB' or a plain whole number of bytes → bytes (GB = 1e9, GiB = 2^30); never negative,
    infinite or beyond MAX_BYTES."""
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        exact = Fraction(value)
    else:
        match = _BYTES.match(str(value).replace(" ", "")) if isinstance(value, str) else None
        if not match:
            raise SpecError(f"{what} must be a byte size such as 8GiB or 100MB, not {value!r}")
        exact = Fraction(match.group(1)) * _BYTE_UNITS[match.group(2) or "B"]
    if not 0 <= exact <= MAX_BYTES:
        raise SpecError(f"{what} must be between 0 and 1 EiB, not {value!r}")
    return int(exact)


def fmt_bytes(n: float) -> str:
    """Bytes as 'X.XX GiB (Y.YY GB)'."""
    return f"{n / GiB:,.2f} GiB ({n / GB:,.2f} GB)"


def fmt_count(n: float) -> str:
    """A parameter or token count with a B/M/K suffix (B = 1e9) and the exact figure for large ones."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:,.2f}{suffix}"
    return f"{n:,.0f}"


def counted(n: int, noun: str) -> str:
    """A count and its noun, plural unless the count is one, with thousands separators: '1 token', '8,192 tokens'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
