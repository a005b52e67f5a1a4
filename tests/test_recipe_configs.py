"""One source per default: YAML files and --help are generated from the method configs, and agree."""

import dataclasses
import importlib
import re
import subprocess
import sys

import pytest
from conftest import REPO, subprocess_env

from peftner.config import build_parser, config_yaml, parse_args, show_default
from peftner.methods import FILE_METHODS, METHODS

CONFIGS = REPO / "recipes" / "configs"
RECIPES = REPO / "recipes"


@pytest.mark.parametrize("name", sorted(m.name for m in FILE_METHODS))
def test_committed_yaml_is_generated_from_the_defaults(name):
    path = CONFIGS / f"{name}.yaml"
    assert path.read_text(encoding="utf-8") == config_yaml(METHODS[name]), \
        f"{path.name} is stale: run python recipes/configs/generate.py"
    assert parse_args(METHODS[name], ["--config", str(path)]) == parse_args(METHODS[name], [])


def test_method_file_recipe_yaml_and_registry_name_agree():
    # the contract, the search-space entries, target resolution, and the PEFT-type rows (no file each)
    helpers = {"__init__", "base", "space", "targets", "peft_types"}
    modules = {p.stem for p in (REPO / "peftner" / "methods").glob("*.py")} - helpers
    recipes = {p.name.removesuffix("_ner.py") for p in RECIPES.glob("*_ner.py")}
    yamls = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert modules == recipes == yamls == {m.name for m in FILE_METHODS}
    for method in FILE_METHODS:
        name = method.name
        module = importlib.import_module(f"peftner.methods.{name}")
        assert method.name == name and getattr(module, name.upper()) is method, name
        assert method.config_cls.__module__ == module.__name__, name
        assert f'main("{name}")' in (RECIPES / f"{name}_ner.py").read_text()


def _help_defaults(parser) -> dict[str, str]:
    """dest -> the "(default: X)" its --help line prints."""
    shown = {}
    for action in parser._actions:
        match = re.search(r"\(default: (.*?)\)(?: \(comma-separated\))?$", action.help or "")
        if match and action.dest != "config":
            shown[action.dest] = match.group(1)
    return shown


@pytest.mark.parametrize("name", sorted(METHODS))
def test_help_prints_the_defaults_the_run_uses(name):
    method = METHODS[name]
    train, knobs = parse_args(method, [])
    used = {**dataclasses.asdict(train), **dataclasses.asdict(knobs)}
    shown = _help_defaults(build_parser(method))
    assert set(shown) == set(used)
    assert shown == {k: show_default(v) for k, v in used.items()}


def test_recipe_help_shows_the_method_learning_rate():
    """The real script's --help, as a user sees it: LoRA trains at its tuned 1.2e-3, not the shared 5e-05."""
    done = subprocess.run([sys.executable, str(RECIPES / "lora_ner.py"), "--help"], capture_output=True,
                          text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    train, knobs = parse_args(METHODS["lora"], [])
    assert train.learning_rate == 1.2e-3
    assert f"--learning-rate LEARNING_RATE peak learning rate (methods may set their own default) (default: " \
           f"{train.learning_rate})" in text
    assert f"(default: {knobs.r})" in text and "--refuse-invalid-transitions" in text and "--strict" in text


def test_old_strict_flags_are_aliases(tmp_path):
    method = METHODS["lora"]
    old, _ = parse_args(method, ["--strict", "--strict-metric"])
    new, _ = parse_args(method, ["--refuse-invalid-transitions", "--scheme-f1"])
    assert old == new and new.refuse_invalid_transitions and new.scheme_f1
    yaml_file = tmp_path / "old.yaml"
    yaml_file.write_text("strict: true\nstrict-metric: true\n")
    assert parse_args(method, ["--config", str(yaml_file)])[0] == new
