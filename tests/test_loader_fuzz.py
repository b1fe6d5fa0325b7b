"""Random and mutated configs: the loader either returns a spec or raises SpecError, nothing else."""

import json
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CONFIGS
from moeplan.accounting.params import count_params
from moeplan.errors import SpecError
from moeplan.spec.hf import spec_from_hf_config

BASES = [json.loads(p.read_text()) for p in sorted(CONFIGS.glob("*.json"))]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _load(config) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            spec = spec_from_hf_config(config)
        except SpecError:
            return
    assert count_params(spec).total > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), data=st.data())
def test_mutated_configs(base, data):
    config = json.loads(json.dumps(base))
    target = config.get("text_config", config) if data.draw(st.booleans()) else config
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
        if data.draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = data.draw(json_values)
    _load(config)


@settings(max_examples=200, deadline=None)
@given(config=json_values)
def test_random_documents(config):
    _load(config)
