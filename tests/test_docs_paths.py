"""Every repository path that docs/profile.md, docs/engines.md and docs/sources.md cite exists (QA pass: profile.md
cited `tests/legacy/test_low_latency.py`, a DeepEP file, as if it were this repository's)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"(?<![\w/.-])((?:moeplan|tests|benchmarks|examples|docs)/[\w./*-]*\w)")
"""A path of this repository, in backticks or not."""
OTHER_PROJECT = re.compile(r"(?:'s `?|\b[\w.-]+/[\w.-]+ `?)$")
"""Text just before a path that names another project (DeepEP's `tests/...`, llm-d-incubation/llm-d-planner docs/...)."""


def cited_paths(text: str) -> set[str]:
    return {m.group(1) for m in CITED.finditer(text) if not OTHER_PROJECT.search(text[max(0, m.start() - 80):m.start()])}


@pytest.mark.parametrize("doc", ["docs/profile.md", "docs/engines.md", "docs/sources.md", "examples/github-action/action.yml"])
def test_cited_repository_paths_exist(doc):
    cited = cited_paths((ROOT / doc).read_text())
    missing = sorted(path for path in cited if not any(ROOT.glob(path)))
    assert cited and not missing, f"{doc} cites paths that are not in the repository: {missing}"


def test_other_projects_paths_are_not_ours():
    assert cited_paths("DeepEP's `tests/legacy/x.py`; org/repo docs/a.md; `moeplan/b.py`") == {"moeplan/b.py"}
