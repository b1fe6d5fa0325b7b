"""The one stdout console, and JSON output of report models."""

from pydantic import BaseModel
from rich.console import Console

console = Console(highlight=False)


def print_json(model: BaseModel) -> None:
    """Print a report model as JSON on stdout (plain text, no colour)."""
    print(model.model_dump_json(indent=2))
