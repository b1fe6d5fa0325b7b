"""The model argument and spec flags shared by every command that takes a model.

``@model_command`` adds them to a command's signature and hands the command a resolved spec, so each
flag is declared once.
"""

import functools
import inspect
from typing import Annotated, Optional

import typer

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


def model_command(func):
    """Decorator: the command gets the shared model parameters and receives ``resolved: ResolvedSpec``."""
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "resolved"]
    names = [p.name for p in MODEL_PARAMETERS]

    @functools.wraps(func)
    def wrapper(**kwargs):
        model_kwargs = {name: kwargs.pop(name) for name in names}
        return func(resolved=resolve_model_options(**model_kwargs), **kwargs)

    wrapper.__signature__ = inspect.Signature([*MODEL_PARAMETERS, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)])
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    return wrapper


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object (the report's model).")]
