"""The one stdout console, and JSON output of report models."""

from pydantic import BaseModel


class LazyConsole:
    """A rich Console made on first use: rich's console costs start-up that `--json` output never needs.
    Attributes are read from and set on the Console itself."""

    def __init__(self, **options):
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_console", None)

    def real(self):
        """The Console itself (made now if not yet)."""
        if self._console is None:
            from rich.console import Console

            object.__setattr__(self, "_console", Console(**self._options))
        return self._console

    def __getattr__(self, name):
        return getattr(self.real(), name)

    def __setattr__(self, name, value):
        setattr(self.real(), name, value)


console = LazyConsole(highlight=False)


def print_json(model: BaseModel) -> None:
    """Print a report model as JSON on stdout (plain text, no colour)."""
    print(model.model_dump_json(indent=2))
