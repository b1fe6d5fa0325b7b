"""`moeplan gpus`: the GPU catalogue, or one GPU (built-in or from a file)."""

import re
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from moeplan.cli.options import JsonOpt
from moeplan.hardware.catalogue import GPUSpec, catalogue, load_gpu
from moeplan.report.console import console, fitted_table, print_json
from moeplan.report.document import Document
from moeplan.units import GB, GiB


class GPUList(Document):
    """`moeplan gpus --json`: the GPUs shown, all figures in base units (bytes, B/s, FLOP/s; links per direction)."""

    gpus: list[GPUSpec]


def _tera(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e12:,.1f}"


def _giga(value: float | None) -> str:
    return "-" if value is None else f"{value / GB:,.1f}"


def _peak(value: float | None, unit: str, kind: str) -> str:
    """A dense peak in tera-units, or the plain statement that the GPU has no such tensor cores."""
    return f"none (no {kind} tensor cores)" if value is None else f"{value / 1e12:,.1f} {unit}"


def _document(source: str) -> str:
    """The source's document name: its text up to the first parenthesis, colon or comma."""
    return re.split(r" \(|[:,]", source, maxsplit=1)[0].strip()


def _render_list(gpus: list[GPUSpec], wide: bool) -> None:
    """The catalogue with figures that never wrap or truncate; each row's source document as a numbered footnote
    (a column with --wide). The FP4 column is shown where the terminal has room for it (it does not at 80
    columns; `moeplan gpus NAME` always gives the FP4 peak)."""
    headers = ["name", "memory\nGiB (GB)", "HBM\nTB/s", "BF16\nTFLOP/s", "FP8\nTFLOP/s", "FP4\nTFLOP/s", "link\nGB/s",
               "via", "PCIe", "source" if wide else "src"]
    rows = [[
        gpu.name,
        f"{gpu.memory_bytes / GiB:,.0f} ({gpu.memory_bytes / GB:,.1f})",
        f"{gpu.hbm_bytes_per_s / 1e12:,.2f}",
        _tera(gpu.bf16_flops_per_s),
        _tera(gpu.fp8_flops_per_s),
        _tera(gpu.fp4_flops_per_s),
        _giga(gpu.link_bytes_per_s_per_direction),
        gpu.interconnect,
        f"Gen{gpu.pcie_generation} x{gpu.pcie_lanes}" if gpu.pcie_generation else "-",
        _document(gpu.source),
    ] for gpu in gpus]
    documents = list(dict.fromkeys(row[-1] for row in rows))
    if not wide:
        rows = [[*row[:-1], str(documents.index(row[-1]) + 1)] for row in rows]
    title = "GPU catalogue: dense peaks; links and PCIe per direction; GB = 1e9 B, GiB = 2^30 B"
    table = fitted_table(headers, rows, left=("name", "via", "source"), wraps=("source",), title=title)
    if console.measure(table, options=console.options.update(width=10**4)).minimum > console.width:
        fp4 = headers.index("FP4\nTFLOP/s")
        table = fitted_table(headers[:fp4] + headers[fp4 + 1:], [row[:fp4] + row[fp4 + 1:] for row in rows],
                             left=("name", "via", "source"), wraps=("source",), title=title)
    console.print(table)
    if not wide:
        for number, document in enumerate(documents, 1):
            console.print(Text(f"{number:>2}. {document}"))


def _render_one(gpu: GPUSpec) -> None:
    table = Table(title=Text(f"{gpu.display_name} ({gpu.name})"), show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    rows = [
        ("aliases", ", ".join(gpu.aliases) or "-"),
        ("memory", f"{gpu.memory_bytes / GiB:,.1f} GiB = {gpu.memory_bytes / GB:,.1f} GB ({gpu.memory_type or 'type not given'})"),
        ("driver reports", f"{gpu.driver_memory_bytes / 2**20:,.0f} MiB (usable memory is computed from it)"
                           if gpu.driver_memory_bytes else "not known (usable memory from the datasheet figure)"),
        ("memory bandwidth", f"{gpu.hbm_bytes_per_s / 1e12:,.3f} TB/s"),
        ("BF16 dense", f"{_tera(gpu.bf16_flops_per_s)} TFLOP/s"),
        ("FP8 dense", _peak(gpu.fp8_flops_per_s, "TFLOP/s", "FP8")),
        ("FP4 dense", _peak(gpu.fp4_flops_per_s, "TFLOP/s", "FP4")),
        ("INT8 dense", _peak(gpu.int8_ops_per_s, "TOP/s", "INT8")),
        ("interconnect", f"{gpu.interconnect}, {_giga(gpu.link_bytes_per_s_per_direction)} GB/s per direction"
                         + (f", {gpu.link_domain_gpus} GPUs per domain" if gpu.link_domain_gpus else "")),
        ("PCIe", f"Gen{gpu.pcie_generation} x{gpu.pcie_lanes}, {_giga(gpu.pcie_bytes_per_s_per_direction)} GB/s per direction"
                 if gpu.pcie_generation else "-"),
        ("TDP", f"{gpu.tdp_w:,.0f} W" if gpu.tdp_w else "-"),
        ("source", gpu.source),
        ("notes", gpu.notes or "-"),
    ]
    for field, value in rows:
        table.add_row(field, Text(value))
    console.print(table)


def gpus(
    name: Annotated[
        Optional[str],
        typer.Argument(help="A GPU name or alias (h100, a100-80gb, mi300x...) or a custom GPU file (.json/.yaml). Omit to list all.", show_default=False),
    ] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Show each GPU's source in the table instead of as numbered footnotes.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List the GPU catalogue, or show one GPU with its source.

    Compute is dense (datasheets' sparse figures halved); link and PCIe bandwidths are per direction.
    A custom GPU file holds the fields `moeplan gpus NAME --json` prints for one GPU, and that output
    loads back as it is: `moeplan gpus h100 --json > g.json; moeplan estimate MODEL --gpu g.json`.

    Examples:

    \b
        moeplan gpus
        moeplan gpus h100
        moeplan gpus --json
        moeplan gpus ./my-gpu.yaml
    """
    shown = list(catalogue()) if name is None else [load_gpu(name)]
    if json_:
        print_json(GPUList(gpus=shown))
    elif name is None:
        _render_list(shown, wide)
    else:
        _render_one(shown[0])
