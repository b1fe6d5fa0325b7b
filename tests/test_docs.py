"""The generated docs match what the CLI prints today."""

import importlib.util

from conftest import ROOT


def test_worked_examples_are_current(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("worked_examples", ROOT / "docs" / "worked_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "worked-examples.md")
    module.main()
    assert (tmp_path / "worked-examples.md").read_text() == (ROOT / "docs" / "worked-examples.md").read_text(), \
        "docs/worked-examples.md is stale: run python docs/worked_examples.py"
