"""Figures quoted in README/docs must be what benchmarks/update_docs.py generates from results."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import update_docs  # noqa: E402


@pytest.mark.parametrize("path,name,body", update_docs.sections(), ids=lambda x: getattr(x, "name", str(x))[:30])
def test_generated_sections_are_current(path, name, body):
    if body is None:
        pytest.skip(f"no result file for {name} yet")
    assert update_docs.current_section(path, name) == body.strip("\n"), \
        f"{path.name} [{name}] is stale: run python benchmarks/update_docs.py"
