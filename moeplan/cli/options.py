"""Options shared by several commands, each declared once.

``@model_command`` adds the model argument and spec flags to a command and hands it ``resolved``
(a ResolvedSpec); ``@deployment_command`` adds one flag per Deployment field and hands it
``deployment``. Both work by extending the command's signature, which typer reads.
"""

import functools
import inspect
from typing import Annotated, Literal, Optional, get_args, get_origin

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
                    help="A preset name (see `moeplan presets`), a Hugging Face config.json, a model directory, or a moeplan spec file (.yaml/.json). Omit to build the model from flags alone.",
                    show_default=False,
                ),
            ],
        ),
        inspect.Parameter(
            "set_",
            kw,
            default=[],
            annotation=Annotated[
                list[str],
                typer.Option("--set", help="Override a spec field: --set moe.num_experts=16 (short names: experts, top_k, layers, hidden, ...).", rich_help_panel=_SPEC),
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
    """The click type of a Deployment field: int/float/bool as declared (Optional and Literal unwrapped), else str."""
    first = annotation
    if get_origin(first) is not Literal:
        first = ([a for a in get_args(annotation) if a is not type(None)] or [annotation])[0]
    if get_origin(first) is Literal:
        first = type(get_args(first)[0])
    return first if first in (int, float, bool) else str


def _deployment_parameters() -> list[inspect.Parameter]:
    params = []
    for field, info in Deployment.model_fields.items():
        kind = _option_type(info.annotation)
        if field in ("batch", "context", "prefill_chunk"):
            kind = str  # accepts 32k, 128k
        help_text = attribute_docstrings(Deployment).get(field, "")
        if info.default is not None:
            help_text += f" [default: {info.default}]"
        option = typer.Option(f"--{field.replace('_', '-')}", help=help_text, rich_help_panel="Deployment", show_default=False)
        params.append(inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[kind], option]))
    return params


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


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object (the report's model).")]
