"""Hostile input through the CLI itself (hypothesis, derandomized): flags, config mutations reaching every reader,
safetensors headers, plan files and calibration files.

The promise checked on every example: exit 0, 1, 2 or 3 (never 4, an internal error, and never an exception out
of the CLI), no traceback, a refusal is one 'error:' line, no hang (an alarm), no memory blow-up (peak RSS), and
a successful --json holds no NaN, no infinity and no negative figure.
"""

import json
import math
import resource
import signal
import struct
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ROOT

HF_CONFIGS = sorted((ROOT / "tests" / "data" / "hf-configs").glob("*.json"))
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HANG_S = 60
"""An example still running after this long has hung (a guard, not a speed figure)."""
MEMORY_GROWTH_BYTES = 1 << 30
"""Most one example may raise the process's peak memory by."""
MAY_BE_NEGATIVE = ("headroom", "shortfall", "slack", "difference", "delta", "over", "short_bytes")
"""JSON keys whose figure is signed by definition (a deployment that does not fit has negative headroom)."""


PYTHON_INTERNALS = ("object has no attribute", "NoneType", "unsupported operand", "not subscriptable", "unexpected keyword",
                    "__", "range() arg", "invalid literal for int()", "could not convert", "object is not iterable")
"""Phrases of Python's own errors, which a refusal must not show the user."""


class Hung(BaseException):
    """Raised by the alarm; a BaseException, so that no handler of the CLI can swallow it."""


