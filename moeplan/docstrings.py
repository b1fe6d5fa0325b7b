"""Field docstrings (the string under each pydantic field), read only when a JSON Schema or help text needs them.

pydantic's ``use_attribute_docstrings`` reads the source of every model at import, which costs `moeplan
estimate` about 100 ms of start-up; this reads it on demand instead.
"""

import ast
import inspect
import textwrap
from functools import cache


@cache
def attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name → docstring for a class and its moeplan base classes (subclasses win)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("moeplan"):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, SyntaxError):
            continue
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def add_field_docstrings(schema: dict, cls: type) -> None:
    """A ``json_schema_extra`` hook: give each property without a description its field docstring."""
    properties = schema.get("properties", {})
    fields = getattr(cls, "model_fields", {})
    for name, doc in attribute_docstrings(cls).items():
        key = fields[name].alias if name in fields and fields[name].alias else name
        if key in properties:
            properties[key].setdefault("description", doc)
