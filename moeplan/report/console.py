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

            real = Console(**self._options)
            real.on_broken_pipe = _closed_pipe
            object.__setattr__(self, "_console", real)
        return self._console

    def __getattr__(self, name):
        return getattr(self.real(), name)

    def __setattr__(self, name, value):
        setattr(self.real(), name, value)


def _closed_pipe() -> None:
    """A reader that closed the pipe (`| head`) ends the output: raised as BrokenPipeError for the CLI's boundary to
    exit 0 quietly (rich's own handler exits 1, the code of a failed capacity check)."""
    raise BrokenPipeError


console = LazyConsole(highlight=False, emoji=False)
"""stdout; no `:name:` emoji codes (user text stays as written, and rich's emoji table is not loaded)."""


def fitted_table(headers: list[str], rows: list[list[str]], left: tuple[str, ...] = (), wraps: tuple[str, ...] = (), **options):
    """A rich table whose cells never wrap or truncate: each column at least as wide as its longest cell and
    header line (break headers with newlines), one space between columns; only the ``wraps`` columns (long
    text) may wrap. ``left``: left-justified columns (the others, numbers, are right-justified). Cells are
    plain text, never markup."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0), title_justify="left", **options)
    for i, header in enumerate(headers):
        wide = max([len(line) for line in header.split("\n")] + [len(row[i]) for row in rows])
        table.add_column(header, justify="left" if header in left else "right", no_wrap=header not in wraps,
                         min_width=None if header in wraps else wide)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_json(model: BaseModel, exclude: set[str] | None = None) -> None:
    """Print a report model as JSON on stdout (plain text, no colour), without the ``exclude`` fields."""
    print(model.model_dump_json(indent=2, exclude=exclude))
