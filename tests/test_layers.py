"""The import-layer contract of pyproject.toml ([tool.importlinter]), which encodes docs/architecture.md's
layers and forbids import cycles, holds for the package as it is."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_layer_contract_holds():
    linter = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([linter, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"Contracts: 2 kept, 0 broken", result.stdout), result.stdout[-2000:]


def test_every_layer_in_the_contract_is_in_docs_architecture():
    """docs/architecture.md names every package and module of the contract's layers, and every module."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    layers = re.search(r"layers = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.S).group(1)
    names = {n.strip() for line in re.findall(r'"([^"]+)"', layers) for n in line.split("|")}
    for name in names:
        assert f"peftner/{name}" in doc, name
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "peftner").rglob("*.py")
                     if p.name != "__init__.py" and "seqeval_metric" not in p.parts)
    missing = [m for m in modules if m.removeprefix("peftner/") not in doc and m not in doc
               and Path(m).name not in doc]
    assert not missing, missing
