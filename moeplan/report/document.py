"""The envelope every --json document shares: a schema version and the moeplan version."""

from pydantic import BaseModel, ConfigDict, Field

import moeplan
from moeplan.docstrings import add_field_docstrings


class Document(BaseModel):
    """Base of every command's JSON output. Bump `schema` when a field changes meaning or goes away."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, json_schema_extra=add_field_docstrings)

    schema_: int = Field(1, alias="schema")
    """Version of this document's layout."""
    moeplan_version: str = Field(default_factory=lambda: moeplan.__version__)
