"""The envelope every --json document shares: a schema version and the moeplan version."""

from pydantic import BaseModel, ConfigDict, Field

from moeplan import __version__


class Document(BaseModel):
    """Base of every command's JSON output. Bump `schema` when a field changes meaning or goes away."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    schema_: int = Field(1, alias="schema")
    """Version of this document's layout."""
    moeplan_version: str = __version__
