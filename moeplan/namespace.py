"""The few non-arithmetic functions formulas written once for a scalar and for arrays use (max, min, ceil, where, sqrt).

The model in moeplan.perf.step is plain arithmetic plus these; passing SCALAR evaluates one layout without
numpy (what `moeplan estimate` runs), passing numpy_namespace() evaluates arrays of layouts (`moeplan plan`).
"""

import math
from types import SimpleNamespace


def _where(condition, if_true, if_false):
    return if_true if condition else if_false


SCALAR = SimpleNamespace(max=max, min=min, ceil=math.ceil, where=_where, sqrt=math.sqrt)
"""Python floats: builtin max/min of two values, math.ceil, a conditional, math.sqrt."""


def numpy_namespace() -> SimpleNamespace:
    """Element-wise numpy forms of the same functions (numpy imported here, only when arrays are evaluated)."""
    import numpy as np

    return SimpleNamespace(max=np.maximum, min=np.minimum, ceil=np.ceil, where=np.where, sqrt=np.sqrt)
