"""Options shared by several commands, each declared once.

``@model_command`` adds the model argument and spec flags to a command and hands it ``resolved``
(a ResolvedSpec); ``@deployment_command`` adds one flag per Deployment field and hands it
``deployment``. Both work by extending the command's signature, which typer reads.
"""

import functools
import inspect
import shlex
from types import UnionType
from typing import Annotated, Literal, Optional, Union, get_args, get_origin

import typer

from pydantic import ValidationError

from moeplan.docstrings import attribute_docstrings
from moeplan.errors import SpecError
from moeplan.spec.deployment import Deployment
from moeplan.spec.overrides import parse_assignment
from moeplan.spec.resolve import ResolvedSpec, resolve_spec

_SPEC = "Model"

# flag name → (dotted spec path, type, help)
SPEC_FLAGS = {
    "layers": ("num_layers", int, "Decoder layers."),
    "hidden": ("hidden_size", int, "Hidden size H."),
    "vocab": ("vocab_size", int, "Vocabulary size."),
    "heads": ("attention.num_heads", int, "Query heads."),
    "kv_heads": ("attention.num_kv_heads", int, "Key/value heads (GQA)."),
    "head_dim": ("attention.head_dim", int, "Per-head dimension."),
    "intermediate": ("intermediate_size", int, "Dense MLP intermediate size."),
    "experts": ("moe.num_experts", int, "Routed experts per MoE layer E."),
    "top_k": ("moe.top_k", int, "Experts per token k."),
    "expert_intermediate": ("moe.expert_intermediate_size", int, "Expert intermediate size I."),
    "shared_experts": ("moe.num_shared_experts", int, "Shared experts."),
    "first_dense": ("moe.first_dense_layers", int, "Leading dense (non-MoE) layers."),
}


def complete_preset(incomplete: str) -> list[str]:
    """Shell completion of the model argument: preset names, matched in any case and written in the case typed
    (shells such as zsh keep only candidates that start with what was typed; files complete as the shell does)."""
    from moeplan.spec.presets import preset_names

    return [incomplete + name[len(incomplete):] for name in preset_names() if name.startswith(incomplete.lower())]


def complete_gpu(incomplete: str) -> list[str]:
    """Shell completion of --gpu: catalogue names and aliases, in any case and written in the case typed."""
    from moeplan.hardware.catalogue import catalogue

    names = [key for gpu in catalogue() for key in (gpu.name, *gpu.aliases)]
    return [incomplete + name[len(incomplete):] for name in dict.fromkeys(names) if name.lower().startswith(incomplete.lower())]


def _parameters() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            "model",
            kw,
            default=None,
            annotation=Annotated[
                Optional[str],
                typer.Argument(
                    help="A preset name (see `moeplan presets`; any case), a Hugging Face model id (org/name), a config.json, a model directory, a .gguf file, or a moeplan spec file (.yaml/.json). Omit to build the model from flags alone.",
                    show_default=False,
                    autocompletion=complete_preset,
                ),
            ],
        ),
        inspect.Parameter(
            "set_",
            kw,
            default=[],
            annotation=Annotated[
                list[str],
                typer.Option("--set", metavar="<field=value>", help="Override a spec field: --set moe.num_experts=16 (short names: experts, top_k, layers, hidden, ...).", rich_help_panel=_SPEC),
            ],
        ),
    ]
    for flag, (_, kind, help_text) in SPEC_FLAGS.items():
        option = typer.Option(f"--{flag.replace('_', '-')}", help=help_text, rich_help_panel=_SPEC, show_default=False)
        params.append(inspect.Parameter(flag, kw, default=None, annotation=Annotated[Optional[kind], option]))
    return params


MODEL_PARAMETERS = _parameters()


def resolve_model_options(model: str | None, set_: list[str], **flags) -> ResolvedSpec:
    """Resolve the model argument with --set assignments and named spec flags (flags win)."""
    overrides = dict(parse_assignment(text) for text in set_)
    overrides.update({SPEC_FLAGS[name][0]: value for name, value in flags.items() if value is not None})
    return resolve_spec(model, overrides)


def _injecting(params: list[inspect.Parameter], name: str, build):
    """A decorator that adds ``params`` to a command and passes ``name=build(**their values)`` instead."""
    names = [p.name for p in params]

    def decorator(func):
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inspect.signature(func).parameters.values() if p.name != name]

        @functools.wraps(func)
        def wrapper(**kwargs):
            values = {key: kwargs.pop(key) for key in names}
            return func(**{name: build(**values)}, **kwargs)

        wrapper.__signature__ = inspect.Signature([*params, *own])
        wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
        return wrapper

    return decorator


model_command = _injecting(MODEL_PARAMETERS, "resolved", resolve_model_options)
"""The command gets the model argument and spec flags, and receives ``resolved: ResolvedSpec``."""


def _option_type(annotation) -> type:
    """The flag type of a Deployment field: int/float/bool as declared (Optional and constraints unwrapped),
    a Literal kept (typer lists its choices), else str."""
    kinds = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) in (Union, UnionType) else [annotation]
    kind = kinds[0]
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) is Literal:
        return kind
    return kind if kind in (int, float, bool) else str


METAVARS = {"batch": "<int>", "context": "<tokens>", "prefill_chunk": "<tokens>"}
"""Flags read as text (they take 32k/32K) but shown as the number they are."""


def _deployment_parameters() -> list[inspect.Parameter]:
    params = []
    for field, info in Deployment.model_fields.items():
        kind = _option_type(info.annotation)
        if field in ("batch", "context", "prefill_chunk"):
            kind = str  # accepts 32k (32,000) and 32K (32,768)
        option = typer.Option(f"--{field.replace('_', '-')}", rich_help_panel="Deployment", show_default=False,
                              autocompletion=complete_gpu if field == "gpu" else None, metavar=METAVARS.get(field))
        params.append(inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[kind], option]))
    return params


def deployment_help(name: str) -> str | None:
    """The help of a Deployment flag: its field docstring and default. Read only when help is printed (parsing
    the docstrings costs every start about 8 ms); None for another parameter."""
    info = Deployment.model_fields.get(name)
    if info is None:
        return None
    text = attribute_docstrings(Deployment).get(name, "")
    if info.default is not None and _option_type(info.annotation) is not bool:
        text += f" [default: {info.default}]"
    return text


def build_deployment(**values) -> Deployment:
    """A Deployment from the flags given (unset flags keep their defaults)."""
    try:
        return Deployment.model_validate({key: value for key, value in values.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "deployment"
        raise SpecError(f"{flag}: {first['msg'].removeprefix('Value error, ')}") from None


deployment_command = _injecting(_deployment_parameters(), "deployment", build_deployment)
"""The command gets one flag per Deployment field, and receives ``deployment: Deployment``."""


LAYOUT_FLAGS = ("num_gpus", "tp", "ep", "pp", "dp", "etp")


def command_arguments(params: dict, leave_out: tuple[str, ...] = ()) -> str:
    """The model argument and the flags a command was given (its click parameters), as shell words again:
    what a suggested follow-up command repeats. Deployment and spec flags only; ``leave_out`` names fields to drop."""
    words = [shlex.quote(params["model"])] if params.get("model") else []
    words += [f"--set {shlex.quote(text)}" for text in params.get("set_") or ()]
    for name in [*SPEC_FLAGS, *Deployment.model_fields]:
        value = params.get(name)
        if value is None or value is False or name in leave_out:
            continue
        flag = "--" + name.replace("_", "-")
        words.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    return " ".join(words)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object (the report's model).")]
