"""Shared test helpers: run the CLI in-process, and paths to shipped data."""

import json
import os
import tempfile
from pathlib import Path

os.environ["COLUMNS"] = "200"  # wide rich tables, so tests can search the text without wrapping
os.environ["HF_HUB_OFFLINE"] = "1"  # an org/name argument never reaches the network (test_hub.py unsets it)
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="moeplan-empty-hf-cache-")  # nor the user's own cache

import pytest
from typer.testing import CliRunner

from moeplan.cli.app import _register, app

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "moeplan" / "data" / "configs"

_register()


class Result:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """Run `moeplan ARGS...` in-process; returns exit code, stdout and stderr."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return Result(runner.invoke(app, [str(a) for a in args], catch_exceptions=True))

    return run
