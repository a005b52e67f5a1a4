"""Every shipped YAML config parses for its recipe and agrees with the library defaults."""

from pathlib import Path

import pytest

from peftner.config import parse_args
from peftner.methods import METHODS

CONFIGS = sorted((Path(__file__).parent.parent / "recipes" / "configs").glob("*.yaml"))
RECIPES = Path(__file__).parent.parent / "recipes"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_matches_defaults(path):
    method = METHODS[path.stem]
    from_yaml = parse_args(method, ["--config", str(path)])
    defaults = parse_args(method, [])
    assert from_yaml == defaults, f"{path.name} drifted from the defaults of method {method.name}"


def test_every_method_has_a_recipe_and_a_config():
    for name in METHODS:
        assert (RECIPES / f"{name}_ner.py").exists(), name
        assert (RECIPES / "configs" / f"{name}.yaml").exists(), name