@contextmanager
def bounded():
    def alarm(signum, frame):
        raise Hung(f"no answer within {HANG_S} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert grown < MEMORY_GROWTH_BYTES, f"peak memory grew by {grown / 2**20:.0f} MiB"


def _figures(value, key=""):
    """(key, number) for every number in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _figures(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _figures(v, key)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield key, value


def keeps_promise(cli, *args, json_out: bool = True):
    """Run the CLI on hostile arguments; assert the promise; return the result."""
    with bounded():
        result = cli(*args)
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 1, 2, 3), (args, result.exit_code, result.stderr[-600:], result.exception)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    if result.exit_code in (2, 3):
        errors = [line.rstrip() for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr
        assert not any(leak in errors[0] for leak in PYTHON_INTERNALS), errors[0]
    if result.exit_code == 0 and json_out:
        for key, number in _figures(json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json"))):
            assert math.isfinite(number), (key, number)
            assert number >= 0 or any(word in key for word in MAY_BE_NEGATIVE), (key, number, args)
    return result


# --- values a hostile user types ------------------------------------------------------------------------------

HOSTILE = st.sampled_from(["0", "-1", "1e-300", "1e300", "inf", "-inf", "nan", "1e18", "100000000000000000000", "true",
                           "false", "abc", "1.5", "", "0x10", "2" * 40, "-0", "1m"])
NUMBERS = st.one_of(st.sampled_from(["1", "2", "4", "8", "64", "32k", "0.5", "0.9"]), HOSTILE)
"""Half plausible (so that the estimate runs deep), half hostile."""
DEPLOYMENT_FLAGS = ["--num-gpus", "--tp", "--ep", "--pp", "--dp", "--etp", "--batch", "--context", "--prefill-chunk",
                    "--gpu-util", "--gpu-memory-gib", "--gpu-hbm-tb-s", "--gpu-bf16-tflops", "--gpu-link-gb-s",
                    "--nic-gb-s", "--group-size", "--tokens-per-rank", "--capacity-factor", "--host-memory-gib",
                    "--gpus-per-node", "--grad-accum", "--mtp", "--acceptance"]
SPEC_FLAGS = ["--layers", "--hidden", "--vocab", "--heads", "--kv-heads", "--head-dim", "--intermediate", "--experts",
              "--top-k", "--expert-intermediate", "--shared-experts", "--first-dense"]
WORDS = st.sampled_from(["h100", "l40s", "nosuch", "", "zipf:1.2", "zipf:-1", "zipf:inf", "uniform", "bf16", "fp8",
                         "int4-gptq", "q4_k_m", "x" * 300, "[red]markup[/]", "moe.num_experts=true", "top_k=0",
                         "layers=1e18", "moe.layer_period=0", "first_dense_layers=1000", "tie_word_embeddings=false"])


@FUZZ
@given(model=st.sampled_from(["mixtral-8x7b", "deepseek-v3", "qwen3-30b-a3b", "gpt-oss-20b"]),
       command=st.sampled_from(["estimate", "check", "plan"]),
       flags=st.lists(st.tuples(st.sampled_from(DEPLOYMENT_FLAGS + SPEC_FLAGS), NUMBERS), max_size=3),
       words=st.lists(st.tuples(st.sampled_from(["--gpu", "--routing", "--dtype", "--set", "--kv-dtype"]), WORDS), max_size=2))
def test_flags(cli, model, command, flags, words):
    args = [command, model, *(part for pair in flags + words for part in pair)]
    if command == "plan":
        args += ["--max-gpus", "16"]
    keeps_promise(cli, *args, "--json")


@FUZZ
@given(max_gpus=st.one_of(st.sampled_from(["1", "8", "24", "64"]), HOSTILE), top=NUMBERS, price=NUMBERS)
def test_plan_search_flags(cli, max_gpus, top, price):
    keeps_promise(cli, "plan", "mixtral-8x7b", "--max-gpus", max_gpus, "--top", top, "--gpu-hour-price", price, "--json")


# --- config mutations: every reader --------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, -1, -5, 1, 2, 3, 10**18, 2**64, 1e18, 0.5, float("inf"), float("nan"),
                                                 "false", "true", "auto", "", "a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "group_size", "bits", "quant_method"]), inner, max_size=3),
    max_leaves=5,
)


@FUZZ
@given(base=st.sampled_from(HF_CONFIGS), data=st.data())
def test_config_mutations(cli, tmp_path_factory, base, data):
    config = json.loads(base.read_text())
    target = config.get("text_config", config)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(target)))
        if data.draw(st.booleans()):
            target.pop(key)
        else:
            target[key] = data.draw(JSON_VALUES)
    path = tmp_path_factory.mktemp("config") / "config.json"
    path.write_text(json.dumps(config))  # inf and NaN as JSON's Infinity and NaN
    keeps_promise(cli, "estimate", path, "--json")


# --- safetensors headers -----------------------------------------------------------------------------------

TINY = ROOT / "tests" / "data" / "hf-configs" / "mixtral-tied.json"
SHAPES = st.lists(st.sampled_from([0, 1, 2, 4, -4, 2**40, "a", 1.5, True, None]), max_size=3)
OFFSETS = st.lists(st.sampled_from([0, 2, 8, 16, 64, -8, 2**70, "x"]), min_size=0, max_size=3)


def _consistent(shapes: list[list[int]]) -> list[dict]:
    """F16 entries laid out one after another, as a real file has them."""
    entries, offset = [], 0
    for shape in shapes:
        size = 2 * math.prod(shape)
        entries.append({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]})
        offset += size
    return entries


@FUZZ
@given(entries=st.one_of(
           st.lists(st.fixed_dictionaries({"dtype": st.sampled_from(["F16", "BF16", "I32", "F4", "WEIRD", 7]),
                                           "shape": SHAPES, "data_offsets": OFFSETS}), max_size=3),
           st.lists(st.lists(st.integers(0, 6), max_size=2), max_size=3).map(_consistent)),
       data_bytes=st.sampled_from([0, 16, 64, 1000]), length_lie=st.sampled_from([0, 0, 0, 3, -3, 2**40]))
def test_safetensors_headers(cli, tmp_path_factory, entries, data_bytes, length_lie):
    folder = tmp_path_factory.mktemp("model")
    (folder / "config.json").write_text(TINY.read_text())
    header = json.dumps({f"model.layers.{i}.w": e for i, e in enumerate(entries)}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", max(0, len(header) + length_lie)) + header + bytes(data_bytes))
    keeps_promise(cli, "estimate", folder, "--json")


# --- plan files ------------------------------------------------------------------------------------------

PLAN_KEYS = st.sampled_from(["gpu", "num_gpus", "tp", "ep", "dp", "batch", "context", "gpu_util", "dtype", "nic_gb_s",
                             "routing", "name", "model", "bogus", "set", "allow_long_context"])
PLAN_VALUES = st.sampled_from(["h100", "l40s", "nosuch", "mixtral-8x7b", "mixtral-9x9b", "1", "2", "-1", "0", "32k",
                               "true", "'false'", "inf", ".nan", "1e18", "[1, 2]", "{a: 1}", "''", "zipf:1.2", "1.5"])
ASSERTS = st.sampled_from(["fits: true", "fits: maybe", "min_headroom: 10%", "min_headroom: ten%", "min_headroom: infGB",
                           "min_headroom: -50GB", "min_headroom: 8 GiB", "min_decode_tokens_per_s: .inf",
                           "min_decode_tokens_per_s: 100", "max_time_per_output_token_ms: -1", "min_max_context: 32k",
                           "min_max_context: 99999999999999k", "max_all_to_all_bytes_per_layer: 1GB", "bogus: 1"])


@FUZZ
@given(deployments=st.lists(st.tuples(st.lists(st.tuples(PLAN_KEYS, PLAN_VALUES), max_size=3), st.lists(ASSERTS, max_size=2)),
                            min_size=1, max_size=3),
       defaults=st.lists(st.tuples(PLAN_KEYS, PLAN_VALUES), max_size=2), suffix=st.sampled_from([".yaml", ".YML", ".toml"]))
def test_plan_files(cli, tmp_path_factory, deployments, defaults, suffix):
    if suffix == ".toml":
        lines = [f'{k} = "{v}"' for k, v in defaults]
        for i, (keys, asserts) in enumerate(deployments):
            lines += ["[[deployments]]", f'name = "d{i % 2}"', 'model = "mixtral-8x7b"', *(f'{k} = "{v}"' for k, v in keys)]
            lines += [f"assert = {{ {', '.join(a.replace(': ', ' = ') for a in asserts)} }}"]
        text = "\n".join(lines) + "\n"
    else:
        text = "defaults:\n" + "".join(f"  {k}: {v}\n" for k, v in defaults) if defaults else ""
        text += "deployments:\n"
        for i, (keys, asserts) in enumerate(deployments):
            text += f"  - name: d{i % 2}\n    model: mixtral-8x7b\n" + "".join(f"    {k}: {v}\n" for k, v in keys)
            text += "    assert:\n" + "".join(f"      {a}\n" for a in asserts) if asserts else ""
    path = tmp_path_factory.mktemp("plan") / f"plan{suffix}"
    path.write_text(text)
    result = keeps_promise(cli, "check", path, "--json")
    if result.exit_code == 2:
        assert str(path) in result.stderr or "--" in result.stderr, result.stderr  # named file, or a flag


# --- calibration files -----------------------------------------------------------------------------------

CALIBRATION = {"kind": "moeplan-calibration", "created_at": "2026-11-23T00:00:00+00:00", "device_kind": "cuda",
               "device_name": "NVIDIA H100 80GB HBM3", "catalogue_gpu": "h100-sxm", "gpu_count": 8, "model": "mixtral-8x7b",
               "hbm_efficiency": 0.8, "pcie_efficiency": 0.85, "alltoall_efficiency": 0.5, "alltoall_alpha_s": 2.5e-5}


@FUZZ
@given(changes=st.dictionaries(st.sampled_from([*CALIBRATION, "schema", "gemm", "gemm_compute_efficiency", "bogus"]),
                               st.one_of(st.sampled_from([0.3, 0.7, 1.0, 1.2, 1e-5]), JSON_VALUES), max_size=2),
       whole=st.sampled_from([None, None, None, [], "x", 1, {}]))
def test_calibration_files(cli, tmp_path_factory, changes, whole):
    from moeplan.calibration import CALIBRATION_SCHEMA

    document = whole if whole is not None else {**CALIBRATION, "schema": CALIBRATION_SCHEMA, **changes}
    path = tmp_path_factory.mktemp("calibration") / "calib.json"
    path.write_text(json.dumps(document))
    keeps_promise(cli, "estimate", "mixtral-8x7b", "--gpu", "h100", "--calibration", path, "--json")


# --- a model from flags alone, and GPU files -----------------------------------------------------------------

SIZES = st.one_of(st.sampled_from([1, 2, 8, 64, 4096]), st.sampled_from([3, 2**24, 2**24 + 1, 0, -1]))


@FUZZ
@given(layers=st.sampled_from([1, 2, 61, 0, 513]), sizes=st.fixed_dictionaries(
    {"--hidden": SIZES, "--heads": SIZES, "--vocab": SIZES, "--experts": SIZES, "--top-k": SIZES, "--expert-intermediate": SIZES}),
       dense=st.sampled_from([[], ["--intermediate", "4096"], ["--first-dense", "1"], ["--first-dense", "62"]]))
def test_spec_from_flags(cli, layers, sizes, dense):
    args = ["estimate", "--layers", str(layers), *(part for flag, size in sizes.items() for part in (flag, str(size))), *dense]
    keeps_promise(cli, *args, "--json")


GPU = {"name": "my-gpu", "display_name": "My GPU", "vendor": "NVIDIA", "memory_bytes": 85899345920, "hbm_bytes_per_s": 3.35e12,
       "bf16_flops_per_s": 9.89e14, "interconnect": "nvlink", "link_bytes_per_s_per_direction": 4.5e11, "source": "test"}


@FUZZ
@given(changes=st.dictionaries(st.sampled_from([*GPU, "fp8_flops_per_s", "link_domain_gpus", "bogus"]),
                               st.one_of(st.sampled_from([1.0, 8, 1e12, 1e30]), JSON_VALUES), max_size=2),
       suffix=st.sampled_from([".json", ".yaml", ".YML"]))
def test_gpu_files(cli, tmp_path_factory, changes, suffix):
    path = tmp_path_factory.mktemp("gpu") / f"gpu{suffix}"
    path.write_text(json.dumps({**GPU, **changes}))  # JSON is YAML
    keeps_promise(cli, "estimate", "mixtral-8x7b", "--gpu", path, "--json")


# --- moeplan spec files: valid but extreme values, through the whole estimate -------------------------------------

SPEC_PRESETS = ["mixtral-8x7b", "deepseek-v3.2", "jamba-v0.1", "gpt-oss-20b", "qwen3-next-80b-a3b", "llama-4-scout"]


def _leaves(value, prefix=()):
    for key, item in value.items():
        if isinstance(item, dict):
            yield from _leaves(item, (*prefix, key))
        elif key not in ("name", "source", "architecture"):
            yield (*prefix, key)


@FUZZ
@given(preset=st.sampled_from(SPEC_PRESETS), data=st.data(),
       value=st.sampled_from([0, 1, 2, 3, 7, 64, 4097, 2**20, 2**24, True, False, [0], [1, 1], ["full"], ["none"], None]))
def test_spec_file_mutations(cli, tmp_path_factory, preset, data, value):
    spec = json.loads(cli("spec", preset, "--format", "json").stdout)
    path = data.draw(st.sampled_from(sorted(_leaves(spec))))
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path_factory.mktemp("spec") / "moeplan.json"
    file.write_text(json.dumps(spec))
    keeps_promise(cli, "estimate", file, "--batch", "4", "--json")
