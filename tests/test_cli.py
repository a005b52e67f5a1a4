"""The `peftner` command dispatches to the same code paths as the scripts."""

import json

import pytest

from conftest import memorise_argv
from peftner.cli import main


def test_peftner_train_runs_a_recipe(tmp_path, tiny_model, memorisable_files):
    out = tmp_path / "run"
    assert main(["train", "lora", *memorise_argv(memorisable_files, tiny_model, out, "--epochs", 1)]) == 0
    assert json.loads((out / "metrics.json").read_text())["method"] == "lora"


def test_peftner_train_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
